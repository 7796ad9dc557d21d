// Settings: a form for every key of the config file, globally and per pair (a blank field
// inherits; its placeholder shows the value in effect), pairs added and removed, schedules,
// bandwidth windows and email. Every change is checked by the service as you type (its
// message goes next to the field the error names); saving writes the TOML atomically,
// keeping its comments, and the service applies it at once.

import { ApiError, post, send, get, SideReport, describeCaps } from '../api';
import { View, isError } from '../app';
import { debounce, fill, h, toast } from '../dom';
import { durationText, sizeText } from '../format';

type Kind = 'int' | 'text' | 'duration' | 'size' | 'rate' | 'bool' | 'select' | 'list' | 'path' | 'multi';
interface Field {
  key: string;
  label: string;
  kind: Kind;
  help?: string;
  options?: string[];
}

interface Settings {
  file: string;
  text: string;
  raw: Record<string, any>;
  config: any;
  /** Hosted by the tray app (tandem-desktop), not a headless service. */
  desktop_app: boolean;
}

const OPTION_FIELDS: Field[] = [
  { key: 'watch', label: 'Notice changes by', kind: 'select', options: ['auto', 'events', 'both', 'poll', 'off'], help: 'auto: file events on a local disk, events and polling on a cloud drive or network share, polling where a side sends no events; events: file events only; both: events and a scan every poll interval; poll: the scan only; off: schedules and manual syncs only' },
  { key: 'watch_left', label: 'Notice changes on the left by', kind: 'select', options: ['auto', 'events', 'both', 'poll', 'off'], help: 'overrides the setting above for the left side only' },
  { key: 'watch_right', label: 'Notice changes on the right by', kind: 'select', options: ['auto', 'events', 'both', 'poll', 'off'], help: 'overrides the setting above for the right side only, e.g. both for a cloud drive mounted as a folder' },
  { key: 'conflicts.r1', label: 'Changed on both sides (R1)', kind: 'select', options: ['clash', 'newer-wins', 'manual'], help: 'clash: the newer keeps the name, the older is kept as a clash copy; newer-wins: the older goes to the trash; manual: wait for your decision' },
  { key: 'conflicts.r2', label: 'New on both sides (R2)', kind: 'select', options: ['clash', 'newer-wins', 'manual'] },
  { key: 'conflicts.r13', label: 'Properties or case changed on both (R13)', kind: 'select', options: ['newer', 'left-wins', 'manual'] },
  { key: 'debounce', label: 'Quiet time before a file still being written is taken', kind: 'duration', help: 'e.g. 300ms, 2s' },
  { key: 'max_wait', label: 'Longest wait for a file that keeps changing', kind: 'duration', help: 'e.g. 10s' },
  { key: 'poll_interval', label: 'Poll interval', kind: 'duration', help: 'e.g. 30s' },
  { key: 'reconcile_every', label: 'Full reconciliation every', kind: 'duration', help: 'e.g. 6h' },
  { key: 'concurrency', label: 'Parallel copies', kind: 'int' },
  { key: 'large_file', label: 'Large-file lane from', kind: 'size', help: 'e.g. 64 MB' },
  { key: 'large_workers', label: 'Large-file workers', kind: 'int' },
  { key: 'bandwidth.left_to_right', label: 'Bandwidth left → right', kind: 'rate', help: 'bytes per second, e.g. 10 MB; blank or "unlimited" for no limit' },
  { key: 'bandwidth.right_to_left', label: 'Bandwidth right → left', kind: 'rate' },
  { key: 'max_delete_percent', label: 'Stop when a run would delete more than (%)', kind: 'int' },
  { key: 'soft_delete_max_bytes', label: 'Keep deleted files in the trash up to', kind: 'size', help: 'larger files are deleted for good' },
  { key: 'trash_retention_days', label: 'Keep the trash for (days)', kind: 'int' },
  { key: 'history_retention_days', label: 'Keep history for (days)', kind: 'int' },
  { key: 'portable_names', label: 'Refuse names Windows cannot hold', kind: 'bool' },
  { key: 'max_path_len', label: 'Longest path on Windows-like sides', kind: 'int' },
  { key: 'use_default_ignores', label: 'Skip system files (Thumbs.db, .DS_Store, …)', kind: 'bool' },
  { key: 'ignore', label: 'Ignore patterns', kind: 'list', help: 'one glob per line; with a / it matches the path, otherwise the name' },
];

const SCHEDULE_KINDS = ['every', 'cron', 'daily', 'weekly', 'monthly'];

function getIn(obj: any, dotted: string): any {
  return dotted.split('.').reduce((o, k) => (o == null ? undefined : o[k]), obj);
}

/** What a field's option means now (the placeholder of a blank field). */
function effective(opts: any, key: string): string {
  if (!opts) return '';
  const show = (v: any) => (v === null || v === undefined ? '' : String(v));
  switch (key) {
    // In the units a person writes (not "21600s" or "67108864").
    case 'debounce':
      return durationText(opts.debounce_ms);
    case 'max_wait':
      return durationText(opts.max_wait_ms);
    case 'poll_interval':
      return durationText(opts.poll_interval_s * 1000);
    case 'watch_left':
      return show(opts.watch_sides?.[0] ?? opts.watch);
    case 'watch_right':
      return show(opts.watch_sides?.[1] ?? opts.watch);
    case 'reconcile_every':
      return durationText(opts.reconcile_every_s * 1000);
    case 'large_file':
      return sizeText(opts.large_file_bytes);
    case 'soft_delete_max_bytes':
      return sizeText(opts.soft_delete_max_bytes);
    case 'conflicts.r1':
    case 'conflicts.r2':
    case 'conflicts.r13':
      return show(opts.rules?.[key.split('.')[1]]);
    case 'bandwidth.left_to_right':
    case 'bandwidth.right_to_left':
      return sizeText(opts.bandwidth?.[key.split('.')[1]]) || 'unlimited';
    case 'ignore':
      return (opts.ignore ?? []).join('\n');
    default:
      return show(opts[key]);
  }
}

function toText(v: any): string {
  if (v === null || v === undefined) return '';
  if (Array.isArray(v)) return v.join('\n');
  return String(v);
}

function toValue(kind: Kind, s: string): unknown {
  const t = s.trim();
  if (kind === 'list') {
    const lines = s.split('\n').map((x) => x.trim()).filter(Boolean);
    return lines.length ? lines : null;
  }
  if (t === '') return null;
  if (kind === 'bool') return t === 'true';
  if ((kind === 'int' || kind === 'duration' || kind === 'size' || kind === 'rate') && /^-?\d+$/.test(t)) return Number(t);
  return t;
}

export function settings(): View {
  const body = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
  const el = h('div', null, h('h1', null, 'Settings'), body);
  void load(body);
  return { el, title: 'Settings' };
}

async function load(body: HTMLElement): Promise<void> {
  let s: Settings;
  try {
    s = await get<Settings>('/api/settings');
  } catch (e) {
    if (isError(e, 'no_config_file')) {
      fill(
        body,
        h(
          'section',
          { class: 'card' },
          h('p', null, 'This service keeps one pair given on its command line, so there is no settings file to edit.'),
          h('p', null, 'Start it with a config file to change settings here: ', h('code', null, 'tandem run --config ~/.config/tandem/tandem.toml'), '.'),
        ),
      );
    } else if (!isError(e, 'unauthorized')) fill(body, h('p', { class: 'error' }, (e as Error).message));
    return;
  }
  const form = new SettingsForm(body, s);
  form.render();
  void form.validate();
}

class SettingsForm {
  private edits = new Map<string, unknown>();
  private fields = new Map<string, { input: HTMLElement; error: HTMLElement }>();
  private status = h('p', { class: 'form-status', role: 'status', 'aria-live': 'polite' });
  private globalError = h('p', { class: 'error', role: 'alert' });
  private saveBtn = h('button', { type: 'submit', class: 'primary', id: 'save', disabled: true }, 'Save');
  private form: HTMLFormElement | null = null;
  private pairNames: string[];

  constructor(
    private body: HTMLElement,
    private s: Settings,
  ) {
    this.pairNames = (s.config.pairs ?? []).map((p: any) => p.name);
  }

  private edit(key: string, value: unknown, original: unknown): void {
    if (JSON.stringify(value ?? null) === JSON.stringify(original ?? null)) this.edits.delete(key);
    else this.edits.set(key, value);
    this.changed();
  }

  private changed(): void {
    this.saveBtn.disabled = this.edits.size === 0;
    this.status.textContent = this.edits.size ? `${this.edits.size} unsaved change${this.edits.size === 1 ? '' : 's'}; checking…` : '';
    this.validateSoon();
  }

  private validateSoon = debounce(() => void this.validate(), 250);

  private payload() {
    return { edits: [...this.edits].map(([key, value]) => ({ key, value })) };
  }

  private clearErrors(): void {
    for (const f of this.fields.values()) {
      f.error.textContent = '';
      f.error.classList.remove('warning');
      f.input.removeAttribute('aria-invalid');
    }
    this.globalError.textContent = '';
    this.globalError.classList.remove('warning');
  }

  /** The field a key of the file names (`pair[0].x` → pair NAME's x; the pair after the last is the new one). */
  private fieldFor(fileKey: string): { input: HTMLElement; error: HTMLElement } | undefined {
    const key = fileKey.replace(/^pair\[(\d+)\]/, (_, i) => `pair.${this.pairNames[Number(i)] ?? (Number(i) === this.pairNames.length ? '@new' : i)}`);
    let best = '';
    for (const k of this.fields.keys()) {
      if ((key === k || key.startsWith(k + '.') || key.startsWith(k + '[')) && k.length > best.length) best = k;
    }
    return best ? this.fields.get(best) : undefined;
  }

  /** Put the server's message next to the field its key names. */
  private showError(e: { message: string; key?: string }): void {
    this.clearErrors();
    const f = this.fieldFor(e.key ?? '');
    if (f) {
      f.error.textContent = e.message;
      f.input.setAttribute('aria-invalid', 'true');
    } else this.globalError.textContent = e.message;
  }

  /** Warnings (a missing, relative or overlapping folder) beside their fields; saving stays possible. */
  private showWarnings(ws: { key: string; message: string }[]): void {
    for (const w of ws) {
      const f = this.fieldFor(w.key);
      const box = f?.error ?? this.globalError;
      box.classList.add('warning');
      box.textContent = box.textContent ? `${box.textContent} ${w.message}` : `Warning: ${w.message}`;
    }
  }

  /** Check the settings with the edits (without edits: the saved ones, for their warnings). */
  async validate(): Promise<boolean> {
    try {
      const r = await post<{ ok: boolean; warnings?: { key: string; message: string }[]; error?: { code: string; message: string; key?: string } }>('/api/settings/validate', this.payload());
      if (r.ok) {
        this.clearErrors();
        this.showWarnings(r.warnings ?? []);
        if (!this.edits.size) return true;
        this.status.textContent = `${this.edits.size} unsaved change${this.edits.size === 1 ? '' : 's'}; valid`;
        this.saveBtn.disabled = false;
        return true;
      }
      this.showError(r.error!);
      this.status.textContent = 'Fix the marked field to save.';
      this.saveBtn.disabled = true;
      return false;
    } catch (e) {
      this.globalError.textContent = (e as Error).message;
      return false;
    }
  }

  private async save(e: Event): Promise<void> {
    e.preventDefault();
    if (!this.edits.size) return;
    this.saveBtn.disabled = true;
    // While saving, the form takes no typing (inert): nothing typed meanwhile can be lost
    // when the saved settings come back. The focus returns to the same field afterwards.
    const focused = (document.activeElement as HTMLElement | null)?.id;
    this.status.textContent = 'Saving…';
    if (this.form) this.form.inert = true;
    this.form?.setAttribute('aria-busy', 'true');
    try {
      await send('PATCH', '/api/settings', this.payload());
      toast(`Saved to ${this.s.file} and applied`);
      await load(this.body);
      if (focused) document.getElementById(focused)?.focus();
    } catch (x) {
      if (this.form) this.form.inert = false;
      this.form?.removeAttribute('aria-busy');
      if (x instanceof ApiError) this.showError(x);
      else this.globalError.textContent = String(x);
      this.status.textContent = 'Not saved.';
      this.saveBtn.disabled = false;
    }
  }

  private field(f: Field, prefix: string, raw: any, opts: any, inherit: string): HTMLElement {
    const key = prefix + f.key;
    const id = 'k-' + key.replace(/[^A-Za-z0-9_-]/g, '_');
    const original = getIn(raw, f.key);
    const current = toText(original);
    const eff = effective(opts, f.key);
    const error = h('p', { class: 'field-error', id: id + '-err', role: 'alert' });
    const help = f.help ? h('p', { class: 'help', id: id + '-help' }, f.help) : null;
    const describedby = [f.help ? id + '-help' : '', id + '-err'].filter(Boolean).join(' ');
    let input: HTMLElement;
    if (f.kind === 'select' || f.kind === 'bool') {
      const opts2 = f.kind === 'bool' ? ['true', 'false'] : f.options!;
      const sel: HTMLSelectElement = h(
        'select',
        { id, 'data-key': key, 'aria-describedby': describedby, onchange: () => this.edit(key, toValue(f.kind, sel.value), original) },
        h('option', { value: '' }, `${inherit} (${f.kind === 'bool' ? (eff === 'true' ? 'yes' : 'no') : eff})`),
        opts2.map((o) => h('option', { value: o, selected: current === o }, f.kind === 'bool' ? (o === 'true' ? 'yes' : 'no') : o)),
      );
      input = sel;
    } else if (f.kind === 'list') {
      const ta: HTMLTextAreaElement = h('textarea', { id, 'data-key': key, rows: '3', placeholder: eff, spellcheck: 'false', 'aria-describedby': describedby, oninput: () => this.edit(key, toValue('list', ta.value), original) });
      ta.value = current;
      input = ta;
    } else {
      const inp: HTMLInputElement = h('input', {
        id,
        'data-key': key,
        type: 'text',
        inputmode: f.kind === 'int' ? 'numeric' : null,
        value: current,
        placeholder: eff,
        spellcheck: 'false',
        autocomplete: 'off',
        'aria-describedby': describedby,
        oninput: () => this.edit(key, toValue(f.kind, inp.value), original),
      });
      input = inp;
    }
    this.fields.set(key, { input, error });
    return h('div', { class: 'field' }, h('label', { for: id }, f.label), input, help, error);
  }

  /** Rows of tables (`[[schedule]]`, `[[bandwidth.window]]`), edited as one value. */
  private tables(key: string, title: string, columns: { name: string; label: string; options?: string[] }[], rows: Record<string, string>[], toObj: (r: Record<string, string>) => Record<string, unknown>, help: string): HTMLElement {
    const original = rows.length ? rows.map(toObj) : null;
    const tbody = h('tbody');
    const error = h('p', { class: 'field-error', role: 'alert' });
    const wrap = h('fieldset', { class: 'tables', 'data-key': key });
    this.fields.set(key, { input: wrap, error });
    const update = () => this.edit(key, rows.length ? rows.map(toObj) : null, original);
    const draw = () => {
      fill(
        tbody,
        rows.map((r, i) =>
          h(
            'tr',
            null,
            columns.map((c) => {
              const label = `${title} ${i + 1}: ${c.label}`;
              if (c.options) {
                const sel: HTMLSelectElement = h('select', { 'aria-label': label, onchange: () => ((r[c.name] = sel.value), update()) }, c.options.map((o) => h('option', { value: o, selected: r[c.name] === o }, o || '–')));
                return h('td', null, sel);
              }
              const inp: HTMLInputElement = h('input', { type: 'text', 'aria-label': label, value: r[c.name] ?? '', spellcheck: 'false', oninput: () => ((r[c.name] = inp.value), update()) });
              return h('td', null, inp);
            }),
            h('td', null, h('button', { type: 'button', 'aria-label': `Remove ${title.toLowerCase()} ${i + 1}`, onclick: () => (rows.splice(i, 1), draw(), update()) }, 'Remove')),
          ),
        ),
      );
    };
    draw();
    fill(
      wrap,
      h('legend', null, title),
      h('p', { class: 'help' }, help),
      h('div', { class: 'table-wrap' }, h('table', { class: 'edit' }, h('thead', null, h('tr', null, columns.map((c) => h('th', { scope: 'col' }, c.label)), h('th'))), tbody)),
      h('button', { type: 'button', onclick: () => (rows.push(Object.fromEntries(columns.map((c) => [c.name, c.options ? c.options[0] : '']))), draw(), update()) }, `Add ${title.toLowerCase().replace(/s$/, '')}`),
      error,
    );
    return wrap;
  }

  private schedules(prefix: string, raw: any, help: string): HTMLElement {
    const rows = ((raw?.schedule ?? []) as any[]).map((t) => {
      const kind = SCHEDULE_KINDS.find((k) => k in t) ?? 'every';
      return { name: toText(t.name), kind, when: toText(t[kind]), tz: toText(t.tz), run: toText(t.run) };
    });
    return this.tables(
      prefix + 'schedule',
      'Schedules',
      [
        { name: 'name', label: 'Name' },
        { name: 'kind', label: 'Kind', options: SCHEDULE_KINDS },
        { name: 'when', label: 'When' },
        { name: 'tz', label: 'Time zone' },
        { name: 'run', label: 'Run', options: ['', 'sync', 'reconcile'] },
      ],
      rows,
      (r) => ({ name: r.name.trim() || null, [r.kind]: r.when.trim(), tz: r.tz.trim() || null, run: r.run || null }),
      help,
    );
  }

  private windows(prefix: string, raw: any): HTMLElement {
    const rows = ((raw?.bandwidth?.window ?? []) as any[]).map((t) => ({ from: toText(t.from), to: toText(t.to), left_to_right: toText(t.left_to_right), right_to_left: toText(t.right_to_left) }));
    const rate = (s: string) => (s.trim() === '' ? null : /^\d+$/.test(s.trim()) ? Number(s.trim()) : s.trim());
    return this.tables(
      prefix + 'bandwidth.window',
      'Bandwidth windows',
      [
        { name: 'from', label: 'From' },
        { name: 'to', label: 'To' },
        { name: 'left_to_right', label: 'Left → right' },
        { name: 'right_to_left', label: 'Right → left' },
      ],
      rows,
      (r) => ({ from: r.from.trim(), to: r.to.trim(), left_to_right: rate(r.left_to_right), right_to_left: rate(r.right_to_left) }),
      'Limits by time of day, e.g. from 08:00 to 18:00 at 5 MB; outside the windows the limits above apply.',
    );
  }

  private newPair(): HTMLElement {
    // Each side is a folder, an S3 bucket or a WebDAV account; a server's endpoint, user
    // and where its secret is (a file or a variable, never the secret) go in `remote`.
    type Kind = 'folder' | 's3' | 'webdav';
    const v = { name: '', kind: { left: 'folder' as Kind, right: 'folder' as Kind }, where: { left: '', right: '' }, bucket: { left: '', right: '' } };
    const remote: Record<string, string> = { endpoint: '', region: '', user: '', keyring: '', secret_file: '', secret_env: '' };
    const location = (side: 'left' | 'right'): string => {
      const w = v.where[side].trim();
      switch (v.kind[side]) {
        case 'folder':
          return w;
        case 's3':
          return v.bucket[side].trim() ? `s3://${v.bucket[side].trim()}${w ? '/' + w.replace(/^\/+/, '') : ''}` : '';
        case 'webdav': {
          const m = /^(https?):\/\/(.+)$/.exec(w);
          if (!m) return w;
          return `${m[1] === 'http' ? 'webdav+http' : 'webdav'}://${m[2]}`;
        }
      }
    };
    const remoteEdit = (): Record<string, string> | null => {
      if (v.kind.left === 'folder' && v.kind.right === 'folder') return null;
      const r: Record<string, string> = {};
      for (const [k, x] of Object.entries(remote)) if (x.trim()) r[k] = x.trim();
      return Object.keys(r).length ? r : null;
    };
    let lastKey = '';
    const update = () => {
      if (lastKey) this.edits.delete(lastKey);
      lastKey = '';
      if (v.name.trim()) {
        lastKey = `pair.${v.name.trim()}`;
        this.edits.set(lastKey, { left: location('left') || null, right: location('right') || null, remote: remoteEdit() });
      }
      accountBox.hidden = v.kind.left === 'folder' && v.kind.right === 'folder';
      this.changed();
    };
    // The new pair's fields answer to the keys of the pair after the last one (`pair.@new.name`):
    // its errors and warnings show beside them, not in the save bar.
    const register = (key: string, input: HTMLElement, id: string) => {
      const error = h('p', { class: 'field-error', id: `${id}-err`, role: 'alert' });
      input.setAttribute('aria-describedby', `${id}-err`);
      this.fields.set(`pair.@new.${key}`, { input, error });
      return error;
    };
    const text = (id: string, label: string, help: string, set: (x: string) => void, type = 'text', key?: string) => {
      const inp: HTMLInputElement = h('input', { id, type, spellcheck: 'false', autocomplete: 'off', oninput: () => (set(inp.value), update()) });
      return h('div', { class: 'field' }, h('label', { for: id }, label), inp, h('p', { class: 'help' }, help), key ? register(key, inp, id) : null);
    };
    const sideBox = (side: 'left' | 'right', title: string) => {
      const id = `new-pair-${side}`;
      const result = h('p', { class: 'help', id: `${id}-test`, role: 'status' });
      const kindSel: HTMLSelectElement = h(
        'select',
        { id: `${id}-kind`, onchange: () => ((v.kind[side] = kindSel.value as Kind), shape(), update()) },
        h('option', { value: 'folder' }, 'Folder'),
        h('option', { value: 's3' }, 'S3 bucket (AWS, MinIO, B2, R2, Wasabi, …)'),
        h('option', { value: 'webdav' }, 'WebDAV account (pCloud, Nextcloud, Box, …)'),
      );
      const whereLabel = h('label', { for: id }, title);
      const whereHelp = h('p', { class: 'help' });
      const whereInp: HTMLInputElement = h('input', { id, type: 'text', spellcheck: 'false', autocomplete: 'off', oninput: () => ((v.where[side] = whereInp.value), update()) });
      const bucketField = text(`${id}-bucket`, 'Bucket', 'the bucket must exist', (x) => (v.bucket[side] = x));
      const testBtn: HTMLButtonElement = h(
        'button',
        {
          type: 'button',
          id: `${id}-test-button`,
          onclick: async () => {
            const loc = location(side);
            if (!loc) {
              result.textContent = 'Fill in where this side is first.';
              return;
            }
            testBtn.disabled = true;
            result.textContent = 'Connecting…';
            result.classList.remove('error');
            try {
              const r = await post<SideReport>('/api/test-connection', { location: loc, remote: remoteEdit() ?? {} });
              result.textContent = `Connected to ${r.describe}: ${describeCaps(r.caps)}${r.note ? `. ${r.note}` : ''}`;
            } catch (e) {
              result.classList.add('error');
              const what = e instanceof ApiError && e.code === 'remote_unreachable' ? 'The server did not answer' : 'Cannot connect';
              result.textContent = `${what}: ${e instanceof Error ? e.message : String(e)}`;
            } finally {
              testBtn.disabled = false;
            }
          },
        },
        'Test connection',
      );
      const shape = () => {
        const k = v.kind[side];
        bucketField.hidden = k !== 's3';
        whereLabel.textContent = k === 'folder' ? title : k === 's3' ? `${title}: key prefix` : `${title}: address`;
        whereInp.placeholder = k === 'folder' ? (side === 'left' ? '/srv/share/Projects' : '~/Cloud/Projects') : k === 's3' ? 'optional, e.g. laptop/Documents' : 'https://me@webdav.pcloud.com/Documents';
        whereHelp.textContent = k === 'folder' ? 'a folder on this machine (a cloud drive mounted as a folder too)' : k === 's3' ? 'the folder inside the bucket; blank for the whole bucket' : 'the folder\'s https:// address (http:// only on a trusted network), with the user before @';
        result.textContent = '';
      };
      shape();
      return h(
        'fieldset',
        { class: 'fields', 'data-side': side },
        h('legend', null, title),
        h('div', { class: 'field' }, h('label', { for: `${id}-kind` }, 'Kind'), kindSel),
        bucketField,
        h('div', { class: 'field' }, whereLabel, whereInp, whereHelp, register(side, whereInp, id)),
        h('div', { class: 'field' }, testBtn, result),
      );
    };
    const accountBox: HTMLElement = h(
      'fieldset',
      { class: 'fields', 'data-side': 'account' },
      h('legend', null, 'Account of the server side'),
      text('new-pair-endpoint', 'S3 endpoint', 'e.g. https://s3.eu-central-1.wasabisys.com; blank for AWS (or AWS_ENDPOINT_URL)', (x) => (remote.endpoint = x)),
      text('new-pair-region', 'S3 region', 'blank: AWS_REGION, else us-east-1', (x) => (remote.region = x)),
      text('new-pair-user', 'Access key id or user', 'blank: AWS_ACCESS_KEY_ID, or the user in the WebDAV address', (x) => (remote.user = x)),
      text('new-pair-keyring', 'Secret in the OS keyring', 'an entry name stored with "tandem secret set NAME", e.g. pcloud (one of these three)', (x) => (remote.keyring = x)),
      text('new-pair-secret-file', 'or in a file', 'a file only its owner can read (chmod 600) holding the secret key or password', (x) => (remote.secret_file = x)),
      text('new-pair-secret-env', 'or in an environment variable', 'its name, e.g. PCLOUD_PASSWORD; blank: AWS_SECRET_ACCESS_KEY or TANDEM_WEBDAV_PASSWORD', (x) => (remote.secret_env = x)),
      h('p', { class: 'help' }, 'The secret itself is never written into the settings file, shown or logged.'),
    );
    accountBox.hidden = true;
    return h(
      'details',
      { class: 'card' },
      h('summary', null, h('h2', null, 'Add a pair')),
      h('div', { class: 'fields' }, text('new-pair-name', 'Name', 'short, without "/"', (x) => (v.name = x), 'text', 'name')),
      sideBox('left', 'Left'),
      sideBox('right', 'Right'),
      accountBox,
    );
  }

  render(): void {
    const { raw, config } = this.s;
    const pairs = (raw.pair ?? []) as any[];
    const form = h(
      'form',
      { class: 'settings', novalidate: true, onsubmit: (e: Event) => void this.save(e) },
      h('p', { class: 'help' }, 'File: ', h('code', null, this.s.file), '. A blank field uses the default shown in grey. Changes are checked as you type and applied when saved.'),
      h(
        'section',
        { class: 'card' },
        h('h2', null, 'Service'),
        h(
          'div',
          { class: 'fields' },
          this.field({ key: 'listen', label: 'Web UI and API address', kind: 'text', help: 'loopback only, e.g. 127.0.0.1:7700; takes effect at the next start' }, '', raw, { listen: config.listen ?? '' }, 'Default'),
          this.field({ key: 'log_dir', label: 'Log folder', kind: 'path', help: 'takes effect at the next start' }, '', raw, { log_dir: config.log_dir ?? '' }, 'Default'),
          h('div', { class: 'field' }, h('span', { class: 'label' }, 'State file'), h('code', null, config.state ?? '(next to the config file)'), h('p', { class: 'help' }, 'changes only with a restart')),
        ),
      ),
      h('section', { class: 'card' }, h('h2', null, 'Defaults for every pair'), h('div', { class: 'fields' }, OPTION_FIELDS.map((f) => this.field(f, '', raw, config.defaults, 'Default'))), this.windows('', raw), this.schedules('', raw, 'Runs by the clock for every pair, e.g. every 15m, cron "0 2 * * MON-FRI", daily 02:00, weekly SUN 03:00, monthly 31 02:00.')),
      pairs.map((p, i) => {
        const name = String(p.name);
        const prefix = `pair.${name}.`;
        const opts = config.pairs?.[i]?.options;
        const removeBtn = h(
          'button',
          {
            type: 'button',
            class: 'danger',
            onclick: () => {
              const removing = !this.edits.has(`pair.${name}`);
              for (const k of [...this.edits.keys()]) if (k.startsWith(prefix)) this.edits.delete(k);
              if (removing) this.edits.set(`pair.${name}`, null);
              else this.edits.delete(`pair.${name}`);
              removeBtn.textContent = removing ? 'Keep this pair' : 'Remove this pair';
              section.classList.toggle('removed', removing);
              this.changed();
            },
          },
          'Remove this pair',
        );
        const section = h(
          'section',
          { class: 'card', 'data-pair': name },
          h('div', { class: 'pair-head' }, h('h2', null, `Pair ${name}`), removeBtn),
          h(
            'div',
            { class: 'fields' },
            this.field({ key: 'left', label: 'Left folder', kind: 'path' }, prefix, p, { left: p.left }, 'Required'),
            this.field({ key: 'right', label: 'Right folder', kind: 'path' }, prefix, p, { right: p.right }, 'Required'),
          ),
          h(
            'details',
            null,
            h('summary', null, 'Settings for this pair only'),
            h('div', { class: 'fields' }, OPTION_FIELDS.map((f) => this.field(f, prefix, p, opts, 'As default'))),
            this.windows(prefix, p),
            this.schedules(prefix, p, 'When set, these replace the default schedules for this pair.'),
          ),
        );
        return section;
      }),
      this.newPair(),
      this.email(raw, config),
      // The tray app's settings mean nothing to a headless service: shown only in the app.
      this.s.desktop_app ? this.desktop(raw, config) : null,
      this.rawText(),
      h('div', { class: 'savebar' }, this.saveBtn, h('button', { type: 'button', onclick: () => void load(this.body) }, 'Discard changes'), this.status, this.globalError),
    );
    this.form = form;
    fill(this.body, form);
  }

  private email(raw: any, config: any): HTMLElement {
    const e = config.email ?? {};
    const f = (key: string, label: string, kind: Kind, help?: string, options?: string[]) =>
      this.field({ key, label, kind, help, options }, 'email.', raw.email ?? {}, { [key]: key === 'port' ? e.port ?? '' : key === 'security' ? e.security ?? 'starttls' : '' }, 'Default');
    const group = this.checks(
      'email.granularity',
      'Mails',
      ['per-conflict', 'summary', 'digest'],
      raw.email?.granularity,
      null,
      'per-conflict: one mail per conflict; summary: one per manual, scheduled or startup run; digest: a daily roundup',
    );
    return h(
      'section',
      { class: 'card' },
      h('h2', null, 'Email notifications'),
      h('p', { class: 'help' }, raw.email ? 'Mail goes out through this SMTP server.' : 'Off. Fill in the server, sender and recipients to turn it on.'),
      h(
        'div',
        { class: 'fields' },
        f('host', 'SMTP server', 'text'),
        f('port', 'Port', 'int'),
        f('security', 'Security', 'select', undefined, ['none', 'starttls', 'tls']),
        f('username', 'User name', 'text'),
        f('keyring', 'Password from the OS keyring', 'text', 'an entry name stored with "tandem secret set NAME"'),
        f('password_env', 'Password from environment variable', 'text', 'the name of a variable, e.g. TANDEM_SMTP_PASSWORD'),
        f('password_file', 'Password from file', 'path', 'readable by you only'),
        f('from', 'From', 'text'),
        f('to', 'To', 'list', 'one address per line'),
        f('subject_prefix', 'Subject prefix', 'text'),
        group,
      ),
      this.testMail(),
    );
  }

  /** "Send a test mail" with the mail settings as the form has them (saved or not). */
  private testMail(): HTMLElement {
    const result = h('p', { class: 'help', id: 'test-mail-result', role: 'status' });
    const btn: HTMLButtonElement = h(
      'button',
      {
        type: 'button',
        id: 'test-mail',
        onclick: async () => {
          btn.disabled = true;
          result.classList.remove('error');
          result.textContent = 'Sending…';
          try {
            const r = await post<{ to: string[] }>('/api/test-mail', this.payload());
            result.textContent = `Sent to ${r.to.join(', ')}: check the inbox (and the spam folder).`;
          } catch (e) {
            result.classList.add('error');
            result.textContent = `Not sent: ${e instanceof Error ? e.message : String(e)}`;
          } finally {
            btn.disabled = false;
          }
        },
      },
      'Send a test mail',
    );
    return h('div', { class: 'buttons' }, btn, result);
  }

  /** A set of checkboxes for an array of words. `none` is what saving with nothing ticked
   * writes (null: remove the key, so the default applies). */
  private checks(key: string, legend: string, options: string[], original: unknown, none: unknown, help: string): HTMLElement {
    const checked = new Set<string>(Array.isArray(original) ? original : original ? [String(original)] : []);
    const error = h('p', { class: 'field-error', role: 'alert' });
    const group = h(
      'fieldset',
      { class: 'field', 'data-key': key },
      h('legend', null, legend),
      options.map((o) =>
        h(
          'label',
          { class: 'check' },
          h('input', {
            type: 'checkbox',
            value: o,
            checked: checked.has(o),
            onchange: (ev: Event) => {
              (ev.currentTarget as HTMLInputElement).checked ? checked.add(o) : checked.delete(o);
              const v = options.filter((x) => checked.has(x));
              this.edit(key, v.length ? v : none, original ?? null);
            },
          }),
          ` ${o}`,
        ),
      ),
      h('p', { class: 'help' }, help),
      error,
    );
    this.fields.set(key, { input: group, error });
    return group;
  }

  /** The desktop app's own settings (the headless service ignores them). */
  private desktop(raw: any, config: any): HTMLElement {
    const d = config.desktop ?? {};
    const r = raw.desktop ?? {};
    const secs = Math.round((d.summary_after_ms ?? 300000) / 1000);
    return h(
      'section',
      { class: 'card' },
      h('h2', null, 'Desktop app'),
      h('p', { class: 'help' }, 'Used by the tray app (tandem-desktop); the headless service ignores them.'),
      h(
        'div',
        { class: 'fields' },
        this.checks(
          'desktop.toasts',
          'Notifications',
          ['conflicts', 'guard', 'errors', 'summary'],
          r.toasts ?? d.toasts,
          [],
          'conflicts: a conflict waits or was kept as a clash copy; guard: a safety guard stopped a pair; errors: failed operations; summary: after a long sync. A burst makes one notification.',
        ),
        this.field({ key: 'summary_after', label: 'Summary after a sync longer than', kind: 'duration', help: 'e.g. 5m' }, 'desktop.', r, { summary_after: secs >= 60 && secs % 60 === 0 ? `${secs / 60}m` : `${secs}s` }, 'Default'),
        this.field({ key: 'autostart', label: 'Start Tandem when I log in', kind: 'bool' }, 'desktop.', r, { autostart: d.autostart ? 'true' : 'false' }, 'Default'),
      ),
    );
  }

  /** The whole file as text, for what the forms do not reach (checked and saved as one). */
  private rawText(): HTMLElement {
    const ta: HTMLTextAreaElement = h('textarea', { id: 'raw-text', rows: '16', spellcheck: 'false', class: 'mono', 'aria-describedby': 'raw-err' });
    ta.value = this.s.text;
    const err = h('p', { class: 'field-error', id: 'raw-err', role: 'alert' });
    const check = async () => {
      const r = await post<{ ok: boolean; error?: { message: string } }>('/api/settings/validate', { text: ta.value });
      err.textContent = r.ok ? '' : r.error!.message;
      return r.ok;
    };
    return h(
      'details',
      { class: 'card' },
      h('summary', null, h('h2', null, 'Edit the file as text')),
      ta,
      err,
      h(
        'div',
        { class: 'buttons' },
        h('button', { type: 'button', onclick: () => void check().then((ok) => ok && toast('The text is valid')) }, 'Check'),
        h(
          'button',
          {
            type: 'button',
            onclick: async () => {
              if (!(await check())) return;
              try {
                await send('PUT', '/api/settings', { text: ta.value });
                toast(`Saved to ${this.s.file} and applied`);
                await load(this.body);
              } catch (x) {
                err.textContent = (x as Error).message;
              }
            },
          },
          'Save text',
        ),
      ),
    );
  }
}
