// Per-cell heat map: one tile per cell coloured by voltage or temperature on a scale from the
// lowest to the highest reading, balancing cells marked, cells without a reading hatched.

import { clear, fmt, h, hideTooltip, isNumber, showTooltip, sizeCanvas } from "./util.js";

// blue (lowest) -> pale -> red (highest): the hottest colour is the last stop
const STOPS = [
  [0.0, [44, 123, 182]],
  [0.25, [171, 217, 233]],
  [0.5, [255, 255, 191]],
  [0.75, [253, 174, 97]],
  [1.0, [215, 25, 28]],
];
const GAP = 4;
const MODES = {
  voltage: { key: "voltage_v", unit: "V", digits: 3, minSpan: 0.01, label: "voltage" },
  temp: { key: "temp_c", unit: "°C", digits: 1, minSpan: 1.0, label: "temperature" },
};

export function scaleColour(t) {
  const x = Math.max(0, Math.min(1, Number.isFinite(t) ? t : 0));
  for (let i = 1; i < STOPS.length; i += 1) {
    const [t1, c1] = STOPS[i];
    if (x <= t1) {
      const [t0, c0] = STOPS[i - 1];
      const f = (x - t0) / (t1 - t0);
      return c0.map((v, k) => Math.round(v + (c1[k] - v) * f));
    }
  }
  return STOPS[STOPS.length - 1][1];
}

function rgb([r, g, b]) {
  return `rgb(${r}, ${g}, ${b})`;
}

function inkFor([r, g, b]) {
  return 0.299 * r + 0.587 * g + 0.114 * b > 150 ? "#101828" : "#ffffff";
}

function layout(count) {
  const cols = count <= 8 ? Math.max(1, count) : count <= 16 ? 8 : count <= 96 ? 16 : 24;
  return { cols, rows: Math.max(1, Math.ceil(count / cols)) };
}

export class CellHeatmap {
  constructor(canvas, legend) {
    this.canvas = canvas;
    this.legend = legend;
    this.cells = null;
    this.mode = "voltage";
    this.tiles = [];
    canvas.addEventListener("mousemove", (event) => this.#move(event));
    canvas.addEventListener("mouseleave", hideTooltip);
  }

  setCells(cells) {
    this.cells = cells;
    this.draw();
  }

  setMode(mode) {
    this.mode = mode in MODES ? mode : "voltage";
    this.draw();
  }

  /** Values of the current mode, null where a cell has no reading. */
  #values() {
    const raw = this.cells?.[MODES[this.mode].key] ?? [];
    return raw.map((v) => (isNumber(v) ? v : null));
  }

  #range(values) {
    const present = values.filter((v) => v !== null);
    if (!present.length) return null;
    let lo = Math.min(...present);
    let hi = Math.max(...present);
    const minSpan = MODES[this.mode].minSpan;
    if (hi - lo < minSpan) {
      const mid = (lo + hi) / 2;
      [lo, hi] = [mid - minSpan / 2, mid + minSpan / 2];
    }
    return { lo, hi };
  }

  draw() {
    const mode = MODES[this.mode];
    const values = this.#values();
    const balancing = this.cells?.balancing ?? [];
    const count = values.length;
    const { cols, rows } = layout(count);
    const width = Math.max(240, this.canvas.parentElement?.clientWidth || 480);
    const tileW = Math.floor((width - GAP * (cols - 1)) / cols);
    const tileH = rows > 6 ? 34 : 56;
    const height = count ? rows * tileH + (rows - 1) * GAP : 80;
    const ctx = sizeCanvas(this.canvas, width, height);
    const range = this.#range(values);
    Object.assign(this.canvas.dataset, {
      cells: String(count),
      mode: this.mode,
      cols: String(cols),
      rows: String(rows),
      tileW: String(tileW),
      tileH: String(tileH),
      gap: String(GAP),
      missing: String(values.filter((v) => v === null).length),
      balancing: String(balancing.filter(Boolean).length),
    });
    this.tiles = [];
    if (!count) {
      ctx.fillStyle = "#667085";
      ctx.font = "14px system-ui, sans-serif";
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      ctx.fillText("No cell record yet", width / 2, height / 2);
      this.#legend(null);
      return;
    }
    values.forEach((value, i) => {
      const x = (i % cols) * (tileW + GAP);
      const y = Math.floor(i / cols) * (tileH + GAP);
      this.tiles.push({ x, y, w: tileW, h: tileH, index: i });
      if (value === null) {
        this.#missingTile(ctx, x, y, tileW, tileH);
      } else {
        const colour = scaleColour((value - range.lo) / (range.hi - range.lo));
        ctx.fillStyle = rgb(colour);
        ctx.fillRect(x, y, tileW, tileH);
        ctx.fillStyle = inkFor(colour);
        ctx.textAlign = "center";
        ctx.textBaseline = "middle";
        ctx.font = `600 ${tileH > 40 ? 13 : 11}px system-ui, sans-serif`;
        if (tileW >= 34) ctx.fillText(value.toFixed(mode.digits), x + tileW / 2, y + tileH / 2);
      }
      ctx.font = "10px system-ui, sans-serif";
      ctx.textAlign = "left";
      ctx.textBaseline = "top";
      ctx.fillText(String(i + 1), x + 3, y + 3);
      if (balancing[i]) {
        // a dark corner triangle marks a cell whose bleed switch is on
        ctx.beginPath();
        ctx.moveTo(x + tileW - 13, y);
        ctx.lineTo(x + tileW, y);
        ctx.lineTo(x + tileW, y + 13);
        ctx.closePath();
        ctx.fillStyle = "#101828";
        ctx.fill();
      }
    });
    this.#legend(range);
    this.canvas.setAttribute(
      "aria-label",
      `Cell ${mode.label} heat map of ${count} cells` +
        (range ? `, from ${fmt(range.lo, mode.digits, mode.unit)} to ${fmt(range.hi, mode.digits, mode.unit)}` : ""),
    );
  }

  #missingTile(ctx, x, y, w, hgt) {
    ctx.save();
    ctx.fillStyle = "#eaecf0";
    ctx.fillRect(x, y, w, hgt);
    ctx.beginPath();
    ctx.rect(x, y, w, hgt);
    ctx.clip();
    ctx.strokeStyle = "#c0c5cf";
    ctx.lineWidth = 1;
    for (let d = -hgt; d < w; d += 8) {
      ctx.beginPath();
      ctx.moveTo(x + d, y + hgt);
      ctx.lineTo(x + d + hgt, y);
      ctx.stroke();
    }
    ctx.fillStyle = "#344054";
    ctx.font = "11px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    if (w >= 50) ctx.fillText("no reading", x + w / 2, y + hgt / 2);
    ctx.restore();
    ctx.fillStyle = "#344054"; // the cell number drawn after this uses the same ink
  }

  #legend(range) {
    if (!this.legend) return;
    const mode = MODES[this.mode];
    clear(this.legend);
    const bar = h("canvas", {
      class: "legend-bar",
      "data-testid": "heatmap-legend-bar",
      "aria-hidden": "true",
    });
    const ctx = sizeCanvas(bar, 160, 12);
    const gradient = ctx.createLinearGradient(0, 0, 160, 0);
    STOPS.forEach(([t, c]) => gradient.addColorStop(t, rgb(c)));
    ctx.fillStyle = gradient;
    ctx.fillRect(0, 0, 160, 12);
    this.legend.append(
      h("span", { "data-testid": "legend-min" }, range ? fmt(range.lo, mode.digits, mode.unit) : "—"),
      bar,
      h("span", { "data-testid": "legend-max" }, range ? fmt(range.hi, mode.digits, mode.unit) : "—"),
      h("span", { class: "legend-item" }, h("span", { class: "swatch swatch-balancing" }), "balancing"),
      h("span", { class: "legend-item" }, h("span", { class: "swatch swatch-missing" }), "no reading"),
    );
  }

  #move(event) {
    const box = this.canvas.getBoundingClientRect();
    const x = event.clientX - box.left;
    const y = event.clientY - box.top;
    const tile = this.tiles.find((t) => x >= t.x && x < t.x + t.w && y >= t.y && y < t.y + t.h);
    if (!tile) {
      hideTooltip();
      return;
    }
    const i = tile.index;
    const volts = this.cells?.voltage_v?.[i];
    const temp = this.cells?.temp_c?.[i];
    showTooltip(event.clientX, event.clientY, [
      `Cell ${i + 1}`,
      `voltage ${isNumber(volts) ? fmt(volts, 3, "V") : "no reading"}`,
      `temperature ${isNumber(temp) ? fmt(temp, 1, "°C") : "no reading"}`,
      this.cells?.balancing?.[i] ? "balancing" : "not balancing",
    ]);
  }
}
