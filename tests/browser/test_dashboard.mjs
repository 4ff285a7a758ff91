// The dashboard in a real browser, against a real atriumd on a fresh
// store. Run by test_dashboard.sh (which sets BUILD, CHROMIUM, ARTIFACTS).
//
// It checks, in order: the page and its files are served with their
// content types and a Content-Security-Policy; the page connects to the
// event stream; a value made with curl appears; an add from a separate C
// process (the atrium tool) shows within a second, without a reload; the
// +1 button changes the value the API gives; a queue made with the form
// appears and shows puts as they happen; a queue's leased and unfinished
// items and dead letters show as they change; an array shows as bars; each
// synchronisation kind (lock, semaphore, flag, barrier, condition) is made
// with the form, bad input there makes nothing, a lock leased over HTTP
// shows as held with its fence and its time left running down, the Break
// button frees it (its token and fence spent), a lock held by a C process
// (sync_tool) shows so, with a C waiter counted, and passes on abandoned
// when the holder is killed, a condition's waiter shows and a notify
// wakes it, a lease running out frees the card on time, the flag's buttons
// set and clear it (waking a waiter parked over HTTP), a barrier's
// arrivals show as HTTP waiters park and Abort/Reset answer them, a
// semaphore follows acquires, all live from the stream, and the name
// filter (a prefix the gateway applies) keeps them as it does the others;
// a store larger than a page (200 objects) is paged by name with Next and
// Previous, a new object shows when it belongs to the page shown; at 390 px
// the page has no horizontal scroll; the page logged no console error;
// with a token required the page asks for it and streams with a ticket;
// after a gateway restart the page reconnects by itself and shows what
// changed meanwhile. Screenshots: ARTIFACTS/dashboard.png (1280 px wide)
// and ARTIFACTS/dashboard-phone.png (390 px).
//
// Prints "ok"/"not ok" per check and ends with "N passed, N failed".

import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { chromium } from 'playwright-core';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BUILD = resolve(ROOT, process.env.BUILD || 'build');
const ARTIFACTS = resolve(ROOT, process.env.ARTIFACTS || 'build/artifacts');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ATRIUMD = join(BUILD, 'atriumd');
const ATRIUM = join(BUILD, 'atrium');
const SYNC_TOOL = join(BUILD, 'tests', 'gateway', 'sync_tool'); // holds a lock from C

const READY = /^atriumd: listening on http:\/\/([^ ]+):(\d+), events on (\S+)$/m;
const SANITIZER = ['ERROR: AddressSanitizer', 'ERROR: LeakSanitizer', 'runtime error:',
  'WARNING: ThreadSanitizer'];

const run = promisify(execFile);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Every store file and folder this test made: removed however it ends.
const leftovers = new Set();
function newStore() {
  const path = `/dev/shm/atrium-browsertest-${process.pid}-${randomBytes(6).toString('hex')}`;
  leftovers.add(path);
  return path;
}
function removeLeftovers() {
  for (const path of leftovers) rmSync(path, { recursive: true, force: true });
  leftovers.clear();
}
const running = new Set(); // atriumd processes not yet stopped
process.on('exit', () => {
  for (const proc of running) proc.kill('SIGKILL');
  removeLeftovers();
});

// ------------------------------------------------------------- gateway

// One atriumd on store (kept between restarts), on a free port or on port.
class Gateway {
  constructor(store, args = []) {
    this.store = store;
    this.args = args;
    this.proc = null;
    this.port = 0;
    this.stderr = '';
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(port = 0) {
    this.stderr = '';
    const proc = spawn(ATRIUMD, ['--store', this.store, '--listen', `127.0.0.1:${port}`,
      '--events', 'tcp://127.0.0.1:0', ...this.args], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.proc = proc;
    running.add(proc);
    proc.once('exit', () => running.delete(proc));
    proc.stderr.setEncoding('utf8');
    await new Promise((resolveReady, reject) => {
      const timer = setTimeout(() => reject(new Error(`atriumd not ready: ${this.stderr}`)), 15000);
      let ready = false;
      proc.stderr.on('data', (chunk) => {
        this.stderr += chunk;
        const m = READY.exec(this.stderr);
        if (m && !ready) {
          ready = true;
          this.port = Number(m[2]);
          clearTimeout(timer);
          resolveReady();
        }
      });
      proc.on('exit', (code, signal) => {
        if (!ready) {
          clearTimeout(timer);
          reject(new Error(`atriumd exited (${code ?? signal}): ${this.stderr}`));
        }
      });
      proc.on('error', (e) => {
        clearTimeout(timer);
        this.proc = null;
        reject(new Error(`cannot start ${ATRIUMD}: ${e.message}`));
      });
    });
    // Ready means serving: /healthz answers at once.
    const r = await fetch(`${this.url}/healthz`);
    if (r.status !== 200) throw new Error(`/healthz answered ${r.status}`);
  }

  // SIGTERM; it must exit 0 promptly and print no sanitizer report.
  async stop() {
    const proc = this.proc;
    if (!proc) return;
    this.proc = null;
    const exited = new Promise((r) => proc.once('exit', (code, signal) => r({ code, signal })));
    proc.kill('SIGTERM');
    const timeout = sleep(15000).then(() => null);
    const result = await Promise.race([exited, timeout]);
    if (result === null) {
      proc.kill('SIGKILL');
      throw new Error('atriumd did not stop within 15 s of SIGTERM');
    }
    for (const mark of SANITIZER) {
      if (this.stderr.includes(mark)) throw new Error(`sanitizer report:\n${this.stderr}`);
    }
    if (result.code !== 0) {
      throw new Error(`atriumd exited ${result.code ?? result.signal}:\n${this.stderr}`);
    }
  }

  async json(method, path, body) {
    const init = { method, headers: {} };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const r = await fetch(this.url + path, init);
    const text = await r.text();
    return { status: r.status, headers: r.headers, body: text ? JSON.parse(text) : null };
  }
}

// -------------------------------------------------------------- checks

const results = [];

async function check(name, fn) {
  try {
    await fn();
    results.push(true);
    console.log(`ok ${results.length} - ${name}`);
  } catch (e) {
    results.push(false);
    console.log(`not ok ${results.length} - ${name}`);
    for (const line of String(e && e.stack ? e.stack : e).split('\n')) console.log(`#   ${line}`);
  }
}

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

// Polls fn until it returns a truthy value, or throws after ms.
async function until(fn, ms, what) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms (last: ${last})`);
    await sleep(25);
  }
}

const card = (kind, name) => `article.card[data-kind="${kind}"][data-name="${name}"]`;

// The text of a card's big number, or null when the card is not there.
async function shown(page, kind, name) {
  return page.evaluate((sel) => {
    const num = document.querySelector(`${sel} .num`);
    return num ? num.textContent : null;
  }, card(kind, name));
}

async function waitShown(page, kind, name, text, ms) {
  await page.waitForFunction(([sel, want]) => {
    const num = document.querySelector(`${sel} .num`);
    return num !== null && num.textContent === want;
  }, [card(kind, name), text], { timeout: ms, polling: 'raf' });
}

// ---------------------------------------------------------------- main

async function main() {
  const store = newStore();
  const profile = mkdtempSync(join(tmpdir(), 'atrium-chromium-'));
  leftovers.add(profile);
  const gw = new Gateway(store);
  let context = null;
  const errors = []; // console errors and uncaught exceptions of every page
  try {
    await gw.start();
    mkdirSync(ARTIFACTS, { recursive: true });
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
        '--disable-component-update', '--no-first-run', '--disable-sync'],
      viewport: { width: 1280, height: 900 },
    });
    const watch = (page, label) => {
      page.on('console', (msg) => {
        if (msg.type() === 'error') errors.push(`${label} console: ${msg.text()}`);
      });
      page.on('pageerror', (e) => errors.push(`${label} exception: ${e.message}`));
    };
    const page = context.pages()[0] || await context.newPage();
    watch(page, 'desktop');
    let reloads = 0;
    page.on('framenavigated', (frame) => {
      if (frame === page.mainFrame()) reloads++;
    });

    await check('the page and its files are served with types, ETag and CSP', async () => {
      const index = await fetch(`${gw.url}/`);
      assert(index.status === 200, `GET / answered ${index.status}`);
      assert(index.headers.get('content-type').startsWith('text/html'), 'GET / is not text/html');
      const csp = index.headers.get('content-security-policy') || '';
      assert(/default-src 'self'/.test(csp), `no CSP default-src 'self' on GET /: ${csp}`);
      const html = await index.text();
      assert(!/<script(?![^>]*\bsrc=)[^>]*>/i.test(html), 'the page has an inline script');
      for (const [file, type] of [['app.js', 'text/javascript'], ['style.css', 'text/css'],
        ['favicon.svg', 'image/svg+xml']]) {
        const r = await fetch(`${gw.url}/web/${file}`);
        assert(r.status === 200, `GET /web/${file} answered ${r.status}`);
        assert(r.headers.get('content-type').startsWith(type), `/web/${file} is not ${type}`);
        const etag = r.headers.get('etag');
        assert(etag, `/web/${file} has no ETag`);
        const again = await fetch(`${gw.url}/web/${file}`, { headers: { 'If-None-Match': etag } });
        assert(again.status === 304, `If-None-Match on /web/${file} answered ${again.status}`);
      }
      const missing = await fetch(`${gw.url}/web/nothing.js`);
      assert(missing.status === 404, `a missing file answered ${missing.status}`);
    });

    await check('the dashboard opens and connects to the event stream', async () => {
      await page.goto(`${gw.url}/`);
      await page.waitForSelector('#conn[data-state="connected"]', { timeout: 10000 });
      const text = await page.textContent('#conn-text');
      assert(text.trim() === 'Connected', `the connection says "${text}"`);
    });

    await check('a value created with curl appears', async () => {
      await run('curl', ['-sSf', '-X', 'PUT', `${gw.url}/v1/values/visits`,
        '-H', 'Content-Type: application/json', '-d', '{"type":"q"}']);
      await waitShown(page, 'value', 'visits', '0', 5000);
    });

    await check('an add from a C process shows within a second, without a reload', async () => {
      const before = reloads;
      await page.evaluate(() => {
        window.atriumTestMark = 'still here';
      });
      await run(ATRIUM, ['--store', store, 'add', 'visits', '5']);
      const t0 = Date.now();
      await waitShown(page, 'value', 'visits', '5', 1000);
      const ms = Date.now() - t0;
      assert(reloads === before, 'the page navigated');
      assert(await page.evaluate(() => window.atriumTestMark) === 'still here', 'the page reloaded');
      console.log(`#   shown ${ms} ms after the atrium tool exited`);
    });

    await check('the +1 button changes the value the API gives', async () => {
      await page.click(`${card('value', 'visits')} button[aria-label="Add 1 to visits"]`);
      await until(async () => (await gw.json('GET', '/v1/values/visits')).body.value === 6,
        3000, 'GET /v1/values/visits == 6');
      await waitShown(page, 'value', 'visits', '6', 2000);
    });

    await check('the set field sets the value', async () => {
      await page.fill(`${card('value', 'visits')} input[name="value"]`, '42');
      await page.click(`${card('value', 'visits')} button[type="submit"]`);
      await until(async () => (await gw.json('GET', '/v1/values/visits')).body.value === 42,
        3000, 'GET /v1/values/visits == 42');
      await waitShown(page, 'value', 'visits', '42', 2000);
    });

    await check('a queue created with the form appears and shows puts live', async () => {
      await page.check('#create-form input[name="kind"][value="queue"]');
      await page.fill('#create-name', 'jobs');
      await page.fill('#create-maxsize', '25');
      await page.click('#create-form button[type="submit"]');
      await page.waitForSelector(card('queue', 'jobs'), { timeout: 5000 });
      const q = await gw.json('GET', '/v1/queues/jobs');
      assert(q.status === 200 && q.body.maxsize === 25, `GET /v1/queues/jobs: ${JSON.stringify(q)}`);
      await waitShown(page, 'queue', 'jobs', '0 / 25', 2000);
      for (let i = 0; i < 3; i++) {
        const r = await gw.json('POST', '/v1/queues/jobs/items', { job: i });
        assert(r.status === 201, `put answered ${r.status}`);
      }
      await waitShown(page, 'queue', 'jobs', '3 / 25', 2000);
      const rate = await page.textContent(`${card('queue', 'jobs')} .rates b`);
      assert(Number(rate) > 0, `the put rate shows ${rate}`);
    });

    await check("a queue's leased and unfinished items and dead letters show", async () => {
      const put = async (path, body) => {
        const r = await gw.json('PUT', path, body);
        assert(r.status === 201, `PUT ${path} answered ${r.status}`);
      };
      await put('/v1/queues/dead', {});
      await put('/v1/queues/leased', { max_deliveries: 1, dead_letter: 'dead' });
      const b = await gw.json('POST', '/v1/queues/leased/batch', [1, 2, 3]);
      assert(b.status === 201, `batch answered ${b.status}`);
      const got = await gw.json('POST', '/v1/queues/leased/pop?lease=60&max=2');
      assert(got.status === 200 && got.body.items.length === 2, `pop: ${JSON.stringify(got)}`);
      const tasks = async (want) => page.waitForFunction(([sel, w]) => {
        const b = [...document.querySelectorAll(`${sel} .tasks b`)].map((n) => n.textContent);
        return b.join(' ') === w;
      }, [card('queue', 'leased'), want], { timeout: 3000, polling: 'raf' });
      await tasks('2 3 0');
      // A nack past max_deliveries: the item goes to "dead", done here.
      const n = await gw.json('POST', '/v1/queues/leased/nack', { receipts: [got.body.items[0].receipt] });
      assert(n.status === 200 && n.body.applied === 1, `nack: ${JSON.stringify(n)}`);
      await tasks('1 2 1');
      const a = await gw.json('POST', '/v1/queues/leased/ack', { receipts: [got.body.items[1].receipt] });
      assert(a.status === 200 && a.body.applied === 1, `ack: ${JSON.stringify(a)}`);
      await tasks('0 1 1');
    });

    await check('an array shows as a bar chart', async () => {
      const r = await gw.json('PUT', '/v1/arrays/load', { type: 'd', values: [1, 3, -2, 4.5, 2, 0.5] });
      assert(r.status === 201, `PUT array answered ${r.status}`);
      await page.waitForFunction((sel) => document.querySelectorAll(`${sel} rect.bar`).length === 6,
        card('array', 'load'), { timeout: 5000 });
    });

    await syncPanels(gw, page, () => reloads, errors, store);
    await check('a dict shows its keys live, pages past 100 keys, and edits one key', async () => {
      const items = {};
      for (let i = 0; i < 150; i++) items[`k${String(i).padStart(3, '0')}`] = i;
      const r = await gw.json('PUT', '/v1/dicts/cfg', { items });
      assert(r.status === 201, `PUT dict answered ${r.status}`);
      const sel = card('dict', 'cfg');
      const rows = () => page.evaluate((s) => document.querySelectorAll(`${s} tbody tr`).length, sel);
      const cell = (key) => page.evaluate(([s, k]) => {
        const tr = document.querySelector(`${s} tr[data-key="${k}"] td.val`);
        return tr ? tr.textContent : null;
      }, [sel, key]);
      await page.waitForSelector(sel, { timeout: 5000 });
      await until(async () => (await rows()) === 100, 5000, 'the first page of 100 keys');
      // Live: a change over the API shows in the table without a click.
      await gw.json('PUT', '/v1/dicts/cfg/keys/k001', { live: true });
      await until(async () => (await cell('k001')) === '{"live":true}', 3000, 'k001 live');
      await page.click(`${sel} .pager button:has-text("Next")`);
      await until(async () => (await rows()) === 50, 5000, 'the second page of 50 keys');
      assert(await cell('k149') === '149', 'k149 is not on the second page');
      await page.click(`${sel} .pager button:has-text("First")`);
      await until(async () => (await rows()) === 100, 5000, 'back to the first page');
      // The editor: a key's value and version, a compare-and-set.
      await page.click(`${sel} tr[data-key="k002"] button`);
      const ver = (await gw.json('GET', '/v1/dicts/cfg/keys/k002')).body.version;
      await until(async () => (await page.inputValue(`${sel} input[name="version"]`)) === String(ver),
        3000, 'the editor shows the version');
      await page.fill(`${sel} textarea[name="value"]`, '{"n":12345678901234567890}');
      await page.click(`${sel} form.editor button[type="submit"]`);
      await until(async () => {
        const g = await fetch(`${gw.url}/v1/dicts/cfg/keys/k002`);
        return (await g.text()).includes('"value":{"n":12345678901234567890}');
      }, 3000, 'the saved value, exact');
      // A stale version: refused, and said so. (The browser logs the 412
      // it was answered as a console error: that one is expected.)
      const logged = errors.length;
      await page.fill(`${sel} input[name="version"]`, String(ver));
      await page.click(`${sel} form.editor button[type="submit"]`);
      await until(async () => /412/.test(await page.textContent(`${sel} .msg`)), 3000,
        'the stale version is refused');
      const extra = errors.splice(logged);
      assert(extra.every((e) => /status of 412/.test(e)), extra.join('\n'));
    });

    // Something to look at: histories, rates, a longer array.
    await populate(gw, page);

    await check('at 390 px the page is one column with no horizontal scroll', async () => {
      const phone = await context.newPage();
      watch(phone, 'phone');
      await phone.setViewportSize({ width: 390, height: 844 });
      await phone.goto(`${gw.url}/`);
      await phone.waitForSelector('#conn[data-state="connected"]', { timeout: 10000 });
      await phone.waitForSelector(card('queue', 'jobs'), { timeout: 5000 });
      await populate(gw, phone, 40);
      const m = await phone.evaluate(() => {
        const doc = document.documentElement;
        const lefts = new Set([...document.querySelectorAll('#values article.card')]
          .map((c) => Math.round(c.getBoundingClientRect().left)));
        const wide = [...document.querySelectorAll('body *')]
          .filter((e) => e.getBoundingClientRect().right > doc.clientWidth + 0.5)
          .map((e) => e.tagName + (e.id ? `#${e.id}` : ''));
        return { scroll: doc.scrollWidth, client: doc.clientWidth, columns: lefts.size, wide };
      });
      await phone.screenshot({ path: join(ARTIFACTS, 'dashboard-phone.png'), fullPage: true });
      assert(m.scroll <= m.client, `scrollWidth ${m.scroll} > clientWidth ${m.client}: ${m.wide}`);
      assert(m.wide.length === 0, `wider than the screen: ${m.wide.join(' ')}`);
      assert(m.columns === 1, `values in ${m.columns} columns`);
      await phone.close();
    });

    await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true });

    await check('a store larger than a page is paged by name and filtered by prefix', () =>
      paging(gw, page));

    await check('the pages logged no console error', async () => {
      assert(errors.length === 0, errors.join('\n'));
    });

    await check('with --token-file the page asks for the token, then streams with a ticket',
      () => tokenFlow(context, profile));

    await check('after a gateway restart the page reconnects and re-reads', async () => {
      const port = gw.port;
      await gw.stop();
      await page.waitForSelector('#conn[data-state="reconnecting"]', { timeout: 10000 });
      // A change while no gateway runs: only a re-read can show it.
      await run(ATRIUM, ['--store', store, 'add', 'visits', '100']);
      await gw.start(port);
      await page.waitForSelector('#conn[data-state="connected"]', { timeout: 20000 });
      await waitShown(page, 'value', 'visits', '142', 5000);
      const thrown = errors.filter((e) => e.includes(' exception: '));
      assert(thrown.length === 0, thrown.join('\n'));
    });
  } catch (e) {
    await check('the test ran to its end', () => {
      throw e;
    });
  } finally {
    if (context) await context.close().catch(() => {});
    await check('atriumd stops on SIGTERM with status 0 and no sanitizer report', () => gw.stop());
    removeLeftovers();
  }
}

// A second gateway that wants a token: the page shows its form; with the
// token typed in, the page lists and streams (a single-use ticket from
// POST /v1/events/tickets); the token stays for a reload of the tab.
async function tokenFlow(context, profile) {
  const token = randomBytes(16).toString('hex');
  const tokenFile = join(profile, 'token');
  writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
  const store = newStore();
  const gw = new Gateway(store, ['--token-file', tokenFile]);
  const page = await context.newPage();
  const thrown = [];
  page.on('pageerror', (e) => thrown.push(e.message));
  try {
    await gw.start();
    const r = await fetch(`${gw.url}/v1/values/secret`, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: '{"type":"i","value":7}',
    });
    assert(r.status === 201, `PUT with the token answered ${r.status}`);
    await page.goto(`${gw.url}/`);
    await page.waitForSelector('#token-panel:not([hidden])', { timeout: 5000 });
    assert(await page.isHidden('#dash'), 'the objects show without a token');
    await page.fill('#token-input', 'wrong');
    await page.click('#token-form button[type="submit"]');
    await page.waitForFunction(() => /did not accept/.test(
      document.getElementById('token-error').textContent), null, { timeout: 5000 });
    await page.fill('#token-input', token);
    await page.click('#token-form button[type="submit"]');
    await page.waitForSelector('#conn[data-state="connected"]', { timeout: 10000 });
    await waitShown(page, 'value', 'secret', '7', 5000);
    await run(ATRIUM, ['--store', store, 'add', 'secret', '1']);
    await waitShown(page, 'value', 'secret', '8', 2000);
    await page.reload();
    await page.waitForSelector('#conn[data-state="connected"]', { timeout: 10000 });
    assert(await page.isHidden('#token-panel'), 'the token was asked again after a reload');
    assert(thrown.length === 0, thrown.join('\n'));
  } finally {
    await page.close();
    await gw.stop();
  }
}

// ------------------------------------------------------------- paging

// 450 values pg.000..pg.449: three pages of 200 under the prefix "pg.",
// Next and Previous walk them, a value made on the page shown appears
// live and one on another page does not; a bad prefix is refused. The
// values go again at the end (later checks look at the first page).
async function paging(gw, page) {
  const names = Array.from({ length: 450 }, (_, i) => `pg.${String(i).padStart(3, '0')}`);
  for (const n of names) {
    const r = await gw.json('PUT', `/v1/values/${n}`, { type: 'i', value: 1 });
    assert(r.status === 201, `PUT ${n}: ${r.status}`);
  }
  const shows = async (first, last, count) => {
    await waitText(page, '#values-count', String(count), 5000);
    assert(await page.isVisible(card('value', first)), `${first} is not shown`);
    assert(await page.isVisible(card('value', last)), `${last} is not shown`);
  };
  await page.fill('#filter', 'pg.');
  await shows('pg.000', 'pg.199', 200);
  assert(await page.isVisible('#pager'), 'no pager');
  assert(!(await page.isVisible(card('value', 'pg.200'))), 'pg.200 on page 1');
  await waitText(page, '#page-info', 'page 1 · 200 a page');
  assert(await page.isDisabled('#page-prev'), 'Previous is enabled on page 1');
  await page.click('#page-next');
  await shows('pg.200', 'pg.399', 200);
  assert(!(await page.isVisible(card('value', 'pg.000'))), 'pg.000 on page 2');
  // Made now: one in this page's range shows (and pushes pg.399 to the
  // next page), one of page 1 does not.
  await gw.json('PUT', '/v1/values/pg.2005', { type: 'i', value: 7 });
  await gw.json('PUT', '/v1/values/pg.0005', { type: 'i', value: 7 });
  await page.waitForSelector(card('value', 'pg.2005'), { timeout: 5000 });
  await page.waitForSelector(card('value', 'pg.399'), { state: 'detached', timeout: 5000 });
  await waitText(page, '#values-count', '200');
  assert(!(await page.isVisible(card('value', 'pg.0005'))), 'pg.0005 shows on page 2');
  await page.click('#page-next');
  // Page 3 starts after page 2's last name, pg.398.
  await waitText(page, '#page-info', 'page 3');
  await shows('pg.399', 'pg.449', 51);
  assert(await page.isDisabled('#page-next'), 'Next is enabled on the last page');
  await page.click('#page-prev');
  await waitText(page, '#page-info', 'page 2 · 200 a page');
  await page.click('#page-prev');
  await shows('pg.000', 'pg.0005', 200);
  await page.fill('#filter', 'pg/');
  await waitText(page, '#filter-msg', 'Names hold only A-Z a-z 0-9 _ . - (at most 64).');
  await page.fill('#filter', 'zzz');
  await waitText(page, '#values-empty', 'None matches the filter.', 5000);
  await waitText(page, '#values-count', '0');
  for (const n of [...names, 'pg.2005', 'pg.0005']) {
    const r = await gw.json('DELETE', `/v1/values/${n}`);
    assert(r.status === 204, `DELETE ${n}: ${r.status}`);
  }
  await page.fill('#filter', '');
  await page.waitForSelector(card('queue', 'jobs'), { timeout: 5000 });
  assert(!(await page.isVisible('#pager')), 'a pager for one page');
}

// ------------------------------------------------- synchronisation kinds

const field = (kind, name, f) => `${card(kind, name)} [data-field="${f}"]`;

async function textOf(page, sel) {
  return page.evaluate((s) => {
    const node = document.querySelector(s);
    return node ? node.textContent : null;
  }, sel);
}

// Waits until the text of sel is want (a string), or matches it (a RegExp).
async function waitText(page, sel, want, ms = 3000) {
  const re = want instanceof RegExp ? [want.source, want.flags] : null;
  try {
    await page.waitForFunction(([s, w, r]) => {
      const node = document.querySelector(s);
      if (!node) return false;
      return r ? new RegExp(r[0], r[1]).test(node.textContent) : node.textContent === w;
    }, [sel, re ? null : want, re], { timeout: ms, polling: 'raf' });
  } catch {
    throw new Error(`${sel}: "${await textOf(page, sel)}", not ${re ? want : `"${want}"`}, after ${ms} ms`);
  }
}

// The seconds a lock's time left shows ("in 29 s · 10:04:31", "in 1 min 05 s · …").
function seconds(text) {
  const m = /^in (?:(\d+) min )?(\d+) s · \S/.exec(text || '');
  return m ? Number(m[1] || 0) * 60 + Number(m[2]) : NaN;
}

const digits = (text) => (text || '').replace(/\D/g, '');

// Creates an object with the dashboard's form: kind's radio, then fields
// (selector -> value; true/false for a checkbox), then Create.
async function createWithForm(page, kind, name, fields = {}) {
  await page.check(`#create-form input[name="kind"][value="${kind}"]`);
  await page.fill('#create-name', name);
  for (const [sel, value] of Object.entries(fields)) {
    if (typeof value === 'boolean') await page.setChecked(sel, value);
    else await page.fill(sel, value);
  }
  await page.click('#create-form button[type="submit"]');
}

// The dashboard's panels of locks, semaphores, flags, barriers and
// conditions, against the gateway's routes: each made with the form,
// then changed over HTTP and from the cards, the cards following live
// (no reload) from the event stream.
async function syncPanels(gw, page, reloads, errors, store) {
  const before = reloads();
  await page.evaluate(() => {
    window.atriumSyncMark = 'still here';
  });

  await check('each synchronisation kind is made with the form and shows its state', async () => {
    await createWithForm(page, 'lock', 'door', { '#create-reentrant': false });
    await waitShown(page, 'lock', 'door', 'free', 5000);
    await createWithForm(page, 'lock', 'stair', { '#create-reentrant': true });
    await waitShown(page, 'lock', 'stair', 'free', 5000);
    await createWithForm(page, 'semaphore', 'slots', { '#create-permits': '2', '#create-bound': '3' });
    await waitShown(page, 'semaphore', 'slots', '2 / 3 free', 5000);
    await createWithForm(page, 'flag', 'go', { '#create-set': false });
    await waitShown(page, 'flag', 'go', 'clear', 5000);
    await createWithForm(page, 'condition', 'door.cv', { '#create-lock': 'door' });
    await waitShown(page, 'condition', 'door.cv', '0 waiting', 5000);
    await waitText(page, field('condition', 'door.cv', 'lock'), 'door · free');
    await createWithForm(page, 'barrier', 'meet', { '#create-parties': '3' });
    await waitShown(page, 'barrier', 'meet', '0 / 3 arrived', 5000);

    const want = {
      '/v1/locks/door': { kind: 'lock', reentrant: false, held: false, waiters: 0 },
      '/v1/locks/stair': { kind: 'lock', reentrant: true, held: false },
      '/v1/semaphores/slots': { kind: 'semaphore', value: 2, bound: 3, waiters: 0 },
      '/v1/flags/go': { kind: 'flag', set: false, waiters: 0 },
      '/v1/barriers/meet': { kind: 'barrier', parties: 3, n_waiting: 0, broken: false },
      '/v1/conditions/door.cv': { kind: 'condition', lock: 'door', waiters: 0 },
    };
    for (const [path, members] of Object.entries(want)) {
      const r = await gw.json('GET', path);
      assert(r.status === 200, `GET ${path} answered ${r.status}`);
      for (const [k, v] of Object.entries(members)) {
        assert(r.body[k] === v, `GET ${path}: ${k} is ${JSON.stringify(r.body[k])}, not ${v}`);
      }
    }
    assert(await textOf(page, `${card('lock', 'stair')} .badge`) === 'reentrant',
      'the reentrant lock has no "reentrant" badge');
  });

  await check('bad input in the form is refused and makes nothing', async () => {
    await createWithForm(page, 'barrier', 'nobody', { '#create-parties': '0' });
    await waitText(page, '#create-msg', /parties is a whole number, 1 to 1024/);
    await createWithForm(page, 'semaphore', 'over', { '#create-permits': '4', '#create-bound': '3' });
    await waitText(page, '#create-msg', 'the value is at most the bound');
    // The gateway's refusal (no such lock) is said as it gives it.
    await createWithForm(page, 'condition', 'lost.cv', { '#create-lock': 'no-such-lock' });
    await waitText(page, '#create-msg', /\(404 /);
    // The browser logs the refused request: that one error is expected.
    await until(() => errors.some((e) => /status of 404/.test(e)), 2000, 'the 404 logged');
    const logged = errors.filter((e) => /status of 404/.test(e));
    assert(logged.length === 1, `the browser logged ${logged.length} 404s: ${errors.join('; ')}`);
    errors.splice(errors.indexOf(logged[0]), 1);
    for (const path of ['/v1/barriers/nobody', '/v1/semaphores/over', '/v1/conditions/lost.cv']) {
      const r = await gw.json('GET', path);
      assert(r.status === 404, `GET ${path} answered ${r.status}: something was made`);
    }
    assert(await page.$(card('condition', 'lost.cv')) === null, 'a card for lost.cv');
  });

  let lease;
  await check('a lock leased over HTTP shows as held, with its fence and its time running out', async () => {
    const r = await gw.json('POST', '/v1/locks/door/acquire?ttl=30');
    assert(r.status === 200 && r.body.token, `acquire answered ${r.status} ${JSON.stringify(r.body)}`);
    lease = r.body;
    const t0 = Date.now();
    await waitShown(page, 'lock', 'door', 'held', 2000);
    console.log(`#   shown held ${Date.now() - t0} ms after the acquire answered`);
    await waitText(page, field('lock', 'door', 'holder'), 'an HTTP lease');
    await waitText(page, field('lock', 'door', 'fence'), /\d/);
    const fence = digits(await textOf(page, field('lock', 'door', 'fence')));
    assert(fence === String(lease.fence), `the card shows fence ${fence}, the grant ${lease.fence}`);
    const left = seconds(await textOf(page, field('lock', 'door', 'left')));
    assert(left > 25 && left <= 30, `time left shows ${left} s of a 30 s lease`);
    // It runs down by itself, without an event.
    await sleep(2100);
    const later = seconds(await textOf(page, field('lock', 'door', 'left')));
    assert(later < left && later >= left - 4, `time left went from ${left} to ${later} s in 2.1 s`);
    await waitText(page, field('condition', 'door.cv', 'lock'), 'door · held');
    assert(!(await page.isDisabled(`${card('lock', 'door')} button[data-action="break"]`)),
      'the break button is off on a held lock');
  });

  await check('breaking the lock from the dashboard frees it and spends its token and fence', async () => {
    const sel = `${card('lock', 'door')} button[data-action="break"]`;
    const held = (await gw.json('GET', '/v1/locks/door')).body;
    await page.click(sel); // arms it: a break takes a second click
    await waitText(page, sel, 'Confirm break');
    assert((await gw.json('GET', '/v1/locks/door')).body.held === true, 'one click broke the lock');
    await page.focus(sel);
    await page.keyboard.press('Enter'); // by keyboard
    const after = await until(async () => {
      const r = await gw.json('GET', '/v1/locks/door');
      return r.body.held === false && r.body;
    }, 3000, 'GET /v1/locks/door held false');
    assert(after.version > held.version, `the version went from ${held.version} to ${after.version}`);
    await waitShown(page, 'lock', 'door', 'free', 2000);
    await waitText(page, field('lock', 'door', 'holder'), 'nobody');
    assert(await page.isHidden(field('lock', 'door', 'left')), 'a free lock shows a time left');
    assert(await page.isDisabled(sel), 'Break is on for a free lock');
    await waitText(page, `${card('lock', 'door')} .msg`, /^Broken/);
    await waitText(page, field('condition', 'door.cv', 'lock'), 'door · free');
    // The broken lease's token and fence are spent.
    const spent = await gw.json('POST', '/v1/locks/door/release', { token: lease.token });
    assert(spent.status === 409 && spent.body.error.code === 'not_held',
      `release with the broken lease's token answered ${spent.status} ${JSON.stringify(spent.body)}`);
    const write = await fetch(`${gw.url}/v1/values/visits`, {
      method: 'PUT',
      headers: { 'Content-Type': 'application/json', 'Atrium-Fence': `door=${lease.fence}` },
      body: '{"type":"q","value":-1}',
    });
    assert(write.status === 412, `a write fenced by the broken lease answered ${write.status}`);
    assert((await gw.json('GET', '/v1/values/visits')).body.value === 42, 'the fenced write changed visits');
    // The next holder's fence is above it, and the card shows that one.
    const next = await gw.json('POST', '/v1/locks/door/acquire?ttl=5');
    assert(next.status === 200 && next.body.fence > lease.fence,
      `the next acquisition's fence is ${next.body.fence}, the broken one's ${lease.fence}`);
    await waitText(page, field('lock', 'door', 'fence'), (await page.evaluate(
      (n) => new Intl.NumberFormat().format(n), next.body.fence)));
    await waitShown(page, 'lock', 'door', 'held', 2000);
    const released = await gw.json('POST', '/v1/locks/door/release', { token: next.body.token });
    assert(released.status === 200 && released.body.held === false,
      `release answered ${released.status} ${JSON.stringify(released.body)}`);
    await waitShown(page, 'lock', 'door', 'free', 2000);
  });

  await check('a lock held by a C process shows so; killed, it passes to a C waiter, abandoned', async () => {
    const tools = [];
    const tool = (args) => {
      const proc = spawn(SYNC_TOOL, args, { stdio: ['pipe', 'pipe', 'inherit'] });
      running.add(proc);
      proc.once('exit', () => running.delete(proc));
      proc.out = '';
      proc.stdout.setEncoding('utf8');
      proc.stdout.on('data', (chunk) => {
        proc.out += chunk;
      });
      tools.push(proc);
      return proc;
    };
    try {
      const holder = tool(['hold', store, 'door']);
      const held = await until(() => /^held (\d+) 0$/m.exec(holder.out), 5000, 'sync_tool holds door');
      await waitShown(page, 'lock', 'door', 'held', 2000);
      await waitText(page, field('lock', 'door', 'holder'), 'a local process');
      assert(await page.isHidden(field('lock', 'door', 'left')), 'a process hold shows a time left');
      assert(digits(await textOf(page, field('lock', 'door', 'fence'))) === held[1],
        `the card's fence is not the C process's ${held[1]}`);
      // A waiter comes: no event says so, the card reads a held lock again.
      const waiter = tool(['acquire', store, 'door', '20']);
      await waitText(page, field('lock', 'door', 'waiters'), '1', 4000);
      holder.kill('SIGKILL');
      const got = await until(() => /^acquired (\d+) /m.exec(waiter.out), 5000, 'the waiter acquires');
      assert(Number(got[1]) > Number(held[1]), `the waiter's fence ${got[1]} is not above ${held[1]}`);
      await waitText(page, `${card('lock', 'door')} .msg`, /holder died/);
      await waitShown(page, 'lock', 'door', 'free', 2000); // the waiter released it
      await waitText(page, field('lock', 'door', 'waiters'), '0', 4000);
    } finally {
      for (const proc of tools) proc.kill('SIGKILL');
    }
  });

  await check("a condition's waiters show as an HTTP client waits, and a notify wakes it", async () => {
    const acquire = async () => {
      const r = await gw.json('POST', '/v1/locks/door/acquire?ttl=30');
      assert(r.status === 200, `acquire answered ${r.status} ${JSON.stringify(r.body)}`);
      return r.body.token;
    };
    const first = await acquire();
    await waitText(page, field('condition', 'door.cv', 'lock'), 'door · held');
    const waiter = gw.json('POST', '/v1/conditions/door.cv/wait?timeout=20', { token: first });
    // The wait gives the lock back and parks; the card reads it again.
    await waitShown(page, 'condition', 'door.cv', '1 waiting', 4000);
    await waitText(page, field('condition', 'door.cv', 'lock'), 'door · free');
    const second = await acquire();
    const n = await gw.json('POST', '/v1/conditions/door.cv/notify', { token: second, n: 1 });
    assert(n.status === 200 && n.body.woken === 1, `notify answered ${n.status} ${JSON.stringify(n.body)}`);
    // The notify event may still count the woken waiter (it leaves the line
    // a moment later, without an event): the card's next read shows it.
    await waitShown(page, 'condition', 'door.cv', '0 waiting', 4000);
    assert((await gw.json('POST', '/v1/locks/door/release', { token: second })).status === 200,
      'release of the notifier');
    const w = await waiter; // it takes the lock again
    assert(w.status === 200 && w.body.notified === true && w.body.token,
      `the waiter got ${w.status} ${JSON.stringify(w.body)}`);
    await waitText(page, field('condition', 'door.cv', 'lock'), 'door · held');
    assert((await gw.json('POST', '/v1/locks/door/release', { token: w.body.token })).status === 200,
      'release of the woken waiter');
    await waitText(page, field('condition', 'door.cv', 'lock'), 'door · free');
  });

  await check('a lease that runs out frees the lock on its card, on time, and says so', async () => {
    const r = await gw.json('POST', '/v1/locks/door/acquire?ttl=1.5');
    assert(r.status === 200, `acquire answered ${r.status} ${JSON.stringify(r.body)}`);
    const t0 = Date.now();
    await waitShown(page, 'lock', 'door', 'held', 2000);
    await waitShown(page, 'lock', 'door', 'free', 4000);
    const ms = Date.now() - t0;
    await waitText(page, `${card('lock', 'door')} .msg`, /lease ran out/);
    assert(ms >= 1400 && ms <= 3000, `the card showed the lock free ${ms} ms after a 1.5 s lease began`);
    console.log(`#   shown free ${ms} ms after a 1.5 s lease was granted`);
  });

  await check('a flag is set and cleared from the dashboard, and follows HTTP', async () => {
    const set = `${card('flag', 'go')} button[data-action="set"]`;
    const clear = `${card('flag', 'go')} button[data-action="clear"]`;
    assert(await page.isDisabled(clear), 'Clear is on while the flag is clear');
    // A waiter parked over HTTP is answered when the dashboard sets it.
    const waiter = gw.json('POST', '/v1/flags/go/wait?timeout=20');
    await page.focus(set);
    await page.keyboard.press('Space');
    await waitShown(page, 'flag', 'go', 'set', 3000);
    const w = await waiter;
    assert(w.status === 200 && w.body.set === true, `the waiter got ${w.status} ${JSON.stringify(w.body)}`);
    assert((await gw.json('GET', '/v1/flags/go')).body.set === true, 'GET says clear after Set');
    const r = await gw.json('POST', '/v1/flags/go/clear');
    assert(r.status === 200, `clear answered ${r.status}`);
    await waitShown(page, 'flag', 'go', 'clear', 2000);
    assert((await gw.json('POST', '/v1/flags/go/set')).status === 200, 'set over HTTP');
    await waitShown(page, 'flag', 'go', 'set', 2000);
    await page.click(clear);
    await waitShown(page, 'flag', 'go', 'clear', 3000);
    assert((await gw.json('GET', '/v1/flags/go')).body.set === false, 'GET says set after Clear');
  });

  await check("a barrier's arrivals show as HTTP waiters park; Abort sends them away, Reset mends it", async () => {
    const first = gw.json('POST', '/v1/barriers/meet/wait?timeout=30');
    await waitShown(page, 'barrier', 'meet', '1 / 3 arrived', 3000);
    const second = gw.json('POST', '/v1/barriers/meet/wait?timeout=30');
    await waitShown(page, 'barrier', 'meet', '2 / 3 arrived', 3000);
    assert((await gw.json('GET', '/v1/barriers/meet')).body.n_waiting === 2, 'GET n_waiting is not 2');
    await page.click(`${card('barrier', 'meet')} button[data-action="abort"]`);
    for (const [n, p] of [['first', first], ['second', second]]) {
      const r = await p;
      assert(r.status === 409 && r.body.error.code === 'broken',
        `the ${n} waiter got ${r.status} ${JSON.stringify(r.body)}`);
    }
    await waitText(page, field('barrier', 'meet', 'state'), 'broken');
    await waitText(page, `${card('barrier', 'meet')} .badge`, 'broken');
    const broken = (await gw.json('GET', '/v1/barriers/meet')).body;
    assert(broken.broken === true, 'GET says whole after Abort');
    await page.click(`${card('barrier', 'meet')} button[data-action="reset"]`);
    await waitText(page, field('barrier', 'meet', 'state'), 'whole');
    const mended = (await gw.json('GET', '/v1/barriers/meet')).body;
    assert(mended.broken === false && mended.generation > broken.generation,
      `after Reset: ${JSON.stringify(mended)} (before: generation ${broken.generation})`);
    await waitText(page, field('barrier', 'meet', 'generation'), String(mended.generation));
    await waitShown(page, 'barrier', 'meet', '0 / 3 arrived', 2000);
  });

  await check("a semaphore's value follows acquires and releases over HTTP", async () => {
    const r = await gw.json('POST', '/v1/semaphores/slots/acquire');
    assert(r.status === 200 && r.body.value === 1, `acquire answered ${r.status} ${JSON.stringify(r.body)}`);
    await waitShown(page, 'semaphore', 'slots', '1 / 3 free', 2000);
    assert((await gw.json('POST', '/v1/semaphores/slots/release')).status === 200, 'release');
    await waitShown(page, 'semaphore', 'slots', '2 / 3 free', 2000);
  });

  await check('the synchronisation panels changed live, without a reload', async () => {
    assert(reloads() === before, 'the page navigated');
    assert(await page.evaluate(() => window.atriumSyncMark) === 'still here', 'the page reloaded');
    const counts = await page.evaluate(() => ['locks', 'semaphores', 'flags', 'barriers', 'conditions']
      .map((k) => document.getElementById(`${k}-count`).textContent).join(' '));
    assert(counts === '2 1 1 1 1', `the sections count ${counts}`);
  });

  await check('the name filter applies to the synchronisation cards as to the others', async () => {
    await page.fill('#filter', 'door');
    await waitText(page, '#locks-count', '1');
    assert(await page.isVisible(card('lock', 'door')), 'the lock door is filtered out');
    assert(!(await page.isVisible(card('lock', 'stair'))), 'the lock stair shows');
    assert(await page.isVisible(card('condition', 'door.cv')), 'the condition door.cv is filtered out');
    await waitText(page, '#flags-empty', 'None matches the filter.');
    await page.fill('#filter', '');
    await waitText(page, '#locks-count', '2');
    assert(await page.isVisible(card('lock', 'stair')), 'the lock stair stays hidden');
  });
}

// Changes over a second or two, so that sparklines and rates have a shape.
async function populate(gw, page, rounds = 60) {
  const put = (path, body) => gw.json('PUT', path, body);
  const post = (path, body) => gw.json('POST', path, body);
  await put('/v1/values/requests.total', { type: 'Q' });
  await put('/v1/values/temperature', { type: 'd', value: 21.5 });
  await put('/v1/values/maintenance', { type: '?', value: false });
  await put('/v1/arrays/latency.ms', { type: 'i', length: 48 });
  await put('/v1/queues/mail', { maxsize: 0 });
  for (let i = 0; i < rounds; i++) {
    await post('/v1/values/requests.total/add', { delta: 40 + ((i * 37) % 90) });
    await put('/v1/values/temperature', { type: 'd', value: Math.round((21.5 + 2 * Math.sin(i / 6)) * 10) / 10 });
    await post('/v1/queues/jobs/items', { job: i });
    if (i % 3 === 0) await post('/v1/queues/jobs/pop?max=2');
    if (i % 2 === 0) await post('/v1/queues/mail/items', { to: `user${i}` });
    if (i % 4 === 0) {
      await gw.json('PATCH', '/v1/arrays/latency.ms', {
        start: 0,
        values: Array.from({ length: 48 }, (_, k) =>
          Math.round(20 + 60 * Math.exp(-(((k - 14 - (i % 8)) / 7) ** 2)) + ((k * 13 + i) % 9))),
      });
    }
    await sleep(25);
  }
  await page.waitForTimeout(300);
}

function finish() {
  const passed = results.filter(Boolean).length;
  const failed = results.length - passed;
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

// Whatever escapes main still counts, and still ends with the summary.
process.on('uncaughtException', (e) => {
  console.log(`not ok - uncaught: ${e && e.stack ? e.stack : e}`);
  results.push(false);
});
setTimeout(() => {
  console.log('not ok - the test did not end within 240 s');
  results.push(false);
  finish();
}, 240000).unref();
await main();
finish();
