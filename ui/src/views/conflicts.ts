// Conflicts: the open ones of every pair (select many, apply one choice, or approve the
// suggested choice), and the side-by-side screen of one: both versions' size, time, hash
// and which is newer, a line diff for text and a preview for images, and keep left / keep
// right / keep both / defer. Conflicts raised by rules set to "manual" are the decisions
// waiting for approval: the suggestion is what the automatic option would keep (the newer).

import { Conflict, ConflictDetail, EngineEvent, Keep, Resolution, Side, SideNow, blob, enc, get, post } from '../api';
import { act, actionButton, isError, View } from '../app';
import { fill, h, keepFocus, throttle, toast } from '../dom';
import { diffLines } from '../diff';
import { bytes, time, timesApart } from '../format';

const RULES: Record<string, string> = {
  R1: 'Changed on both sides, and the contents differ',
  R2: 'New on both sides, and the contents differ',
  R13: 'Properties or name case changed on both sides',
  R16: 'A file on one side, a folder on the other',
};

const IMAGE = /\.(png|jpe?g|gif|webp|bmp)$/i;

export const ruleText = (r: string) => `${r}: ${RULES[r] ?? 'needs a decision'}`;

function suggestion(newer: Side | null | undefined): Keep {
  return newer ?? 'both';
}

const keepLabel = (k: Keep) => (k === 'both' ? 'keep both' : `keep ${k}`);

function detailHash(pair: string, path: string): string {
  return `#/conflict?pair=${enc(pair)}&path=${enc(path)}`;
}

interface Item {
  pair: string;
  conflict: Conflict;
}

async function openConflicts(): Promise<Item[]> {
  return get<Item[]>('/api/conflicts');
}

/** Resolve many; report how many worked and the first failure. */
async function resolveMany(items: { pair: string; path: string; keep: Keep }[]): Promise<void> {
  const byPair = new Map<string, { path: string; keep: Keep }[]>();
  for (const i of items) byPair.set(i.pair, [...(byPair.get(i.pair) ?? []), { path: i.path, keep: i.keep }]);
  let ok = 0;
  const failed: string[] = [];
  for (const [pair, list] of byPair) {
    const res = await post<Resolution[]>(`/api/pairs/${enc(pair)}/conflicts/resolve-batch`, { items: list });
    for (const r of res) {
      if (r.ok) ok++;
      else failed.push(`${r.path}: ${r.error?.message ?? 'failed'}`);
    }
  }
  if (failed.length) throw new Error(`${ok} resolved, ${failed.length} failed. ${failed[0]}`);
  toast(`${ok} conflict${ok === 1 ? '' : 's'} resolved`);
}

export function conflicts(): View {
  const params = new URLSearchParams(location.hash.split('?')[1] ?? '');
  const onlyPair = params.get('pair');
  const body = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
  const el = h(
    'div',
    null,
    h('h1', null, 'Conflicts', onlyPair ? h('span', { class: 'muted' }, ` · ${onlyPair} `, h('a', { href: '#/conflicts' }, '(all pairs)')) : null),
    h('p', { class: 'help' }, 'Nothing is changed on disk until you choose. Keep both keeps the other version as a clash copy beside it.'),
    body,
  );
  const selected = new Set<string>();
  let items: Item[] = [];
  const keyOf = (i: Item) => `${i.pair}\0${i.conflict.path}`;
  // Filters and order (issue 19): by pair, rule and kind; newest, oldest, path or pair first.
  const view = { pair: onlyPair ?? '', rule: '', kind: '', sort: 'newest' };
  const kindOf = (c: Conflict) => (!c.left || !c.right ? 'deleted on one side' : c.rule === 'R16' ? 'file and folder' : c.rule === 'R13' ? 'properties' : 'contents');
  const ORDER: Record<string, (a: Item, b: Item) => number> = {
    newest: (a, b) => b.conflict.created_at - a.conflict.created_at,
    oldest: (a, b) => a.conflict.created_at - b.conflict.created_at,
    path: (a, b) => a.conflict.path.localeCompare(b.conflict.path),
    pair: (a, b) => a.pair.localeCompare(b.pair) || a.conflict.path.localeCompare(b.conflict.path),
  };
  const choice = (id: string, label: string, key: keyof typeof view, options: [string, string][]) => {
    const sel: HTMLSelectElement = h(
      'select',
      { id, onchange: () => ((view[key] = sel.value), keepFocus(body, render)) },
      options.map(([v, text]) => h('option', { value: v, selected: view[key] === v }, text)),
    );
    return [h('label', { for: id }, label), sel];
  };

  const render = () => {
    const shown = items
      .filter((i) => (!view.pair || i.pair === view.pair) && (!view.rule || i.conflict.rule === view.rule) && (!view.kind || kindOf(i.conflict) === view.kind))
      .sort(ORDER[view.sort]);
    const pairs = [...new Set(items.map((i) => i.pair))].sort();
    const rules = [...new Set(items.map((i) => i.conflict.rule))].sort();
    const kinds = [...new Set(items.map((i) => kindOf(i.conflict)))].sort();
    const filters = h(
      'div',
      { class: 'filters', role: 'group', 'aria-label': 'Filter and sort' },
      pairs.length > 1 || view.pair ? choice('c-pair', 'Pair', 'pair', [['', 'All pairs'], ...pairs.map((p): [string, string] => [p, p])]) : null,
      choice('c-rule', 'Rule', 'rule', [['', 'All rules'], ...rules.map((r): [string, string] => [r, RULES[r] ?? r])]),
      choice('c-kind', 'Kind', 'kind', [['', 'All kinds'], ...kinds.map((k): [string, string] => [k, k])]),
      choice('c-sort', 'Sort', 'sort', [
        ['newest', 'Newest first'],
        ['oldest', 'Oldest first'],
        ['path', 'By path'],
        ['pair', 'By pair'],
      ]),
    );
    for (const k of [...selected]) if (!shown.some((i) => keyOf(i) === k)) selected.delete(k);
    if (!items.length) {
      fill(body, h('section', { class: 'card empty' }, h('p', null, 'No open conflicts.')));
      return;
    }
    if (!shown.length) {
      fill(body, filters, h('p', { class: 'muted' }, 'No open conflict matches these filters.'));
      return;
    }
    const chosen = () => shown.filter((i) => selected.has(keyOf(i)));
    // One choice for the selected conflicts; the list is fetched again even after a partial failure.
    const bulk = (keep: Keep | 'suggested', label: string) =>
      actionButton(label, { 'data-bulk': keep, disabled: selected.size === 0 }, async () => {
        const list = chosen();
        if (!list.length) throw new Error('Select conflicts first');
        try {
          await resolveMany(list.map((i) => ({ pair: i.pair, path: i.conflict.path, keep: keep === 'suggested' ? suggestion(i.conflict.newer) : keep })));
        } finally {
          await load();
        }
      });
    const all = h('input', {
      type: 'checkbox',
      id: 'select-all',
      'aria-label': 'Select all',
      checked: shown.every((i) => selected.has(keyOf(i))),
      onchange: (e: Event) => {
        const on = (e.currentTarget as HTMLInputElement).checked;
        for (const i of shown) on ? selected.add(keyOf(i)) : selected.delete(keyOf(i));
        keepFocus(body, render);
      },
    });
    fill(
      body,
      filters,
      h(
        'div',
        { class: 'bulk', role: 'group', 'aria-label': 'Apply to the selected conflicts' },
        h('span', null, `${selected.size} of ${shown.length} selected:`),
        bulk('suggested', 'Approve suggestions'),
        bulk('left', 'Keep left'),
        bulk('right', 'Keep right'),
        bulk('both', 'Keep both'),
      ),
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { class: 'conflicts' },
          h(
            'thead',
            null,
            h('tr', null, h('th', { scope: 'col' }, all), ['Pair', 'Path', 'Rule', 'Left', 'Right', 'Newer', 'Suggested', 'Raised'].map((c) => h('th', { scope: 'col' }, c))),
          ),
          h(
            'tbody',
            null,
            shown.map((i) => {
              const c = i.conflict;
              const [lt, rt] = timesApart(c.left?.mtime, c.right?.mtime);
              const side = (e: Conflict['left'], t: string) => (e ? `${bytes(e.size)}, ${t}` : 'absent');
              return h(
                'tr',
                { 'data-path': c.path, 'data-pair': i.pair },
                h(
                  'td',
                  null,
                  h('input', {
                    type: 'checkbox',
                    'aria-label': `Select ${c.path}`,
                    checked: selected.has(keyOf(i)),
                    onchange: (e: Event) => {
                      (e.currentTarget as HTMLInputElement).checked ? selected.add(keyOf(i)) : selected.delete(keyOf(i));
                      keepFocus(body, render);
                    },
                  }),
                ),
                h('td', null, i.pair),
                h('td', { class: 'path' }, h('a', { href: detailHash(i.pair, c.path) }, c.path)),
                h('td', { title: c.rule }, RULES[c.rule] ?? c.rule),
                h('td', null, side(c.left, lt)),
                h('td', null, side(c.right, rt)),
                h('td', null, c.newer ?? '–'),
                h('td', null, keepLabel(suggestion(c.newer))),
                h('td', null, time(c.created_at)),
              );
            }),
          ),
        ),
      ),
    );
  };

  let shownJson = '';
  const load = async () => {
    try {
      const next = await openConflicts();
      // Unchanged (a run ended elsewhere): the list stays as it is, focus and all.
      const json = JSON.stringify(next);
      if (json === shownJson) return;
      shownJson = json;
      items = next;
      keepFocus(body, render);
    } catch (e) {
      if (!isError(e, 'unauthorized')) fill(body, h('p', { class: 'error' }, (e as Error).message));
    }
  };
  const reload = throttle(() => void load(), 300);
  void load();
  return {
    el,
    title: 'Conflicts',
    onEvent(e: EngineEvent) {
      if (e.type === 'conflict_raised' || e.type === 'run_finished') reload();
    },
  };
}

function sideFacts(label: string, s: SideNow, newer: boolean, modified: string): HTMLElement {
  return h(
    'div',
    { class: `side ${newer ? 'newer' : ''}`, 'data-side': label.toLowerCase() },
    h('h2', null, label, newer ? h('span', { class: 'badge newer' }, 'newer') : null),
    s.exists
      ? h(
          'dl',
          { class: 'facts' },
          h('dt', null, 'Kind'),
          h('dd', null, s.kind === 'dir' ? 'folder' : 'file'),
          h('dt', null, 'Size'),
          h('dd', null, s.size !== undefined ? `${bytes(s.size)} (${s.size} bytes)` : '–'),
          h('dt', null, 'Modified'),
          h('dd', { 'data-mtime': '' }, modified),
          h('dt', null, 'Hash'),
          h('dd', { class: 'hash', title: s.hash ?? '' }, s.hash ? `${s.hash.slice(0, 16)}…` : '–'),
        )
      : h('p', { class: 'muted' }, 'Not on this side.'),
  );
}

export function conflictDetail(pair: string, path: string): View {
  const body = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
  const el = h('div', null, h('p', null, h('a', { href: '#/conflicts' }, '← All conflicts')), h('h1', { class: 'path' }, path), body);
  const urls: string[] = [];
  let busy = false;

  const decide = async (keep: Keep, btn?: HTMLButtonElement) => {
    if (busy) return;
    busy = true;
    const ok = await act(btn ?? null, async () => {
      const r = await post<Resolution>(`/api/pairs/${enc(pair)}/conflicts/resolve`, { path, keep });
      if (!r.ok) throw new Error(r.error?.message ?? `${path}: not resolved`);
    }, `${path}: ${keepLabel(keep)}`);
    busy = false;
    if (ok) await next();
  };

  const here = location.hash;
  const next = async () => {
    let to = '#/conflicts';
    try {
      const rest = (await openConflicts()).filter((i) => !(i.pair === pair && i.conflict.path === path));
      if (rest.length) to = detailHash(rest[0].pair, rest[0].conflict.path);
    } catch {
      /* back to the list */
    }
    // Unless the user went elsewhere meanwhile.
    if (location.hash === here) location.hash = to;
  };

  const preview = async (d: ConflictDetail): Promise<HTMLElement> => {
    const box = h('section', { class: 'card preview', 'aria-label': 'Contents' });
    const file = (side: Side) => blob(`/api/pairs/${enc(pair)}/file?side=${side}&path=${enc(path)}`);
    const l = d.left;
    const r = d.right;
    try {
      if (IMAGE.test(path) && (l.kind === 'file' || r.kind === 'file')) {
        const img = async (side: Side, s: SideNow) => {
          if (s.kind !== 'file') return h('p', { class: 'muted' }, 'Not on this side.');
          const u = URL.createObjectURL(await file(side));
          urls.push(u);
          return h('img', { src: u, alt: `${side} version of ${path}` });
        };
        fill(box, h('h2', null, 'Images'), h('div', { class: 'two' }, await img('left', l), await img('right', r)));
      } else if (l.text && r.text && (l.size ?? 0) + (r.size ?? 0) <= 4 << 20) {
        const [a, b] = await Promise.all([file('left').then((x) => x.text()), file('right').then((x) => x.text())]);
        const rows = diffLines(a, b);
        const changed = rows?.filter((x) => x.kind !== 'same').length ?? 0;
        fill(
          box,
          h('h2', null, 'Text', h('span', { class: 'muted' }, rows ? ` · ${changed} line${changed === 1 ? '' : 's'} differ` : ' · too long to compare line by line')),
          rows
            ? h(
                'div',
                { class: 'table-wrap diff-wrap' },
                h(
                  'table',
                  { class: 'diff' },
                  h('colgroup', null, h('col', { class: 'ln' }), h('col'), h('col', { class: 'ln' }), h('col')),
                  h('thead', null, h('tr', null, h('th', { scope: 'col', colspan: '2' }, 'Left'), h('th', { scope: 'col', colspan: '2' }, 'Right'))),
                  h(
                    'tbody',
                    null,
                    rows.map((x) =>
                      h(
                        'tr',
                        { class: x.kind },
                        h('td', { class: 'ln' }, x.ln ?? ''),
                        h('td', { class: 'l' }, h('pre', null, x.left ?? '')),
                        h('td', { class: 'ln' }, x.rn ?? ''),
                        h('td', { class: 'r' }, h('pre', null, x.right ?? '')),
                      ),
                    ),
                  ),
                ),
              )
            : h('div', { class: 'two' }, h('pre', { class: 'text' }, a), h('pre', { class: 'text' }, b)),
        );
      } else {
        fill(box, h('h2', null, 'Contents'), h('p', { class: 'muted' }, 'No preview for this kind of file; compare the sizes, times and hashes above.'));
      }
    } catch (e) {
      fill(box, h('h2', null, 'Contents'), h('p', { class: 'error' }, (e as Error).message));
    }
    return box;
  };

  const onKey = (e: KeyboardEvent) => {
    if (e.altKey || e.ctrlKey || e.metaKey || (e.target as HTMLElement).closest('input, textarea, select')) return;
    const k = ({ l: 'left', r: 'right', b: 'both' } as Record<string, Keep>)[e.key];
    if (k) {
      e.preventDefault();
      void decide(k);
    } else if (e.key === 'd') {
      e.preventDefault();
      void next();
    }
  };

  const load = async () => {
    let d: ConflictDetail;
    try {
      d = await get<ConflictDetail>(`/api/pairs/${enc(pair)}/conflicts/detail?path=${enc(path)}`);
    } catch (e) {
      fill(body, h('p', { class: 'error' }, (e as Error).message));
      return;
    }
    const c = d.record;
    if (!c) {
      fill(body, h('section', { class: 'card' }, h('p', null, 'This conflict is not open (any more). '), h('a', { href: '#/conflicts' }, 'Back to the conflicts')));
      return;
    }
    const newer = d.newer ?? c.newer;
    const sug = suggestion(newer);
    const [lt, rt] = timesApart(d.left.mtime, d.right.mtime);
    const button = (keep: Keep, label: string, key: string, cls = '') =>
      h('button', { type: 'button', class: cls, 'data-keep': keep, 'aria-keyshortcuts': key, onclick: (e: Event) => decide(keep, e.currentTarget as HTMLButtonElement) }, label, h('kbd', null, key));
    fill(
      body,
      h(
        'section',
        { class: 'card' },
        h('p', null, h('strong', null, 'Pair: '), pair, ' · ', h('strong', null, 'Rule: '), ruleText(c.rule)),
        h('p', null, h('strong', null, 'Recorded: '), c.action, ' · ', time(c.created_at)),
        h('p', { class: 'suggest' }, h('strong', null, 'Suggested: '), sug === 'both' ? 'keep both (neither is newer)' : `keep the newer version (${sug})`),
      ),
      h('div', { class: 'two' }, sideFacts('Left', d.left, newer === 'left', lt), sideFacts('Right', d.right, newer === 'right', rt)),
      h(
        'div',
        { class: 'buttons decide', role: 'group', 'aria-label': 'Decision' },
        button('left', 'Keep left', 'L', sug === 'left' ? 'primary' : ''),
        button('right', 'Keep right', 'R', sug === 'right' ? 'primary' : ''),
        button('both', 'Keep both', 'B', sug === 'both' ? 'primary' : ''),
        h('button', { type: 'button', 'data-keep': 'defer', 'aria-keyshortcuts': 'D', onclick: () => void next() }, 'Defer', h('kbd', null, 'D')),
      ),
      await preview(d),
    );
  };
  void load();
  document.addEventListener('keydown', onKey);
  return {
    el,
    title: `Conflict ${path}`,
    dispose() {
      document.removeEventListener('keydown', onKey);
      urls.forEach((u) => URL.revokeObjectURL(u));
    },
  };
}
