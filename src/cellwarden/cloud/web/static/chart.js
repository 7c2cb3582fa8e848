// A time-series line chart on a canvas: time axis over the requested window, a nice value
// axis, gaps where data is missing, hover read-out, drag-to-zoom (reported, not applied:
// the owner re-queries so the resolution follows the span) and an optional forecast band.

import { fmt, fmtTime, hideTooltip, isNumber, niceStep, showTooltip, sizeCanvas, stepDecimals, ticks } from "./util.js";

const MARGIN = { left: 64, right: 18, top: 14, bottom: 40 };
const TIME_STEPS = [
  1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
  172800, 345600, 604800, 1209600, 2592000, 7776000, 15552000, 31536000,
];
const MIN_DRAG_PX = 6;
const LINE = "#1f6feb";
const BAND = "#d9480f";
const BAND_WIDTH_PX = 12;

function pad(value) {
  return String(value).padStart(2, "0");
}

/** Local-time ticks: steps below a day are aligned to the local clock. */
function timeTicks(from, to, width) {
  const target = Math.max(2, Math.floor(width / 110));
  const step = TIME_STEPS.find((s) => (to - from) / s <= target) ?? TIME_STEPS.at(-1);
  const offset = -new Date(from * 1000).getTimezoneOffset() * 60;
  const first = Math.ceil((from + offset) / step) * step - offset;
  const out = [];
  for (let t = first; t <= to && out.length < 100; t += step) out.push(t);
  return { step, ticks: out };
}

function timeLabel(t, step, previous) {
  const d = new Date(t * 1000);
  const date = `${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  const clock = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (step >= 86400) {
    const newYear = previous === null || new Date(previous * 1000).getFullYear() !== d.getFullYear();
    return newYear ? [date, String(d.getFullYear())] : [date];
  }
  const newDay = previous === null || new Date(previous * 1000).getDate() !== d.getDate();
  const lines = [step < 60 ? `${clock}:${pad(d.getSeconds())}` : clock];
  if (newDay) lines.push(date);
  return lines;
}

export class HistoryChart {
  /** ``onZoom(from_s, to_s)`` runs after a drag across the plot. */
  constructor(canvas, selection, { onZoom, height = 300 } = {}) {
    this.canvas = canvas;
    this.selection = selection;
    this.onZoom = onZoom;
    this.height = height;
    this.data = null;
    this.drag = null;
    this.plot = null;
    canvas.addEventListener("pointerdown", (event) => this.#down(event));
    canvas.addEventListener("pointermove", (event) => this.#move(event));
    canvas.addEventListener("pointerup", (event) => this.#up(event));
    canvas.addEventListener("pointercancel", () => this.#cancel());
    canvas.addEventListener("mouseleave", hideTooltip);
  }

  /** ``{time_s, values, from_s, to_s, label, unit, digits, resolution, message}``, and
   * optionally ``band: {time_s, lo, mid, hi}`` (a forecast drawn as a bar from lo to hi with
   * its point at mid, joined to the last value) and ``timeText(t)`` for the read-outs. */
  setData(data) {
    this.data = data;
    this.draw();
  }

  draw() {
    const width = Math.max(320, this.canvas.parentElement?.clientWidth || 800);
    const height = this.height;
    const ctx = sizeCanvas(this.canvas, width, height);
    const plot = {
      x: MARGIN.left,
      y: MARGIN.top,
      w: width - MARGIN.left - MARGIN.right,
      h: height - MARGIN.top - MARGIN.bottom,
    };
    this.plot = plot;
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, width, height);
    const data = this.data;
    if (!data) return;
    const { from_s: from, to_s: to } = data;
    const times = data.time_s ?? [];
    const values = data.values ?? [];
    const present = values.filter(isNumber);
    const band = data.band && [data.band.lo, data.band.mid, data.band.hi].every(isNumber) ? data.band : null;
    const span = band ? [...present, band.lo, band.hi] : present;
    let lo = span.length ? Math.min(...span) : 0;
    let hi = span.length ? Math.max(...span) : 1;
    if (hi - lo < 1e-9) {
      const half = Math.max(Math.abs(hi) * 0.02, 0.5 * 10 ** -(data.digits ?? 1));
      [lo, hi] = [lo - half, hi + half];
    }
    const padY = (hi - lo) * 0.06;
    lo -= padY;
    hi += padY;
    const xOf = (t) => plot.x + ((t - from) / (to - from)) * plot.w;
    const yOf = (v) => plot.y + plot.h - ((v - lo) / (hi - lo)) * plot.h;
    this.scale = { from, to, xOf, lo, hi };

    // value axis and grid
    ctx.font = "11px system-ui, sans-serif";
    ctx.lineWidth = 1;
    const yStep = niceStep(hi - lo, Math.max(3, Math.round(plot.h / 55)));
    const yDecimals = stepDecimals(yStep);
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const v of ticks(lo, hi, yStep)) {
      const y = Math.round(yOf(v)) + 0.5;
      ctx.strokeStyle = "#eaecf0";
      ctx.beginPath();
      ctx.moveTo(plot.x, y);
      ctx.lineTo(plot.x + plot.w, y);
      ctx.stroke();
      ctx.fillStyle = "#475467";
      ctx.fillText(v.toFixed(yDecimals), plot.x - 6, y);
    }
    // time axis and grid
    const { step, ticks: tTicks } = timeTicks(from, to, plot.w);
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    let previous = null;
    for (const t of tTicks) {
      const x = Math.round(xOf(t)) + 0.5;
      ctx.strokeStyle = "#eaecf0";
      ctx.beginPath();
      ctx.moveTo(x, plot.y);
      ctx.lineTo(x, plot.y + plot.h);
      ctx.stroke();
      ctx.fillStyle = "#475467";
      timeLabel(t, step, previous).forEach((line, i) => {
        ctx.fillText(line, x, plot.y + plot.h + 5 + i * 13);
      });
      previous = t;
    }
    ctx.strokeStyle = "#98a2b3";
    ctx.strokeRect(plot.x + 0.5, plot.y + 0.5, plot.w - 1, plot.h - 1);
    // unit
    ctx.save();
    ctx.translate(13, plot.y + plot.h / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.fillStyle = "#344054";
    ctx.fillText(`${data.label}${data.unit ? ` (${data.unit})` : ""}`, 0, 0);
    ctx.restore();

    // the series, broken where records are missing (more than 3 typical steps apart)
    const steps = [];
    for (let i = 1; i < times.length; i += 1) steps.push(times[i] - times[i - 1]);
    steps.sort((a, b) => a - b);
    const typical = steps.length ? steps[Math.floor(steps.length / 2)] : Infinity;
    const gap = Math.max(typical * 3, 1);
    let drawn = 0;
    ctx.save();
    ctx.beginPath();
    ctx.rect(plot.x, plot.y, plot.w, plot.h);
    ctx.clip();
    ctx.strokeStyle = LINE;
    ctx.lineWidth = 1.6;
    ctx.beginPath();
    let open = false;
    let lastT = null;
    const points = [];
    for (let i = 0; i < times.length; i += 1) {
      const v = values[i];
      if (!isNumber(v)) {
        open = false;
        continue;
      }
      const x = xOf(times[i]);
      const y = yOf(v);
      if (!open || (lastT !== null && times[i] - lastT > gap)) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
      open = true;
      lastT = times[i];
      drawn += 1;
      points.push([x, y]);
    }
    ctx.stroke();
    if (points.length <= 150) {
      ctx.fillStyle = LINE;
      for (const [x, y] of points) {
        ctx.beginPath();
        ctx.arc(x, y, 2.5, 0, 2 * Math.PI);
        ctx.fill();
      }
    }
    if (band) this.#drawBand(ctx, band, points.at(-1), xOf, yOf);
    ctx.restore();
    if (!drawn) {
      ctx.fillStyle = "#667085";
      ctx.font = "14px system-ui, sans-serif";
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      ctx.fillText(data.message || "No data in this time range", plot.x + plot.w / 2, plot.y + plot.h / 2);
    }
    Object.assign(this.canvas.dataset, {
      fromS: String(Math.round(from)),
      toS: String(Math.round(to)),
      points: String(drawn),
      resolution: data.resolution ?? "",
      band: band ? "drawn" : "none",
    });
    const when = data.timeText ?? fmtTime;
    this.canvas.setAttribute(
      "aria-label",
      `${data.label} from ${when(from)} to ${when(to)}: ${drawn} points` +
        (present.length ? `, between ${fmt(Math.min(...present), data.digits, data.unit)} and ${fmt(Math.max(...present), data.digits, data.unit)}` : "") +
        (band ? `; forecast ${fmt(band.mid, data.digits, data.unit)} (${fmt(band.lo, data.digits)} to ${fmt(band.hi, data.digits, data.unit)}) on ${when(band.time_s)}` : ""),
    );
  }

  /** The forecast: a bar from lo to hi with whiskers, its point, and a dashed line to it
   * from the last value drawn; its position goes to ``data-band-x``, ``-top``, ``-bottom``. */
  #drawBand(ctx, band, last, xOf, yOf) {
    const x = xOf(band.time_s);
    const [top, bottom, mid] = [yOf(band.hi), yOf(band.lo), yOf(band.mid)];
    if (last) {
      ctx.strokeStyle = BAND;
      ctx.lineWidth = 1.2;
      ctx.setLineDash([5, 4]);
      ctx.beginPath();
      ctx.moveTo(last[0], last[1]);
      ctx.lineTo(x, mid);
      ctx.stroke();
      ctx.setLineDash([]);
    }
    ctx.fillStyle = BAND;
    ctx.globalAlpha = 0.35;
    ctx.fillRect(x - BAND_WIDTH_PX / 2, top, BAND_WIDTH_PX, Math.max(bottom - top, 1));
    ctx.globalAlpha = 1;
    ctx.strokeStyle = BAND;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    for (const y of [top, bottom]) {
      ctx.moveTo(x - BAND_WIDTH_PX / 2, y);
      ctx.lineTo(x + BAND_WIDTH_PX / 2, y);
    }
    ctx.moveTo(x, top);
    ctx.lineTo(x, bottom);
    ctx.stroke();
    ctx.beginPath();
    ctx.arc(x, mid, 4, 0, 2 * Math.PI);
    ctx.fill();
    Object.assign(this.canvas.dataset, {
      bandX: String(Math.round(x)),
      bandTop: String(Math.round(top)),
      bandBottom: String(Math.round(bottom)),
    });
  }

  #timeAt(clientX) {
    const box = this.canvas.getBoundingClientRect();
    const x = Math.max(this.plot.x, Math.min(this.plot.x + this.plot.w, clientX - box.left));
    return { x, t: this.scale.from + ((x - this.plot.x) / this.plot.w) * (this.scale.to - this.scale.from) };
  }

  #inPlot(event) {
    const box = this.canvas.getBoundingClientRect();
    const x = event.clientX - box.left;
    const y = event.clientY - box.top;
    const p = this.plot;
    return p && x >= p.x && x <= p.x + p.w && y >= p.y && y <= p.y + p.h;
  }

  #down(event) {
    if (!this.onZoom || !this.data || event.button !== 0 || !this.#inPlot(event)) return;
    event.preventDefault();
    this.canvas.setPointerCapture?.(event.pointerId);
    this.drag = { start: this.#timeAt(event.clientX) };
    hideTooltip();
  }

  #move(event) {
    if (this.drag) {
      const end = this.#timeAt(event.clientX);
      const left = Math.min(this.drag.start.x, end.x);
      const width = Math.abs(end.x - this.drag.start.x);
      Object.assign(this.selection.style, {
        left: `${left}px`,
        top: `${this.plot.y}px`,
        width: `${width}px`,
        height: `${this.plot.h}px`,
      });
      this.selection.hidden = width < 1;
      return;
    }
    this.#hover(event);
  }

  #up(event) {
    if (!this.drag) return;
    const start = this.drag.start;
    const end = this.#timeAt(event.clientX);
    this.#cancel();
    if (Math.abs(end.x - start.x) >= MIN_DRAG_PX) {
      this.onZoom(Math.min(start.t, end.t), Math.max(start.t, end.t));
    }
  }

  #cancel() {
    this.drag = null;
    this.selection.hidden = true;
  }

  #hover(event) {
    const data = this.data;
    if (!data || !this.#inPlot(event) || !data.time_s?.length) {
      hideTooltip();
      return;
    }
    const { t } = this.#timeAt(event.clientX);
    const times = data.time_s;
    let lo = 0;
    let hi = times.length - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (times[mid] < t) lo = mid;
      else hi = mid;
    }
    const i = Math.abs(times[lo] - t) <= Math.abs(times[hi] - t) ? lo : hi;
    showTooltip(event.clientX, event.clientY, [
      fmt(data.values[i], data.digits, data.unit),
      (data.timeText ?? fmtTime)(times[i]),
      this.onZoom ? "drag across the chart to zoom" : null,
    ].filter(Boolean));
  }
}
