// End to end: the built desktop app (tandem-desktop) on a real X server (Xvfb) with a real
// XEmbed tray (trayer), a real notification daemon (dunst) on a real session bus, driven
// through its tray menu with xdotool and through its own window with WebDriver
// (tauri-driver + WebKitWebDriver). Also the graceful path: the app from the .deb with no
// tray host and no D-Bus at all. Run by scripts/app-test.sh, which starts Xvfb and the bus;
// screenshots and logs go to artifacts/app/.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const repo = path.resolve(import.meta.dirname, '..', '..');
const app = process.env.TANDEM_APP;
const deb = process.env.TANDEM_DEB;
const artifacts = path.join(repo, 'artifacts', 'app');
const tauriDriver = process.env.TAURI_DRIVER ?? path.join(os.homedir(), '.cargo', 'bin', 'tauri-driver');
assert.ok(app && fs.existsSync(app), `TANDEM_APP (the built tandem-desktop) is missing: ${app}`);
assert.ok(process.env.DISPLAY, 'DISPLAY is not set: run this through scripts/app-test.sh');
fs.mkdirSync(artifacts, { recursive: true });

const children = [];
const dirs = [];
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

async function until(what, f, ms = 20000) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await f();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const read = (p) => (fs.existsSync(p) ? fs.readFileSync(p, 'utf8') : null);
const x = (cmd, ...args) => execFileSync(cmd, args, { encoding: 'utf8' }).trim();
/** A picture of the whole screen, once the window has painted what its DOM holds. */
async function screenshot(name) {
  await sleep(500);
  x('import', '-window', 'root', path.join(artifacts, `${name}.png`));
}

/** A fresh home with left/right folders and a config, as the app's user would have. */
function home(config) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-app-'));
  dirs.push(dir);
  const h = { dir, home: path.join(dir, 'home'), left: path.join(dir, 'left'), right: path.join(dir, 'right'), config: path.join(dir, 'tandem.toml') };
  for (const d of [h.home, h.left, h.right]) fs.mkdirSync(d, { recursive: true });
  if (config) fs.writeFileSync(h.config, config(h));
  return h;
}
/** The environment of a desktop session for a user whose home is `h.home`. */
function env(h, extra = {}) {
  const e = { ...process.env, HOME: h.home, ...extra };
  for (const k of ['XDG_CONFIG_HOME', 'XDG_DATA_HOME', 'XDG_STATE_HOME', 'XDG_CACHE_HOME']) delete e[k];
  return e;
}
function start(cmd, args, opts, log) {
  const out = fs.openSync(path.join(artifacts, log), 'w');
  const c = spawn(cmd, args, { ...opts, stdio: ['ignore', out, out] });
  children.push(c);
  return c;
}
const exited = (c) => (c.exitCode !== null || c.signalCode !== null ? Promise.resolve() : new Promise((r) => c.once('exit', r)));

function freePort() {
  return new Promise((res) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => res(p));
    });
  });
}

// ---------------------------------------------------------------- WebDriver (tauri-driver)

const ELEMENT = 'element-6066-11e4-a52e-4f735466cecf';
class Driver {
  static async start(h, args) {
    const port = await freePort();
    const native = await freePort();
    const proc = start(tauriDriver, ['--port', String(port), '--native-port', String(native)], { env: env(h) }, `tauri-driver-${port}.log`);
    const d = new Driver(port, proc);
    await until('tauri-driver', async () => (await fetch(`${d.base}/status`)).ok);
    const s = await d.req('POST', '/session', { capabilities: { alwaysMatch: { 'tauri:options': { application: app, args } } } });
    d.sid = s.sessionId;
    return d;
  }
  constructor(port, proc) {
    this.base = `http://127.0.0.1:${port}`;
    this.proc = proc;
  }
  async req(method, p, body) {
    const r = await fetch(this.base + p, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    const j = await r.json();
    if (!r.ok) throw new Error(`${method} ${p}: ${JSON.stringify(j.value)}`);
    return j.value;
  }
  s(p) {
    return `/session/${this.sid}${p}`;
  }
  exec(script, ...args) {
    return this.req('POST', this.s('/execute/sync'), { script, args });
  }
  async find(css) {
    return (await this.req('POST', this.s('/element'), { using: 'css selector', value: css }))[ELEMENT];
  }
  async click(css) {
    const id = await until(`the element ${css}`, () => this.find(css));
    await this.req('POST', this.s(`/element/${id}/click`), {});
  }
  has(css) {
    return this.exec('return document.querySelector(arguments[0]) !== null', css);
  }
  text() {
    return this.exec('return document.body.innerText');
  }
  async stop() {
    await this.req('DELETE', this.s('')).catch(() => {});
    this.proc.kill('SIGTERM');
    await exited(this.proc);
  }
}

// ---------------------------------------------------------------- the tray (trayer + xdotool)

/** The tray's window (trayer sizes itself to its icons, at the top right). */
function trayGeometry() {
  // trayer has helper windows too: its panel is the biggest one.
  const all = x('xdotool', 'search', '--class', 'trayer')
    .split('\n')
    .map((id) => {
      const v = Object.fromEntries(x('xdotool', 'getwindowgeometry', '--shell', id).split('\n').map((l) => l.split('=')));
      return { x: Number(v.X), y: Number(v.Y), w: Number(v.WIDTH), h: Number(v.HEIGHT) };
    });
  return all.sort((a, b) => b.w * b.h - a.w * a.h)[0];
}
/** The tray icon's centre (the rightmost icon: Tandem's is the only one). */
function trayIcon() {
  const g = trayGeometry();
  return { x: g.x + g.w - Math.floor(g.h / 2), y: g.y + Math.floor(g.h / 2) };
}
const COLOURS = { idle: '2A9D8F', syncing: '1D6FD8', paused: '6B7280', conflicts: 'D97706', error: 'C0262D' };
/** The state whose colour most of the tray's pixels have. */
function trayState() {
  const g = trayGeometry();
  const px = x('convert', 'x:root', '-crop', `${g.w}x${g.h}+${g.x}+${g.y}`, '-depth', '8', 'txt:-');
  const rgb = (s) => [0, 2, 4].map((i) => parseInt(s.slice(i, i + 2), 16));
  const counts = Object.fromEntries(Object.keys(COLOURS).map((k) => [k, 0]));
  for (const m of px.matchAll(/#([0-9A-F]{6})/gi)) {
    const p = rgb(m[1]);
    for (const [k, c] of Object.entries(COLOURS)) if (rgb(c).every((v, i) => Math.abs(v - p[i]) < 30)) counts[k]++;
  }
  const [best, n] = Object.entries(counts).sort((a, b) => b[1] - a[1])[0];
  return n >= 40 ? best : `nothing known (${JSON.stringify(counts)} in ${JSON.stringify(g)})`;
}
/** Whether the tray icon shows `state` (throws, saying what it shows, if not). */
function trayIs(state) {
  const have = trayState();
  if (have !== state) throw new Error(`the icon shows ${have}, not ${state}`);
  return true;
}
/** Open the tray menu and choose an item by its position among the enabled items. */
async function trayMenu(shotName, keysDown) {
  const { x: cx, y } = trayIcon();
  // The icon needs the pointer to enter it before a click opens its menu.
  x('xdotool', 'mousemove', String(cx - 4), String(y - 4));
  await sleep(200);
  x('xdotool', 'mousemove', String(cx), String(y));
  await sleep(300);
  x('xdotool', 'click', '1');
  await sleep(800);
  if (shotName) x('import', '-window', 'root', path.join(artifacts, `${shotName}.png`));
  for (let i = 0; i < keysDown; i++) x('xdotool', 'key', 'Down');
  x('xdotool', 'key', 'Return');
}

test('the tray app: window, tray menu pause/resume followed by icon and UI, a conflict toasted and resolved in the window', async () => {
  const h = home(
    (h) => `state = "${h.dir}/state.db"
[conflicts]
r1 = "manual"
[[pair]]
name = "docs"
left = "${h.left}"
right = "${h.right}"
`,
  );
  fs.writeFileSync(path.join(h.left, 'report.txt'), 'the first version\n');
  const dunst = start('dunst', [], { env: env(h) }, 'dunst.log');
  const trayer = start('trayer', ['--edge', 'top', '--align', 'right', '--widthtype', 'request', '--height', '32', '--transparent', 'false', '--expand', 'false'], { env: env(h) }, 'trayer.log');
  await until('trayer', () => x('xdotool', 'search', '--class', 'trayer'));
  const d = await Driver.start(h, ['--config', h.config]);
  try {
    // The window shows the web UI, signed in; the startup sync copied the file.
    await until('the dashboard in the app window', () => d.has('section.pair[data-pair="docs"] .badge[data-state="idle"]'));
    await until('the startup copy', () => read(path.join(h.right, 'report.txt')) === 'the first version\n');
    await until('the idle tray icon', () => trayIs('idle'));
    await screenshot('window-and-tray');

    // Tray menu: the first enabled item is "Pause all".
    await trayMenu('tray-menu', 1);
    await until('the paused badge in the window', () => d.has('section.pair[data-pair="docs"] .badge[data-state="paused"]'));
    await until('the Resume all button in the window', () => d.has('#resume-all'));
    await until('the paused tray icon', () => trayIs('paused'));
    await screenshot('paused');

    // While paused, both sides change the file: a conflict (R1, manual).
    fs.writeFileSync(path.join(h.left, 'report.txt'), 'edited on the LEFT\n');
    await sleep(50);
    fs.writeFileSync(path.join(h.right, 'report.txt'), 'edited on the RIGHT, later\n');
    // Paused, "Pause all" is greyed out: the first enabled item is "Resume all".
    await trayMenu('tray-menu-paused', 1);
    await until('the pair running again', () => d.has('section.pair[data-pair="docs"] button[data-action="pause"]'));
    await until('the conflicts tray icon', () => trayIs('conflicts'));

    // The toast went to the notification daemon.
    const told = await until(
      'the conflict toast in dunst',
      () => {
        const all = JSON.parse(x('dunstctl', 'history')).data.flat();
        x('dunstctl', 'close-all');
        return all.find((n) => /conflict in docs/.test(n.summary.data));
      },
      15000,
    ).catch(async (e) => {
      await screenshot('no-toast');
      throw e;
    });
    assert.match(told.body.data, /report\.txt \(R1\): waits for your decision/);

    // Resolve it in the app's own window.
    await d.exec("location.hash = '#/conflicts'");
    await d.click('tr[data-path="report.txt"] a');
    await until('the side-by-side screen', () => d.has('table.diff'));
    await screenshot('conflict-in-window');
    await d.click('button[data-keep="left"]');
    await until('the left version on both sides', () => read(path.join(h.right, 'report.txt')) === 'edited on the LEFT\n');
    assert.equal(read(path.join(h.left, 'report.txt')), 'edited on the LEFT\n');
    const trash = fs.readdirSync(path.join(h.right, '.sync_trash'), { recursive: true }).map(String);
    assert.ok(
      trash.some((f) => f.endsWith('report.txt') && read(path.join(h.right, '.sync_trash', f)) === 'edited on the RIGHT, later\n'),
      `the replaced right version is in the trash: ${trash}`,
    );
    await until('the idle tray icon again', () => trayIs('idle'));
  } finally {
    await d.stop();
    trayer.kill();
    dunst.kill();
    await Promise.all([exited(trayer), exited(dunst)]);
  }
});

test('first run: a settings file is created, the window opens Settings, autostart follows the setting, a second launch shows the first', async () => {
  const h = home();
  const d = await Driver.start(h, []);
  try {
    const config = path.join(h.home, '.config', 'tandem', 'tandem.toml');
    await until('the settings page', () => d.has('#save'));
    assert.equal(await d.exec('return location.hash'), '#/settings');
    assert.match(read(config), /\[desktop\]/);
    assert.match(await d.text(), /Start Tandem when I log in/);
    await screenshot('first-run-settings');

    // Autostart on, saved from the form: the entry appears with the app's path, quoted.
    const autostart = path.join(h.home, '.config', 'autostart', 'tandem.desktop');
    assert.equal(read(autostart), null);
    await d.exec("const s = document.querySelector('#k-desktop_autostart'); s.value = 'true'; s.dispatchEvent(new Event('change'));");
    await until('Save enabled', () => d.exec("return !document.querySelector('#save').disabled"));
    await d.click('#save');
    const entry = await until('the autostart entry', () => read(autostart));
    assert.ok(entry.includes(`Exec="${app}" --hidden --config "${config}"`), entry);
    assert.match(read(config), /autostart = true/);

    // A second launch finds the first and exits.
    const second = start(app, [], { env: env(h) }, 'second-launch.log');
    await exited(second);
    assert.equal(second.exitCode, 0);
    assert.match(read(path.join(artifacts, 'second-launch.log')), /already running/);

    // Autostart off again: the entry goes.
    await d.exec("const s = document.querySelector('#k-desktop_autostart'); s.value = 'false'; s.dispatchEvent(new Event('change'));");
    await until('Save enabled', () => d.exec("return !document.querySelector('#save').disabled"));
    await d.click('#save');
    await until('the autostart entry removed', () => read(autostart) === null);
  } finally {
    await d.stop();
  }
});

test('the app from the .deb runs and syncs with no tray host and no D-Bus at all, and stops on SIGTERM', async () => {
  assert.ok(deb && fs.existsSync(deb), `TANDEM_DEB (the built .deb) is missing: ${deb}`);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-deb-'));
  dirs.push(root);
  x('dpkg-deb', '-x', deb, root);
  const files = x('dpkg-deb', '-c', deb)
    .split('\n')
    .map((l) => l.split(/\s+/).pop().replace(/^\.?\//, ''));
  for (const f of ['usr/bin/tandem-desktop', 'usr/bin/tandem', 'usr/lib/systemd/user/tandem.service', 'usr/lib/systemd/system/tandem@.service', 'usr/share/applications/Tandem.desktop']) {
    assert.ok(files.includes(f), `the .deb holds ${f}: ${files.join(' ')}`);
  }
  assert.match(x('dpkg-deb', '-f', deb, 'Depends'), /libwebkit2gtk-4\.1-0/);
  assert.match(x(path.join(root, 'usr/bin/tandem'), '--version'), /^tandem \d/);
  assert.match(read(path.join(root, 'usr/lib/systemd/user/tandem.service')), /^ExecStart=\/usr\/bin\/tandem run --config %h\/\.config\/tandem\/tandem\.toml$/m);

  const h = home(
    (h) => `state = "${h.dir}/state.db"
[[pair]]
name = "docs"
left = "${h.left}"
right = "${h.right}"
`,
  );
  const e = env(h);
  delete e.DBUS_SESSION_BUS_ADDRESS;
  assert.throws(() => x('xdotool', 'search', '--class', 'trayer'), undefined, 'no tray host');
  const logName = 'no-tray-no-dbus.log';
  const c = start(path.join(root, 'usr/bin/tandem-desktop'), ['--config', h.config], { env: e }, logName);
  fs.writeFileSync(path.join(h.left, 'a.txt'), 'from the left\n');
  await until('a.txt synced', () => read(path.join(h.right, 'a.txt')) === 'from the left\n');
  // A conflict settled with a clash copy: its toast cannot be shown, and that is logged.
  fs.writeFileSync(path.join(h.left, 'b.txt'), 'b on the left\n');
  fs.writeFileSync(path.join(h.right, 'b.txt'), 'b on the right\n');
  const log = () => read(path.join(artifacts, logName));
  await until('the toast failure logged', () => /toast not shown/.test(log()), 20000);
  assert.match(log(), /WARN.*no system tray found/);
  await until('the window', () => x('xdotool', 'search', '--onlyvisible', '--name', '^Tandem$'));
  await screenshot('no-tray-no-dbus');
  assert.equal(c.exitCode, null, 'still running');
  assert.doesNotMatch(log(), /panicked/);
  c.kill('SIGTERM');
  await exited(c);
  assert.equal(c.exitCode, 0, `exit code; log:\n${log()}`);
  assert.match(log(), /service stopped/);
});
