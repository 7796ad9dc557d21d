// A line diff for the side-by-side conflict screen: longest common subsequence over lines,
// with the unchanged head and tail trimmed first so the table stays small for typical
// edits. Too large a middle part returns null (the screen then shows both texts as they are).

export interface Row {
  kind: 'same' | 'change' | 'del' | 'add';
  left?: string;
  right?: string;
  ln?: number;
  rn?: number;
}

const MAX_CELLS = 4_000_000;

export function diffLines(a: string, b: string): Row[] | null {
  const x = split(a);
  const y = split(b);
  let head = 0;
  while (head < x.length && head < y.length && x[head] === y[head]) head++;
  let tail = 0;
  while (tail < x.length - head && tail < y.length - head && x[x.length - 1 - tail] === y[y.length - 1 - tail]) tail++;
  const xs = x.slice(head, x.length - tail);
  const ys = y.slice(head, y.length - tail);
  const n = xs.length;
  const m = ys.length;
  if ((n + 1) * (m + 1) > MAX_CELLS) return null;
  // lcs[i][j]: length of the LCS of xs[i..] and ys[j..]
  const w = m + 1;
  const lcs = new Uint32Array((n + 1) * w);
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i * w + j] = xs[i] === ys[j] ? lcs[(i + 1) * w + j + 1] + 1 : Math.max(lcs[(i + 1) * w + j], lcs[i * w + j + 1]);
    }
  }
  const rows: Row[] = [];
  for (let i = 0; i < head; i++) rows.push({ kind: 'same', left: x[i], right: y[i], ln: i + 1, rn: i + 1 });
  let i = 0;
  let j = 0;
  const dels: Row[] = [];
  const adds: Row[] = [];
  const flush = () => {
    // Pair removed and added lines up as changed rows, the rest stay one-sided.
    const k = Math.max(dels.length, adds.length);
    for (let t = 0; t < k; t++) {
      const d = dels[t];
      const a2 = adds[t];
      if (d && a2) rows.push({ kind: 'change', left: d.left, ln: d.ln, right: a2.right, rn: a2.rn });
      else rows.push(d ?? a2);
    }
    dels.length = 0;
    adds.length = 0;
  };
  while (i < n || j < m) {
    if (i < n && j < m && xs[i] === ys[j]) {
      flush();
      rows.push({ kind: 'same', left: xs[i], right: ys[j], ln: head + i + 1, rn: head + j + 1 });
      i++;
      j++;
    } else if (j >= m || (i < n && lcs[(i + 1) * w + j] >= lcs[i * w + j + 1])) {
      dels.push({ kind: 'del', left: xs[i], ln: head + i + 1 });
      i++;
    } else {
      adds.push({ kind: 'add', right: ys[j], rn: head + j + 1 });
      j++;
    }
  }
  flush();
  for (let t = 0; t < tail; t++) {
    const li = x.length - tail + t;
    const ri = y.length - tail + t;
    rows.push({ kind: 'same', left: x[li], right: y[ri], ln: li + 1, rn: ri + 1 });
  }
  return rows;
}

function split(s: string): string[] {
  if (s === '') return [];
  const lines = s.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}
