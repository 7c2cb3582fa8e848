// `#/alarms`: the alarm centre — alarms of the organisation by state, acknowledge and clear.

import { ApiError, api, query } from "./api.js";
import { clear, fmt, fmtAgo, fmtTime, h, isNumber, poll } from "./util.js";

const PER_PAGE = 50;
const REFRESH_MS = 15000;
const STATES = [
  ["open", "open (active or acknowledged)"],
  ["active", "active"],
  ["acknowledged", "acknowledged"],
  ["cleared", "cleared"],
  ["", "all"],
];
const listing = { state: "open", page: 1 };

function describe(error) {
  return error instanceof ApiError ? error.describe() : String(error);
}

function who(name, seconds) {
  if (!name) return "—";
  return h("span", { title: fmtTime(seconds) }, `${name}, ${fmtAgo(seconds)}`);
}

export function alarmsView(root, { org }) {
  const abort = new AbortController();
  const signal = abort.signal;
  let busy = 0; // actions in flight: the refresh waits

  const stateSelect = h(
    "select",
    { id: "alarm-state", "data-testid": "alarm-state" },
    STATES.map(([value, text]) => h("option", { value, selected: value === listing.state }, text)),
  );
  const errorBox = h("p", { class: "error", role: "alert", "data-testid": "alarm-error" });
  const notice = h("p", { class: "notice", role: "status", "data-testid": "alarm-notice" });
  const tbody = h("tbody");
  const columns = [
    "Raised", "Severity", "State", "Pack", "Rule and source", "Message", "Value / limit",
    "Acknowledged", "Cleared", "Actions",
  ];
  const table = h(
    "table",
    { class: "data", "data-testid": "alarm-table" },
    h("caption", { class: "sr-only" }, "Alarms of the organisation, newest first"),
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
    tbody,
  );
  const prev = h("button", { type: "button", "data-testid": "alarms-prev" }, "‹ Newer");
  const next = h("button", { type: "button", "data-testid": "alarms-next" }, "Older ›");
  const info = h("span", { "data-testid": "alarms-info" });
  const roleNote =
    org.role === "viewer"
      ? h("p", { class: "muted" }, "Your role here is viewer: acknowledging and clearing need the operator role.")
      : null;
  root.append(
    h("h1", { class: "page-title" }, `Alarm centre — ${org.name ?? `organisation ${org.id}`}`),
    h(
      "section",
      { class: "panel", "aria-labelledby": "alarms-title" },
      h(
        "div",
        { class: "panel-head" },
        h("h2", { id: "alarms-title" }, "Alarms"),
        h("form", { class: "filters", onsubmit: (e) => e.preventDefault() }, h("label", { for: "alarm-state" }, "State"), stateSelect),
      ),
      roleNote,
      errorBox,
      notice,
      h("div", { class: "table-scroll" }, table),
      h("div", { class: "pager" }, prev, info, next),
    ),
  );

  function valueText(alarm) {
    if (!isNumber(alarm.value) && !isNumber(alarm.threshold)) return "—";
    const digits = (v) => (isNumber(v) && Math.abs(v) < 10 ? 3 : 1);
    return `${fmt(alarm.value, digits(alarm.value))} / ${fmt(alarm.threshold, digits(alarm.threshold))}`;
  }

  function row(alarm) {
    const ack = h(
      "button",
      {
        type: "button",
        class: "small",
        "data-testid": "alarm-ack",
        disabled: alarm.state !== "active",
        onclick: () => act(alarm, "acknowledge"),
      },
      "Acknowledge",
    );
    const clearButton = h(
      "button",
      {
        type: "button",
        class: "small",
        "data-testid": "alarm-clear",
        disabled: alarm.state === "cleared",
        onclick: () => act(alarm, "clear"),
      },
      "Clear",
    );
    const deviceId = alarm.device_id;
    const source = [
      isNumber(alarm.cell) ? `cell ${alarm.cell}` : null,
      alarm.code ? `code ${alarm.code}` : null,
    ].filter(Boolean);
    return h(
      "tr",
      {
        "data-testid": "alarm-row",
        "data-alarm-id": String(alarm.id),
        "data-state": alarm.state,
        "data-severity": alarm.severity,
        class: `alarm sev-row-${alarm.severity} state-${alarm.state}`,
      },
      h("td", { class: "nowrap", title: fmtTime(alarm.raised_s) }, fmtTime(alarm.raised_s, { withSeconds: false })),
      h("td", {}, h("span", { class: `badge sev-${alarm.severity}` }, alarm.severity)),
      h(
        "td",
        { "data-testid": "alarm-state-cell" },
        h("span", { class: `badge state-badge-${alarm.state}` }, alarm.state),
        alarm.escalation_level > 0
          ? h("div", { class: "muted small", "data-testid": "alarm-escalation" }, `escalated to level ${alarm.escalation_level}`)
          : null,
      ),
      h(
        "td",
        { class: "nowrap" },
        deviceId ? h("a", { href: `#/pack/${encodeURIComponent(deviceId)}` }, alarm.pack ?? deviceId) : (alarm.pack ?? "—"),
        deviceId && (alarm.pack ?? deviceId) !== deviceId ? h("div", { class: "muted small" }, deviceId) : null,
      ),
      h(
        "td",
        {},
        alarm.rule ?? "—",
        h("div", { class: "muted small" }, source.length ? source.join(", ") : "whole pack"),
      ),
      h("td", { class: "message" }, alarm.message ?? ""),
      h("td", { class: "num" }, valueText(alarm)),
      h("td", { "data-testid": "alarm-acked" }, who(alarm.acked_by, alarm.acked_s)),
      h("td", { "data-testid": "alarm-cleared" }, who(alarm.cleared_by, alarm.cleared_s)),
      h("td", { class: "actions" }, ack, clearButton),
    );
  }

  async function act(alarm, action) {
    busy += 1;
    errorBox.textContent = "";
    notice.textContent = "";
    const current = tbody.querySelector(`tr[data-alarm-id="${alarm.id}"]`);
    current?.querySelectorAll("button").forEach((b) => {
      b.disabled = true;
    });
    try {
      const updated = await api(`/api/v1/alarms/${alarm.id}/${action}`, { method: "POST", signal });
      const fresh = row({ ...alarm, ...updated });
      current?.replaceWith(fresh);
      notice.textContent =
        action === "acknowledge"
          ? `Alarm ${alarm.id} acknowledged by ${updated.acked_by}.`
          : `Alarm ${alarm.id} cleared by ${updated.cleared_by}.`;
    } catch (error) {
      if (error.name === "AbortError") return;
      errorBox.textContent = `Could not ${action} alarm ${alarm.id}: ${describe(error)}`;
      const restored = row(alarm);
      current?.replaceWith(restored);
    } finally {
      busy -= 1;
    }
  }

  async function load() {
    if (busy) return;
    try {
      const answer = await api(
        `/api/v1/orgs/${org.id}/alarms${query({ state: listing.state, page: listing.page, per_page: PER_PAGE })}`,
        { signal },
      );
      if (busy) return;
      const items = answer.items ?? answer.alarms ?? [];
      clear(tbody);
      if (!items.length) {
        tbody.append(h("tr", {}, h("td", { colspan: String(columns.length), class: "empty" }, "No alarm in this state.")));
      }
      items.forEach((alarm) => tbody.append(row(alarm)));
      const pages = Math.max(1, Math.ceil((answer.total ?? items.length) / PER_PAGE));
      info.textContent = `Page ${listing.page} of ${pages} · ${answer.total ?? items.length} alarm${answer.total === 1 ? "" : "s"}`;
      prev.disabled = listing.page <= 1;
      next.disabled = listing.page >= pages;
      table.dataset.total = String(answer.total ?? items.length);
    } catch (error) {
      if (error.name !== "AbortError") errorBox.textContent = describe(error);
    }
  }

  stateSelect.addEventListener("change", () => {
    listing.state = stateSelect.value;
    listing.page = 1;
    notice.textContent = "";
    load();
  });
  prev.addEventListener("click", () => {
    listing.page = Math.max(1, listing.page - 1);
    load();
  });
  next.addEventListener("click", () => {
    listing.page += 1;
    load();
  });
  const stop = poll(load, REFRESH_MS);
  return () => {
    stop();
    abort.abort();
  };
}
