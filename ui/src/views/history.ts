// History: the recorded runs, newest first, filtered by pair, trigger and status, paged;
// a run opens to its actions; the filtered runs download as CSV or JSON.

import { JournalRow, Run, blob, enc, get, post } from '../api';
import { actionButton, View } from '../app';
import { debounce, fill, h, keepFocus } from '../dom';
import { bytes, ms, time } from '../format';

const PAGE = 50;
const TRIGGERS = ['watch', 'poll', 'schedule', 'manual', 'reconciliation', 'startup', 'resolve', 'resync'];
const STATUSES = ['ok', 'partial', 'error', 'stopped'];

/// Forget what the state knows of a path and decide again from both sides (never deletes).
export function resyncButton(pair: string, path: string): HTMLButtonElement {
  return actionButton(
    'Resync',
    { class: 'link resync', title: `Compare ${path} on both sides again: equal copies become synced, different ones are kept as clash copies, nothing is deleted`, 'aria-label': `Resync ${path}` },
    () => post(`/api/pairs/${enc(pair)}/resync`, { path }),
    `Resynced ${path}`,
  );
}

/**
 * Fold repeats: consecutive runs of one pair with the same trigger, outcome, counts and
 * error that did not go well (a file failing at every retry) show as one row with a count,
 * so one failing file does not flood the history. Newest first, as listed.
 */
export function foldRepeats(runs: Run[]): { run: Run; repeats: Run[] }[] {
  const out: { run: Run; repeats: Run[] }[] = [];
  const same = (a: Run, b: Run) =>
    a.status !== 'ok' && a.pair === b.pair && a.trigger === b.trigger && a.status === b.status && a.error === b.error && JSON.stringify(a.counts) === JSON.stringify(b.counts);
  for (const r of runs) {
    const g = out[out.length - 1];
    if (g && same(g.run, r)) g.repeats.push(r);
    else out.push({ run: r, repeats: [] });
  }
  return out;
}

export function history(): View {
  const filter = { pair: '', trigger: '', status: '', path: '', since: '', until: '' };
  // Runs that went well and changed nothing are left out unless asked for.
  let showEmpty = false;
  let offset = 0;
  const body = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
  const pairSel = h('select', { id: 'f-pair', onchange: () => set('pair', pairSel.value) }, h('option', { value: '' }, 'All pairs'));
  const select = (id: string, label: string, values: string[], key: 'trigger' | 'status') => {
    const s: HTMLSelectElement = h('select', { id, onchange: () => set(key, s.value) }, h('option', { value: '' }, label), values.map((v) => h('option', { value: v }, v)));
    return s;
  };
  const dateInput = (id: string, key: 'since' | 'until') => {
    const d: HTMLInputElement = h('input', { type: 'date', id, onchange: () => set(key, d.value) });
    return d;
  };
  const searchSoon = debounce(() => set('path', pathInput.value.trim()), 300);
  const pathInput: HTMLInputElement = h('input', { type: 'search', id: 'f-path', placeholder: 'part of a path', oninput: () => searchSoon() });
  const set = (k: keyof typeof filter, v: string) => {
    filter[k] = v;
    offset = 0;
    void load();
  };
  const query = (extra: Record<string, string>) => {
    const q = new URLSearchParams(extra);
    for (const [k, v] of Object.entries(filter)) if (v && k !== 'since' && k !== 'until') q.set(k, v);
    // Dates are local days: from the start of `since` to the end of `until`, in ns.
    const day = (d: string, plus: number) => String((new Date(`${d}T00:00:00`).getTime() + plus * 86400000) * 1e6);
    if (filter.since) q.set('since', day(filter.since, 0));
    if (filter.until) q.set('until', day(filter.until, 1));
    if (!showEmpty) q.set('hide_empty', 'true');
    return q.toString();
  };
  const download = async (format: 'csv' | 'json') => {
    const b = await blob(`/api/history?${query({ format, limit: '100000' })}`);
    const url = URL.createObjectURL(b);
    const a = h('a', { href: url, download: `tandem-history.${format}` });
    document.body.appendChild(a);
    a.click();
    a.remove();
    window.setTimeout(() => URL.revokeObjectURL(url), 10000);
  };
  const el = h(
    'div',
    null,
    h('h1', null, 'History'),
    h(
      'div',
      { class: 'filters', role: 'group', 'aria-label': 'Filters' },
      h('label', { for: 'f-pair' }, 'Pair'),
      pairSel,
      h('label', { for: 'f-trigger' }, 'Trigger'),
      select('f-trigger', 'All triggers', TRIGGERS, 'trigger'),
      h('label', { for: 'f-status' }, 'Status'),
      select('f-status', 'All', STATUSES, 'status'),
      h('label', { for: 'f-since' }, 'From'),
      dateInput('f-since', 'since'),
      h('label', { for: 'f-until' }, 'To'),
      dateInput('f-until', 'until'),
      h('label', { for: 'f-path' }, 'Path'),
      pathInput,
      h(
        'label',
        { class: 'check' },
        h('input', {
          type: 'checkbox',
          id: 'f-empty',
          onchange: (e: Event) => {
            showEmpty = (e.currentTarget as HTMLInputElement).checked;
            offset = 0;
            void load();
          },
        }),
        ' Show runs that changed nothing',
      ),
      h('span', { class: 'spacer' }),
      actionButton('Download CSV', { id: 'download-csv' }, () => download('csv')),
      actionButton('Download JSON', { id: 'download-json' }, () => download('json')),
    ),
    body,
  );

  const journal = async (run: Run, cell: HTMLElement) => {
    fill(cell, h('p', { class: 'muted' }, 'Loading…'));
    try {
      const rows = await get<JournalRow[]>(`/api/history/${run.id}`);
      fill(
        cell,
        rows.length
          ? h(
              'table',
              { class: 'journal' },
              h('thead', null, h('tr', null, ['#', 'Action', 'Side', 'Path', 'Rule', 'Outcome', 'Bytes', ''].map((c) => h('th', { scope: 'col' }, c)))),
              h(
                'tbody',
                null,
                rows.map((r) =>
                  h(
                    'tr',
                    { class: r.status === 'failed' ? 'failed' : '' },
                    h('td', { class: 'num' }, r.seq),
                    h('td', null, r.op),
                    h('td', null, r.side ?? ''),
                    h('td', { class: 'path' }, r.path, r.detail ? h('span', { class: 'muted' }, ` ${r.detail}`) : null),
                    h('td', null, r.rule ?? ''),
                    h('td', null, r.status),
                    h('td', { class: 'num' }, bytes(r.bytes)),
                    h('td', null, resyncButton(run.pair, r.path)),
                  ),
                ),
              ),
            )
          : h('p', { class: 'muted' }, 'This run did nothing.'),
      );
    } catch (e) {
      fill(cell, h('p', { class: 'error' }, (e as Error).message));
    }
  };

  // Runs the user opened stay open when the list is fetched again (a run finished).
  const opened = new Set<number>();
  const load = async () => {
    let runs: Run[];
    try {
      runs = await get<Run[]>(`/api/history?${query({ limit: String(PAGE), offset: String(offset) })}`);
    } catch (e) {
      fill(body, h('p', { class: 'error' }, (e as Error).message));
      return;
    }
    const head = ['Run', 'Started', 'Pair', 'Trigger', 'Status', 'Copied', 'Renamed', 'Trashed', 'Deleted', 'Conflicts', 'Failed', 'Bytes', 'Duration'];
    keepFocus(body, () => fill(
      body,
      runs.length
        ? h(
            'div',
            { class: 'table-wrap' },
            h(
              'table',
              { class: 'runs' },
              h('thead', null, h('tr', null, head.map((c) => h('th', { scope: 'col' }, c)))),
              foldRepeats(runs).map(({ run: r, repeats }) => {
                const detail = h('td', { colspan: String(head.length) });
                const isOpen = opened.has(r.id);
                const more = h('tr', { class: 'more', hidden: !isOpen }, detail);
                if (isOpen) void journal(r, detail);
                const toggle = h(
                  'button',
                  {
                    type: 'button',
                    class: 'link',
                    'aria-expanded': String(isOpen),
                    'aria-label': `Actions of run ${r.id}`,
                    onclick: () => {
                      const open = more.hidden;
                      more.hidden = !open;
                      toggle.setAttribute('aria-expanded', String(open));
                      if (open) opened.add(r.id);
                      else opened.delete(r.id);
                      if (open) void journal(r, detail);
                    },
                  },
                  `#${r.id}`,
                );
                const last = repeats[repeats.length - 1];
                const times = repeats.length
                  ? h('span', { class: 'repeats', title: `${repeats.length + 1} runs like this one, the first at ${time(last.started_at)}` }, ` ×${repeats.length + 1}`)
                  : null;
                const c = r.counts;
                return h(
                  'tbody',
                  null,
                  h(
                    'tr',
                    { class: `status-${r.status}`, 'data-run': r.id },
                    h('td', null, toggle),
                    h('td', null, time(r.started_at)),
                    h('td', null, r.pair),
                    h('td', null, r.trigger),
                    h('td', { title: r.error ?? '' }, r.status, times),
                    [c.copied, c.renamed, c.trashed, c.deleted, c.conflicts, c.failed].map((n) => h('td', { class: 'num' }, n)),
                    h('td', { class: 'num' }, bytes(c.bytes)),
                    h('td', { class: 'num' }, r.finished_at ? ms(Math.round((r.finished_at - r.started_at) / 1e6)) : '–'),
                  ),
                  more,
                );
              }),
            ),
          )
        : h('p', { class: 'muted' }, offset ? 'No older runs.' : Object.values(filter).some(Boolean) ? 'No runs match these filters.' : showEmpty ? 'No runs recorded yet.' : 'No runs that changed something yet.'),
      h(
        'div',
        { class: 'pager' },
        h('button', { type: 'button', disabled: offset === 0, onclick: () => ((offset = Math.max(0, offset - PAGE)), void load()) }, '← Newer'),
        h('span', null, runs.length ? `Runs ${offset + 1}–${offset + runs.length}` : ''),
        h('button', { type: 'button', disabled: runs.length < PAGE, onclick: () => ((offset += PAGE), void load()) }, 'Older →'),
      ),
    ));
  };
  void load();
  let pairs = '';
  return {
    el,
    title: 'History',
    onStatus(s) {
      const names = s.pairs.map((p) => p.pair).join('\0');
      if (names === pairs) return;
      pairs = names;
      fill(pairSel, h('option', { value: '' }, 'All pairs'), s.pairs.map((p) => h('option', { value: p.pair, selected: p.pair === filter.pair }, p.pair)));
    },
    onEvent(e) {
      if (e.type === 'run_finished' && offset === 0) void load();
    },
  };
}

