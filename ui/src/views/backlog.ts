// Backlog: per pair, the copies in flight (progress, speed, time left) and the queue in
// the order it runs: smallest first, large files in their own lane. Progress events
// update the bars as they arrive; the queue is fetched again when a plan or action ends.
// Below it, what each pair finished lately: done, deferred or failed, with the reason.

import { BacklogItem, EngineEvent, FinishedItem, Status, enc, get } from '../api';
import { View } from '../app';
import { fill, h, throttle } from '../dom';
import { ago, bytes, plural, span } from '../format';

const arrow = (side: string) => (side === 'right' ? 'left → right' : 'right → left');

interface Live {
  done: number;
  total: number;
  rate: number;
}

export function backlog(): View {
  const body = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
  const el = h('div', null, h('h1', null, 'Backlog'), h('p', { class: 'help' }, 'Copies run smallest first; files above the large-file size run in their own lane beside them.'), body);
  let status: Status | null = null;
  const queues = new Map<string, BacklogItem[]>();
  const recent = new Map<string, FinishedItem[]>();
  const live = new Map<string, Live>();

  const row = (pair: string, it: BacklogItem, i: number) => {
    const l = live.get(`${pair}\0${it.side}\0${it.path}`);
    const done = l?.done ?? it.done;
    const pct = it.size ? Math.min(100, Math.floor((done / it.size) * 100)) : it.copying ? 100 : 0;
    const eta = l && l.rate > 0 ? span(Math.ceil((it.size - done) / l.rate)) : '–';
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

  const render = () => {
    if (!status) return;
    fill(
      body,
      status.pairs.map((p) => {
        const items = queues.get(p.pair) ?? [];
        return h(
          'section',
          { class: 'card', 'data-pair': p.pair },
          h('h2', null, p.pair, h('span', { class: 'muted' }, ` · ${items.length ? `${items.length} queued or copying, ${bytes(items.reduce((n, i) => n + i.size, 0))}` : 'nothing to copy'}`)),
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
          finishedTable(recent.get(p.pair) ?? []),
        );
      }),
    );
    // Widths through the CSSOM (the page's CSP allows no inline style attributes).
    body.querySelectorAll<HTMLElement>('.bar').forEach((b) => (b.style.width = `${b.dataset.pct}%`));
  };

  const load = throttle(async () => {
    if (!status) return;
    await Promise.all(
      status.pairs.map(async (p) => {
        try {
          const [items, done] = await Promise.all([
            get<BacklogItem[]>(`/api/pairs/${enc(p.pair)}/backlog`),
            get<FinishedItem[]>(`/api/pairs/${enc(p.pair)}/recent`),
          ]);
          queues.set(p.pair, items);
          recent.set(p.pair, done);
        } catch {
          queues.set(p.pair, []);
        }
      }),
    );
    render();
  }, 300);
  const timer = window.setInterval(load, 2000);

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
        load();
      }
    },
    dispose() {
      window.clearInterval(timer);
    },
  };
}
