// The dashboard in a real browser, against a real atriumd on a fresh
// store. Run by test_dashboard.sh (which sets BUILD, CHROMIUM, ARTIFACTS).
//
// It checks, in order: the page and its files are served with their
// content types and a Content-Security-Policy; the page connects to the
// event stream; a value made with curl appears; an add from a separate C
// process (the atrium tool) shows within a second, without a reload; the
// +1 button changes the value the API gives; a queue made with the form
// appears and shows puts as they happen; an array shows as bars; at 390 px
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

    await check('an array shows as a bar chart', async () => {
      const r = await gw.json('PUT', '/v1/arrays/load', { type: 'd', values: [1, 3, -2, 4.5, 2, 0.5] });
      assert(r.status === 201, `PUT array answered ${r.status}`);
      await page.waitForFunction((sel) => document.querySelectorAll(`${sel} rect.bar`).length === 6,
        card('array', 'load'), { timeout: 5000 });
    });

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
