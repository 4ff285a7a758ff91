// atrium dashboard: the synchronisation kinds (locks, semaphores, flags,
// barriers, conditions). One row per kind in SYNC_KINDS says what its
// state holds, how its card is built and updated, and what a PUT that
// creates one sends; app.js does the rest as for every kind (the model,
// the stream, the filter, the create form).
//
// The state is what the gateway gives (GET, listings, and every event,
// which carries the whole object). Some of it changes without an event:
// a lease's time left runs down by itself (counted here from
// "expires_in"), and a waiter that parks publishes nothing (app.js reads
// busy objects again now and then: see wantsPoll).

import { cardHead, el, flash, intFormat, now, say, setText } from './ui.js';

const BREAK_CONFIRM_MS = 5000; // a break's second click must come within

const fmt = (n) => (n === undefined || n === null ? '–' : intFormat.format(n));
const num = (n) => Number(n ?? 0);

// 9 s, 4 min 05 s, 2 h 03 min: a lease's time left.
function formatDuration(seconds) {
  const s = Math.max(0, Math.ceil(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor(s / 60) % 60).padStart(2, '0')} min`;
}

// ------------------------------------------------------------- pieces

// A list of facts (dt: label, dd: value); dd[field] is each value's node,
// marked data-field for tests and styles.
function facts(rows) {
  const dl = el('dl', { class: 'facts' });
  const dd = {};
  for (const [field, label] of rows) {
    dd[field] = el('dd', { 'data-field': field });
    dl.append(el('div', {}, el('dt', { text: label }), dd[field]));
  }
  return { dl, dd };
}

function showFact(v, field, shown) {
  v.dd[field].parentElement.hidden = !shown;
}

// The big line: a number or a word, then smaller words after it.
function setBig(v, main, rest = '') {
  const key = `${main}\u0000${rest}`;
  if (v.num.dataset.key === key) return;
  v.num.replaceChildren(main);
  if (rest) v.num.append(el('span', { class: 'of', text: rest }));
  v.num.dataset.key = key;
  if (v.shown) flash(v.num);
  v.shown = true;
}

function meter(label) {
  const fill = el('span');
  const node = el('div', {
    class: 'meter', role: 'meter', 'aria-label': label, 'aria-valuemin': 0,
  }, fill);
  return { node, fill };
}

function setMeter(m, value, max) {
  const frac = max > 0 ? Math.min(1, value / max) : 0;
  m.fill.style.width = `${(frac * 100).toFixed(1)}%`;
  m.node.setAttribute('aria-valuemax', max);
  m.node.setAttribute('aria-valuenow', value);
}

// A button for an action of the gateway (POST /v1/<kind>s/<name>/<action>).
function actionButton(o, ctx, action, text, label) {
  const b = el('button', {
    type: 'button', text, 'aria-label': label, 'data-action': action,
  });
  b.addEventListener('click', () => ctx.act(o, action, b));
  return b;
}

// A card's common frame: head (name, badge, version), the big line, a
// place for facts, controls and a status line.
function frame(o, v, badgeText) {
  v.badge = el('span', { class: 'badge', hidden: !badgeText, text: badgeText || '' });
  const { head, meta } = cardHead(o, v.badge);
  v.meta = meta;
  v.num = el('div', { class: 'num' });
  v.controls = el('div', { class: 'controls' });
  v.msg = el('p', { class: 'msg', role: 'status' });
  v.card.append(head, v.num);
  return v;
}

function finish(v, dl) {
  v.card.append(dl);
  if (v.controls.childElementCount) v.card.append(v.controls);
  v.card.append(v.msg);
}

function setMeta(o, v) {
  setText(v.meta, o.version !== undefined ? `v${o.version}` : '');
}

// ---------------------------------------------------------------- lock

// A break is an operator's last resort (the holder loses the lock and
// its token): it takes a second click, said in the status line.
function breakButton(o, ctx, v) {
  const b = el('button', {
    type: 'button', class: 'danger', text: 'Break', 'data-action': 'break',
    'aria-label': `Break the lock ${o.name}`,
  });
  const disarm = () => {
    clearTimeout(b.armTimer);
    b.armed = false;
    b.textContent = 'Break';
    b.setAttribute('aria-label', `Break the lock ${o.name}`);
  };
  b.addEventListener('click', () => {
    if (!b.armed) {
      b.armed = true;
      b.textContent = 'Confirm break';
      b.setAttribute('aria-label', `Confirm: break the lock ${o.name}`);
      say(v.msg, 'Click again to break it: its holder loses it and its token is spent.', false);
      b.armTimer = setTimeout(disarm, BREAK_CONFIRM_MS);
      return;
    }
    disarm();
    ctx.act(o, 'break', b);
  });
  return b;
}

function lockView(o, v, ctx) {
  frame(o, v, o.sync.reentrant ? 'reentrant' : '');
  const f = facts([['holder', 'Holder'], ['left', 'Lease ends'], ['fence', 'Fence'],
    ['waiters', 'Waiters'], ['count', 'Depth']]);
  v.dd = f.dd;
  v.breakButton = breakButton(o, ctx, v);
  v.controls.append(v.breakButton);
  finish(v, f.dl);
}

function lockLeft(o) {
  const h = o.sync.holder;
  if (!o.sync.held || !h || h.type !== 'lease' || o.expiresAt === undefined) return null;
  return o.expiresAt - now();
}

function updateLockLeft(o, v) {
  const left = lockLeft(o);
  showFact(v, 'left', left !== null);
  if (left === null) return;
  // Until when, by this machine's clock: fixed when the state came, so it
  // does not jitter as the seconds run down.
  const at = new Date(o.expiresWall).toLocaleTimeString(undefined,
    { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  setText(v.dd.left, left > 0 ? `in ${formatDuration(left)} · ${at}` : 'now');
}

function updateLock(o, v) {
  const s = o.sync;
  setMeta(o, v);
  v.badge.hidden = !s.reentrant;
  setText(v.badge, s.reentrant ? 'reentrant' : '');
  setBig(v, s.held ? 'held' : 'free');
  v.num.classList.toggle('busy', Boolean(s.held));
  const h = s.holder;
  setText(v.dd.holder, !s.held ? 'nobody' : h && h.type === 'lease' ? 'an HTTP lease'
    : h && h.type === 'process' ? 'a local process' : 'someone');
  updateLockLeft(o, v);
  setText(v.dd.fence, fmt(s.fence));
  setText(v.dd.waiters, fmt(s.waiters));
  showFact(v, 'count', Boolean(s.reentrant && s.held));
  setText(v.dd.count, fmt(s.count));
  v.breakButton.disabled = !s.held;
}

// ----------------------------------------------------------- semaphore

function semaphoreView(o, v) {
  frame(o, v, '');
  v.meter = meter(`${o.name}: permits free`);
  v.card.append(v.meter.node);
  const f = facts([['waiters', 'Waiters'], ['leased', 'Leased permits']]);
  v.dd = f.dd;
  finish(v, f.dl);
}

function updateSemaphore(o, v) {
  const s = o.sync;
  const bound = num(s.bound);
  setMeta(o, v);
  v.badge.hidden = !bound;
  setText(v.badge, bound ? 'bounded' : '');
  setBig(v, fmt(s.value), bound ? ` / ${fmt(s.bound)} free` : ' free');
  v.num.classList.toggle('busy', num(s.value) === 0);
  v.meter.node.hidden = !bound;
  if (bound) setMeter(v.meter, num(s.value), bound);
  setText(v.dd.waiters, fmt(s.waiters));
  showFact(v, 'leased', s.leased !== undefined);
  setText(v.dd.leased, fmt(s.leased));
}

// ---------------------------------------------------------------- flag

function flagView(o, v, ctx) {
  frame(o, v, '');
  const f = facts([['waiters', 'Waiters']]);
  v.dd = f.dd;
  v.setButton = actionButton(o, ctx, 'set', 'Set', `Set the flag ${o.name}`);
  v.clearButton = actionButton(o, ctx, 'clear', 'Clear', `Clear the flag ${o.name}`);
  v.controls.append(v.setButton, v.clearButton);
  finish(v, f.dl);
}

function updateFlag(o, v) {
  const s = o.sync;
  setMeta(o, v);
  setBig(v, s.set ? 'set' : 'clear');
  v.num.classList.toggle('on', Boolean(s.set));
  setText(v.dd.waiters, fmt(s.waiters));
  // The button that would change nothing is off (and says why by its state).
  v.setButton.disabled = Boolean(s.set) || v.setButton.busy;
  v.clearButton.disabled = !s.set || v.clearButton.busy;
}

// ------------------------------------------------------------- barrier

function barrierView(o, v, ctx) {
  frame(o, v, '');
  v.meter = meter(`${o.name}: parties arrived`);
  v.card.append(v.meter.node);
  const f = facts([['state', 'State'], ['generation', 'Generation']]);
  v.dd = f.dd;
  v.controls.append(
    actionButton(o, ctx, 'abort', 'Abort', `Abort the barrier ${o.name}`),
    actionButton(o, ctx, 'reset', 'Reset', `Reset the barrier ${o.name}`));
  finish(v, f.dl);
}

function updateBarrier(o, v) {
  const s = o.sync;
  setMeta(o, v);
  v.badge.hidden = !s.broken;
  setText(v.badge, s.broken ? 'broken' : '');
  v.badge.classList.toggle('bad', Boolean(s.broken));
  setBig(v, fmt(s.n_waiting), ` / ${fmt(s.parties)} arrived`);
  setMeter(v.meter, num(s.n_waiting), num(s.parties));
  v.meter.node.classList.toggle('full', Boolean(s.broken));
  setText(v.dd.state, s.broken ? 'broken' : 'whole');
  v.dd.state.classList.toggle('bad', Boolean(s.broken));
  setText(v.dd.generation, fmt(s.generation));
}

// ----------------------------------------------------------- condition

function conditionView(o, v) {
  frame(o, v, '');
  const f = facts([['lock', 'Lock'], ['waiters', 'Waiters']]);
  v.dd = f.dd;
  finish(v, f.dl);
}

function updateCondition(o, v, ctx) {
  const s = o.sync;
  setMeta(o, v);
  setBig(v, fmt(s.waiters), ' waiting');
  // Its lock's state, when the lock is on the page too.
  const lock = ctx.objects.get(s.lock);
  const held = lock && lock.kind === 'lock' ? (lock.sync.held ? ' · held' : ' · free') : '';
  setText(v.dd.lock, s.lock === undefined ? '–' : `${s.lock}${held}`);
  setText(v.dd.waiters, fmt(s.waiters));
}

// --------------------------------------------------------- create form

function wholeNumber(form, field, what, min, max, empty) {
  const text = form.elements[field].value.trim();
  if (text === '' && empty !== undefined) return empty;
  if (!/^\d+$/.test(text) || BigInt(text) < BigInt(min) ||
      (max !== undefined && BigInt(text) > BigInt(max))) {
    const range = max !== undefined ? `${min} to ${max}` : `${min} or more`;
    throw new Error(`${what} is a whole number, ${range}`);
  }
  return BigInt(text);
}

function semaphoreBody(form) {
  const value = wholeNumber(form, 'permits', 'the value', 0);
  const bound = wholeNumber(form, 'bound', 'the bound', 1, undefined, null);
  if (bound === null) return `{"value":${value}}`;
  if (value > bound) throw new Error('the value is at most the bound');
  return `{"value":${value},"bound":${bound}}`;
}

function conditionBody(form) {
  const lock = form.elements.lock.value.trim();
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(lock)) {
    throw new Error('a condition needs the name of an existing lock');
  }
  return `{"lock":${JSON.stringify(lock)}}`;
}

// ---------------------------------------------------------------- table

// path: its routes' folder (/v1/<path>/<name>), and its section's id;
// members: what the kind's state holds (copied from each answer or event);
// gone: members that are left out while they mean nothing (a free lock's
// holder), so an answer without them clears them.
export const SYNC_KINDS = {
  lock: {
    path: 'locks',
    title: 'Locks',
    members: ['reentrant', 'held', 'fence', 'waiters', 'holder', 'count'],
    gone: ['holder', 'count'],
    view: lockView,
    update: updateLock,
    body: (form) => `{"reentrant":${form.elements.reentrant.checked}}`,
    wantsPoll: (o) => Boolean(o.sync.held),
  },
  semaphore: {
    path: 'semaphores',
    title: 'Semaphores',
    members: ['value', 'bound', 'waiters', 'leased'],
    gone: [],
    view: semaphoreView,
    update: updateSemaphore,
    body: semaphoreBody,
    wantsPoll: (o) => num(o.sync.value) === 0,
  },
  flag: {
    path: 'flags',
    title: 'Flags',
    members: ['set', 'waiters'],
    gone: [],
    view: flagView,
    update: updateFlag,
    body: (form) => `{"set":${form.elements.set.checked}}`,
    wantsPoll: (o) => !o.sync.set,
  },
  barrier: {
    path: 'barriers',
    title: 'Barriers',
    members: ['parties', 'n_waiting', 'broken', 'generation'],
    gone: [],
    view: barrierView,
    update: updateBarrier,
    body: (form) => `{"parties":${wholeNumber(form, 'parties', 'parties', 1, 1024)}}`,
    wantsPoll: () => false, // every arrival is an event ("wait")
  },
  condition: {
    path: 'conditions',
    title: 'Conditions',
    members: ['lock', 'waiters'],
    gone: [],
    view: conditionView,
    update: updateCondition,
    body: conditionBody,
    wantsPoll: () => true, // a waiter's arrival publishes nothing
  },
};

// What some events mean, said on the card.
const NOTES = {
  abandoned: 'Its holder died holding it: the next one took it.',
  expired: 'A lease ran out.',
  broken: 'The barrier broke: every waiter was sent away.',
  passed: 'A round passed.',
};

// Takes what the gateway says of o (an answer or an event's state) into
// o.sync; op is the event's, if any.
export function syncApply(o, info, op) {
  const k = SYNC_KINDS[o.kind];
  const whole = o.kind !== 'lock' || 'held' in info;
  for (const m of k.members) {
    if (m in info) o.sync[m] = info[m];
    else if (whole && k.gone.includes(m)) delete o.sync[m];
  }
  const h = o.sync.holder;
  if (o.kind === 'lock' && h && h.type === 'lease' && h.expires_in !== undefined) {
    o.expiresAt = now() + Number(h.expires_in);
    o.expiresWall = Date.now() + Number(h.expires_in) * 1000;
  } else if (whole) {
    o.expiresAt = undefined;
  }
  if (op && NOTES[op]) o.note = NOTES[op];
}

export function syncView(o, v, ctx) {
  SYNC_KINDS[o.kind].view(o, v, ctx);
}

export function syncUpdate(o, v, ctx) {
  SYNC_KINDS[o.kind].update(o, v, ctx);
  if (o.note) {
    say(v.msg, o.note, false);
    o.note = undefined;
  }
}

// Once a second: a lease's time left; true when o should be read again
// (its state may have changed without an event).
export function syncTick(o, v) {
  if (o.kind === 'lock') {
    updateLockLeft(o, v);
    const left = lockLeft(o);
    if (left !== null && left <= 0) return true; // "expired" is due
  }
  return SYNC_KINDS[o.kind].wantsPoll(o);
}

// The JSON text a PUT that creates kind sends, from the create form;
// throws an Error saying what is wrong.
export function syncBody(kind, form) {
  return SYNC_KINDS[kind].body(form);
}

// What a done action says on the card.
export function syncDone(o, action) {
  const s = o.sync;
  switch (action) {
    case 'break': return 'Broken: it is free; its holder’s token and fence are spent.';
    case 'set': return 'Set: every waiter was woken.';
    case 'clear': return 'Cleared.';
    case 'abort': return 'Aborted: the barrier is broken until a reset.';
    case 'reset': return `Reset: generation ${fmt(s.generation)}.`;
    default: return 'Done.';
  }
}
