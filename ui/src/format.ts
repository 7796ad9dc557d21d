// Numbers, sizes and times as people read them.

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** Nanoseconds since the epoch (the API's timestamps) to a local date and time. */
export function time(ns: number | null | undefined): string {
  if (!ns) return '–';
  const d = new Date(ns / 1e6);
  const pad = (x: number) => String(x).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/**
 * Two times (nanoseconds) as people read them, with as many fractional digits as it takes
 * to tell them apart: "newer" next to two equal-looking seconds would look like a lie.
 */
export function timesApart(a: number | null | undefined, b: number | null | undefined): [string, string] {
  const [ta, tb] = [time(a), time(b)];
  if (!a || !b || a === b || ta !== tb) return [ta, tb];
  const frac = (ns: number) => String(ns % 1e9).padStart(9, '0');
  const [fa, fb] = [frac(a), frac(b)];
  let digits = 3;
  while (digits < 9 && fa.slice(0, digits) === fb.slice(0, digits)) digits += 3;
  return [`${ta}.${fa.slice(0, digits)}`, `${tb}.${fb.slice(0, digits)}`];
}

export function ago(ns: number | null | undefined, now = Date.now()): string {
  if (!ns) return 'never';
  const s = Math.round((now - ns / 1e6) / 1000);
  if (s < 0) return 'in ' + span(-s);
  if (s < 5) return 'just now';
  return span(s) + ' ago';
}

export function span(s: number): string {
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

export function ms(n: number | null | undefined): string {
  if (n === null || n === undefined) return '–';
  return n < 1000 ? `${n} ms` : n < 60000 ? `${(n / 1000).toFixed(1)} s` : span(Math.round(n / 1000));
}

export function plural(n: number, one: string, many = one + 's'): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** Milliseconds as the settings file writes them ("300ms", "2s", "6h"): the largest unit that is exact. */
export function durationText(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '';
  for (const [unit, n] of [['d', 86400000], ['h', 3600000], ['m', 60000], ['s', 1000]] as const) {
    if (ms >= n && ms % n === 0) return `${ms / n}${unit}`;
  }
  return `${ms}ms`;
}

/** Bytes as the settings file writes them ("64 MB", KB/MB/GB being powers of 1024): the largest unit that is exact. */
export function sizeText(n: number | null | undefined): string {
  if (n === null || n === undefined) return '';
  for (const [unit, k] of [['TB', 2 ** 40], ['GB', 2 ** 30], ['MB', 2 ** 20], ['KB', 2 ** 10]] as const) {
    if (n >= k && n % k === 0) return `${n / k} ${unit}`;
  }
  return `${n} B`;
}
