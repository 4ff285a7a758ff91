// atrium dashboard: the state comes from the REST API (/v1), changes from
// the event stream (/v1/events, Server-Sent Events). It uses the documented
// HTTP API only, builds every node with the DOM API (names and values are
// set as text, never parsed as HTML), and needs no build step. Its
// modules: ui.js (DOM builders, number formats), sync.js (the cards of
// locks, semaphores, flags, barriers and conditions).

import {
  cardHead, el, flash, formatBytes, formatRate, formatShort, formatValue, now, say, setText,
  svgEl,
} from './ui.js';
import {
  SYNC_KINDS, syncApply, syncBody, syncDone, syncTick, syncUpdate, syncView,
} from './sync.js';

const TOKEN_KEY = 'atrium.token';
const HISTORY_SECONDS = 120; // what a sparkline shows
const RATE_SECONDS = 10; // the sliding window of queue rates
const FETCH_INTERVAL_MS = 250; // at most one GET per object this often
const MAX_BARS_LISTED = 256; // arrays up to this length list their values

const TYPE_NAMES = {
  b: 'int8', B: 'uint8', h: 'int16', H: 'uint16', i: 'int32', I: 'uint32',
  l: 'int64', L: 'uint64', q: 'int64', Q: 'uint64', f: 'float', d: 'double',
  '?': 'bool', c: 'char',
};
const KIND_PATHS = {
  value: 'values', array: 'arrays', queue: 'queues', dict: 'dicts',
  ...Object.fromEntries(Object.entries(SYNC_KINDS).map(([kind, k]) => [kind, k.path])),
};
const POLL_SECONDS = 2; // busy synchronisation objects are read again this often
const POLL_MAX = 64; // and at most this many of them per tick
const DICT_PAGE = 100; // keys a dict's card shows at a time
// Objects a page shows: a store of a million is read a page at a time, in
// name order, as GET /v1/objects gives them (?prefix=, ?after=, "next").
const PAGE = 200;
const PREFIX_RE = /^[A-Za-z0-9_.-]{0,64}$/; // what a name's start may hold
const FILTER_DELAY_MS = 250;

const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  objects: new Map(), // name -> model (see newModel)
  tombs: new Map(), // name -> version it had when deleted
  lastSeq: null,
  stream: null,
  streamOpened: false, // a stream was open before (for the header)
  retryTimer: 0,
  retryDelay: 1000,
  reloadTimer: 0,
  reloading: null,
  reloadAgain: false,
  dirty: new Set(),
  frame: 0,
  started: false,
  storeTimer: 0,
  filter: '', // the name prefix of the objects shown
  filterTimer: 0,
  // The page shown: names after `after` (null: from the first), up to
  // `next` when more follow (null: to the end); `back` the afters of the
  // pages before it.
  page: { after: null, next: null, back: [] },
};

const byId = (id) => document.getElementById(id);

// ------------------------------------------------------------------ JSON

// JSON text of a value parseJSON gave (BigInt as its digits).
function jsonText(v) {
  if (typeof v === 'bigint') return v.toString();
  if (Array.isArray(v)) return `[${v.map(jsonText).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}:${jsonText(x)}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

// JSON.parse, but integers beyond 2^53 stay exact (as BigInt).
function parseJSON(text) {
  return JSON.parse(text, (key, value, ctx) => {
    if (typeof value === 'number' && !Number.isSafeInteger(value) &&
        ctx && typeof ctx.source === 'string' && /^-?\d+$/.test(ctx.source)) {
      return BigInt(ctx.source);
    }
    return value;
  });
}

// The JSON text of a value of type code type from what a person typed;
// throws an Error whose message says what is wrong.
function encodeValue(type, input) {
  const text = input.trim();
  if (type === '?') {
    if (/^(true|1)$/i.test(text)) return 'true';
    if (/^(false|0)$/i.test(text)) return 'false';
    throw new Error('a bool is true or false');
  }
  if (type === 'c') {
    const chars = Array.from(input);
    if (chars.length !== 1 || chars[0].codePointAt(0) > 0xff) {
      throw new Error('a char is one character, U+0000 to U+00FF');
    }
    return JSON.stringify(chars[0]);
  }
  if (type === 'f' || type === 'd') {
    if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text)) {
      throw new Error('not a number');
    }
    const n = Number(text);
    if (!Number.isFinite(n)) throw new Error('the number is too large');
    return String(n);
  }
  if (!/^[+-]?\d+$/.test(text)) throw new Error('not an integer');
  if (/^[BHILQ]$/.test(type) && text.startsWith('-')) {
    throw new Error(`type ${type} holds no negative numbers`);
  }
  return BigInt(text).toString(); // exact, without '+' or leading zeros
}

// ----------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// One request to the gateway; body is JSON text. Resolves {status, json}
// for 2xx, rejects with an ApiError otherwise.
async function api(method, path, body, headers = {}) {
  const init = { method, headers: { ...headers }, cache: 'no-store' };
  if (state.token) init.headers.Authorization = `Bearer ${state.token}`;
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = body;
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'network', 'the gateway does not answer');
  }
  const text = await resp.text();
  let json = null;
  if (text) {
    try {
      json = parseJSON(text);
    } catch {
      json = null;
    }
  }
  if (resp.status === 401) needToken(Boolean(state.token));
  if (!resp.ok) {
    const err = (json && json.error) || {};
    throw new ApiError(resp.status, err.code || `http_${resp.status}`,
      err.message || resp.statusText || `HTTP ${resp.status}`);
  }
  return { status: resp.status, json };
}

const objectPath = (kind, name) =>
  `/v1/${KIND_PATHS[kind]}/${encodeURIComponent(name)}`;

// ---------------------------------------------------------------- model

function newModel(name, kind) {
  return {
    name,
    kind,
    type: undefined,
    version: undefined,
    value: undefined, // value
    length: undefined, // array
    values: undefined, // array
    size: undefined, // queue
    maxsize: undefined, // queue
    leased: undefined, // queue: out under a lease
    unfinished: undefined, // queue: put and not yet done
    deadLettered: undefined, // queue: moved to its dead-letter queue
    dropped: undefined, // queue: dead letters with nowhere to go
    sync: {}, // the synchronisation kinds' members (see sync.js)
    expiresAt: undefined, // lock held by a lease: when it runs out (seconds)
    expiresWall: undefined, // the same by the clock (ms since 1970), to show
    len: undefined, // dict: keys
    items: null, // dict: [key, value] of the page shown, in key order
    pageAfter: null, // dict: the page starts after this key (null: first)
    pageBack: [], // dict: the pages before it (their pageAfter)
    pageNext: null, // dict: the next page's after, when more follow
    hist: [], // [seconds, number]: values and queue depths
    puts: [], // [seconds, items] from events, for rates
    pops: [],
    since: now(), // watched since (rates divide by at most this)
    touched: 0, // last change seen (seconds)
    fetchAt: 0,
    fetching: false,
    fetchAgain: false,
    fresh: false,
    view: null,
  };
}

// Numbers for charts: bools as 0/1, chars as their code, BigInt as Number.
function toNumber(v) {
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'string') return v.length ? v.charCodeAt(0) : 0;
  if (typeof v === 'bigint') return Number(v);
  return typeof v === 'number' ? v : NaN;
}

function pushHistory(o, v) {
  const t = now();
  const n = toNumber(v);
  if (!Number.isFinite(n)) return;
  const h = o.hist;
  // Many changes within 100 ms draw as one step.
  if (h.length > 1 && t - h[h.length - 1][0] < 0.1 && t - h[h.length - 2][0] >= 0.1) {
    h[h.length - 1][1] = n;
  } else {
    h.push([t, n]);
  }
  trimHistory(o, t);
}

function trimHistory(o, t) {
  const start = t - HISTORY_SECONDS;
  let drop = 0;
  // Keep the last point before the window: it is the line's left end.
  while (drop + 1 < o.hist.length && o.hist[drop + 1][0] <= start) drop++;
  if (drop) o.hist.splice(0, drop);
  for (const list of [o.puts, o.pops]) {
    let k = 0;
    while (k < list.length && list[k][0] < t - RATE_SECONDS) k++;
    if (k) list.splice(0, k);
  }
}

function sameValue(a, b) {
  return a === b || (typeof a === 'bigint' && typeof b === 'bigint' && a === b);
}

// Applies what the gateway says of an object: a REST answer (op undefined)
// or an event (op = snapshot, created, set, add, put, pop, clear, resync;
// a queue's leased, acked, nacked, expired, done).
function apply(info, op) {
  const name = info.name;
  const kind = info.kind;
  if (typeof name !== 'string' || !KIND_PATHS[kind]) return;
  if (op === 'deleted') {
    removeObject(name, info.version);
    return;
  }
  const version = info.version;
  const tomb = state.tombs.get(name);
  if (tomb !== undefined && version !== undefined && version <= tomb) return;
  let o = state.objects.get(name);
  if (o && version !== undefined && o.version !== undefined && version < o.version) {
    return; // older than what we show
  }
  if (o && o.kind !== kind) {
    dropView(o); // the name was deleted and made again as another kind
    state.objects.delete(name);
    o = undefined;
  }
  const isNew = !o;
  if (isNew) {
    o = newModel(name, kind);
    o.fresh = op === 'created' && state.started;
    state.objects.set(name, o);
    state.tombs.delete(name);
  }
  const repeat = version !== undefined && version === o.version;
  if (info.type !== undefined) o.type = info.type;
  if (kind === 'value' && 'value' in info) {
    if (!sameValue(o.value, info.value) || !o.hist.length) {
      o.changed = o.value !== undefined;
      o.value = info.value;
      pushHistory(o, info.value);
    }
  }
  if (kind === 'array') {
    if (info.length !== undefined) o.length = Number(info.length);
    if (Array.isArray(info.values)) o.values = info.values;
    else if (!repeat && op !== undefined) o.needFetch = true;
    if (o.values && o.length !== undefined && o.values.length !== o.length) {
      o.needFetch = true;
    }
  }
  if (kind === 'queue') {
    if (info.maxsize !== undefined) o.maxsize = Number(info.maxsize);
    if (info.leased !== undefined) o.leased = Number(info.leased);
    if (info.unfinished !== undefined) o.unfinished = Number(info.unfinished);
    if (info.dead_lettered !== undefined) o.deadLettered = Number(info.dead_lettered);
    if (info.dropped !== undefined) o.dropped = Number(info.dropped);
    if (info.size !== undefined) {
      const size = Number(info.size);
      const prev = o.size;
      if (!repeat && (op === 'put' || op === 'pop')) {
        // A run of puts (or pops) may come as one event: the depth tells
        // how many it was.
        const moved = op === 'put' ? size - (prev ?? size) : (prev ?? size) - size;
        (op === 'put' ? o.puts : o.pops).push([now(), moved > 0 ? moved : 1]);
      }
      if (size !== prev || !o.hist.length) {
        o.changed = prev !== undefined;
        o.size = size;
        pushHistory(o, size);
      }
    }
    if (o.maxsize === undefined) o.needFetch = true;
  }
  if (SYNC_KINDS[kind]) {
    syncApply(o, info, op);
    // A condition's card shows its lock's state.
    if (kind === 'lock') {
      for (const c of state.objects.values()) {
        if (c.kind === 'condition' && c.sync.lock === name) markDirty(c);
      }
    }
  }
  if (kind === 'dict') {
    if (info.len !== undefined) {
      o.changed = o.len !== undefined && Number(info.len) !== o.len;
      o.len = Number(info.len);
    }
    if (info.items && typeof info.items === 'object') {
      o.items = Object.entries(info.items);
      o.pageNext = typeof info.next === 'string' ? info.next : null;
    } else if (!repeat || o.items === null) {
      // An event names the keys it changed ("keys"); the page shown is
      // read again (at most every FETCH_INTERVAL_MS), whichever they are.
      o.needFetch = true;
    }
  }
  if (o.type === undefined && (kind === 'value' || kind === 'array')) o.needFetch = true;
  if (version !== undefined && (o.version === undefined || version > o.version)) {
    o.version = version;
  }
  o.touched = now();
  if (o.needFetch) fetchObject(o);
  markDirty(o);
  if (isNew) scheduleStoreInfo();
}

function removeObject(name, version) {
  const o = state.objects.get(name);
  if (version !== undefined) state.tombs.set(name, version);
  else if (o && o.version !== undefined) state.tombs.set(name, o.version);
  if (!o) return;
  state.objects.delete(name);
  dropView(o);
  updateCounts();
  scheduleStoreInfo();
}

// GET one object (at most one request at a time and FETCH_INTERVAL_MS
// apart per object): for what an event did not carry.
async function fetchObject(o) {
  o.needFetch = false;
  if (o.fetching) {
    o.fetchAgain = true;
    return;
  }
  const wait = o.fetchAt + FETCH_INTERVAL_MS / 1000 - now();
  o.fetching = true;
  if (wait > 0) await new Promise((r) => setTimeout(r, wait * 1000));
  const asked = now();
  o.fetchAt = asked;
  try {
    const r = await api('GET', objectPath(o.kind, o.name) + pageQuery(o));
    if (state.objects.get(o.name) === o) apply({ ...r.json, kind: o.kind });
  } catch (e) {
    const cur = state.objects.get(o.name);
    if (e.status === 404 && cur === o && o.touched < asked) removeObject(o.name);
  } finally {
    o.fetching = false;
    if (o.fetchAgain && state.objects.get(o.name) === o) {
      o.fetchAgain = false;
      fetchObject(o);
    }
  }
}

// A dict's page: ?limit= and ?after= (keys %-encoded, as the API takes them).
function pageQuery(o) {
  if (o.kind !== 'dict') return '';
  const after = o.pageAfter === null ? '' : `&after=${encodeURIComponent(o.pageAfter)}`;
  return `?limit=${DICT_PAGE}${after}`;
}

// Reads every object through REST: at the start, and after a resync or a
// gap in the event sequence. Runs one at a time.
function scheduleReload(delay = 200) {
  if (state.reloadTimer) return;
  state.reloadTimer = setTimeout(() => {
    state.reloadTimer = 0;
    reload().catch(() => {});
  }, delay);
}

async function reload() {
  if (state.reloading) {
    state.reloadAgain = true;
    return state.reloading;
  }
  state.reloading = (async () => {
    const started = now();
    const query = new URLSearchParams({ limit: String(PAGE) });
    if (state.filter) query.set('prefix', state.filter);
    if (state.page.after !== null) query.set('after', state.page.after);
    const r = await api('GET', `/v1/objects?${query}`);
    state.page.next = typeof r.json.next === 'string' ? r.json.next : null;
    const seen = new Set();
    for (const info of r.json.objects) {
      seen.add(info.name);
      apply(info);
    }
    for (const [name, o] of state.objects) {
      if (seen.has(name) || o.touched >= started) continue;
      if (onPage(name)) {
        removeObject(name); // deleted
      } else {
        state.objects.delete(name); // on another page now: not deleted
        dropView(o);
      }
    }
    const arrays = [...state.objects.values()]
      .filter((o) => o.kind === 'array' || o.kind === 'dict');
    await Promise.all(arrays.map((o) => fetchObject(o)));
    showPager();
    refreshStoreInfo();
  })();
  try {
    await state.reloading;
  } finally {
    state.reloading = null;
    if (state.reloadAgain) {
      state.reloadAgain = false;
      scheduleReload(0);
    }
  }
}

// -------------------------------------------------------------- stream

// Every topic: then any jump in seq means lost events. A stream opened by
// hand (not by the browser's own retry) resumes after the last event seen:
// the gateway replays what we missed, or sends a resync batch.
function streamUrl(ticket) {
  const query = new URLSearchParams();
  if (ticket) query.set('ticket', ticket);
  if (state.lastSeq !== null) query.set('lastEventId', String(state.lastSeq));
  const q = query.toString();
  return q ? `/v1/events?${q}` : '/v1/events';
}

async function openStream() {
  closeStream();
  clearTimeout(state.retryTimer);
  state.retryTimer = 0;
  setConn(state.streamOpened ? 'reconnecting' : 'connecting');
  let ticket = null;
  if (state.token) {
    // A browser cannot put a header on an EventSource: with a token, the
    // stream takes a short-lived ticket bought with it.
    try {
      const r = await api('POST', '/v1/events/tickets');
      ticket = r.json && r.json.ticket;
    } catch (e) {
      if (e.status !== 401) retryStream();
      return;
    }
  }
  const es = new EventSource(streamUrl(ticket));
  state.stream = es;
  es.onopen = () => {
    state.retryDelay = 1000;
    state.streamOpened = true;
    setConn('connected');
  };
  es.onmessage = onEvent;
  es.onerror = () => {
    if (state.stream !== es) return;
    // The browser reconnects by itself (sending Last-Event-ID), unless the
    // stream was refused or is bound to a ticket that is now spent.
    if (es.readyState === EventSource.CLOSED || ticket) {
      closeStream();
      retryStream();
    }
    setConn('reconnecting');
  };
}

function closeStream() {
  if (state.stream) {
    state.stream.onopen = state.stream.onmessage = state.stream.onerror = null;
    state.stream.close();
    state.stream = null;
  }
}

function retryStream() {
  clearTimeout(state.retryTimer);
  state.retryTimer = setTimeout(openStream, state.retryDelay);
  state.retryDelay = Math.min(state.retryDelay * 2, 15000);
}

function onEvent(message) {
  let ev;
  try {
    ev = parseJSON(message.data);
  } catch {
    return;
  }
  if (!ev || typeof ev !== 'object') return;
  const seq = typeof ev.seq === 'bigint' ? Number(ev.seq) : ev.seq;
  if (typeof seq === 'number') {
    if (ev.op === 'snapshot' || ev.op === 'resync') {
      // A batch names the point the live events go on from (on another
      // store, that may be below what we had seen).
      state.lastSeq = seq;
    } else {
      // Every event comes (no topic filter): a jump means some were lost.
      if (state.lastSeq !== null && seq > state.lastSeq + 1) scheduleReload();
      if (state.lastSeq === null || seq > state.lastSeq) state.lastSeq = seq;
    }
    showSeq();
  }
  // A resync batch gives every object's state but cannot name the ones
  // deleted meanwhile: read the list again.
  if (ev.op === 'resync') scheduleReload(0);
  // An event without state is about an object gone by the time it was
  // read: its deletion (or the next incarnation) comes next.
  if (ev.op !== 'deleted' && ev.version === undefined) return;
  // Every event comes, but only the page's objects are drawn: one made
  // elsewhere counts in the header only.
  if (typeof ev.name === 'string' && !state.objects.has(ev.name) &&
      (!onPage(ev.name) || !roomFor(ev.name))) {
    if (ev.op === 'created' || ev.op === 'deleted') scheduleStoreInfo();
    return;
  }
  apply(ev, ev.op);
}

// A page holds PAGE objects at most: a new one that sorts before the
// last pushes that one to the next page; one after it goes there itself.
function roomFor(name) {
  if (state.objects.size < PAGE) return true;
  const names = [...state.objects.keys()].sort(); // (byte order: names are ASCII)
  const last = names[names.length - 1];
  if (name > last) {
    state.page.next = last;
    showPager();
    return false;
  }
  const o = state.objects.get(last);
  state.objects.delete(last);
  dropView(o);
  const before = names[names.length - 2];
  state.page.next = before !== undefined && before > name ? before : name;
  showPager();
  return true;
}

// Whether a name belongs to the page shown (a new object may).
function onPage(name) {
  if (!name.startsWith(state.filter)) return false;
  if (state.page.after !== null && name <= state.page.after) return false;
  return state.page.next === null || name <= state.page.next;
}

// Shows the page after `after` (null: the first); back: the afters of
// the pages before it. The objects shown go (they are not deleted).
function goPage(after, back) {
  state.page = { after, next: null, back };
  for (const o of state.objects.values()) dropView(o);
  state.objects.clear();
  updateCounts();
  showPager();
  scheduleReload(0);
}

function showPager() {
  const p = state.page;
  byId('page-prev').disabled = p.after === null;
  byId('page-next').disabled = p.next === null;
  byId('pager').hidden = p.after === null && p.next === null;
  setText(byId('page-info'), `page ${p.back.length + 1}` +
    (p.next === null ? '' : ` · ${PAGE} a page`));
}

// ---------------------------------------------------------------- views

function markDirty(o) {
  state.dirty.add(o);
  if (!state.frame) state.frame = requestAnimationFrame(renderDirty);
}

function renderDirty() {
  state.frame = 0;
  const list = [...state.dirty];
  state.dirty.clear();
  for (const o of list) {
    if (state.objects.get(o.name) !== o) continue;
    if (!o.view) createView(o);
    updateView(o);
  }
  updateCounts();
}

function dropView(o) {
  if (o.view) o.view.card.remove();
  o.view = null;
  state.dirty.delete(o);
}

function grid(kind) {
  return byId(KIND_PATHS[kind]);
}

// Cards stay sorted by name (byte order, as the gateway lists them).
function insertSorted(container, card, name) {
  for (const c of container.children) {
    if (c.dataset.name > name) {
      container.insertBefore(card, c);
      return;
    }
  }
  container.append(card);
}

function sparkline(label) {
  const svg = svgEl('svg', { class: 'spark', role: 'img', 'aria-label': label });
  const area = svgEl('path', { class: 'area' });
  const line = svgEl('path', { class: 'line' });
  const end = svgEl('circle', { class: 'end', r: 2.75 });
  svg.append(area, line, end);
  return { svg, area, line, end };
}

function createView(o) {
  const card = el('article', { class: 'card', 'data-name': o.name, 'data-kind': o.kind });
  const v = { card };
  if (SYNC_KINDS[o.kind]) {
    syncView(o, v, syncCtx);
  } else if (o.kind === 'value') {
    v.badge = el('span', { class: 'badge' });
    const { head, meta } = cardHead(o, v.badge);
    v.meta = meta;
    v.num = el('div', { class: 'num' });
    v.spark = sparkline(`history of ${o.name}`);
    v.lo = el('span');
    v.span = el('span');
    v.hi = el('span');
    v.controls = el('div', { class: 'controls' });
    v.msg = el('p', { class: 'msg', role: 'status' });
    v.scale = el('div', { class: 'scale' }, v.lo, v.span, v.hi);
    card.append(head, v.num, v.spark.svg, v.scale, v.controls, v.msg);
  } else if (o.kind === 'queue') {
    const { head, meta } = cardHead(o);
    v.meta = meta;
    v.num = el('div', { class: 'num' });
    v.meterFill = el('span');
    v.meter = el('div', {
      class: 'meter', role: 'meter', 'aria-label': `${o.name} fill`, 'aria-valuemin': 0,
    }, v.meterFill);
    v.put = el('b');
    v.pop = el('b');
    const rates = el('div', { class: 'rates' },
      el('span', {}, 'put ', v.put, '/s'),
      el('span', {}, 'pop ', v.pop, '/s'));
    rates.title = `items per second over the last ${RATE_SECONDS} s`;
    // Leased items (out to a consumer until acked), unfinished ones (put
    // and not yet done: join waits for them) and dead letters.
    v.leased = el('b');
    v.unfinished = el('b');
    v.dead = el('b');
    const tasks = el('div', { class: 'rates tasks' },
      el('span', {}, 'leased ', v.leased),
      el('span', {}, 'unfinished ', v.unfinished),
      el('span', {}, 'dead letters ', v.dead));
    v.spark = sparkline(`depth of ${o.name}`);
    v.lo = el('span');
    v.span = el('span');
    v.hi = el('span');
    card.append(head, v.num, v.meter, rates, tasks, v.spark.svg,
      el('div', { class: 'scale' }, v.lo, v.span, v.hi));
  } else if (o.kind === 'dict') {
    createDictView(o, v);
  } else {
    v.badge = el('span', { class: 'badge' });
    const { head, meta } = cardHead(o, v.badge);
    v.meta = meta;
    v.bars = svgEl('svg', { class: 'bars', role: 'img' });
    v.lo = el('span');
    v.mid = el('span');
    v.hi = el('span');
    v.list = el('ol', { class: 'values-list', start: 0 });
    v.details = el('details', { class: 'values' }, el('summary', { text: 'Values' }), v.list);
    card.append(head, v.bars, el('div', { class: 'scale' }, v.lo, v.mid, v.hi), v.details);
  }
  o.view = v;
  if (o.fresh) card.classList.add('fresh');
  card.hidden = !matchesFilter(o.name);
  insertSorted(grid(o.kind), card, o.name);
}

function updateView(o) {
  const v = o.view;
  if (SYNC_KINDS[o.kind]) syncUpdate(o, v, syncCtx);
  else if (o.kind === 'value') updateValueView(o, v);
  else if (o.kind === 'queue') updateQueueView(o, v);
  else if (o.kind === 'dict') updateDictView(o, v);
  else updateArrayView(o, v);
}

function updateValueView(o, v) {
  setText(v.badge, o.type || '?');
  v.badge.title = TYPE_NAMES[o.type] || '';
  setText(v.meta, o.version !== undefined ? `v${o.version}` : '');
  const text = formatValue(o.type, o.value);
  if (v.num.textContent !== text) {
    v.num.textContent = text;
    // Smaller type for long numbers, so that 64-bit ones fit a phone.
    v.num.classList.toggle('long', text.length > 12 && text.length <= 18);
    v.num.classList.toggle('longer', text.length > 18);
    v.num.dataset.value = o.value === undefined ? '' : String(o.value);
    v.num.title = String(o.value);
    if (o.changed) flash(v.num);
  }
  o.changed = false;
  if (v.controlsType !== o.type && o.type !== undefined) buildValueControls(o, v);
  // A char has no meaningful history line.
  v.spark.svg.toggleAttribute('hidden', o.type === 'c');
  v.scale.hidden = o.type === 'c';
  if (o.type !== 'c') drawSpark(o, v);
}

function buildValueControls(o, v) {
  v.controlsType = o.type;
  v.controls.replaceChildren();
  const name = o.name;
  if (o.type === '?') {
    const toggle = el('button', { type: 'button', text: 'Toggle', 'aria-label': `Toggle ${name}` });
    toggle.addEventListener('click', () => setValue(o, o.value ? 'false' : 'true', toggle));
    v.controls.append(toggle);
  } else if (o.type !== 'c') {
    const minus = el('button', {
      type: 'button', class: 'step', text: '−1', 'aria-label': `Subtract 1 from ${name}`,
      'data-action': 'sub',
    });
    const plus = el('button', {
      type: 'button', class: 'step', text: '+1', 'aria-label': `Add 1 to ${name}`,
      'data-action': 'add',
    });
    minus.addEventListener('click', () => addTo(o, -1, minus));
    plus.addEventListener('click', () => addTo(o, 1, plus));
    v.controls.append(minus, plus);
  }
  const id = `set-${name}`;
  const input = el('input', {
    id, name: 'value', autocomplete: 'off', spellcheck: 'false',
    placeholder: o.type === '?' ? 'true / false' : o.type === 'c' ? 'one char' : 'value',
    inputmode: /^[fd]$/.test(o.type) ? 'decimal' : /^[bhilq]$/.test(o.type) ? 'text' : 'numeric',
  });
  const label = el('label', { for: id, class: 'sr-only', text: `New value for ${name}` });
  const button = el('button', { type: 'submit', text: 'Set' });
  const form = el('form', { 'aria-label': `Set ${name}` }, label, input, button);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    let body;
    try {
      body = encodeValue(o.type, input.value);
    } catch (err) {
      say(v.msg, err.message, true);
      input.focus();
      return;
    }
    setValue(o, body, button).then((ok) => {
      if (ok) input.value = '';
    });
  });
  v.controls.append(form);
}

function updateQueueView(o, v) {
  setText(v.meta, o.version !== undefined ? `v${o.version}` : '');
  const size = o.size ?? 0;
  const text = formatValue('q', size);
  const of = o.maxsize ? ` / ${formatValue('q', o.maxsize)}` : ' / ∞';
  if (v.num.dataset.value !== String(size) || v.num.dataset.of !== of) {
    v.num.replaceChildren(text, el('span', { class: 'of', text: of }));
    v.num.dataset.value = String(size);
    v.num.dataset.of = of;
    if (o.changed) flash(v.num);
  }
  o.changed = false;
  v.meter.hidden = !o.maxsize;
  if (o.maxsize) {
    const frac = Math.min(1, size / o.maxsize);
    v.meterFill.style.width = `${(frac * 100).toFixed(1)}%`;
    v.meter.classList.toggle('high', frac >= 0.8 && frac < 1);
    v.meter.classList.toggle('full', frac >= 1);
    v.meter.setAttribute('aria-valuemax', o.maxsize);
    v.meter.setAttribute('aria-valuenow', size);
  }
  setText(v.leased, formatValue('q', o.leased ?? 0));
  setText(v.unfinished, formatValue('q', o.unfinished ?? 0));
  setText(v.dead, formatValue('q', o.deadLettered ?? 0) +
    (o.dropped ? ` (+${formatValue('q', o.dropped)} dropped)` : ''));
  updateRates(o, v);
  drawSpark(o, v);
}

// A dict: a page of its keys and values (live), paging, and an editor
// for one key with its version for a compare-and-set.
function createDictView(o, v) {
  const { head, meta } = cardHead(o);
  v.meta = meta;
  v.rows = el('tbody');
  const table = el('table', { class: 'dict' },
    el('thead', {}, el('tr', {}, el('th', { text: 'key' }), el('th', { text: 'value' }))),
    v.rows);
  v.first = el('button', { type: 'button', class: 'link', text: 'First' });
  v.prev = el('button', { type: 'button', class: 'link', text: '‹ Previous' });
  v.next = el('button', { type: 'button', class: 'link', text: 'Next ›' });
  v.page = el('span', { class: 'page' });
  v.first.addEventListener('click', () => dictPage(o, null, []));
  v.prev.addEventListener('click', () => {
    const back = o.pageBack.slice(0, -1);
    dictPage(o, o.pageBack[o.pageBack.length - 1] ?? null, back);
  });
  v.next.addEventListener('click', () => {
    if (o.pageNext !== null) dictPage(o, o.pageNext, [...o.pageBack, o.pageAfter]);
  });
  const pager = el('div', { class: 'pager' }, v.first, v.prev, v.page, v.next);
  v.key = el('input', { name: 'key', autocomplete: 'off', spellcheck: 'false', required: '' });
  v.value = el('textarea', { name: 'value', rows: 2, spellcheck: 'false' });
  v.version = el('input', { name: 'version', inputmode: 'numeric', autocomplete: 'off' });
  v.save = el('button', { type: 'submit', class: 'primary', text: 'Save' });
  v.del = el('button', { type: 'button', text: 'Delete' });
  const field = (label, input, hint) => el('label', { class: 'field' }, label, input,
    hint ? el('span', { class: 'hint', text: hint }) : '');
  v.editor = el('form', { class: 'editor', novalidate: '' },
    field('Key', v.key), field('Value (JSON)', v.value),
    field('Version', v.version, 'set only if the key still has it; empty: any'),
    el('div', { class: 'row' }, v.save, v.del));
  v.editor.setAttribute('aria-label', `edit a key of ${o.name}`);
  v.editor.addEventListener('submit', (e) => {
    e.preventDefault();
    dictWrite(o, 'PUT');
  });
  v.del.addEventListener('click', () => dictWrite(o, 'DELETE'));
  v.msg = el('p', { class: 'msg', role: 'status' });
  v.card.append(head, table, pager, v.editor, v.msg);
}

function updateDictView(o, v) {
  setText(v.meta, `${o.len ?? '?'} keys${o.version !== undefined ? ` · v${o.version}` : ''}`);
  const rows = (o.items || []).map(([key, value]) => {
    const text = jsonText(value);
    const edit = el('button', { type: 'button', class: 'link', text: key });
    edit.title = `edit ${key}`;
    edit.addEventListener('click', () => dictEdit(o, key));
    const tr = el('tr', { 'data-key': key }, el('td', {}, edit),
      el('td', { class: 'val', text: text.length > 200 ? `${text.slice(0, 200)}…` : text }));
    return tr;
  });
  v.rows.replaceChildren(...rows);
  const start = o.pageBack.length * DICT_PAGE;
  setText(v.page, o.items && o.items.length
    ? `${start + 1}–${start + o.items.length} of ${o.len ?? '?'}` : 'no keys');
  v.next.disabled = o.pageNext === null;
  v.prev.disabled = v.first.disabled = o.pageAfter === null;
  if (o.changed) flash(v.meta);
  o.changed = false;
}

function dictPage(o, after, back) {
  o.pageAfter = after;
  o.pageBack = back;
  o.fetchAt = 0;
  fetchObject(o);
}

// Fills the editor with a key's value and version (its own, as the ETag).
async function dictEdit(o, key) {
  const v = o.view;
  try {
    const r = await api('GET', `${objectPath('dict', o.name)}/keys/${encodeURIComponent(key)}`);
    v.key.value = key;
    v.value.value = jsonText(r.json.value);
    v.version.value = String(r.json.version);
  } catch (e) {
    say(v.msg, describe(e), true);
  }
}

async function dictWrite(o, method) {
  const v = o.view;
  const key = v.key.value;
  const version = v.version.value.trim();
  const headers = {};
  let body;
  if (!key) {
    say(v.msg, 'A key is 1 to 256 bytes of UTF-8', true);
    return;
  }
  if (version !== '') {
    if (!/^\d+$/.test(version)) {
      say(v.msg, 'the version is a whole number', true);
      return;
    }
    headers['If-Match'] = `"${version}"`;
  }
  if (method === 'PUT') {
    body = v.value.value.trim();
    try {
      parseJSON(body);
    } catch {
      say(v.msg, 'the value is not JSON', true);
      return;
    }
  }
  v.save.disabled = v.del.disabled = true;
  try {
    const r = await api(method, `${objectPath('dict', o.name)}/keys/${encodeURIComponent(key)}`,
      body, headers);
    if (method === 'PUT') {
      v.version.value = String(r.json.version);
      say(v.msg, `Saved “${key}”, version ${r.json.version}.`, false);
    } else {
      v.version.value = '';
      say(v.msg, `Deleted “${key}”.`, false);
    }
    fetchObject(o);
  } catch (e) {
    say(v.msg, e.status === 412 ? `“${key}” has another version now: ${describe(e)}`
      : describe(e), true);
  } finally {
    v.save.disabled = v.del.disabled = false;
  }
}

function updateRates(o, v) {
  const t = now();
  trimHistory(o, t);
  const span = Math.max(1, Math.min(RATE_SECONDS, t - o.since));
  const sum = (list) => list.reduce((a, [, n]) => a + n, 0);
  setText(v.put, formatRate(sum(o.puts) / span));
  setText(v.pop, formatRate(sum(o.pops) / span));
}

function updateArrayView(o, v) {
  setText(v.badge, o.type || '?');
  v.badge.title = TYPE_NAMES[o.type] || '';
  setText(v.meta, `${o.length ?? '?'} long${o.version !== undefined ? ` · v${o.version}` : ''}`);
  drawBars(o, v);
}

// Step line of o.hist over the last HISTORY_SECONDS, in pixels of the
// element's own width (so nothing is stretched).
function drawSpark(o, v) {
  const s = v.spark;
  // Its size is read by tick(), for every card at once: a read here, after
  // the last card's write, would lay the page out again for every card (a
  // page of 200 new cards stalled for seconds).
  const w = Math.max(60, s.w || 260);
  const h = Math.max(20, s.h || 46);
  s.svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
  const t = now();
  // The time axis grows with what we have seen, up to HISTORY_SECONDS.
  const spanSeconds = Math.min(HISTORY_SECONDS, Math.max(10, t - o.since));
  const t0 = t - spanSeconds;
  const pts = [];
  for (const [pt, val] of o.hist) {
    if (pt < t0) {
      pts.length = 0;
      pts.push([t0, val]);
    } else {
      pts.push([pt, val]);
    }
  }
  if (!pts.length) {
    s.line.setAttribute('d', '');
    s.area.setAttribute('d', '');
    s.end.setAttribute('r', 0);
    return;
  }
  let lo = Infinity;
  let hi = -Infinity;
  for (const [, val] of pts) {
    lo = Math.min(lo, val);
    hi = Math.max(hi, val);
  }
  const pad = 4;
  const y = (val) => (hi === lo ? h / 2 : pad + (h - 2 * pad) * (1 - (val - lo) / (hi - lo)));
  const x = (pt) => ((pt - t0) / spanSeconds) * w;
  let d = `M${x(pts[0][0]).toFixed(1)},${y(pts[0][1]).toFixed(1)}`;
  for (let k = 1; k < pts.length; k++) {
    d += `H${x(pts[k][0]).toFixed(1)}V${y(pts[k][1]).toFixed(1)}`;
  }
  const lastY = y(pts[pts.length - 1][1]);
  d += `H${w}`;
  s.line.setAttribute('d', d);
  s.area.setAttribute('d', `${d}V${h}H${x(pts[0][0]).toFixed(1)}Z`);
  s.end.setAttribute('cx', w);
  s.end.setAttribute('cy', lastY.toFixed(1));
  s.end.setAttribute('r', 2.75);
  const what = o.kind === 'queue' ? 'depth' : 'value';
  const span = spanSeconds >= 90 ? `${Math.round(spanSeconds / 60)} min` : `${Math.round(spanSeconds)} s`;
  const show = o.type === '?' ? (n) => (n ? 'true' : 'false') : formatShort;
  setText(v.lo, `min ${show(lo)}`);
  setText(v.span, `${o.kind === 'queue' ? 'depth, ' : ''}last ${span}`);
  setText(v.hi, `max ${show(hi)}`);
  s.svg.setAttribute('aria-label',
    `${what} of ${o.name} over the last ${span}: from ${show(lo)} to ${show(hi)}`);
}

// Bars of an array; long arrays are averaged into buckets of neighbours.
function drawBars(o, v) {
  const svg = v.bars;
  const w = Math.max(60, Math.round(svg.clientWidth || 400));
  const h = Math.max(40, Math.round(svg.clientHeight || 130));
  svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
  const vals = (o.values || []).map(toNumber);
  svg.replaceChildren();
  if (!vals.length) {
    svg.setAttribute('aria-label', `${o.name}: no values read yet`);
    return;
  }
  const n = vals.length;
  const buckets = Math.max(1, Math.min(n, Math.floor(w / 4)));
  const per = n / buckets;
  const bars = [];
  for (let b = 0; b < buckets; b++) {
    const from = Math.floor(b * per);
    const to = Math.max(from + 1, Math.floor((b + 1) * per));
    let sum = 0;
    for (let k = from; k < to; k++) sum += vals[k];
    bars.push({ from, to, val: sum / (to - from) });
  }
  let lo = Math.min(0, ...vals);
  let hi = Math.max(0, ...vals);
  if (lo === hi) hi = lo + 1;
  const top = 4;
  const bottom = h - 14;
  const y = (val) => top + (bottom - top) * (1 - (val - lo) / (hi - lo));
  const zero = y(0);
  const slot = w / buckets;
  const gap = slot > 6 ? Math.min(slot * 0.2, 6) : 0;
  for (const bar of bars) {
    const left = (bar.from / per) * (w / n) * per;
    const yv = y(bar.val);
    const rect = svgEl('rect', {
      class: bar.val < 0 ? 'bar neg' : 'bar',
      x: (left + gap / 2).toFixed(1),
      y: Math.min(yv, zero).toFixed(1),
      width: Math.max(1, slot - gap).toFixed(1),
      height: Math.max(bar.val === 0 ? 0 : 1, Math.abs(zero - yv)).toFixed(1),
      rx: slot - gap > 6 ? 2 : 0,
    });
    const where = bar.to - bar.from > 1 ? `[${bar.from}–${bar.to - 1}] mean` : `[${bar.from}]`;
    rect.append(svgEl('title', { text: `${where} ${formatShort(bar.val)}` }));
    svg.append(rect);
  }
  svg.append(svgEl('line', { class: 'axis', x1: 0, x2: w, y1: zero, y2: zero }));
  svg.append(svgEl('text', { x: 0, y: h - 2, text: '0' }));
  svg.append(svgEl('text', { x: w, y: h - 2, 'text-anchor': 'end', text: String(n - 1) }));
  const min = Math.min(...vals);
  const max = Math.max(...vals);
  const mean = vals.reduce((a, b) => a + b, 0) / n;
  setText(v.lo, `min ${formatShort(min)}`);
  setText(v.mid, `mean ${formatShort(mean)}`);
  setText(v.hi, `max ${formatShort(max)}`);
  svg.setAttribute('aria-label',
    `${o.name}: ${n} values from ${formatShort(min)} to ${formatShort(max)}` +
    (per > 1 ? `, drawn as ${buckets} averages` : ''));
  // The exact values, for reading and for screen readers.
  v.details.hidden = n > MAX_BARS_LISTED;
  if (n <= MAX_BARS_LISTED) {
    const items = o.values.map((val) => el('li', { text: formatValue(o.type, val) }));
    v.list.replaceChildren(...items);
  }
}

function updateCounts() {
  for (const kind of Object.keys(KIND_PATHS)) {
    const cards = [...grid(kind).children];
    const shown = cards.filter((c) => !c.hidden).length;
    const count = byId(`${KIND_PATHS[kind]}-count`);
    setText(count, cards.length === shown ? String(cards.length) : `${shown} of ${cards.length}`);
    const empty = byId(`${KIND_PATHS[kind]}-empty`);
    empty.hidden = shown > 0;
    setText(empty, cards.length || state.filter || state.page.after !== null
      ? 'None matches the filter.' : `No ${KIND_PATHS[kind]} yet.`);
    // The synchronisation kinds take no room on a page that has none
    // (unless filtered: the section says none matches).
    if (SYNC_KINDS[kind]) {
      grid(kind).closest('section').hidden = cards.length === 0 && !state.filter;
    }
  }
  listLockNames();
}

// The create form's suggestions for a condition's lock.
function listLockNames() {
  const names = [...state.objects.values()].filter((o) => o.kind === 'lock')
    .map((o) => o.name).sort();
  const list = byId('lock-names');
  if (list.dataset.names === names.join(' ')) return;
  list.dataset.names = names.join(' ');
  list.replaceChildren(...names.map((name) => el('option', { value: name })));
}

function matchesFilter(name) {
  return name.startsWith(state.filter);
}

function describe(e) {
  if (!(e instanceof ApiError)) return String(e.message || e);
  if (e.status === 0) return e.message;
  return `${e.message} (${e.status} ${e.code})`;
}

// ------------------------------------------------------------- actions

async function addTo(o, delta, button) {
  button.disabled = true;
  try {
    const r = await api('POST', `${objectPath('value', o.name)}/add`, `{"delta":${delta}}`);
    apply({ ...r.json, kind: 'value' });
  } catch (e) {
    if (o.view) say(o.view.msg, describe(e), true);
  } finally {
    button.disabled = false;
  }
}

async function setValue(o, jsonText, button) {
  button.disabled = true;
  try {
    const r = await api('PUT', objectPath('value', o.name),
      `{"type":${JSON.stringify(o.type)},"value":${jsonText}}`);
    apply({ ...r.json, kind: 'value' });
    return true;
  } catch (e) {
    if (o.view) say(o.view.msg, describe(e), true);
    return false;
  } finally {
    button.disabled = false;
  }
}

// POST /v1/<kind>s/<name>/<action> without a body (break, set, clear,
// abort, reset): the answer is the object's state.
async function syncAct(o, action, button) {
  button.busy = true;
  button.disabled = true;
  try {
    const r = await api('POST', `${objectPath(o.kind, o.name)}/${action}`);
    apply({ ...r.json, kind: o.kind });
    if (o.view) say(o.view.msg, syncDone(o, action), false);
  } catch (e) {
    if (o.view) say(o.view.msg, describe(e), true);
  } finally {
    button.busy = false;
    button.disabled = false;
    markDirty(o); // the view says again which actions make sense now
  }
}

// What sync.js's cards may use of this module.
const syncCtx = { objects: state.objects, act: syncAct };

function createKind() {
  return byId('create-form').elements.kind.value;
}

function showCreateFields() {
  const kind = createKind();
  for (const f of byId('create-form').querySelectorAll('[data-for]')) {
    f.hidden = !f.dataset.for.split(' ').includes(kind);
  }
}

async function create(e) {
  e.preventDefault();
  const form = byId('create-form');
  const msg = byId('create-msg');
  const kind = createKind();
  const name = form.elements.name.value.trim();
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) {
    say(msg, 'A name is 1 to 64 of A–Z a–z 0–9 _ . -', true);
    form.elements.name.focus();
    return;
  }
  const type = form.elements.type.value;
  let body;
  const headers = {};
  try {
    if (kind === 'value') {
      const start = form.elements.value.value;
      body = start.trim() === '' ? `{"type":${JSON.stringify(type)}}`
        : `{"type":${JSON.stringify(type)},"value":${encodeValue(type, start)}}`;
      headers['If-None-Match'] = '*';
    } else if (kind === 'array') {
      const length = form.elements.length.value.trim();
      if (!/^\d+$/.test(length) || Number(length) < 1) throw new Error('the length is a whole number, 1 or more');
      body = `{"type":${JSON.stringify(type)},"length":${BigInt(length)}}`;
      headers['If-None-Match'] = '*';
    } else if (kind === 'dict') {
      body = '{}';
    } else if (kind === 'queue') {
      const maxsize = form.elements.maxsize.value.trim() || '0';
      if (!/^\d+$/.test(maxsize)) throw new Error('the max size is a whole number, 0 or more');
      body = `{"maxsize":${BigInt(maxsize)}}`;
    } else {
      body = syncBody(kind, form);
    }
  } catch (err) {
    say(msg, err.message, true);
    return;
  }
  const submit = form.querySelector('button[type="submit"]');
  submit.disabled = true;
  try {
    const r = await api('PUT', objectPath(kind, name), body, headers);
    apply({ ...r.json, kind }, r.status === 201 ? 'created' : undefined);
    if (r.status === 201) {
      say(msg, `Created ${kind} “${name}”.`, false);
      form.elements.name.value = '';
    } else {
      say(msg, `A ${kind} “${name}” was there already; it is left as it was.`, false);
    }
  } catch (err) {
    say(msg, err.status === 412 ? `“${name}” exists already.` : describe(err), true);
  } finally {
    submit.disabled = false;
  }
}

// ------------------------------------------------------- header, token

function setConn(which) {
  const conn = byId('conn');
  conn.dataset.state = which;
  const text = {
    connecting: 'Connecting…',
    connected: 'Connected',
    reconnecting: 'Reconnecting…',
    offline: 'Gateway unreachable',
    token: 'Token needed',
  }[which];
  setText(byId('conn-text'), text);
  showSeq();
}

function showSeq() {
  setText(byId('conn-seq'), state.lastSeq === null ? '' : `· seq ${state.lastSeq}`);
}

function scheduleStoreInfo() {
  if (state.storeTimer) return;
  state.storeTimer = setTimeout(() => {
    state.storeTimer = 0;
    refreshStoreInfo();
  }, 1000);
}

async function refreshStoreInfo() {
  try {
    const r = await api('GET', '/v1/store');
    const s = r.json;
    const node = byId('store');
    setText(node, `${s.objects} object${Number(s.objects) === 1 ? '' : 's'} · ` +
      `${formatBytes(s.used)} of ${formatBytes(s.capacity)} used`);
    node.title = `store ${s.path}`;
  } catch {
    // The header line is a nicety; the next change asks again.
  }
}

function needToken(rejected) {
  if (!byId('token-panel').hidden) return;
  if (rejected) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
  }
  closeStream();
  clearTimeout(state.retryTimer);
  state.started = false;
  setConn('token');
  byId('dash').hidden = true;
  byId('forget').hidden = true;
  byId('token-panel').hidden = false;
  const error = byId('token-error');
  error.textContent = rejected ? 'The gateway did not accept that token.' : '';
  byId('token-input').focus();
}

function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  closeStream();
  for (const o of state.objects.values()) dropView(o);
  state.objects.clear();
  state.lastSeq = null;
  state.streamOpened = false;
  updateCounts();
  start();
}

// --------------------------------------------------------------- start

async function start() {
  try {
    await reload();
  } catch (e) {
    if (e.status === 401) return; // needToken showed the form
    setConn('offline');
    clearTimeout(state.retryTimer);
    state.retryTimer = setTimeout(start, 3000);
    return;
  }
  state.started = true;
  byId('token-panel').hidden = true;
  byId('dash').hidden = false;
  byId('forget').hidden = !state.token;
  updateCounts();
  openStream();
}

// Reads the size of every sparkline not measured yet: reads only, so the
// page is laid out once for all of them.
function measureSparks() {
  for (const o of state.objects.values()) {
    const s = o.view && o.view.spark;
    if (s && !s.w) {
      s.w = Math.round(s.svg.clientWidth);
      s.h = Math.round(s.svg.clientHeight);
    }
  }
}

function tick() {
  if (document.hidden) return;
  const t = now();
  let polls = 0;
  measureSparks();
  for (const o of state.objects.values()) {
    if (!o.view) continue;
    if (o.kind === 'value' && o.type !== 'c') drawSpark(o, o.view);
    else if (o.kind === 'queue') {
      updateRates(o, o.view);
      drawSpark(o, o.view);
    } else if (SYNC_KINDS[o.kind] && syncTick(o, o.view) && !o.view.card.hidden &&
               t - o.fetchAt >= POLL_SECONDS && polls < POLL_MAX) {
      // Waiters come and go without an event: read busy objects again.
      polls++;
      fetchObject(o);
    }
  }
}

// The section of a synchronisation kind, as index.html has them for the
// others; hidden while it has no object.
function syncSection(path, title) {
  return el('section', { class: 'kind', 'aria-labelledby': `${path}-title`, hidden: true },
    el('h2', { id: `${path}-title` }, `${title} `, el('span', { class: 'count', id: `${path}-count` })),
    el('p', { class: 'empty', id: `${path}-empty` }),
    el('div', { class: 'grid', id: path }));
}

function init() {
  for (const k of Object.values(SYNC_KINDS)) byId('objects').append(syncSection(k.path, k.title));
  // On a phone the objects come first; the form opens on a tap.
  if (window.matchMedia('(max-width: 560px)').matches) byId('create').open = false;
  byId('create-form').addEventListener('submit', create);
  byId('create-form').addEventListener('change', (e) => {
    if (e.target.name === 'kind') showCreateFields();
  });
  showCreateFields();
  byId('token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const token = byId('token-input').value.trim();
    if (!token) return;
    state.token = token;
    sessionStorage.setItem(TOKEN_KEY, token);
    byId('token-input').value = '';
    byId('token-panel').hidden = true;
    setConn('connecting');
    start();
  });
  byId('forget').addEventListener('click', forgetToken);
  // The filter is a name prefix the gateway applies: a store of a
  // million objects is never drawn whole.
  byId('filter').addEventListener('input', (e) => {
    const prefix = e.target.value.trim();
    const bad = !PREFIX_RE.test(prefix);
    setText(byId('filter-msg'), bad ? 'Names hold only A-Z a-z 0-9 _ . - (at most 64).' : '');
    clearTimeout(state.filterTimer);
    if (bad || prefix === state.filter) return;
    state.filterTimer = setTimeout(() => {
      state.filter = prefix;
      goPage(null, []);
    }, FILTER_DELAY_MS);
  });
  byId('page-next').addEventListener('click', () => {
    if (state.page.next !== null) goPage(state.page.next, [...state.page.back, state.page.after]);
  });
  byId('page-prev').addEventListener('click', () => {
    const back = state.page.back.slice();
    const after = back.pop();
    goPage(after === undefined ? null : after, back);
  });
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) for (const o of state.objects.values()) markDirty(o);
  });
  window.addEventListener('resize', () => {
    for (const o of state.objects.values()) {
      if (o.view && o.view.spark) o.view.spark.w = 0; // measured again
      markDirty(o);
    }
  });
  setInterval(tick, 1000);
  start();
}

init();
