// `#/analytics/{fleet_id}`: a fleet's latest analysis — the degradation ranking, the SoH
// forecast (with the chosen pack's daily SoH and its band at the horizon), developing faults
// and rotation advice; operators and admins run it on demand.

import { ApiError, api } from "./api.js";
import { HistoryChart } from "./chart.js";
import { clear, debounce, fmt, fmtAgo, fmtTime, h, isNumber } from "./util.js";

const DAY_S = 86400;
// the pack whose history the forecast chart shows, kept while going from page to page
const chosen = { fleetId: null, deviceId: null };

function describe(error) {
  return error instanceof ApiError ? error.describe() : String(error);
}

/** ``YYYY-MM-DD`` as Unix seconds (UTC midnight), and back. */
function daySeconds(text) {
  const [y, m, d] = text.split("-").map(Number);
  return Date.UTC(y, m - 1, d) / 1000;
}

function dayText(seconds) {
  return new Date(seconds * 1000).toISOString().slice(0, 10);
}

function words(text) {
  return (text ?? "").replaceAll("_", " ");
}

/** The pack's name, linked to its page when it is in the registry. */
function packLink(name, deviceId) {
  if (!deviceId) return name ?? "—";
  return h("a", { href: `#/pack/${encodeURIComponent(deviceId)}` }, name ?? deviceId);
}

function table(testid, caption, columns, body) {
  return h(
    "div",
    { class: "table-scroll" },
    h(
      "table",
      { class: "data", "data-testid": testid },
      h("caption", { class: "sr-only" }, caption),
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
      body,
    ),
  );
}

function emptyRow(body, span, text) {
  body.append(h("tr", {}, h("td", { colspan: String(span), class: "empty" }, text)));
}

function section(id, title, ...children) {
  return h("section", { class: "panel wide", "aria-labelledby": id }, h("div", { class: "panel-head" }, h("h2", { id }, title)), ...children);
}

export function analyticsView(root, { org, navigate }, fleetId) {
  const abort = new AbortController();
  const signal = abort.signal;
  const mayRun = org.role === "operator" || org.role === "admin";

  const fleetSelect = h("select", { id: "analytics-fleet", "data-testid": "analytics-fleet" });
  const title = h("h1", { class: "page-title" }, "Fleet analytics");
  const status = h("p", { class: "muted", "data-testid": "analytics-status" });
  const error = h("p", { class: "error", role: "alert", "data-testid": "analytics-error" });
  const notice = h("p", { class: "notice", role: "status", "data-testid": "analytics-notice" });
  const runButton = mayRun
    ? h("button", { type: "button", class: "primary", "data-testid": "analytics-run", onclick: () => run() }, "Run now")
    : null;
  const roleNote = mayRun
    ? null
    : h("p", { class: "muted" }, "Your role here is viewer: running the analysis needs the operator role.");

  const rankingColumns = ["Rank", "Pack", "Type", "Site", "SoH now", "Fade", "Duty", "Outlier"];
  const rankingBody = h("tbody");
  const forecastColumns = ["Pack", "SoH at horizon", "p10 – p90", "End of life", "p10 – p90", "Chart"];
  const forecastBody = h("tbody");
  const forecastNote = h("p", { class: "muted", "data-testid": "forecast-note" });
  const prognosisColumns = ["Pack", "Fault", "First flagged", "Reason"];
  const prognosisBody = h("tbody");
  const rotationColumns = ["Type", "Site", "Heavy use", "Light use", "Reason"];
  const rotationBody = h("tbody");

  const chartCanvas = h("canvas", { "data-testid": "forecast-chart", role: "img", "data-state": "empty" });
  const chart = new HistoryChart(chartCanvas, h("div", { hidden: true }), { height: 280 });
  const chartTitle = h("h3", { class: "chart-title", "data-testid": "forecast-chart-title" }, "Choose a pack to see its history");
  const chartNote = h("p", { class: "muted", "data-testid": "forecast-chart-note", "aria-live": "polite" });

  root.append(
    h(
      "div",
      { class: "pack-head" },
      h("div", {}, title, status),
      h("form", { class: "filters", onsubmit: (e) => e.preventDefault() }, h("label", { for: "analytics-fleet" }, "Fleet"), fleetSelect, runButton),
    ),
    roleNote,
    error,
    notice,
    h(
      "div",
      { class: "pack-grid" },
      section(
        "ranking-title",
        "Degradation ranking",
        h("p", { class: "muted" }, "Fastest fade first. An outlier fades unlike packs of its type and duty."),
        table("analytics-ranking", "Packs ranked by capacity fade rate", rankingColumns, rankingBody),
      ),
      section(
        "forecast-title",
        "SoH forecast",
        forecastNote,
        table("analytics-forecast", "SoH at the horizon and end of life per pack", forecastColumns, forecastBody),
        chartTitle,
        h("div", { class: "canvas-box chart-box static" }, chartCanvas),
        chartNote,
      ),
      section(
        "prognosis-title",
        "Developing faults",
        table("analytics-prognosis", "Packs with a developing fault", prognosisColumns, prognosisBody),
      ),
      section(
        "rotation-title",
        "Rotation advice",
        table("analytics-rotation", "Pairs of packs to swap duties", rotationColumns, rotationBody),
      ),
    ),
  );

  let analysis = null;

  function rankingRow(r) {
    return h(
      "tr",
      { "data-testid": "analytics-ranking-row", "data-pack": r.pack_id, "data-outlier": String(Boolean(r.outlier)) },
      h("td", { class: "num" }, String(r.rank)),
      h("td", {}, packLink(r.pack_id, r.device_id)),
      h("td", {}, r.pack_type || "—"),
      h("td", {}, r.site || "—"),
      h("td", { class: "num" }, fmt(r.soh_now_pct, 1, "%")),
      h("td", { class: "num" }, fmt(r.fade_pct_per_year, 2, "%/year")),
      h("td", {}, r.duty ?? "—"),
      h(
        "td",
        { class: "message", "data-testid": "analytics-outlier" },
        r.outlier ? [h("span", { class: "badge sev-warning" }, "outlier"), " ", r.reason] : "—",
      ),
    );
  }

  function eol(date) {
    return date || "beyond the forecast";
  }

  function eolBand(f) {
    if (!f.eol_p10_date && !f.eol_p90_date) return "beyond the forecast";
    return `${f.eol_p10_date || "—"} – ${f.eol_p90_date || "later"}`;
  }

  function forecastRow(f) {
    const show = h(
      "button",
      { type: "button", class: "small", "data-testid": "forecast-show", disabled: !f.device_id, onclick: () => choose(f.device_id) },
      "Show",
    );
    return h(
      "tr",
      {
        "data-testid": "analytics-forecast-row",
        "data-pack": f.pack_id,
        "data-device-id": f.device_id ?? "",
        class: f.device_id && f.device_id === chosen.deviceId ? "chosen" : "",
      },
      h("td", {}, packLink(f.pack_id, f.device_id)),
      h("td", { class: "num" }, fmt(f.soh_pct_at_horizon, 1, "%")),
      h("td", { class: "num" }, `${fmt(f.soh_p10_pct, 1)} – ${fmt(f.soh_p90_pct, 1, "%")}`),
      h("td", { class: "nowrap" }, eol(f.eol_date)),
      h("td", { class: "nowrap" }, eolBand(f)),
      h("td", {}, show),
    );
  }

  function prognosisRow(p) {
    return h(
      "tr",
      { "data-testid": "analytics-prognosis-row", "data-pack": p.pack_id, "data-kind": p.fault_kind },
      h("td", {}, packLink(p.pack_id, p.device_id)),
      h("td", {}, h("span", { class: "badge sev-critical" }, words(p.fault_kind))),
      h("td", { class: "nowrap" }, p.first_flag_date ?? "—"),
      h("td", { class: "message", "data-testid": "prognosis-reason" }, p.reason ?? ""),
    );
  }

  function rotationRow(r) {
    return h(
      "tr",
      { "data-testid": "analytics-rotation-row" },
      h("td", {}, r.pack_type || "—"),
      h("td", {}, r.site || "—"),
      h("td", {}, packLink(r.heavy_pack_id, r.heavy_device_id)),
      h("td", {}, packLink(r.light_pack_id, r.light_device_id)),
      h("td", { class: "message" }, r.reason ?? ""),
    );
  }

  function fill(body, columns, items, row, empty) {
    clear(body);
    if (!items.length) emptyRow(body, columns.length, empty);
    items.forEach((item) => body.append(row(item)));
  }

  function horizonSeconds() {
    return daySeconds(analysis.as_of) + analysis.horizon_days * DAY_S;
  }

  function show(found) {
    analysis = found;
    status.textContent =
      `As of ${found.as_of} · computed ${fmtAgo(found.computed_s)} (${fmtTime(found.computed_s, { withSeconds: false })})` +
      (isNumber(found.duration_s) ? ` in ${fmt(found.duration_s, 1, "s")}` : "");
    status.title = fmtTime(found.computed_s);
    fill(rankingBody, rankingColumns, found.ranking ?? [], rankingRow, "No pack has enough history to rank.");
    fill(forecastBody, forecastColumns, found.forecast ?? [], forecastRow, "No forecast.");
    fill(prognosisBody, prognosisColumns, found.prognosis ?? [], prognosisRow, "No developing fault found.");
    fill(rotationBody, rotationColumns, found.rotation ?? [], rotationRow, "No pair of packs to swap.");
    forecastNote.textContent =
      `SoH on ${dayText(horizonSeconds())} (${found.horizon_days} days after ${found.as_of}) with its 10th–90th percentile band, ` +
      "and the day SoH reaches the end-of-life limit.";
    const packs = (found.forecast ?? []).map((f) => f.device_id).filter(Boolean);
    if (!packs.includes(chosen.deviceId)) chosen.deviceId = packs[0] ?? null;
    if (chosen.deviceId) choose(chosen.deviceId);
  }

  async function choose(deviceId) {
    chosen.deviceId = deviceId;
    forecastBody.querySelectorAll("tr[data-device-id]").forEach((tr) => {
      tr.classList.toggle("chosen", tr.dataset.deviceId === deviceId);
    });
    const forecast = (analysis.forecast ?? []).find((f) => f.device_id === deviceId);
    chartTitle.textContent = `${forecast?.pack_id ?? deviceId}: daily SoH and forecast`;
    chartCanvas.dataset.state = "loading";
    chartCanvas.dataset.pack = deviceId;
    try {
      const answer = await api(`/api/v1/packs/${encodeURIComponent(deviceId)}/daily`, { signal });
      if (chosen.deviceId !== deviceId) return;
      const rows = answer.rows ?? [];
      const times = rows.map((r) => daySeconds(r.date));
      const horizon = horizonSeconds();
      const first = times[0] ?? daySeconds(analysis.as_of) - 30 * DAY_S;
      const band = forecast && { time_s: horizon, lo: forecast.soh_p10_pct, mid: forecast.soh_pct_at_horizon, hi: forecast.soh_p90_pct };
      chart.setData({
        time_s: times,
        values: rows.map((r) => r.soh_capacity_pct),
        from_s: first,
        to_s: horizon + Math.max(7 * DAY_S, 0.04 * (horizon - first)),
        label: "SoH (capacity)",
        unit: "%",
        digits: 1,
        band,
        timeText: dayText,
        message: "No daily rows for this pack",
      });
      chartNote.textContent =
        `${rows.length} daily rows` +
        (band && isNumber(band.mid) ? ` · forecast ${fmt(band.mid, 1, "%")} on ${dayText(horizon)} (${fmt(band.lo, 1)} – ${fmt(band.hi, 1, "%")})` : "");
      chartCanvas.dataset.state = "ready";
    } catch (err) {
      if (err.name === "AbortError" || chosen.deviceId !== deviceId) return;
      chartCanvas.dataset.state = "error";
      chartNote.textContent = describe(err);
    }
  }

  function showNone(message) {
    analysis = null;
    status.textContent = message;
    for (const [body, columns] of [
      [rankingBody, rankingColumns],
      [forecastBody, forecastColumns],
      [prognosisBody, prognosisColumns],
      [rotationBody, rotationColumns],
    ]) {
      clear(body);
      emptyRow(body, columns.length, "No analysis yet.");
    }
  }

  async function load() {
    try {
      show(await api(`/api/v1/fleets/${fleetId}/analytics`, { signal }));
      error.textContent = "";
    } catch (err) {
      if (err.name === "AbortError") return;
      if (err instanceof ApiError && err.status === 404) showNone(`No analysis yet: ${err.message}.`);
      else error.textContent = describe(err);
    }
  }

  async function run() {
    runButton.disabled = true;
    error.textContent = "";
    notice.textContent = "Running the analysis… (this can take a minute for a large fleet)";
    try {
      const found = await api(`/api/v1/fleets/${fleetId}/analytics/run`, { method: "POST", signal });
      show(found);
      notice.textContent = `Analysed as of ${found.as_of} in ${fmt(found.duration_s, 1, "s")}.`;
    } catch (err) {
      if (err.name === "AbortError") return;
      notice.textContent = "";
      error.textContent = `Could not run the analysis: ${describe(err)}`;
    } finally {
      runButton.disabled = false;
    }
  }

  async function loadFleets() {
    try {
      const answer = await api(`/api/v1/orgs/${org.id}/fleets`, { signal });
      const fleets = answer.items ?? [];
      if (fleetId === null) {
        const first = fleets.find((f) => f.id === chosen.fleetId) ?? fleets[0];
        if (first) location.replace(`#/analytics/${first.id}`); // not a page of its own in the history
        else showNone("The organisation has no fleet yet.");
        return;
      }
      for (const fleet of fleets) {
        fleetSelect.append(h("option", { value: String(fleet.id), selected: fleet.id === fleetId }, `${fleet.name} (${fleet.packs})`));
      }
      const current = fleets.find((f) => f.id === fleetId);
      title.textContent = `Fleet analytics — ${current?.name ?? `fleet ${fleetId}`}`;
      document.title = `${title.textContent} — cellwarden`;
    } catch (err) {
      if (err.name !== "AbortError") error.textContent = describe(err);
    }
  }

  fleetSelect.addEventListener("change", () => navigate(`#/analytics/${fleetSelect.value}`));
  const redraw = debounce(() => chart.draw(), 100);
  window.addEventListener("resize", redraw);
  loadFleets();
  if (fleetId !== null) {
    if (chosen.fleetId !== fleetId) chosen.deviceId = null;
    chosen.fleetId = fleetId;
    load();
  } else if (runButton) {
    runButton.disabled = true;
  }
  return () => {
    abort.abort();
    window.removeEventListener("resize", redraw);
  };
}
