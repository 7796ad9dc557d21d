// Dashboard: every pair with its state, last sync, backlog and conflicts, and the buttons
// to pause, resume and sync it; below, the schedules with their next and last runs.

import { PairStatus, Schedule, Status, enc, get, post } from '../api';
import { actionButton, View } from '../app';
import { fill, h, keyed } from '../dom';
import { ago, bytes, plural, time } from '../format';

const STATE_LABEL: Record<string, string> = {
  idle: 'Up to date',
  scanning: 'Scanning',
  syncing: 'Syncing',
  paused: 'Paused',
  error: 'Error',
  polling: 'Polling',
};

/** The badge: what the pair is doing, or what went wrong (never "Up to date" while paths fail). */
export function stateLabel(p: PairStatus): string {
  if (p.state === 'failing') return `${plural(p.failing, 'item')} failed`;
  return STATE_LABEL[p.state] ?? p.state;
}

export function pairCard(p: PairStatus): HTMLElement {
  const guard = p.needs_consent;
  const btn = (label: string, id: string, run: () => Promise<unknown>, done: string, cls = '') => actionButton(label, { class: cls, 'data-action': id }, run, done);
  const watch = p.watch.map((w) => `${w.side}: ${w.mode === 'events' ? 'watching' : w.mode === 'both' ? 'watching + polling' : w.mode}${w.reason ? ` (${w.reason})` : ''}`).join(' · ');
  const last = p.last_run;
  return h(
    'section',
    { class: 'card pair', 'data-pair': p.pair, 'aria-label': `Pair ${p.pair}` },
    h('div', { class: 'pair-head' }, h('h2', null, p.pair), h('span', { class: `badge state-${p.state}`, 'data-state': p.state }, stateLabel(p))),
    h('p', { class: 'paths' }, h('span', { class: 'path', title: p.left }, p.left), h('span', { 'aria-hidden': 'true' }, ' ⇄ '), h('span', { class: 'path', title: p.right }, p.right)),
    p.reason ? h('p', { class: `reason ${p.state === 'error' ? 'error' : ''}` }, p.reason) : null,
    h(
      'dl',
      { class: 'facts' },
      h('dt', null, 'Last sync'),
      h('dd', null, last ? `${ago(last.finished_at ?? last.started_at)} (${last.trigger}, ${last.status})` : 'never', last ? h('span', { class: 'muted' }, ` ${time(last.started_at)}`) : null),
      h('dt', null, 'Backlog'),
      h('dd', null, p.backlog.items ? `${plural(p.backlog.items, 'copy', 'copies')}, ${bytes(p.backlog.bytes)}` : 'empty', p.backlog.waiting_paths ? ` · ${plural(p.backlog.waiting_paths, 'path')} waiting` : ''),
      p.failing ? h('dt', null, 'Failed') : null,
      p.failing ? h('dd', null, h('a', { href: '#/backlog' }, `${plural(p.failing, 'item')} waiting for a retry`)) : null,
      h('dt', null, 'Conflicts'),
      h('dd', null, p.open_conflicts ? h('a', { href: `#/conflicts?pair=${enc(p.pair)}` }, `${p.open_conflicts} open`) : 'none'),
      h('dt', null, 'Last 24 h'),
      h('dd', null, plural(p.ops_last_24h, 'operation')),
      h('dt', null, 'Changes'),
      h('dd', null, watch || '–'),
    ),
    h(
      'div',
      { class: 'buttons' },
      p.paused
        ? btn('Resume', 'resume', () => post(`/api/pairs/${enc(p.pair)}/resume`), `Resumed ${p.pair}`, 'primary')
        : btn('Pause', 'pause', () => post(`/api/pairs/${enc(p.pair)}/pause`), `Paused ${p.pair}`),
      guard
        ? btn('Resume and allow the deletions', 'resume-deletes', () => post(`/api/pairs/${enc(p.pair)}/resume`, { allow_mass_delete: true }), `Resumed ${p.pair}; the deletions go ahead`, 'danger')
        : null,
      btn('Sync now', 'sync', () => post(`/api/pairs/${enc(p.pair)}/sync`), `Sync started for ${p.pair}`),
      p.backlog.items || p.transfers.length ? h('a', { class: 'button', href: '#/backlog' }, 'Backlog') : null,
    ),
  );
}

export function dashboard(): View {
  const pairs = h('div', { class: 'grid' }, h('p', { class: 'muted' }, 'Loading…'));
  const scheds = h('div');
  const el = h('div', null, h('h1', null, 'Dashboard'), pairs, scheds);

  const loadSchedules = async () => {
    try {
      const list = await get<Schedule[]>('/api/schedules');
      if (!list.length) return fill(scheds);
      fill(
        scheds,
        h('h2', null, 'Schedules'),
        h(
          'div',
          { class: 'table-wrap' },
          h(
            'table',
            null,
            h('thead', null, h('tr', null, ['Pair', 'Name', 'When', 'Next run', 'Last run', ''].map((c) => h('th', { scope: 'col' }, c)))),
            h(
              'tbody',
              null,
              list.map((s) =>
                h(
                  'tr',
                  null,
                  h('td', null, s.pair),
                  h('td', null, s.name),
                  h('td', null, `${s.when} (${s.tz}, ${s.job})`),
                  h('td', null, s.paused ? 'paused' : time(s.next_run)),
                  h('td', null, s.last_run ? `${time(s.last_run)}: ${s.last_outcome ?? ''}` : 'never'),
                  h(
                    'td',
                    null,
                    actionButton(
                      s.paused ? 'Resume' : 'Pause',
                      {},
                      () => post(`/api/pairs/${enc(s.pair)}/schedules/${enc(s.name)}/${s.paused ? 'resume' : 'pause'}`).then(loadSchedules),
                      `${s.paused ? 'Resumed' : 'Paused'} schedule ${s.name}`,
                    ),
                  ),
                ),
              ),
            ),
          ),
        ),
      );
    } catch {
      fill(scheds);
    }
  };
  void loadSchedules();

  return {
    el,
    title: 'Dashboard',
    onStatus(s: Status) {
      // Patched card by card: a card that did not change keeps its element (and the focus);
      // "3 min ago" changes once a minute, not at every refresh.
      if (!s.pairs.length) return fill(pairs, h('p', null, 'No pairs yet: add one under ', h('a', { href: '#/settings' }, 'Settings'), '.'));
      const minute = Math.floor(Date.now() / 60000);
      keyed(pairs, s.pairs, (p) => p.pair, (p) => `${minute}${JSON.stringify(p)}`, pairCard);
    },
    onEvent(e) {
      if (e.type === 'run_finished' && e.trigger === 'schedule') void loadSchedules();
    },
  };
}
