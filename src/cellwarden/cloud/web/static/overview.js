// `#/`: the fleet overview — counts, the map of last positions and the table of packs.

import { ApiError, api, query } from "./api.js";
import { FleetMap, MARKER_COLOURS } from "./map.js";
import { clear, debounce, fmt, fmtAgo, fmtTime, h, poll } from "./util.js";

const PER_PAGE = 25;
const REFRESH_MS = 15000;
// kept across visits so that coming back from a pack shows the same page of the same filter
const filters = { fleet: "", status: "", q: "", page: 1 };

export function statusBadge(status) {
  const known = ["online", "offline"].includes(status) ? status : "unknown";
  return h("span", { class: `badge status-${known}`, "data-testid": "status-badge" }, status ?? "unknown");
}

export function alarmBadge(count, severity) {
  if (!count) return h("span", { class: "muted" }, "0");
  return h(
    "span",
    { class: `badge sev-${severity ?? "warning"}`, title: `worst: ${severity ?? "unknown"}` },
    String(count),
  );
}

export function overviewView(root, { org, navigate }) {
  const abort = new AbortController();
  const signal = abort.signal;
  const open = (deviceId) => navigate(`#/pack/${encodeURIComponent(deviceId)}`);

  const countCard = (key, label) =>
    h(
      "div",
      { class: `count count-${key}` },
      h("span", { class: "count-value", "data-testid": `count-${key}` }, "…"),
      h("span", { class: "count-label" }, label),
    );
  const counts = h(
    "section",
    { class: "counts", "aria-label": "Fleet counts" },
    countCard("total", "packs"),
    countCard("online", "online"),
    countCard("offline", "offline"),
    countCard("alarm", "in alarm"),
    countCard("fault", "path fault"),
  );

  const canvas = h("canvas", { "data-testid": "fleet-map", role: "img", "data-markers": "0" });
  const map = new FleetMap(canvas, { onOpen: open });
  const legendItem = (colour, text) =>
    h("span", { class: "legend-item" }, h("span", { class: "dot", style: `background:${colour}` }), text);
  const mapNote = h("span", { class: "muted", "data-testid": "map-note" });
  const mapSection = h(
    "section",
    { class: "panel", "aria-labelledby": "map-title" },
    h("div", { class: "panel-head" }, h("h2", { id: "map-title" }, "Last positions"), mapNote),
    h("div", { class: "canvas-box" }, canvas),
    h(
      "div",
      { class: "legend" },
      legendItem(MARKER_COLOURS.alarm, "open alarm"),
      legendItem(MARKER_COLOURS.online, "online"),
      legendItem(MARKER_COLOURS.offline, "offline or unknown"),
      h("span", { class: "muted" }, "Web-Mercator, fitted to the packs; click a marker to open its pack"),
    ),
  );

  // filters
  const fleetSelect = h(
    "select",
    { id: "filter-fleet", "data-testid": "filter-fleet" },
    h("option", { value: "" }, "all fleets"),
  );
  const statusSelect = h(
    "select",
    { id: "filter-status", "data-testid": "filter-status" },
    ...[
      ["", "any status"],
      ["online", "online"],
      ["offline", "offline"],
      ["alarm", "with open alarms"],
    ].map(([value, text]) => h("option", { value, selected: value === filters.status }, text)),
  );
  const search = h("input", {
    id: "filter-q",
    type: "search",
    placeholder: "device id or name",
    value: filters.q,
    maxlength: "64",
    "data-testid": "filter-search",
  });
  const form = h(
    "form",
    { class: "filters", role: "search", onsubmit: (event) => event.preventDefault() },
    h("label", { for: "filter-fleet" }, "Fleet"),
    fleetSelect,
    h("label", { for: "filter-status" }, "Status"),
    statusSelect,
    h("label", { for: "filter-q" }, "Search"),
    search,
  );
  const tbody = h("tbody");
  const columns = [
    "Device", "Name", "Fleet", "Status", "SoC", "Voltage", "Current", "Max temp", "Path",
    "Alarms", "Last seen",
  ];
  const table = h(
    "table",
    { class: "data clickable", "data-testid": "overview-table" },
    h("caption", { class: "sr-only" }, "Packs of the organisation with their latest values"),
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
    tbody,
  );
  const prev = h("button", { type: "button", "data-testid": "pager-prev" }, "‹ Previous");
  const next = h("button", { type: "button", "data-testid": "pager-next" }, "Next ›");
  const pageInfo = h("span", { "data-testid": "pager-info", "aria-live": "polite" });
  const error = h("p", { class: "error", role: "alert", "data-testid": "overview-error" });
  const tableSection = h(
    "section",
    { class: "panel", "aria-labelledby": "packs-title" },
    h("div", { class: "panel-head" }, h("h2", { id: "packs-title" }, "Packs"), form),
    error,
    h("div", { class: "table-scroll" }, table),
    h("div", { class: "pager" }, prev, pageInfo, next),
  );
  root.append(
    h("h1", { class: "page-title" }, `Fleet overview — ${org.name ?? `organisation ${org.id}`}`),
    counts,
    mapSection,
    tableSection,
  );

  function row(item) {
    const link = h("a", { href: `#/pack/${encodeURIComponent(item.device_id)}` }, item.device_id);
    const tr = h(
      "tr",
      {
        "data-testid": "overview-row",
        "data-device-id": item.device_id,
        class: item.active_alarms > 0 ? "row-alarm" : "",
        tabindex: "0",
        onclick: (event) => {
          if (event.target.closest("a")) return;
          open(item.device_id);
        },
        onkeydown: (event) => {
          if (event.key === "Enter" && !event.target.closest("a")) open(item.device_id);
        },
      },
      h("td", {}, link),
      h("td", {}, item.name ?? ""),
      h("td", {}, item.fleet ?? ""),
      h("td", {}, statusBadge(item.status)),
      h("td", { class: "num" }, fmt(item.soc_pct, 1, "%")),
      h("td", { class: "num" }, fmt(item.voltage_v, 2, "V")),
      h("td", { class: "num" }, fmt(item.current_a, 1, "A")),
      h("td", { class: "num" }, fmt(item.temp_max_c, 1, "°C")),
      h("td", { class: item.path_state === "fault" ? "path-fault" : "" }, item.path_state ?? "—"),
      h("td", { class: "num", "data-testid": "row-alarms" }, alarmBadge(item.active_alarms, item.worst_severity)),
      h("td", { title: fmtTime(item.received_s) }, fmtAgo(item.received_s)),
    );
    return tr;
  }

  function showCounts(total, c) {
    const set = (key, value) => {
      counts.querySelector(`[data-testid="count-${key}"]`).textContent = String(value ?? 0);
    };
    set("total", total);
    set("online", c.online);
    set("offline", c.offline);
    set("alarm", c.alarm);
    set("fault", c.fault);
  }

  async function loadTable() {
    const filtered = filters.fleet || filters.status || filters.q;
    const params = {
      page: filters.page,
      per_page: PER_PAGE,
      fleet: filters.fleet,
      status: filters.status,
      q: filters.q,
    };
    const base = `/api/v1/orgs/${org.id}/overview`;
    try {
      const [page, all] = await Promise.all([
        api(base + query(params), { signal }),
        filtered ? api(`${base}?per_page=1`, { signal }) : null,
      ]);
      const lastPage = Math.max(1, Math.ceil(page.total / PER_PAGE));
      if (filters.page > lastPage && page.total > 0) {
        filters.page = lastPage;
        return loadTable();
      }
      error.textContent = "";
      showCounts((all ?? page).total, (all ?? page).counts);
      clear(tbody);
      if (!page.items.length) {
        tbody.append(
          h("tr", {}, h("td", { colspan: String(columns.length), class: "empty" }, filtered ? "No pack matches these filters." : "No pack is registered yet.")),
        );
      }
      page.items.forEach((item) => tbody.append(row(item)));
      table.dataset.total = String(page.total);
      table.dataset.rows = String(page.items.length);
      pageInfo.textContent = `Page ${filters.page} of ${lastPage} · ${page.total} pack${page.total === 1 ? "" : "s"}`;
      prev.disabled = filters.page <= 1;
      next.disabled = filters.page >= lastPage;
    } catch (err) {
      if (err.name === "AbortError") return;
      error.textContent = err instanceof ApiError ? err.describe() : String(err);
    }
  }

  async function loadMap() {
    try {
      const answer = await api(`/api/v1/orgs/${org.id}/positions`, { signal });
      map.setPoints(answer.items);
      const n = answer.items.length;
      mapNote.textContent = `${n} pack${n === 1 ? "" : "s"} with a position`;
    } catch (err) {
      if (err.name === "AbortError") return;
      mapNote.textContent = err instanceof ApiError ? err.describe() : String(err);
    }
  }

  async function loadFleets() {
    try {
      const answer = await api(`/api/v1/orgs/${org.id}/fleets`, { signal });
      for (const fleet of answer.items) {
        fleetSelect.append(
          h("option", { value: fleet.name, selected: fleet.name === filters.fleet }, `${fleet.name} (${fleet.packs})`),
        );
      }
    } catch (err) {
      if (err.name !== "AbortError") console.warn("fleets:", err);
    }
  }

  const refilter = () => {
    filters.page = 1;
    loadTable();
  };
  fleetSelect.addEventListener("change", () => {
    filters.fleet = fleetSelect.value;
    refilter();
  });
  statusSelect.addEventListener("change", () => {
    filters.status = statusSelect.value;
    refilter();
  });
  search.addEventListener(
    "input",
    debounce(() => {
      filters.q = search.value.trim();
      refilter();
    }, 300),
  );
  prev.addEventListener("click", () => {
    filters.page = Math.max(1, filters.page - 1);
    loadTable();
  });
  next.addEventListener("click", () => {
    filters.page += 1;
    loadTable();
  });
  const redraw = debounce(() => map.draw(), 100);
  window.addEventListener("resize", redraw);

  loadFleets();
  const stop = poll(() => Promise.all([loadTable(), loadMap()]), REFRESH_MS);
  return () => {
    stop();
    abort.abort();
    window.removeEventListener("resize", redraw);
  };
}
