// Entry point: navigation (hash routes), the global controls, the live event stream and
// the sign-in screen shown when the API says `unauthorized`.

import './style.css';
import { EngineEvent, Status, post, setToken, subscribe, whenUnauthorized, get, ApiError } from './api';
import { actionButton, store, View } from './app';
import { fill, h } from './dom';
import { dashboard } from './views/dashboard';
import { backlog } from './views/backlog';
import { conflicts, conflictDetail } from './views/conflicts';
import { settings } from './views/settings';
import { history } from './views/history';

const main = document.getElementById('main')!;
const nav = document.getElementById('nav')!;
const global = document.getElementById('global')!;

const pages: { hash: string; label: string }[] = [
  { hash: '#/', label: 'Dashboard' },
  { hash: '#/backlog', label: 'Backlog' },
  { hash: '#/conflicts', label: 'Conflicts' },
  { hash: '#/history', label: 'History' },
  { hash: '#/settings', label: 'Settings' },
];

let current: View | null = null;
let signedOut = false;

function route(): void {
  if (signedOut) return;
  const [path, query] = (location.hash || '#/').split('?');
  const params = new URLSearchParams(query ?? '');
  current?.dispose?.();
  const view =
    path === '#/backlog'
      ? backlog()
      : path === '#/conflicts'
        ? conflicts()
        : path === '#/conflict'
          ? conflictDetail(params.get('pair') ?? '', params.get('path') ?? '')
          : path === '#/settings'
            ? settings()
            : path === '#/history'
              ? history()
              : dashboard();
  current = view;
  document.title = `${view.title} · Tandem`;
  fill(main, view.el);
  renderNav();
  if (store.status) view.onStatus?.(store.status);
}

function renderNav(): void {
  const here = (location.hash || '#/').split('?')[0];
  const open = store.status?.pairs.reduce((n, p) => n + p.open_conflicts, 0) ?? 0;
  fill(
    nav,
    pages.map((p) =>
      h(
        'a',
        { href: p.hash, 'aria-current': here === p.hash || (p.hash === '#/conflicts' && here === '#/conflict') ? 'page' : null },
        p.label,
        p.hash === '#/conflicts' && open > 0 ? h('span', { class: 'count', 'aria-label': `${open} open` }, String(open)) : null,
      ),
    ),
  );
}

let linkUp = false;
function renderGlobal(s: Status | null): void {
  // Every pair paused, one by one or all at once: the button offers the way back.
  const paused = s != null && (s.paused_all || (s.pairs.length > 0 && s.pairs.every((p) => p.paused)));
  fill(
    global,
    h('span', { class: `link ${linkUp ? 'up' : 'down'}`, title: linkUp ? 'Live updates on' : 'Reconnecting…' }, linkUp ? 'live' : 'offline'),
    paused
      ? actionButton('Resume all', { id: 'resume-all' }, () => post('/api/resume'), 'Resumed all pairs')
      : actionButton('Pause all', { id: 'pause-all' }, () => post('/api/pause'), 'Paused all pairs'),
    actionButton('Sync all now', { id: 'sync-all' }, () => post('/api/sync'), 'Sync started for all pairs'),
  );
}

function signIn(message?: string): void {
  signedOut = true;
  stopEvents?.();
  stopEvents = null;
  current?.dispose?.();
  current = null;
  fill(nav);
  fill(global);
  const input = h('input', { id: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false', required: true, 'aria-describedby': 'token-help' });
  const err = h('p', { class: 'error', role: 'alert' }, message ?? '');
  const form = h(
    'form',
    {
      class: 'card signin',
      onsubmit: async (e: Event) => {
        e.preventDefault();
        setToken(input.value.trim());
        try {
          await get('/api/status');
          signedOut = false;
          start();
        } catch (x) {
          setToken(null);
          err.textContent = x instanceof ApiError && x.code === 'unauthorized' ? 'That token is not right.' : String((x as Error).message);
        }
      },
    },
    h('h1', null, 'Sign in to Tandem'),
    h('p', null, 'Open the link that ', h('code', null, 'tandem run'), ' printed, or get a new one with ', h('code', null, 'tandem login-link'), '.'),
    h('label', { for: 'token' }, 'Or paste the API token'),
    h('p', { id: 'token-help', class: 'help' }, 'Printed by ', h('code', null, 'tandem token'), '. It is kept for this browser tab only.'),
    input,
    h('button', { type: 'submit', class: 'primary' }, 'Sign in'),
    err,
  );
  document.title = 'Sign in · Tandem';
  fill(main, form);
  input.focus();
}

let stopEvents: (() => void) | null = null;

function onEvent(e: EngineEvent): void {
  current?.onEvent?.(e);
  store.refreshSoon();
}

function start(): void {
  signedOut = false;
  stopEvents?.();
  stopEvents = subscribe(onEvent, (up) => {
    linkUp = up;
    renderGlobal(store.status);
    if (up) store.refreshSoon();
  });
  route();
  void store.refresh();
}

// A login link opened a second time lands here with `?login=expired` (issue 19).
const EXPIRED_LINK = new URLSearchParams(location.search).get('login') === 'expired';
if (EXPIRED_LINK) window.history.replaceState(null, '', location.pathname + location.hash);
whenUnauthorized(() => {
  if (!signedOut) signIn(EXPIRED_LINK ? 'That sign-in link was used already or has expired: get a new one with tandem login-link, or paste the token.' : undefined);
});
store.listen((s) => {
  renderNav();
  renderGlobal(s);
  current?.onStatus?.(s);
});
window.addEventListener('hashchange', () => {
  route();
  main.focus({ preventScroll: true });
});
// Times like "3 min ago" stay true, and a missed event cannot leave the page stale for long.
window.setInterval(() => store.refreshSoon(), 5000);
renderGlobal(null);
start();
