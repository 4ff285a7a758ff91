// atrium dashboard: what every view shares, the DOM builders and number
// formats (app.js and sync.js import them). Nodes are built with the DOM
// API only: names and values are set as text, never parsed as HTML.

const SVG_NS = 'http://www.w3.org/2000/svg';

export const now = () => performance.now() / 1000;

// ------------------------------------------------------------------ DOM

// el('p', {class: 'x', text: 'hi', 'aria-label': '…'}, child, …)
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  for (const c of children) node.append(c);
  return node;
}

export function svgEl(tag, attrs = {}) {
  const node = document.createElementNS(SVG_NS, tag);
  setAttrs(node, attrs);
  return node;
}

function setAttrs(node, attrs) {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') node.textContent = v;
    else node.setAttribute(k, v === true ? '' : String(v));
  }
}

export function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

// ----------------------------------------------------------- formatting

export const intFormat = new Intl.NumberFormat(undefined);
const floatFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 6 });
const shortFormat = new Intl.NumberFormat(undefined, {
  notation: 'compact', maximumFractionDigits: 2,
});

export function formatValue(type, v) {
  if (v === undefined || v === null) return '–';
  if (type === '?' || typeof v === 'boolean') return v ? 'true' : 'false';
  if (type === 'c' || typeof v === 'string') {
    const code = v.charCodeAt(0);
    if (code < 0x20 || (code >= 0x7f && code < 0xa0)) {
      return `'\\x${code.toString(16).padStart(2, '0')}'`;
    }
    return `'${v}'`;
  }
  if (typeof v === 'bigint') return intFormat.format(v);
  if (type === 'f' || type === 'd' || !Number.isInteger(v)) {
    const a = Math.abs(v);
    if (a !== 0 && (a >= 1e15 || a < 1e-4)) return v.toExponential(4);
    return floatFormat.format(v);
  }
  return intFormat.format(v);
}

export function formatShort(n) {
  if (!Number.isFinite(n)) return '–';
  if (Math.abs(n) >= 1e15) return n.toExponential(3);
  if (Math.abs(n) < 10000) return floatFormat.format(Math.round(n * 100) / 100);
  return shortFormat.format(n);
}

export function formatBytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let u = 0;
  n = Number(n);
  while (n >= 1024 && u < units.length - 1) {
    n /= 1024;
    u++;
  }
  return `${n >= 100 || u === 0 ? Math.round(n) : n.toFixed(1)} ${units[u]}`;
}

export function formatRate(r) {
  return r >= 100 ? Math.round(r).toString() : r.toFixed(1);
}

export function cardHead(o, extra) {
  const head = el('div', { class: 'card-head' });
  head.append(el('h3', { text: o.name }));
  if (extra) head.append(extra);
  const meta = el('span', { class: 'meta' });
  head.append(meta);
  return { head, meta };
}

export function flash(node) {
  node.classList.remove('flash');
  void node.offsetWidth; // restart the animation
  node.classList.add('flash');
}

// A message in a status line, cleared after a while.
export function say(node, text, isError) {
  node.textContent = text;
  node.classList.toggle('error', Boolean(isError));
  node.classList.toggle('ok', !isError);
  clearTimeout(node.sayTimer);
  node.sayTimer = setTimeout(() => {
    node.textContent = '';
  }, isError ? 8000 : 4000);
}
