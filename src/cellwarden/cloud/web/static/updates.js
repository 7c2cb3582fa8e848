// `#/updates[/{campaign_id}]`: over-the-air update campaigns — their waves and state, each
// device's deployment (state, progress, the reason of a failure), pause, resume and cancel.

import { ApiError, api } from "./api.js";
import { clear, fmt, fmtBytes, fmtTime, h, isNumber, poll } from "./util.js";

const REFRESH_MS = 5000;
const FINAL = new Set(["success", "failure"]);

function describe(error) {
  return error instanceof ApiError ? error.describe() : String(error);
}

function waveSummary(wave) {
  const states = Object.entries(wave.states)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([state, count]) => `${count} ${state}`)
    .join(", ");
  const name = wave.wave === 0 ? "canary" : `wave ${wave.wave}`;
  return `${name} (${wave.devices}, ${wave.released ? "released" : "held"}): ${states}`;
}

export function updatesView(root, { org, navigate }, campaignId) {
  const abort = new AbortController();
  const signal = abort.signal;
  const errorBox = h("p", { class: "error", role: "alert", "data-testid": "updates-error" });
  const notice = h("p", { class: "notice", role: "status", "data-testid": "updates-notice" });
  const canAct = org.role !== "viewer";
  root.append(h("h1", { class: "page-title" }, `Updates — ${org.name ?? `organisation ${org.id}`}`), errorBox, notice);
  const body = h("div");
  root.append(body);

  async function act(id, action) {
    errorBox.textContent = "";
    try {
      const updated = await api(`/api/v1/orgs/${org.id}/ota/campaigns/${id}/${action}`, { method: "POST", signal });
      notice.textContent = `Campaign ${id} is ${updated.state}.`;
      await load();
    } catch (error) {
      if (error.name !== "AbortError") errorBox.textContent = `Could not ${action} campaign ${id}: ${describe(error)}`;
    }
  }

  function controls(campaign) {
    if (!canAct || campaign.state === "completed" || campaign.state === "cancelled") return null;
    const button = (action, label, enabled) =>
      h("button", { type: "button", class: "small", disabled: !enabled, "data-testid": `campaign-${action}`, onclick: () => act(campaign.id, action) }, label);
    return h(
      "span",
      { class: "actions" },
      button("pause", "Pause", campaign.state === "running"),
      button("resume", "Resume", campaign.state === "paused"),
      button("cancel", "Cancel", true),
    );
  }

  function listTable(campaigns) {
    const tbody = h("tbody");
    for (const c of campaigns) {
      tbody.append(
        h(
          "tr",
          { "data-testid": "campaign-row", "data-campaign-id": String(c.id), "data-state": c.state },
          h("td", {}, h("a", { href: `#/updates/${c.id}` }, c.name)),
          h("td", {}, h("span", { class: `badge campaign-${c.state}` }, c.state)),
          h("td", { class: "message" }, c.reason || "—"),
          h("td", {}, c.waves.map((w) => h("div", { class: "small" }, waveSummary(w)))),
          h("td", { class: "nowrap" }, fmtTime(c.created_s, { withSeconds: false })),
          h("td", {}, controls(c)),
        ),
      );
    }
    if (!campaigns.length) tbody.append(h("tr", {}, h("td", { colspan: "6", class: "empty" }, "No campaign yet.")));
    return h(
      "table",
      { class: "data", "data-testid": "campaign-table" },
      h("thead", {}, h("tr", {}, ["Campaign", "State", "Reason", "Waves", "Created", ""].map((c) => h("th", { scope: "col" }, c)))),
      tbody,
    );
  }

  function deviceTable(campaign) {
    const tbody = h("tbody");
    for (const d of campaign.devices) {
      const progress = FINAL.has(d.state) || !isNumber(d.progress_pct) ? "" : ` ${fmt(d.progress_pct, 0)} %`;
      tbody.append(
        h(
          "tr",
          { "data-testid": "deployment-row", "data-device-id": d.device_id, "data-state": d.state },
          h("td", {}, h("a", { href: `#/pack/${encodeURIComponent(d.device_id)}` }, d.device_id)),
          h("td", { class: "num" }, d.wave === 0 ? "canary" : String(d.wave)),
          h("td", {}, h("span", { class: `badge deployment-${d.state}` }, d.state), progress),
          h("td", { class: "message", "data-testid": "deployment-detail" }, d.detail || "—"),
          h("td", {}, d.from_version || "—"),
          h("td", { "data-testid": "deployment-version" }, d.version || "—"),
          h("td", { class: "num" }, fmtBytes(d.bytes_served)),
          h("td", { class: "nowrap" }, isNumber(d.updated_s) ? fmtTime(d.updated_s) : "—"),
        ),
      );
    }
    return h(
      "table",
      { class: "data", "data-testid": "deployment-table" },
      h("thead", {}, h("tr", {}, ["Device", "Wave", "State", "Detail", "From", "Running", "Downloaded", "Updated"].map((c) => h("th", { scope: "col" }, c)))),
      tbody,
    );
  }

  async function load() {
    try {
      clear(errorBox);
      if (campaignId === null) {
        const [campaigns, bundles] = await Promise.all([
          api(`/api/v1/orgs/${org.id}/ota/campaigns`, { signal }),
          api(`/api/v1/orgs/${org.id}/ota/bundles`, { signal }),
        ]);
        clear(body);
        body.append(
          h("section", { class: "panel" }, h("h2", {}, "Campaigns"), h("div", { class: "table-scroll" }, listTable(campaigns))),
          h(
            "section",
            { class: "panel" },
            h("h2", {}, "Bundles"),
            h("ul", { "data-testid": "bundle-list" }, bundles.map((b) =>
              h("li", {}, `${b.version} for ${b.hardware.join(", ")} (${b.architecture}), ${fmtBytes(b.size)}, expires ${b.expires}`))),
          ),
        );
        return;
      }
      const campaign = await api(`/api/v1/orgs/${org.id}/ota/campaigns/${campaignId}`, { signal });
      document.title = `Update ${campaign.name} — cellwarden`;
      clear(body);
      body.append(
        h(
          "section",
          { class: "panel", "data-testid": "campaign", "data-state": campaign.state },
          h("div", { class: "panel-head" }, h("h2", {}, `Campaign ${campaign.name}`), controls(campaign)),
          h("p", {}, "State: ", h("strong", { "data-testid": "campaign-state" }, campaign.state),
            campaign.reason ? h("span", { "data-testid": "campaign-reason" }, ` — ${campaign.reason}`) : null),
          h("ul", { "data-testid": "wave-list" }, campaign.waves.map((w) => h("li", {}, waveSummary(w)))),
          h("p", { class: "muted" }, `Canary ${fmt(campaign.canary_pct, 0)} %, then waves of ${campaign.wave_pcts.join(" %, ")} %; ` +
            `pauses above ${fmt(campaign.failure_threshold_pct, 0)} % failures.`),
          h("div", { class: "table-scroll" }, deviceTable(campaign)),
          h("p", {}, h("a", { href: "#/updates", onclick: (e) => { e.preventDefault(); navigate("#/updates"); } }, "All campaigns")),
        ),
      );
    } catch (error) {
      if (error.name !== "AbortError") errorBox.textContent = describe(error);
    }
  }

  const stop = poll(load, REFRESH_MS);
  return () => {
    stop();
    abort.abort();
  };
}
