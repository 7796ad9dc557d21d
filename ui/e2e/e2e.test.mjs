// End to end: the real web UI in Debian's Chromium (playwright-core), against a real
// `tandem run` on temporary folders. Screenshots of every page go to artifacts/e2e/.
// Needs the debug binary with the UI built in (`npm run build`, then `cargo build`);
// scripts/test.sh runs this after the Rust tests.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const repo = path.resolve(import.meta.dirname, '..', '..');
const bin = process.env.TANDEM_BIN ?? path.join(process.env.CARGO_TARGET_DIR ?? path.join(repo, 'target'), 'debug', 'tandem');
const artifacts = path.join(repo, 'artifacts', 'e2e');
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-e2e-'));
const left = path.join(dir, 'left');
const right = path.join(dir, 'right');
const configFile = path.join(dir, 'tandem.toml');
const CONFIG = `# E2E settings: this comment must survive saving from the form
state = "state.db"
listen = "127.0.0.1:0"

[conflicts]
r1 = "manual" # ask me first

[bandwidth]
left_to_right = "16 MB"

[[pair]]
name = "docs"
left = "left"
right = "right"
`;

const S3_SECRET = 'e2e-planted-s3-secret-0123';
let svc;
let url;
let loginLink;
let browser;
let page;

const token = () => fs.readFileSync(path.join(dir, 'state.db.api-token'), 'utf8').trim();
async function api(p, method = 'GET', body) {
  const res = await fetch(url + p, {
    method,
    headers: { Authorization: `Bearer ${token()}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  assert.ok(res.ok, `${method} ${p}: HTTP ${res.status} ${await res.clone().text()}`);
  return res.status === 204 || res.status === 202 ? null : res.json();
}
async function until(what, f, ms = 15000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
const read = (p) => (fs.existsSync(p) ? fs.readFileSync(p, 'utf8') : null);
const shot = (name) => page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });
function filesUnder(d) {
  if (!fs.existsSync(d)) return [];
  return fs.readdirSync(d, { recursive: true }).map((f) => path.join(d, String(f))).filter((f) => fs.statSync(f).isFile());
}

before(async () => {
  fs.mkdirSync(artifacts, { recursive: true });
  fs.mkdirSync(left);
  fs.mkdirSync(right);
  fs.writeFileSync(configFile, CONFIG);
  fs.writeFileSync(path.join(left, 'readme.txt'), 'hello\n');
  svc = spawn(bin, ['run', '--config', configFile], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TANDEM_E2E_S3_SECRET: S3_SECRET } });
  let out = '';
  svc.stdout.on('data', (d) => (out += d));
  svc.stderr.on('data', (d) => fs.appendFileSync(path.join(artifacts, 'service.log'), d));
  loginLink = await until('the web UI link on stdout', () => out.match(/web UI (http:\/\/\S+\/login\?code=\w+)/)?.[1], 30000).catch((e) => {
    throw new Error(`${e.message}; stdout: ${out}`);
  });
  url = new URL(loginLink).origin;
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
  page = await browser.newPage({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
  page.on('pageerror', (e) => fs.appendFileSync(path.join(artifacts, 'page-errors.log'), `${e.message}\n`));
});

after(async () => {
  await browser?.close();
  if (svc && svc.exitCode === null) {
    svc.kill('SIGTERM');
    await new Promise((r) => svc.once('exit', r));
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

test('the one-time link signs in, works once, and a pasted token signs in too', async () => {
  await page.goto(loginLink);
  await page.locator('section.pair[data-pair="docs"]').waitFor();
  assert.equal(await page.locator('section.pair[data-pair="docs"] h2').textContent(), 'docs');
  await until('readme.txt on the right', () => read(path.join(right, 'readme.txt')) === 'hello\n');
  await page.locator('section.pair .badge[data-state="idle"]').waitFor();
  await shot('dashboard-1280x800');
  await page.setViewportSize({ width: 400, height: 800 });
  await shot('dashboard-narrow-400');
  // Nothing may stick out sideways in a narrow window.
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the narrow page scrolls sideways by ${overflow}px`);
  await page.setViewportSize({ width: 1280, height: 800 });

  const other = await browser.newPage();
  // Regression (issue 19): a reused link showed raw JSON; it is the sign-in page saying why.
  await other.goto(loginLink);
  await other.locator('form.signin .error', { hasText: 'used already or has expired' }).waitFor();
  assert.equal(new URL(other.url()).search, '', 'the page forgets the ?login=expired it came with');
  await other.fill('#token', 'not-the-token');
  await other.click('form.signin button[type=submit]');
  await other.locator('form.signin .error', { hasText: 'not right' }).waitFor();
  await other.fill('#token', token());
  await other.click('form.signin button[type=submit]');
  await other.locator('section.pair[data-pair="docs"]').waitFor();
  await other.close();
});

test('pause and resume a pair and everything from the dashboard', async () => {
  await page.goto(url + '/#/');
  const card = page.locator('section.pair[data-pair="docs"]');
  await card.locator('button[data-action="pause"]').click();
  await card.locator('.badge[data-state="paused"]').waitFor();
  assert.equal((await api('/api/status')).pairs[0].paused, true);
  await shot('dashboard-paused');
  await card.locator('button[data-action="resume"]').click();
  await card.locator('button[data-action="pause"]').waitFor();
  assert.equal((await api('/api/status')).pairs[0].paused, false);

  await page.click('#pause-all');
  await page.locator('#resume-all').waitFor();
  assert.equal((await api('/api/status')).paused_all, true);
  await page.click('#resume-all');
  await page.locator('#pause-all').waitFor();
  assert.equal((await api('/api/status')).paused_all, false);

  // Regression (issue 19, bug 3): with every pair paused one by one, the header offered
  // "Pause all"; it offers the way back.
  await card.locator('button[data-action="pause"]').click();
  await page.locator('#resume-all').waitFor();
  await page.click('#resume-all');
  await card.locator('button[data-action="pause"]').waitFor();
  assert.equal((await api('/api/status')).pairs[0].paused, false);

  // Regression (issue 19, bug 4): the focus dropped to the page body at every refresh
  // (every 5 s, and at every event), because the cards were built again.
  await card.locator('button[data-action="sync"]').focus();
  fs.writeFileSync(path.join(left, 'focus-test.txt'), 'an event and a run while a button has the focus');
  await until('focus-test.txt on the right', () => read(path.join(right, 'focus-test.txt')) !== null);
  await new Promise((r) => setTimeout(r, 6000));
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('data-action')), 'sync', 'the focus stays on the button');
});

const EVIL = '<img src=x onerror=window.__xss=1>.txt';

test('a conflict appears live and is resolved from the side-by-side screen', async () => {
  fs.writeFileSync(path.join(left, 'notes.txt'), 'one\ntwo\nthree\n');
  fs.writeFileSync(path.join(left, EVIL), 'v1');
  await until('both files synced', () => read(path.join(right, 'notes.txt')) === 'one\ntwo\nthree\n' && read(path.join(right, EVIL)) === 'v1');

  await page.goto(url + '/#/conflicts');
  await page.locator('section.card.empty').waitFor();
  // Both sides change while the pair is paused: R1, set to "manual", waits for the user.
  await api('/api/pairs/docs/pause', 'POST');
  fs.writeFileSync(path.join(left, 'notes.txt'), 'one\ntwo from the LEFT\nthree\n');
  fs.writeFileSync(path.join(left, EVIL), 'left side');
  await new Promise((r) => setTimeout(r, 50));
  fs.writeFileSync(path.join(right, 'notes.txt'), 'one\ntwo from the RIGHT\nthree\nfour\n');
  fs.writeFileSync(path.join(right, EVIL), 'right side!');
  await api('/api/pairs/docs/resume', 'POST');

  // The list fills in without a reload.
  const row = page.locator('tr[data-path="notes.txt"]');
  await row.waitFor({ timeout: 15000 });
  const evilRow = page.locator('tr[data-pair="docs"]').filter({ hasText: 'onerror' });
  await evilRow.waitFor();
  assert.equal(await evilRow.locator('td.path a').textContent(), EVIL, 'the file name shows as text');
  assert.equal(await page.evaluate(() => window.__xss), undefined, 'a file name never runs as HTML');
  assert.equal(await page.locator('img').count(), 0);
  await shot('conflicts-list');

  // Issue 19 (Conflicts): rules in plain words, a sort and filters.
  assert.equal(await row.locator('td').nth(3).textContent(), 'Changed on both sides, and the contents differ');
  await page.selectOption('#c-sort', 'path');
  assert.deepEqual(await page.locator('table.conflicts tbody tr').evaluateAll((rs) => rs.map((r) => r.dataset.path)), [EVIL, 'notes.txt'].sort());
  await page.selectOption('#c-sort', 'oldest');
  await page.selectOption('#c-rule', 'R1');
  assert.equal(await page.locator('table.conflicts tbody tr').count(), 2);
  await page.selectOption('#c-rule', '');
  // Regression (issue 19, bug 8): the bulk buttons were enabled with nothing selected.
  for (const keep of ['suggested', 'left', 'right', 'both']) {
    assert.equal(await page.locator(`button[data-bulk="${keep}"]`).isDisabled(), true, `${keep} is disabled with nothing selected`);
  }

  await row.locator('a').click();
  await page.locator('table.diff').waitFor();
  // Regression (issue 19, bug 8): "newer" beside two equal-looking times. The times show as
  // many fractional digits as it takes to tell them apart (the edits were 50 ms apart).
  const [lt, rt] = [await page.locator('.side[data-side="left"] dd[data-mtime]').textContent(), await page.locator('.side[data-side="right"] dd[data-mtime]').textContent()];
  assert.notEqual(lt, rt, "the newer side's time differs from the other one");
  assert.match(await page.locator('.side[data-side="left"]').textContent(), /\(28 bytes\)/);
  assert.match(await page.locator('.side[data-side="right"]').textContent(), /newer/);
  assert.match(await page.locator('table.diff tr.change').first().textContent(), /two from the LEFT.*two from the RIGHT/);
  await shot('conflict-side-by-side');
  // Keyboard only: Tab to "Keep left", Enter.
  await page.locator('main').focus();
  for (let i = 0; i < 40; i++) {
    await page.keyboard.press('Tab');
    if (await page.evaluate(() => document.activeElement?.getAttribute('data-keep') === 'left')) break;
  }
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('data-keep')), 'left', 'Keep left is reachable with Tab');
  await page.keyboard.press('Enter');
  await until('the left version on both sides', () => read(path.join(right, 'notes.txt')) === 'one\ntwo from the LEFT\nthree\n');
  assert.equal(read(path.join(left, 'notes.txt')), 'one\ntwo from the LEFT\nthree\n');
  const trashed = filesUnder(path.join(right, '.sync_trash')).map(read);
  assert.ok(trashed.includes('one\ntwo from the RIGHT\nthree\nfour\n'), 'the replaced right version is in the right trash');
  // The next open conflict follows; from the list, keep both for the selected one.
  await page.waitForURL((u) => u.hash.startsWith('#/conflict?') && decodeURIComponent(u.hash).includes('onerror'));
  await page.locator('h1.path', { hasText: EVIL }).waitFor();
  await page.goto(url + '/#/conflicts');
  await evilRow.locator('input[type=checkbox]').check();
  await page.click('button[data-bulk="both"]');
  await page.locator('section.card.empty').waitFor();
  const names = (d) => fs.readdirSync(d).filter((n) => n.includes('onerror')).sort();
  await until('both versions on both sides', () => names(left).length === 2 && names(right).length === 2);
  assert.deepEqual(names(left), names(right));
  assert.deepEqual(names(left).map((n) => read(path.join(left, n))).sort(), ['left side', 'right side!']);
  assert.equal((await api('/api/conflicts')).length, 0);
});

test('settings are checked as you type, and saved into the TOML with its comments', async () => {
  await page.goto(url + '/#/settings');
  const conc = page.locator('#k-concurrency');
  await conc.waitFor();

  // Regression (issue 19, bug 6): placeholders showed raw units ("21600s", "67108864").
  assert.equal(await page.locator('#k-reconcile_every').getAttribute('placeholder'), '6h');
  assert.equal(await page.locator('#k-large_file').getAttribute('placeholder'), '64 MB');
  // Regression (issue 19, bug 6): a new pair's errors showed in the save bar, and a
  // missing folder passed without a word. Both show beside their fields.
  await page.locator('details.card summary', { hasText: 'Add a pair' }).click();
  await page.fill('#new-pair-name', 'bad/name');
  await page.fill('#new-pair-left', path.join(dir, 'not-there'));
  await page.fill('#new-pair-right', right + '-other');
  await page.locator('#new-pair-name-err', { hasText: 'name' }).waitFor();
  await page.fill('#new-pair-name', 'second');
  await page.locator('#new-pair-left-err.warning', { hasText: 'does not exist' }).waitFor();
  assert.equal(await page.locator('#save').isDisabled(), false, 'a warning does not block saving');
  // A wrong time of day says what was expected, once.
  const sched0 = page.locator('fieldset[data-key="schedule"]');
  await sched0.locator('button', { hasText: 'Add schedule' }).click();
  await sched0.locator('select[aria-label="Schedules 1: Kind"]').selectOption('daily');
  await sched0.locator('input[aria-label="Schedules 1: When"]').fill('25:99');
  await sched0.locator('.field-error', { hasText: 'expected a time of day like "02:00" (24-hour HH:MM), found the string "25:99"' }).waitFor();
  await shot('settings-new-pair-checked');
  await page.click('.savebar button:has-text("Discard changes")');
  await page.locator('#k-concurrency').waitFor();
  // Issue 19: "Send a test mail" says what failed (no mail settings here), and a headless
  // service shows no section for the tray app.
  await page.click('#test-mail');
  await page.locator('#test-mail-result.error', { hasText: 'no mail settings yet' }).waitFor();
  assert.equal(await page.locator('h2', { hasText: 'Desktop app' }).count(), 0, 'no desktop section when headless');
  await page.locator('#k-concurrency').waitFor();
  await conc.fill('500');
  await page.locator('#k-concurrency-err', { hasText: 'concurrency' }).waitFor();
  assert.equal(await conc.getAttribute('aria-invalid'), 'true');
  assert.ok(await page.locator('#save').isDisabled(), 'cannot save an invalid value');
  await shot('settings-invalid');
  await conc.fill('8');
  await page.locator('.form-status', { hasText: 'valid' }).waitFor();
  assert.equal(await page.locator('#k-concurrency-err').textContent(), '');
  // A nightly schedule through the schedules table.
  const sched = page.locator('fieldset[data-key="schedule"]');
  await sched.locator('button', { hasText: 'Add schedule' }).click();
  await sched.locator('select[aria-label="Schedules 1: Kind"]').selectOption('daily');
  await sched.locator('input[aria-label="Schedules 1: When"]').fill('02:00');
  await sched.locator('input[aria-label="Schedules 1: Name"]').fill('nightly');
  await page.locator('.form-status', { hasText: '2 unsaved changes; valid' }).waitFor();
  await page.click('#save');
  await page.locator('.toast', { hasText: 'Saved' }).waitFor();
  const toml = fs.readFileSync(configFile, 'utf8');
  assert.match(toml, /^concurrency = 8$/m);
  assert.match(toml, /\[\[schedule\]\]\s*\n(daily = "02:00"\s*\nname = "nightly"|name = "nightly"\s*\ndaily = "02:00")/, toml);
  assert.match(toml, /# E2E settings: this comment must survive/);
  assert.match(toml, /r1 = "manual" # ask me first/);
  // Applied without a restart.
  const s = await api('/api/settings');
  assert.equal(s.config.defaults.concurrency, 8);
  assert.equal((await api('/api/schedules'))[0].name, 'nightly');
  await page.locator('#k-concurrency').waitFor();
  assert.equal(await page.locator('#k-concurrency').inputValue(), '8');
  await shot('settings');
});

test('the backlog shows a copy in flight with its progress', async () => {
  await page.goto(url + '/#/backlog');
  // 40 MB at 16 MB/s: a few seconds in flight.
  fs.writeFileSync(path.join(left, 'big.bin'), Buffer.alloc(40 << 20, 7));
  const bar = page.locator('tr.copying[data-path="big.bin"] [role=progressbar]');
  await bar.waitFor({ timeout: 20000 });
  await until('progress above 0', async () => Number(await bar.getAttribute('aria-valuenow')) > 0);
  // Issue 19 (Backlog): the pair's overall progress and time left, and a path filter.
  await page.locator('[data-overall="docs"]', { hasText: /\d+% done · .* left/ }).waitFor();
  await page.fill('#backlog-search', 'no-such-file');
  await until('the copy filtered out', async () => (await page.locator('tr[data-path="big.bin"]').count()) === 0);
  await page.fill('#backlog-search', 'big');
  await page.locator('tr.copying[data-path="big.bin"]').waitFor();
  await shot('backlog');
  await until('big.bin copied', () => fs.existsSync(path.join(right, 'big.bin')) && fs.statSync(path.join(right, 'big.bin')).size === 40 << 20, 30000);
  // Once done it leaves the queue for "Recently finished", with its state.
  const done = page.locator('table.recent tr.finished.done[data-path="big.bin"]').first();
  await done.waitFor({ timeout: 10000 });
  assert.match(await done.textContent(), /copy.*big\.bin.*left → right.*40 MiB.*done/);
  assert.equal(await page.locator('tr.copying[data-path="big.bin"]').count(), 0);
});

test('history lists the runs, opens one, and downloads them as CSV', async () => {
  await page.goto(url + '/#/history');
  const first = page.locator('table.runs tbody tr[data-run]').first();
  await first.waitFor();
  const runs = await api('/api/history?limit=50&hide_empty=true');
  assert.equal(await page.locator('table.runs tbody tr[data-run]').count(), runs.length, 'no run repeats itself here: one row each');
  // Issue 19 (History): a run that changed nothing is hidden unless asked for.
  const before = Math.max(...(await api('/api/history?limit=1')).map((r) => r.id));
  await api('/api/pairs/docs/sync', 'POST');
  const empty = await until('an empty manual run', async () => (await api('/api/history?limit=5')).find((r) => r.id > before && r.trigger === 'manual'));
  assert.equal(empty.counts.copied + empty.counts.failed + empty.counts.conflicts, 0, JSON.stringify(empty));
  await page.reload();
  await first.waitFor();
  assert.equal(await page.locator(`tr[data-run="${empty.id}"]`).count(), 0, 'the empty run is hidden');
  await page.check('#f-empty');
  await page.locator(`tr[data-run="${empty.id}"]`).waitFor();
  await page.uncheck('#f-empty');
  await until('the empty run hidden again', async () => (await page.locator(`tr[data-run="${empty.id}"]`).count()) === 0);
  const resolved = page.locator('tr[data-run]').filter({ hasText: 'resolve' }).first();
  await resolved.locator('button').click();
  await page.locator('table.journal').first().waitFor();
  // A path of a run can be resynced from there: a run with trigger "resync" is recorded.
  const resync = page.locator('table.journal button.resync').first();
  const label = await resync.getAttribute('aria-label');
  await resync.click();
  await page.getByText(`Resynced ${label.replace(/^Resync /, '')}`).first().waitFor();
  await until('a resync run', async () => (await api('/api/history?limit=1000')).some((r) => r.trigger === 'resync'));
  await page.selectOption('#f-trigger', 'resolve');
  await until('only resolve runs', async () => {
    const t = await page.locator('table.runs tbody tr[data-run] td:nth-child(4)').allTextContents();
    return t.length > 0 && t.every((x) => x === 'resolve');
  });
  await page.selectOption('#f-trigger', '');
  // Issue 19 (History): a path search through the runs' actions, and a date range.
  const withNotes = await api('/api/history?limit=50&hide_empty=true&path=NOTES.txt');
  assert.ok(withNotes.length >= 2, 'notes.txt was copied and resolved');
  await page.fill('#f-path', 'NOTES.txt');
  await until('only the runs that touched notes.txt', async () => (await page.locator('table.runs tbody tr[data-run]').count()) === withNotes.length);
  await page.fill('#f-path', '');
  const all = (await api('/api/history?limit=50&hide_empty=true')).length;
  const rowsAre = (n) => until(`${n} rows`, async () => (await page.locator('table.runs tbody tr[data-run]').count()) === n);
  await rowsAre(all);
  const tomorrow = new Date(Date.now() + 86400000);
  const iso = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
  await page.fill('#f-since', iso(tomorrow));
  await page.getByText('No runs match these filters.').waitFor();
  await page.fill('#f-since', iso(new Date()));
  await rowsAre(all);
  await page.fill('#f-since', '');
  await rowsAre(all);
  await shot('history');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download-csv')]);
  const file = path.join(artifacts, 'history.csv');
  await download.saveAs(file);
  const lines = fs.readFileSync(file, 'utf8').trim().split('\n');
  assert.match(lines[0], /^run,pair,trigger,started,finished,status,copied/);
  assert.equal(lines.length - 1, (await api('/api/history?limit=100000&hide_empty=true')).length, 'the download has the runs the filters show');
  assert.ok(lines.some((l) => l.includes(',resolve,')));
});

test('a new pair with an S3 bucket: Test connection shows what the server can do, the secret stays out of the file', async () => {
  // A real S3 server on loopback: moto, from target/test-venv (scripts/install-deps.sh).
  const motoBin = path.join(repo, 'target', 'test-venv', 'bin', 'moto_server');
  assert.ok(fs.existsSync(motoBin), `${motoBin} is missing: run scripts/install-deps.sh`);
  const port = await new Promise((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const p = srv.address().port;
      srv.close(() => resolve(p));
    });
  });
  const moto = spawn(motoBin, ['-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  try {
    const endpoint = `http://127.0.0.1:${port}`;
    await until('moto', () => fetch(endpoint).then(() => true, () => false), 60000);
    assert.ok((await fetch(`${endpoint}/e2e-bucket`, { method: 'PUT' })).ok);
    const s3left = path.join(dir, 's3left');
    fs.mkdirSync(s3left);
    fs.writeFileSync(path.join(s3left, 'hello.txt'), 'to the bucket\n');
    await page.goto(url + '/#/settings');
    await page.locator('summary', { hasText: 'Add a pair' }).click();
    assert.ok(!(await page.locator('#new-pair-left-bucket').isVisible()), 'a folder has no bucket');
    assert.ok(!(await page.locator('#new-pair-endpoint').isVisible()), 'no account while both sides are folders');
    await page.fill('#new-pair-name', 'cloud');
    await page.fill('#new-pair-left', s3left);
    await page.selectOption('#new-pair-right-kind', 's3');
    assert.ok(await page.locator('#new-pair-right-bucket').isVisible());
    await page.fill('#new-pair-right-bucket', 'e2e-bucket');
    await page.fill('#new-pair-right', 'docs');
    await page.fill('#new-pair-endpoint', endpoint);
    await page.fill('#new-pair-user', 'e2e-key');
    await page.fill('#new-pair-secret-env', 'TANDEM_E2E_S3_SECRET');
    await page.click('#new-pair-right-test-button');
    const result = page.locator('#new-pair-right-test');
    await result.filter({ hasText: 'Connected to s3://e2e-bucket/docs' }).waitFor({ timeout: 30000 });
    const said = await result.textContent();
    assert.match(said, /case-sensitive names, times to 1 s, not settable, versions by ETag, changes found by polling/, said);
    await shot('settings-test-connection');
    // A bucket that does not exist: the error names it.
    await page.fill('#new-pair-right-bucket', 'no-such-bucket');
    await page.click('#new-pair-right-test-button');
    await result.filter({ hasText: 'no-such-bucket' }).waitFor({ timeout: 30000 });
    assert.match(await result.textContent(), /^Cannot connect/);
    await page.fill('#new-pair-right-bucket', 'e2e-bucket');
    await page.locator('.form-status', { hasText: 'valid' }).waitFor();
    await page.click('#save');
    await page.locator('.toast', { hasText: 'Saved' }).waitFor();
    const toml = fs.readFileSync(configFile, 'utf8');
    assert.match(toml, /right = "s3:\/\/e2e-bucket\/docs"/, toml);
    const remoteLine = toml.split('\n').find((l) => l.startsWith('remote = {')) ?? '';
    for (const kv of [`endpoint = "${endpoint}"`, 'user = "e2e-key"', 'secret_env = "TANDEM_E2E_S3_SECRET"']) assert.ok(remoteLine.includes(kv), toml);
    // The new pair runs: the file reaches the bucket.
    // Read back by an independent S3 client: rclone (also from target/test-venv).
    const rclone = path.join(repo, 'target', 'test-venv', 'bin', 'rclone');
    const s3cat = () => {
      try {
        return execFileSync(rclone, ['cat', ':s3:e2e-bucket/docs/hello.txt', '--config', '/dev/null', '--s3-provider', 'Other', '--s3-endpoint', endpoint, '--s3-access-key-id', 'e2e-key', '--s3-secret-access-key', S3_SECRET], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
      } catch {
        return null;
      }
    };
    assert.equal(await until('the upload to the bucket', s3cat, 30000), 'to the bucket\n');
    // The planted secret is nowhere: not in the file, the API, the page or the state.
    const everywhere = [toml, JSON.stringify(await api('/api/settings')), JSON.stringify(await api('/api/status')), JSON.stringify(await api('/api/history?limit=1000')), await page.content()];
    for (const f of filesUnder(dir)) everywhere.push(fs.readFileSync(f).toString('latin1'));
    assert.ok(!everywhere.some((t) => t.includes(S3_SECRET)), 'the S3 secret leaked');
  } finally {
    moto.kill();
  }
});

test('accessibility: axe-core finds nothing serious or critical on any page, signed in or not', async () => {
  // axe runs inside the page: a context that lets its script in past the strict CSP.
  const ctx = await browser.newContext({ bypassCSP: true, viewport: { width: 1280, height: 800 } });
  const a11y = await ctx.newPage();
  const axe = path.join(repo, 'node_modules', 'axe-core', 'axe.min.js');
  const check = async (name) => {
    await a11y.addScriptTag({ path: axe });
    const r = await a11y.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
    assert.ok(r.passes.length > 10, `axe checked ${name} (${r.passes.length} rules passed)`);
    counts.push(`${name}: ${r.passes.length} rules passed, ${r.violations.length} minor or moderate findings`);
    const bad = r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    const text = bad.map((v) => `${name}: ${v.id} (${v.impact}): ${v.help}: ${v.nodes.map((n) => n.target.join(' ')).slice(0, 5).join(', ')}`);
    return text;
  };
  const found = [];
  const counts = [];
  await a11y.goto(url + '/');
  await a11y.locator('form.signin').waitFor();
  found.push(...(await check('sign-in')));
  const cookieLink = await api('/api/login-link', 'POST');
  await a11y.goto(cookieLink.url);
  await a11y.locator('section.pair').first().waitFor();
  for (const [hash, ready] of [
    ['#/', 'section.pair'],
    ['#/backlog', 'h1'],
    ['#/conflicts', 'h1'],
    ['#/history', 'table.runs'],
    ['#/settings', '#k-concurrency'],
  ]) {
    await a11y.goto(url + '/' + hash);
    await a11y.locator(ready).first().waitFor();
    await new Promise((r) => setTimeout(r, 300));
    found.push(...(await check(hash)));
  }
  await ctx.close();
  fs.writeFileSync(path.join(artifacts, 'axe.txt'), counts.concat(found).join('\n') + '\n');
  assert.deepEqual(found, [], found.join('\n'));
});

test('page weight and idle requests are measured (artifacts/e2e/weight.txt)', async () => {
  // Numbers for the record, not limits: what the first load transfers, and how many
  // requests an idle page makes per second.
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const p2 = await ctx.newPage();
  const loads = [];
  p2.on('requestfinished', async (r) => loads.push(r));
  await p2.goto((await api('/api/login-link', 'POST')).url);
  await p2.locator('section.pair').first().waitFor();
  await new Promise((r) => setTimeout(r, 1000));
  const asset = async (r) => ((await r.sizes()).responseBodySize);
  let wire = 0;
  const gz = [];
  for (const r of loads.filter((r) => !new URL(r.url()).pathname.startsWith('/api/'))) {
    wire += await asset(r);
    const res = await r.response();
    if (/\.(js|css)$/.test(new URL(r.url()).pathname)) gz.push(res.headers()['content-encoding']);
  }
  assert.ok(gz.length >= 2 && gz.every((e) => e === 'gzip'), `scripts and styles come gzipped: ${gz}`);
  const idle = async (hash) => {
    await p2.goto(url + '/' + hash);
    await new Promise((r) => setTimeout(r, 1500));
    let n = 0;
    const count = (r) => new URL(r.url()).pathname.startsWith('/api/') && !r.url().includes('/api/events') && n++;
    p2.on('request', count);
    await new Promise((r) => setTimeout(r, 10000));
    p2.off('request', count);
    return n / 10;
  };
  const lines = [`first load, page and assets on the wire: ${wire} bytes`];
  for (const hash of ['#/', '#/backlog', '#/history']) lines.push(`idle ${hash}: ${(await idle(hash)).toFixed(2)} requests/s`);
  fs.writeFileSync(path.join(artifacts, 'weight.txt'), lines.join('\n') + '\n');
  await ctx.close();
});

test('no errors on any page', () => {
  const log = path.join(artifacts, 'page-errors.log');
  assert.equal(fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '', '');
});
