// Building DOM nodes. Text always goes in as text nodes, never as HTML, so a file named
// `<img onerror=...>` shows as those characters: nothing in the UI uses innerHTML.

export type Child = Node | string | number | null | undefined | false | Child[];
type AttrValue = string | number | boolean | null | undefined | ((e: any) => void);
export type Attrs = Record<string, AttrValue>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs?: Attrs | null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === null || v === undefined || v === false) continue;
    if (typeof v === 'function') {
      el.addEventListener(k.slice(2).toLowerCase(), v as EventListener);
    } else if (k === 'value' && 'value' in el) {
      (el as HTMLInputElement).value = String(v);
    } else if (k === 'checked' && 'checked' in el) {
      (el as HTMLInputElement).checked = Boolean(v);
    } else {
      el.setAttribute(k === 'className' ? 'class' : k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

export function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/** Replace everything inside `el`. */
export function fill(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

/** Call `fn` at most once per `ms`, trailing call included. */
export function throttle(fn: () => void, ms: number): () => void {
  let timer: number | undefined;
  let pending = false;
  return () => {
    if (timer !== undefined) {
      pending = true;
      return;
    }
    fn();
    timer = window.setTimeout(function tick() {
      timer = undefined;
      if (pending) {
        pending = false;
        fn();
        timer = window.setTimeout(tick, ms);
      }
    }, ms);
  };
}

export function debounce(fn: () => void, ms: number): () => void {
  let timer: number | undefined;
  return () => {
    window.clearTimeout(timer);
    timer = window.setTimeout(fn, ms);
  };
}

export function toast(message: string, kind: 'ok' | 'error' = 'ok'): void {
  const box = document.getElementById('toasts')!;
  const t = h('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : null }, message);
  box.appendChild(t);
  // The newest few only: a burst of actions must not cover the page.
  while (box.children.length > 3) box.firstElementChild!.remove();
  window.setTimeout(() => t.remove(), kind === 'error' ? 10000 : 4000);
}
