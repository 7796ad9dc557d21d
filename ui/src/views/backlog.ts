// Backlog: per pair, the copies in flight (progress, speed, time left) and the queue in
// the order it runs: smallest first, large files in their own lane. Progress events
// update the bars as they arrive; the queue is fetched again when a plan or action ends.
// Below it, what each pair finished lately: done, deferred or failed, with the reason.

import { BacklogItem, EngineEvent, FinishedItem, Status, enc, get } from '../api';
import { View } from '../app';
import { fill, h, keepFocus, throttle } from '../dom';
import { ago, bytes, plural, span } from '../format';

const arrow = (side: string) => (side === 'right' ? 'left → right' : 'right → left');

interface Live {
  done: number;
  total: number;
  rate: number;
}

export function backlog(): View {
  const body = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
  let query = '';
  const search: HTMLInputElement = h('input', {
    type: 'search',
    id: 'backlog-search',
    placeholder: 'Filter by path',
    'aria-label': 'Filter the backlog by path',
    oninput: () => ((query = search.value.trim().toLowerCase()), render()),
  });
  const el = h(
    'div',
    null,
    h('h1', null, 'Backlog'),
    h('p', { class: 'help' }, 'Copies run smallest first; files above the large-file size run in their own lane beside them.'),
    h('div', { class: 'filters' }, search),
    body,
  );
  // The bytes of the work seen since the pair was last idle: the overall bar's 100%.
  const seenTotal = new Map<string, number>();
  let status: Status | null = null;
  const queues = new Map<string, BacklogItem[]>();
  const recent = new Map<string, FinishedItem[]>();
  const live = new Map<string, Live>();

  const row = (pair: string, it: BacklogItem, i: number) => {
    const l = live.get(`${pair}\0${it.side}\0${it.path}`);
    const done = l?.done ?? it.done;
    const pct = it.size ? Math.min(100, Math.floor((done / it.size) * 100)) : it.copying ? 100 : 0;
    const eta = l && l.rate > 0 && done < it.size ? span(Math.ceil((it.size - done) / l.rate)) : '–';
    return h(
      'tr',
      { class: it.copying ? 'copying' : '', 'data-path': it.path },
      h('td', { class: 'num' }, String(i + 1)),
      h('td', { class: 'path' }, it.path),
      h('td', null, arrow(it.side)),
      h('td', { class: 'num' }, bytes(it.size)),
      h('td', null, it.lane),
      h(
        'td',
        null,
        it.state === 'verifying'
          ? h('span', { class: 'state verifying' }, 'verifying')
          : it.copying
            ? h('div', { class: 'progress', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': String(pct), 'aria-label': `${it.path} ${pct}%` }, h('div', { class: 'bar', 'data-pct': String(pct) }))
            : 'queued',
      ),
      h('td', { class: 'num' }, l?.rate ? `${bytes(l.rate)}/s` : '–'),
      h('td', { class: 'num' }, it.copying ? eta : '–'),
    );
  };

  const finishedRow = (f: FinishedItem) =>
    h(
      'tr',
      { class: `finished ${f.state}`, 'data-path': f.path },
      h('td', null, ago(f.at * 1e9)),
      h('td', null, f.op),
      h('td', { class: 'path' }, f.path),
      h('td', null, f.side ? arrow(f.side) : '–'),
      h('td', { class: 'num' }, f.bytes ? bytes(f.bytes) : '–'),
      h('td', null, h('span', { class: `state ${f.state}` }, f.state)),
      h('td', null, f.detail ?? ''),
    );

  const finishedTable = (items: FinishedItem[]) =>
    items.length
      ? h(
          'div',
          { class: 'recent' },
          h('h3', null, `Recently finished (${items.length}${items.some((f) => f.state === 'failed') ? `, ${items.filter((f) => f.state === 'failed').length} failed` : ''})`),
          h(
            'div',
            { class: 'table-wrap' },
            h(
              'table',
              { class: 'recent' },
              h('thead', null, h('tr', null, ['When', 'Action', 'File', 'Direction', 'Size', 'State', 'Error or reason'].map((c) => h('th', { scope: 'col' }, c)))),
              h('tbody', null, items.map(finishedRow)),
            ),
          ),
        )
      : null;

  /** The pair's whole backlog as one bar: bytes left against the work seen, and the time left at the current speed. */
  const overall = (pair: string, items: BacklogItem[]): HTMLElement | null => {
    const left = items.reduce((n, it) => n + Math.max(0, it.size - (live.get(`${pair}\0${it.side}\0${it.path}`)?.done ?? it.done)), 0);
    if (!items.length) {
      seenTotal.delete(pair);
      return null;
    }
    const total = Math.max(seenTotal.get(pair) ?? 0, left);
    seenTotal.set(pair, total);
    const rate = items.reduce((n, it) => n + (it.copying ? live.get(`${pair}\0${it.side}\0${it.path}`)?.rate ?? 0 : 0), 0);
    const pct = total ? Math.min(100, Math.floor(((total - left) / total) * 100)) : 0;
    return h(
      'div',
      { class: 'overall' },
      h('div', { class: 'progress', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': String(pct), 'aria-label': `${pair}: ${pct}% of the backlog done` }, h('div', { class: 'bar', 'data-pct': String(pct) })),
      h('p', { class: 'help', 'data-overall': pair }, `${pct}% done · ${bytes(left)} left${rate > 0 ? ` · about ${span(Math.ceil(left / rate))} at ${bytes(rate)}/s` : ''}`),
    );
  };

  const render = () => {
    if (!status) return;
    const match = (path: string) => !query || path.toLowerCase().includes(query);
    keepFocus(body, () => fill(
      body,
      status!.pairs.map((p) => {
        const all = queues.get(p.pair) ?? [];
        const items = all.filter((it) => match(it.path));
        return h(
          'section',
          { class: 'card', 'data-pair': p.pair },
          h('h2', null, p.pair, h('span', { class: 'muted' }, ` · ${all.length ? `${all.length} queued or copying, ${bytes(all.reduce((n, i) => n + i.size, 0))}` : 'nothing to copy'}${query ? ` · ${items.length} match` : ''}`)),
          overall(p.pair, all),
          p.backlog.waiting_paths ? h('p', { class: 'help' }, `${plural(p.backlog.waiting_paths, 'changed path')} waiting to be planned${p.paused ? ' (paused)' : ''}.`) : null,
          items.length
            ? h(
                'div',
                { class: 'table-wrap' },
                h(
                  'table',
                  { class: 'backlog' },
                  h('thead', null, h('tr', null, ['#', 'File', 'Direction', 'Size', 'Lane', 'Progress', 'Speed', 'Time left'].map((c) => h('th', { scope: 'col' }, c)))),
                  h('tbody', null, items.map((it, i) => row(p.pair, it, i))),
                ),
              )
            : null,
          finishedTable((recent.get(p.pair) ?? []).filter((f) => match(f.path))),
        );
      }),
    ));
    // Widths through the CSSOM (the page's CSP allows no inline style attributes).
    body.querySelectorAll<HTMLElement>('.bar').forEach((b) => (b.style.width = `${b.dataset.pct}%`));
  };

  // Answers can come back out of order: only the newest request's answer is shown (an
  // older one listed copies that had finished meanwhile).
  let asked = 0;
  const load = throttle(async () => {
    if (!status) return;
    const mine = ++asked;
    const answers = new Map<string, [BacklogItem[], FinishedItem[] | null]>();
    await Promise.all(
      status.pairs.map(async (p) => {
        try {
          const [items, done] = await Promise.all([
            get<BacklogItem[]>(`/api/pairs/${enc(p.pair)}/backlog`),
            get<FinishedItem[]>(`/api/pairs/${enc(p.pair)}/recent`),
          ]);
          answers.set(p.pair, [items, done]);
        } catch {
          answers.set(p.pair, [[], null]);
        }
      }),
    );
    if (mine !== asked) return;
    for (const [pair, [items, done]] of answers) {
      queues.set(pair, items);
      if (done) recent.set(pair, done);
    }
    render();
  }, 300);
  // Events bring the changes; this only catches what a dropped event missed.
  const timer = window.setInterval(load, 10000);

  return {
    el,
    title: 'Backlog',
    onStatus(s) {
      const first = !status;
      status = s;
      if (first) load();
      else render();
    },
    onEvent(e: EngineEvent) {
      if (e.type === 'progress') {
        live.set(`${e.pair}\0${e.side}\0${e.path}`, { done: e.done as number, total: e.total as number, rate: e.bytes_per_s as number });
        render();
      } else if (['plan_ready', 'action_started', 'action_finished', 'run_finished'].includes(e.type)) {
        // A finished copy's speed is not shown again if the same path is copied later.
        if (e.type === 'action_finished') live.delete(`${e.pair}\0${e.side}\0${e.path}`);
        load();
      }
    },
    dispose() {
      window.clearInterval(timer);
    },
  };
}
