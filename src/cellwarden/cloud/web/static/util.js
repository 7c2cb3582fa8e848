// DOM building, number and time formatting, axis ticks and the shared tooltip.

const PROPERTIES = new Set(["value", "checked", "disabled", "selected", "hidden", "tabIndex"]);

/** An element with attributes (``on*`` functions become listeners) and children (text is
 * inserted as text, never parsed as HTML). */
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "class") {
      node.className = value;
    } else if (PROPERTIES.has(key)) {
      node[key] = value;
    } else {
      node.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
  return node;
}

export function isNumber(value) {
  return typeof value === "number" && Number.isFinite(value);
}

/** ``value`` with ``digits`` decimals and a unit, or an em dash when there is none. */
export function fmt(value, digits = 1, unit = "") {
  if (!isNumber(value)) return "—";
  const text = value.toFixed(digits);
  return unit ? `${text} ${unit}` : text;
}

function pad(value, width = 2) {
  return String(value).padStart(width, "0");
}

/** Unix seconds as local date and time, ``2026-09-21 14:03:05``. */
export function fmtTime(seconds, { withSeconds = true } = {}) {
  if (!isNumber(seconds)) return "—";
  const d = new Date(seconds * 1000);
  const date = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  return withSeconds ? `${date} ${time}:${pad(d.getSeconds())}` : `${date} ${time}`;
}

/** How long ago ``seconds`` was, ``12 s ago``, ``3 h ago``. */
export function fmtAgo(seconds, now = Date.now() / 1000) {
  if (!isNumber(seconds)) return "never";
  const age = now - seconds;
  if (age < -5) return `in ${fmtSpan(-age)}`;
  if (age < 5) return "just now";
  return `${fmtSpan(age)} ago`;
}

export function fmtSpan(seconds) {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} d`;
}

export function fmtBytes(count) {
  if (count < 1024) return `${count} B`;
  if (count < 1024 * 1024) return `${(count / 1024).toFixed(1)} kB`;
  return `${(count / 1024 / 1024).toFixed(1)} MB`;
}

/** A round step (1, 2 or 5 times a power of ten) near ``span / target``. */
export function niceStep(span, target = 5) {
  if (!(span > 0)) return 1;
  const raw = span / target;
  const power = 10 ** Math.floor(Math.log10(raw));
  const mantissa = raw / power;
  const nice = mantissa < 1.5 ? 1 : mantissa < 3.5 ? 2 : mantissa < 7.5 ? 5 : 10;
  return nice * power;
}

/** Decimals that show every multiple of ``step`` exactly. */
export function stepDecimals(step) {
  return Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
}

/** Multiples of ``step`` within [lo, hi]. */
export function ticks(lo, hi, step) {
  const out = [];
  const first = Math.ceil(lo / step - 1e-9);
  for (let i = first; i * step <= hi + step * 1e-9 && out.length < 200; i += 1) {
    out.push(i * step);
  }
  return out;
}

/** A canvas sized to its CSS box times the device pixel ratio, its context scaled so that
 * drawing is in CSS pixels. */
export function sizeCanvas(canvas, width, height) {
  const ratio = window.devicePixelRatio || 1;
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  canvas.width = Math.max(1, Math.round(width * ratio));
  canvas.height = Math.max(1, Math.round(height * ratio));
  const context = canvas.getContext("2d");
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  return context;
}

// --- the tooltip shared by the map, the heat map and the chart ---------------------------------
export function showTooltip(clientX, clientY, lines) {
  const tip = document.getElementById("tooltip");
  if (!tip) return;
  clear(tip);
  lines.forEach((line, index) => tip.append(h(index === 0 ? "strong" : "div", {}, line)));
  tip.hidden = false;
  const { innerWidth, innerHeight } = window;
  const box = tip.getBoundingClientRect();
  let x = clientX + 14;
  let y = clientY + 14;
  if (x + box.width > innerWidth - 4) x = clientX - box.width - 14;
  if (y + box.height > innerHeight - 4) y = clientY - box.height - 14;
  tip.style.left = `${Math.max(4, x)}px`;
  tip.style.top = `${Math.max(4, y)}px`;
}

export function hideTooltip() {
  const tip = document.getElementById("tooltip");
  if (tip) tip.hidden = true;
}

/** Calls ``fn`` now and every ``ms`` while the page is visible; returns a stop function. */
export function poll(fn, ms) {
  let stopped = false;
  let timer = null;
  const tick = async () => {
    if (stopped) return;
    if (!document.hidden) {
      try {
        await fn();
      } catch (error) {
        if (error?.name !== "AbortError") console.warn("poll:", error);
      }
    }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/** ``fn`` once ``ms`` passed without another call. */
export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
