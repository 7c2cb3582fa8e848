// The fleet map: packs' last GPS positions in Web-Mercator, fitted to their bounds, on a canvas
// with a labelled graticule. No tiles: the map shows where packs are relative to each other.

import { fmtAgo, hideTooltip, niceStep, showTooltip, sizeCanvas, stepDecimals, ticks } from "./util.js";

const MAX_LAT = 85.05112878; // Web-Mercator's square world
const MIN_SPAN_DEG = 0.02; // a lone pack (or a yard of them) still gets ~2 km of map
const MARGIN = 0.12; // of the points' extent, around it
const RADIUS = 7;
const HIT_RADIUS = 11;
export const MARKER_COLOURS = {
  alarm: "#d92d20",
  online: "#12b76a",
  offline: "#98a2b3",
};

function toRad(deg) {
  return (deg * Math.PI) / 180;
}

function mercatorX(lonDeg) {
  return toRad(lonDeg);
}

function mercatorY(latDeg) {
  const lat = toRad(Math.max(-MAX_LAT, Math.min(MAX_LAT, latDeg)));
  return Math.log(Math.tan(Math.PI / 4 + lat / 2));
}

function latitudeOf(y) {
  return ((2 * Math.atan(Math.exp(y)) - Math.PI / 2) * 180) / Math.PI;
}

function markerState(point) {
  if (point.active_alarms > 0) return "alarm";
  return point.status === "online" ? "online" : "offline";
}

function degreeLabel(value, decimals, positive, negative) {
  const hemisphere = value > 0 ? positive : value < 0 ? negative : "";
  return `${Math.abs(value).toFixed(decimals)}°${hemisphere}`;
}

export class FleetMap {
  /** ``onOpen(device_id)`` runs when a marker is clicked. */
  constructor(canvas, { onOpen, height = 380 } = {}) {
    this.canvas = canvas;
    this.onOpen = onOpen;
    this.height = height;
    this.points = [];
    this.screen = [];
    this.hover = null;
    canvas.addEventListener("mousemove", (event) => this.#move(event));
    canvas.addEventListener("mouseleave", () => this.#leave());
    canvas.addEventListener("click", (event) => this.#click(event));
  }

  setPoints(items) {
    this.points = items.filter(
      (p) => Number.isFinite(p.latitude_deg) && Number.isFinite(p.longitude_deg),
    );
    this.canvas.dataset.markers = String(this.points.length);
    this.canvas.dataset.alarmMarkers = String(
      this.points.filter((p) => markerState(p) === "alarm").length,
    );
    const n = this.points.length;
    this.canvas.setAttribute(
      "aria-label",
      `Map of the last GPS positions of ${n} pack${n === 1 ? "" : "s"}; ` +
        "the table below lists the same packs",
    );
    this.draw();
  }

  /** The projection fitted to the points: lon/lat -> CSS pixels, and its inverse for the
   * graticule. Equal scale on both axes (Mercator is conformal). */
  #fit(width, height) {
    const xs = this.points.map((p) => mercatorX(p.longitude_deg));
    const ys = this.points.map((p) => mercatorY(p.latitude_deg));
    let [x0, x1] = xs.length ? [Math.min(...xs), Math.max(...xs)] : [toRad(-10), toRad(30)];
    let [y0, y1] = ys.length ? [Math.min(...ys), Math.max(...ys)] : [mercatorY(35), mercatorY(60)];
    const minSpan = toRad(MIN_SPAN_DEG);
    if (x1 - x0 < minSpan) [x0, x1] = [(x0 + x1) / 2 - minSpan / 2, (x0 + x1) / 2 + minSpan / 2];
    if (y1 - y0 < minSpan) [y0, y1] = [(y0 + y1) / 2 - minSpan / 2, (y0 + y1) / 2 + minSpan / 2];
    const padX = (x1 - x0) * MARGIN;
    const padY = (y1 - y0) * MARGIN;
    x0 -= padX;
    x1 += padX;
    y0 -= padY;
    y1 += padY;
    const scale = Math.min(width / (x1 - x0), height / (y1 - y0));
    const cx = (x0 + x1) / 2;
    const cy = (y0 + y1) / 2;
    return {
      scale,
      project: (lon, lat) => [
        width / 2 + (mercatorX(lon) - cx) * scale,
        height / 2 - (mercatorY(lat) - cy) * scale,
      ],
      lonAt: (px) => (((px - width / 2) / scale + cx) * 180) / Math.PI,
      latAt: (py) => latitudeOf(cy - (py - height / 2) / scale),
    };
  }

  draw() {
    const width = Math.max(200, this.canvas.parentElement?.clientWidth || 600);
    const height = this.height;
    const ctx = sizeCanvas(this.canvas, width, height);
    ctx.fillStyle = "#eef3f8";
    ctx.fillRect(0, 0, width, height);
    const view = this.#fit(width, height);
    this.#graticule(ctx, view, width, height);
    this.screen = this.points.map((point) => {
      const [x, y] = view.project(point.longitude_deg, point.latitude_deg);
      return { point, x, y, state: markerState(point) };
    });
    // where each marker is drawn (CSS pixels), for tests and tools that point at one
    this.canvas.dataset.screen = JSON.stringify(
      this.screen.map((m) => [m.point.device_id, Math.round(m.x), Math.round(m.y), m.state]),
    );
    // alarms on top, then online, then offline
    const order = { offline: 0, online: 1, alarm: 2 };
    const sorted = [...this.screen].sort((a, b) => order[a.state] - order[b.state]);
    const labelled = this.screen.length <= 12;
    for (const marker of sorted) {
      ctx.beginPath();
      ctx.arc(marker.x, marker.y, RADIUS + (marker === this.hover ? 2 : 0), 0, 2 * Math.PI);
      ctx.fillStyle = MARKER_COLOURS[marker.state];
      ctx.fill();
      ctx.lineWidth = 2;
      ctx.strokeStyle = "#ffffff";
      ctx.stroke();
      if (labelled) {
        ctx.font = "12px system-ui, sans-serif";
        ctx.textBaseline = "middle";
        ctx.textAlign = "left";
        ctx.lineWidth = 3;
        ctx.strokeStyle = "rgba(255,255,255,0.85)";
        const text = marker.point.name || marker.point.device_id;
        ctx.strokeText(text, marker.x + RADIUS + 4, marker.y);
        ctx.fillStyle = "#1d2939";
        ctx.fillText(text, marker.x + RADIUS + 4, marker.y);
      }
    }
    if (!this.points.length) {
      ctx.fillStyle = "#475467";
      ctx.font = "14px system-ui, sans-serif";
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      ctx.fillText("No pack has reported a position yet", width / 2, height / 2);
    }
  }

  #graticule(ctx, view, width, height) {
    const lonLo = view.lonAt(0);
    const lonHi = view.lonAt(width);
    const latHi = view.latAt(0);
    const latLo = view.latAt(height);
    const lonStep = niceStep(lonHi - lonLo, Math.max(3, Math.round(width / 140)));
    const latStep = niceStep(latHi - latLo, Math.max(3, Math.round(height / 90)));
    ctx.save();
    ctx.strokeStyle = "#c6d2df";
    ctx.lineWidth = 1;
    ctx.fillStyle = "#475467";
    ctx.font = "11px system-ui, sans-serif";
    for (const lon of ticks(lonLo, lonHi, lonStep)) {
      const [x] = view.project(lon, 0);
      ctx.beginPath();
      ctx.moveTo(Math.round(x) + 0.5, 0);
      ctx.lineTo(Math.round(x) + 0.5, height);
      ctx.stroke();
      ctx.textAlign = "center";
      ctx.textBaseline = "bottom";
      ctx.fillText(degreeLabel(lon, stepDecimals(lonStep), "E", "W"), x, height - 3);
    }
    for (const lat of ticks(latLo, latHi, latStep)) {
      const [, y] = view.project(0, lat);
      ctx.beginPath();
      ctx.moveTo(0, Math.round(y) + 0.5);
      ctx.lineTo(width, Math.round(y) + 0.5);
      ctx.stroke();
      ctx.textAlign = "left";
      ctx.textBaseline = "bottom";
      ctx.fillText(degreeLabel(lat, stepDecimals(latStep), "N", "S"), 4, y - 2);
    }
    ctx.restore();
  }

  #at(event) {
    const box = this.canvas.getBoundingClientRect();
    const x = event.clientX - box.left;
    const y = event.clientY - box.top;
    let best = null;
    let bestDistance = HIT_RADIUS;
    for (const marker of this.screen) {
      const distance = Math.hypot(marker.x - x, marker.y - y);
      if (distance <= bestDistance) {
        best = marker;
        bestDistance = distance;
      }
    }
    return best;
  }

  #move(event) {
    const marker = this.#at(event);
    if (marker !== this.hover) {
      this.hover = marker;
      this.draw();
    }
    this.canvas.style.cursor = marker ? "pointer" : "default";
    if (!marker) {
      hideTooltip();
      return;
    }
    const p = marker.point;
    const alarms = p.active_alarms > 0 ? `${p.active_alarms} open alarm(s)` : "no open alarm";
    showTooltip(event.clientX, event.clientY, [
      p.name && p.name !== p.device_id ? `${p.name} (${p.device_id})` : p.device_id,
      `${p.status ?? "unknown"} · ${alarms}`,
      `${p.latitude_deg.toFixed(5)}°, ${p.longitude_deg.toFixed(5)}°`,
      p.position_time_s ? `fix ${fmtAgo(p.position_time_s)}` : "click to open",
    ]);
  }

  #leave() {
    hideTooltip();
    if (this.hover) {
      this.hover = null;
      this.draw();
    }
  }

  #click(event) {
    const marker = this.#at(event);
    if (marker && this.onOpen) {
      hideTooltip();
      this.onOpen(marker.point.device_id);
    }
  }
}
