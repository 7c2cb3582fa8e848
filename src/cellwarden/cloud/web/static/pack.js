// `#/pack/{device_id}`: live values, the cell heat map, the history chart, events and exports.

import { ApiError, api, download, query } from "./api.js";
import { HistoryChart } from "./chart.js";
import { CellHeatmap } from "./heatmap.js";
import { alarmBadge, statusBadge } from "./overview.js";
import { clear, debounce, fmt, fmtAgo, fmtBytes, fmtTime, h, isNumber, poll } from "./util.js";

const LIVE_MS = 5000;
const EVENTS_MS = 30000;
const EVENTS_PER_PAGE = 20;
const MAX_POINTS = 50000;
const MIN_ZOOM_S = 60; // a drag never narrows the chart below a minute
// the summary fields every resolution has (raw rows and the 1-minute / 1-hour rollups)
export const FIELDS = {
  soc_pct: { label: "State of charge", unit: "%", digits: 1 },
  voltage_v: { label: "Pack voltage", unit: "V", digits: 2 },
  current_a: { label: "Current", unit: "A", digits: 2 },
  temp_max_c: { label: "Highest cell temperature", unit: "°C", digits: 1 },
  temp_min_c: { label: "Lowest cell temperature", unit: "°C", digits: 1 },
  cell_voltage_max_v: { label: "Highest cell voltage", unit: "V", digits: 3 },
  cell_voltage_min_v: { label: "Lowest cell voltage", unit: "V", digits: 3 },
  soh_pct: { label: "State of health", unit: "%", digits: 1 },
};
const RANGES = [
  ["1 h", 3600],
  ["24 h", 86400],
  ["7 d", 7 * 86400],
  ["30 d", 30 * 86400],
];
// kept across packs: the same field and range when going from one pack to the next
const chartChoice = { field: "soc_pct", span: 86400 };

function describe(error) {
  return error instanceof ApiError ? error.describe() : String(error);
}

export function packView(root, _context, deviceId) {
  const abort = new AbortController();
  const signal = abort.signal;
  const base = `/api/v1/packs/${encodeURIComponent(deviceId)}`;
  const stops = [];

  // --- header and live values -----------------------------------------------------------------
  const title = h("h1", { class: "page-title", "data-testid": "pack-title" }, deviceId);
  const subtitle = h("p", { class: "muted", "data-testid": "pack-subtitle" });
  const headBadges = h("div", { class: "head-badges" });
  const pageError = h("p", { class: "error", role: "alert", "data-testid": "pack-error" });
  const liveList = h("dl", { class: "live", "data-testid": "live-values" });
  const liveNote = h("span", { class: "muted", "data-testid": "live-updated", "aria-live": "off" });
  const liveSection = h(
    "section",
    { class: "panel", "aria-labelledby": "live-title" },
    h("div", { class: "panel-head" }, h("h2", { id: "live-title" }, "Live values"), liveNote),
    liveList,
  );

  // --- heat map -------------------------------------------------------------------------------
  const heatCanvas = h("canvas", { "data-testid": "cell-heatmap", role: "img", "data-cells": "0" });
  const legend = h("div", { class: "legend heat-legend", "data-testid": "heatmap-legend" });
  const heatmap = new CellHeatmap(heatCanvas, legend);
  const cellStats = h("p", { class: "muted", "data-testid": "cell-stats" });
  const modeRadio = (mode, text) =>
    h(
      "label",
      { class: "toggle" },
      h("input", {
        type: "radio",
        name: "heat-mode",
        value: mode,
        checked: mode === "voltage",
        "data-testid": `heatmap-mode-${mode}`,
        onchange: () => {
          heatmap.setMode(mode);
          showCellStats();
        },
      }),
      text,
    );
  const cellsSection = h(
    "section",
    { class: "panel", "aria-labelledby": "cells-title" },
    h(
      "div",
      { class: "panel-head" },
      h("h2", { id: "cells-title" }, "Cells"),
      h(
        "fieldset",
        { class: "toggles" },
        h("legend", { class: "sr-only" }, "Colour the cells by"),
        modeRadio("voltage", "Voltage"),
        modeRadio("temp", "Temperature"),
      ),
    ),
    h("div", { class: "canvas-box" }, heatCanvas),
    legend,
    cellStats,
  );

  // --- history chart --------------------------------------------------------------------------
  const fieldSelect = h(
    "select",
    { id: "history-field", "data-testid": "history-field" },
    Object.entries(FIELDS).map(([key, f]) =>
      h("option", { value: key, selected: key === chartChoice.field }, `${f.label} (${f.unit})`),
    ),
  );
  const rangeButtons = RANGES.map(([text, span]) =>
    h(
      "button",
      {
        type: "button",
        class: "range",
        "data-testid": `range-${text.replace(" ", "")}`,
        "aria-pressed": String(span === chartChoice.span),
        onclick: () => setRange(span),
      },
      text,
    ),
  );
  const resetButton = h(
    "button",
    { type: "button", "data-testid": "chart-reset", disabled: true, onclick: () => setRange(chartChoice.span) },
    "Reset zoom",
  );
  const chartCanvas = h("canvas", {
    "data-testid": "history-chart",
    role: "img",
    "data-queries": "0",
    "data-state": "loading",
  });
  const selection = h("div", { class: "selection", hidden: true, "aria-hidden": "true" });
  const chart = new HistoryChart(chartCanvas, selection, {
    onZoom: (from, to) => {
      const middle = (from + to) / 2;
      const span = Math.max(to - from, MIN_ZOOM_S);
      history.from = middle - span / 2;
      history.to = middle + span / 2;
      history.zoomed = true;
      resetButton.disabled = false;
      loadHistory();
    },
  });
  const chartStatus = h("p", { class: "muted", "data-testid": "chart-status", "aria-live": "polite" });
  const historySection = h(
    "section",
    { class: "panel wide", "aria-labelledby": "history-title" },
    h(
      "div",
      { class: "panel-head" },
      h("h2", { id: "history-title" }, "History"),
      h(
        "div",
        { class: "chart-controls" },
        h("label", { for: "history-field" }, "Field"),
        fieldSelect,
        h("div", { class: "button-group", role: "group", "aria-label": "Time range" }, rangeButtons),
        resetButton,
      ),
    ),
    h("div", { class: "canvas-box chart-box" }, chartCanvas, selection),
    chartStatus,
  );

  // --- events ---------------------------------------------------------------------------------
  const kindSelect = h(
    "select",
    { id: "event-kind", "data-testid": "event-kind" },
    [
      ["", "all kinds"],
      ["trip", "trips"],
      ["clear", "clears"],
      ["info", "info"],
    ].map(([value, text]) => h("option", { value }, text)),
  );
  const eventsBody = h("tbody");
  const eventsPrev = h("button", { type: "button", "data-testid": "events-prev" }, "‹ Newer");
  const eventsNext = h("button", { type: "button", "data-testid": "events-next" }, "Older ›");
  const eventsInfo = h("span", { "data-testid": "events-info" });
  const eventsError = h("p", { class: "error", role: "alert" });
  const eventsTable = h(
    "table",
    { class: "data", "data-testid": "events-table" },
    h("caption", { class: "sr-only" }, "Events of the pack, newest first"),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ["Time", "Source", "Code", "Name", "Kind", "Value", "Action", "Freeze frame"].map((c) =>
          h("th", { scope: "col" }, c),
        ),
      ),
    ),
    eventsBody,
  );
  const eventsSection = h(
    "section",
    { class: "panel wide", "aria-labelledby": "events-title" },
    h(
      "div",
      { class: "panel-head" },
      h("h2", { id: "events-title" }, "Events and DTCs"),
      h("div", { class: "filters" }, h("label", { for: "event-kind" }, "Kind"), kindSelect),
    ),
    eventsError,
    h("div", { class: "table-scroll" }, eventsTable),
    h("div", { class: "pager" }, eventsPrev, eventsInfo, eventsNext),
  );

  // --- exports --------------------------------------------------------------------------------
  const exportNote = h("p", { class: "muted", "data-testid": "export-note", "aria-live": "polite" });
  const exportButtons = [];
  for (const table of ["summary", "cells", "events"]) {
    for (const format of ["csv", "parquet"]) {
      exportButtons.push(
        h(
          "button",
          {
            type: "button",
            "data-testid": `export-${table}-${format}`,
            onclick: (event) => exportTable(event.currentTarget, table, format),
          },
          `${table[0].toUpperCase()}${table.slice(1)} · ${format === "csv" ? "CSV" : "Parquet"}`,
        ),
      );
    }
  }
  const exportSection = h(
    "section",
    { class: "panel wide", "aria-labelledby": "export-title" },
    h("div", { class: "panel-head" }, h("h2", { id: "export-title" }, "Export")),
    h("p", {}, "Downloads cover the history chart's time window."),
    h("div", { class: "button-row" }, exportButtons),
    exportNote,
  );

  root.append(
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/" }, "Fleet"), " / ", deviceId),
    h("div", { class: "pack-head" }, h("div", {}, title, subtitle), headBadges),
    pageError,
    h("div", { class: "pack-grid" }, liveSection, cellsSection, historySection, eventsSection, exportSection),
  );

  // --- live -----------------------------------------------------------------------------------
  let lastCells = null;
  let packInfo = null;

  function item(key, label, value, extra = {}) {
    return h(
      "div",
      { class: `kv ${extra.class ?? ""}` },
      h("dt", {}, label),
      h("dd", { "data-testid": `live-${key}`, title: extra.title }, value),
    );
  }

  function showLive(p) {
    const s = p.latest ?? {};
    title.textContent = p.name && p.name !== p.device_id ? `${p.name}` : p.device_id;
    document.title = `${title.textContent} — cellwarden`;
    subtitle.textContent = [
      p.device_id,
      `fleet ${p.fleet}`,
      p.site ? `site ${p.site}` : null,
      p.chemistry,
      p.cell_count ? `${p.cell_count} cells` : null,
      isNumber(p.capacity_ah) ? `${p.capacity_ah} Ah` : null,
    ]
      .filter(Boolean)
      .join(" · ");
    clear(headBadges).append(
      statusBadge(p.status),
      h(
        "a",
        { href: "#/alarms", class: "alarm-link", "data-testid": "pack-alarms" },
        alarmBadge(p.active_alarms, p.worst_severity ?? "warning"),
        ` open alarm${p.active_alarms === 1 ? "" : "s"}`,
      ),
    );
    const current = s.current_a;
    const direction = isNumber(current) ? (current > 0.05 ? "charging" : current < -0.05 ? "discharging" : "idle") : "";
    const position = p.position;
    const worst = s.worst_code ? String(Math.round(s.worst_code)) : "none";
    clear(liveList).append(
      item("soc_pct", "State of charge", fmt(s.soc_pct, 1, "%"), { class: "big" }),
      item("soh_pct", "State of health", fmt(s.soh_pct, 1, "%"), { class: "big" }),
      item("voltage_v", "Voltage", fmt(s.voltage_v, 2, "V"), { class: "big" }),
      item("current_a", "Current", [fmt(current, 2, "A"), direction ? h("span", { class: "note" }, ` ${direction}`) : null], {
        class: "big",
      }),
      item("cell_voltage", "Cell voltage min – max", `${fmt(s.cell_voltage_min_v, 3)} – ${fmt(s.cell_voltage_max_v, 3, "V")}`),
      item("temp", "Temperature min – max", `${fmt(s.temp_min_c, 1)} – ${fmt(s.temp_max_c, 1, "°C")}`),
      item("charge_current_limit_a", "Charge current limit", fmt(s.charge_current_limit_a, 1, "A")),
      item("discharge_current_limit_a", "Discharge current limit", fmt(s.discharge_current_limit_a, 1, "A")),
      item("charge_voltage_limit_v", "Charge voltage limit", fmt(s.charge_voltage_limit_v, 2, "V")),
      item("path_state", "Path state", s.path_state ?? "—", { class: s.path_state === "fault" ? "path-fault" : "" }),
      item("status", "Status", p.status ?? "unknown"),
      item("firmware", "Firmware", p.firmware ?? "—"),
      item("last_seen", "Last seen", fmtAgo(p.received_s), { title: fmtTime(p.received_s) }),
      item("record_time", "Newest summary", fmtTime(s.time_s)),
      item("worst_code", "Worst active DTC", worst),
      item("balancing_cells", "Balancing cells", isNumber(s.balancing_cells) ? String(s.balancing_cells) : "—"),
      item(
        "position",
        "Position",
        position ? `${fmt(position.latitude_deg, 5)}°, ${fmt(position.longitude_deg, 5)}°` : "—",
        { title: position ? `fix ${fmtTime(position.time_s)}` : undefined },
      ),
    );
    liveNote.textContent = `updated ${fmtTime(Date.now() / 1000)}`;
    if (JSON.stringify(p.cells) !== lastCells) {
      lastCells = JSON.stringify(p.cells);
      heatmap.setCells(p.cells);
      showCellStats();
    }
  }

  function showCellStats() {
    const cells = heatmap.cells;
    if (!cells) {
      cellStats.textContent = "No cell record yet.";
      return;
    }
    const temp = heatmap.mode === "temp";
    const values = (temp ? cells.temp_c : cells.voltage_v) ?? [];
    const present = values.map((v, i) => [v, i]).filter(([v]) => isNumber(v));
    const parts = [`${values.length} cells`];
    if (present.length) {
      const [minV, minI] = present.reduce((a, b) => (b[0] < a[0] ? b : a));
      const [maxV, maxI] = present.reduce((a, b) => (b[0] > a[0] ? b : a));
      const unit = temp ? "°C" : "V";
      const digits = temp ? 1 : 3;
      parts.push(`min ${fmt(minV, digits, unit)} (cell ${minI + 1})`);
      parts.push(`max ${fmt(maxV, digits, unit)} (cell ${maxI + 1})`);
      parts.push(temp ? `spread ${fmt(maxV - minV, 1, "°C")}` : `spread ${Math.round((maxV - minV) * 1000)} mV`);
    }
    const missing = values.length - present.length;
    if (missing) parts.push(`${missing} without reading`);
    const bleeding = (cells.balancing ?? []).filter(Boolean).length;
    parts.push(`${bleeding} balancing`);
    parts.push(`record ${fmtTime(cells.time_s)}`);
    cellStats.textContent = parts.join(" · ");
  }

  async function loadLive() {
    try {
      const p = await api(base, { signal });
      packInfo = p;
      pageError.textContent = "";
      showLive(p);
    } catch (error) {
      if (error.name === "AbortError") return;
      pageError.textContent = describe(error);
      if (error.status === 404 && !packInfo) {
        pageError.append(" ", h("a", { href: "#/" }, "Back to the fleet"));
      }
    }
  }

  // --- history --------------------------------------------------------------------------------
  const history = { from: 0, to: 0, zoomed: false, seq: 0, queries: 0 };

  function setRange(span) {
    chartChoice.span = span;
    const now = Date.now() / 1000;
    history.to = now;
    history.from = now - span;
    history.zoomed = false;
    resetButton.disabled = true;
    rangeButtons.forEach((button, i) => button.setAttribute("aria-pressed", String(RANGES[i][1] === span)));
    loadHistory();
  }

  async function loadHistory() {
    const seq = ++history.seq;
    const field = chartChoice.field;
    const meta = FIELDS[field];
    const [from, to] = [history.from, history.to];
    chartCanvas.dataset.state = "loading";
    chartStatus.textContent = "Loading…";
    const params = { from_s: from.toFixed(1), to_s: to.toFixed(1), fields: field, max_points: MAX_POINTS };
    try {
      const answer = await api(`${base}/history${query(params)}`, { signal });
      if (seq !== history.seq) return;
      history.queries += 1;
      const values = answer.series[field] ?? [];
      const rollup = answer.resolution !== "raw";
      chart.setData({
        time_s: answer.time_s,
        values,
        from_s: from,
        to_s: to,
        ...meta,
        resolution: answer.resolution,
        message: rollup
          ? "No data in this range (minute and hour rollups are computed periodically)"
          : "No data in this time range",
      });
      const notes = [
        `${answer.time_s.length} records at ${answer.resolution === "raw" ? "full" : answer.resolution} resolution`,
        `${fmtTime(from, { withSeconds: false })} – ${fmtTime(to, { withSeconds: false })}`,
      ];
      if (history.zoomed) notes.push("zoomed (Reset zoom returns to the range)");
      if (answer.truncated) notes.push(`only the first ${MAX_POINTS} records are shown: zoom in for the rest`);
      chartStatus.textContent = notes.join(" · ");
      chartCanvas.dataset.queries = String(history.queries);
      chartCanvas.dataset.state = "ready";
    } catch (error) {
      if (error.name === "AbortError" || seq !== history.seq) return;
      history.queries += 1;
      chartCanvas.dataset.queries = String(history.queries);
      chartCanvas.dataset.state = "error";
      chart.setData({ time_s: [], values: [], from_s: from, to_s: to, ...meta, message: "History could not be read" });
      chartStatus.textContent = describe(error);
    }
  }

  fieldSelect.addEventListener("change", () => {
    chartChoice.field = fieldSelect.value;
    loadHistory();
  });

  // --- events ---------------------------------------------------------------------------------
  const events = { page: 1, kind: "" };

  function freezeFrame(text) {
    if (!text || text === "null") return "—";
    let data;
    try {
      data = JSON.parse(text);
    } catch {
      return text;
    }
    if (data === null || typeof data !== "object") return String(data);
    const entries = Object.entries(data);
    if (!entries.length) return "—";
    return h(
      "details",
      {},
      h("summary", {}, `${entries.length} value${entries.length === 1 ? "" : "s"}`),
      h(
        "dl",
        { class: "freeze" },
        entries.map(([key, value]) => [
          h("dt", {}, key),
          h("dd", {}, typeof value === "object" ? JSON.stringify(value) : String(value)),
        ]),
      ),
    );
  }

  async function loadEvents() {
    try {
      const answer = await api(
        `${base}/events${query({ page: events.page, per_page: EVENTS_PER_PAGE, kind: events.kind })}`,
        { signal },
      );
      eventsError.textContent = "";
      clear(eventsBody);
      if (!answer.items.length) {
        eventsBody.append(h("tr", {}, h("td", { colspan: "8", class: "empty" }, "No events.")));
      }
      for (const e of answer.items) {
        eventsBody.append(
          h(
            "tr",
            { "data-testid": "event-row", "data-code": e.code, "data-kind": e.kind ?? "", class: e.kind === "trip" ? "row-trip" : "" },
            h("td", {}, fmtTime(e.time_s)),
            h("td", {}, e.source ?? "—"),
            h("td", { class: "code" }, e.code),
            h("td", {}, e.name ?? ""),
            h("td", {}, h("span", { class: `badge kind-${e.kind ?? "info"}` }, e.kind ?? "—")),
            h("td", { class: "num" }, isNumber(e.value) ? String(e.value) : "—"),
            h("td", {}, e.action ?? "—"),
            h("td", {}, freezeFrame(e.freeze_frame)),
          ),
        );
      }
      const pages = Math.max(1, Math.ceil(answer.total / EVENTS_PER_PAGE));
      eventsInfo.textContent = `Page ${events.page} of ${pages} · ${answer.total} event${answer.total === 1 ? "" : "s"}`;
      eventsPrev.disabled = events.page <= 1;
      eventsNext.disabled = events.page >= pages;
    } catch (error) {
      if (error.name !== "AbortError") eventsError.textContent = describe(error);
    }
  }

  kindSelect.addEventListener("change", () => {
    events.kind = kindSelect.value;
    events.page = 1;
    loadEvents();
  });
  eventsPrev.addEventListener("click", () => {
    events.page = Math.max(1, events.page - 1);
    loadEvents();
  });
  eventsNext.addEventListener("click", () => {
    events.page += 1;
    loadEvents();
  });

  // --- export ---------------------------------------------------------------------------------
  async function exportTable(button, table, format) {
    button.disabled = true;
    exportNote.textContent = `Preparing ${table} (${format})…`;
    const params = { table, format, from_s: history.from.toFixed(1), to_s: history.to.toFixed(1) };
    try {
      const file = await download(`${base}/export${query(params)}`, `${deviceId}-${table}.${format}`);
      exportNote.textContent = `Downloaded ${file.name} (${fmtBytes(file.size)}).`;
    } catch (error) {
      if (error.name !== "AbortError") exportNote.textContent = `Export failed: ${describe(error)}`;
    } finally {
      button.disabled = false;
    }
  }

  // --- start ----------------------------------------------------------------------------------
  const redraw = debounce(() => {
    heatmap.draw();
    chart.draw();
  }, 100);
  window.addEventListener("resize", redraw);
  stops.push(poll(loadLive, LIVE_MS));
  stops.push(poll(() => (events.page === 1 ? loadEvents() : null), EVENTS_MS));
  setRange(chartChoice.span);
  return () => {
    stops.forEach((stop) => stop());
    abort.abort();
    window.removeEventListener("resize", redraw);
  };
}
