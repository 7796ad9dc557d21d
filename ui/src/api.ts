// The one way the UI talks to the engine: the service's HTTP API. Errors carry the API's
// stable `code` (and the config `key` for settings); the UI branches on those, never on
// message text. Signing in: a login link sets an HttpOnly cookie, or the user pastes the
// token (`tandem token`), kept for this tab only.

export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
    public key?: string,
  ) {
    super(message);
  }
}

const TOKEN = 'tandem_token';

export function setToken(t: string | null): void {
  if (t) sessionStorage.setItem(TOKEN, t);
  else sessionStorage.removeItem(TOKEN);
}

function headers(json: boolean): Record<string, string> {
  const hs: Record<string, string> = { Accept: 'application/json' };
  const t = sessionStorage.getItem(TOKEN);
  if (t) hs.Authorization = `Bearer ${t}`;
  if (json) hs['Content-Type'] = 'application/json';
  return hs;
}

let onUnauthorized: () => void = () => {};
export function whenUnauthorized(f: () => void): void {
  onUnauthorized = f;
}

async function raw(method: string, path: string, body?: unknown): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers: headers(body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch (e) {
    throw new ApiError(0, 'offline', 'The Tandem service does not answer. Is it running?');
  }
  if (res.ok) return res;
  let code = 'http_' + res.status;
  let message = `${method} ${path}: HTTP ${res.status}`;
  let key: string | undefined;
  try {
    const j = await res.json();
    code = j.error?.code ?? code;
    message = j.error?.message ?? message;
    key = j.error?.key;
  } catch {
    /* not JSON */
  }
  if (code === 'unauthorized') onUnauthorized();
  throw new ApiError(res.status, code, message, key);
}

export async function get<T>(path: string): Promise<T> {
  return (await raw('GET', path)).json();
}

export async function post<T = void>(path: string, body?: unknown): Promise<T> {
  const res = await raw('POST', path, body ?? {});
  return res.status === 204 || res.status === 202 ? (undefined as T) : res.json();
}

export async function send<T>(method: 'PUT' | 'PATCH', path: string, body: unknown): Promise<T> {
  return (await raw(method, path, body)).json();
}

export async function blob(path: string): Promise<Blob> {
  return (await raw('GET', path)).blob();
}

export const enc = encodeURIComponent;

// ---------------------------------------------------------------- types (the API's JSON)

export type Side = 'left' | 'right';

export interface Counts {
  copied: number;
  renamed: number;
  deleted: number;
  trashed: number;
  props: number;
  conflicts: number;
  failed: number;
  skipped: number;
  bytes: number;
  by_rule: Record<string, number>;
}

export interface Run {
  id: number;
  pair: string;
  trigger: string;
  dry_run: boolean;
  started_at: number;
  finished_at: number | null;
  status: string;
  counts: Counts;
  error: string | null;
}

export interface Transfer {
  path: string;
  side: Side;
  lane: string;
  size: number;
  done: number;
  bytes_per_s: number;
  eta_s: number | null;
}

export interface PairStatus {
  pair: string;
  left: string;
  right: string;
  state: 'idle' | 'scanning' | 'syncing' | 'paused' | 'error' | 'polling' | 'failing';
  reason: string | null;
  paused: boolean;
  needs_consent: boolean;
  watch: { side: Side; mode: string; reason: string | null }[];
  last_event: { at: number; side: Side; path: string } | null;
  last_run: Run | null;
  backlog: { items: number; bytes: number; large_items: number; waiting_paths: number };
  transfers: Transfer[];
  open_conflicts: number;
  ops_last_24h: number;
  /** Paths whose last try failed, waiting for their retry. */
  failing: number;
  totals: { runs: number; copied: number; renamed: number; deleted: number; conflicts: number; failed: number; bytes: number };
}

export interface Status {
  version: string;
  pid: number;
  started_at: number;
  paused_all: boolean;
  pairs: PairStatus[];
}

export interface BacklogItem {
  path: string;
  side: Side;
  size: number;
  lane: string;
  copying: boolean;
  done: number;
  state: 'queued' | 'transferring' | 'verifying';
}

/** An action a pair finished lately (`/api/pairs/P/recent`, newest first). */
export interface FinishedItem {
  path: string;
  op: string;
  side: Side | null;
  state: 'done' | 'deferred' | 'failed';
  detail: string | null;
  bytes: number;
  at: number;
}

export interface Entry {
  kind: string;
  size: number;
  mtime: number;
  hash?: string;
}

export interface Conflict {
  id: number;
  path: string;
  rule: string;
  left: Entry | null;
  right: Entry | null;
  newer: Side | null;
  action: string;
  created_at: number;
  updated_at: number;
}

export interface SideNow {
  exists: boolean;
  kind?: 'file' | 'dir';
  size?: number;
  mtime?: number;
  hash?: string | null;
  text?: boolean;
}

export interface ConflictDetail {
  pair: string;
  path: string;
  record: Conflict | null;
  left: SideNow;
  right: SideNow;
  newer: Side | null;
}

export interface Resolution {
  path: string;
  ok: boolean;
  run?: number;
  error?: { code: string; message: string };
}

export interface Schedule {
  pair: string;
  name: string;
  when: string;
  tz: string;
  job: string;
  paused: boolean;
  next_run: number | null;
  last_run: number | null;
  last_outcome: string | null;
}

export interface JournalRow {
  seq: number;
  at: number;
  op: string;
  side: Side | null;
  path: string;
  rule: string | null;
  status: string;
  bytes: number;
  detail: string | null;
}

export type Keep = 'left' | 'right' | 'both';

export interface EngineEvent {
  type: string;
  pair?: string | null;
  [k: string]: unknown;
}

// ---------------------------------------------------------------- live events

/**
 * The service's event stream (`/api/events`, Server-Sent Events), read with fetch so the
 * token header works too. Reconnects with backoff; `onLink` tells whether it is connected.
 */
export function subscribe(onEvent: (e: EngineEvent) => void, onLink: (up: boolean) => void): () => void {
  let stopped = false;
  let ctl: AbortController | null = null;
  let wait = 500;
  const loop = async () => {
    while (!stopped) {
      ctl = new AbortController();
      try {
        const res = await fetch('/api/events', { headers: headers(false), credentials: 'same-origin', signal: ctl.signal });
        if (res.status === 401) onUnauthorized();
        if (!res.ok || !res.body) throw new Error('HTTP ' + res.status);
        onLink(true);
        wait = 500;
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let cut: number;
          while ((cut = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, cut);
            buf = buf.slice(cut + 2);
            let type = 'message';
            let data = '';
            for (const line of block.split('\n')) {
              if (line.startsWith('event:')) type = line.slice(6).trim();
              else if (line.startsWith('data:')) data += line.slice(5).trim();
            }
            if (!data) continue;
            if (type === 'lagged') onEvent({ type: 'lagged' });
            else {
              try {
                onEvent(JSON.parse(data));
              } catch {
                /* a partial line: ignore */
              }
            }
          }
        }
      } catch {
        /* fall through to the reconnect */
      }
      if (stopped) break;
      onLink(false);
      await new Promise((r) => setTimeout(r, wait));
      wait = Math.min(wait * 2, 10000);
    }
  };
  loop();
  return () => {
    stopped = true;
    ctl?.abort();
  };
}

/** What "Test connection" found: the side's probed capabilities (see `side::Caps`). */
export interface SideCaps {
  case_insensitive: boolean;
  mtime_resolution_ns: number;
  set_mtime: boolean;
  modes: boolean;
  ids: boolean;
  version: 'none' | 'change-time' | 'etag';
  free_hash: string | null;
  atomic_replace: boolean;
  keep_version: string;
  needs_flush: boolean;
  cheap_listing: boolean;
  changes: 'os-events' | 'local-events-only' | 'feed' | 'poll';
}

export interface SideReport {
  location: string;
  describe: string;
  caps: SideCaps;
  note: string | null;
}

/** The capabilities in plain words, for Settings. */
export function describeCaps(c: SideCaps): string {
  const res = c.mtime_resolution_ns;
  const times = res <= 1 ? 'exact times' : res < 1_000_000_000 ? `times to ${res / 1_000_000} ms` : `times to ${res / 1_000_000_000} s`;
  const changes = { 'os-events': 'changes seen at once', 'local-events-only': 'changes made elsewhere found by polling', feed: 'a change feed', poll: 'changes found by polling' }[c.changes];
  return [
    c.case_insensitive ? 'case-insensitive names' : 'case-sensitive names',
    `${times}${c.set_mtime ? '' : ', not settable'}`,
    c.version === 'etag' ? 'versions by ETag' : c.version === 'change-time' ? 'versions by change time' : 'versions by size and time',
    changes,
  ].join(', ');
}
