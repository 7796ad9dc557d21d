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

/** What identifies a focused control inside a keyed item, so its twin can take the focus. */
const FOCUS_ATTRS = ['id', 'data-action', 'data-keep', 'data-bulk', 'aria-label', 'name'];

/**
 * Run `change` (which rebuilds part of `container`) without losing the keyboard focus: the
 * focused control's twin in the new content (same item key, same id/action/label) gets it
 * back. Screen readers and keyboard users stay where they were.
 */
export function keepFocus(container: Element, change: () => void): void {
  const was = document.activeElement as HTMLElement | null;
  if (!was || !container.contains(was) || was === container) return change();
  const item = was.closest<HTMLElement>('[data-key]');
  const attr = FOCUS_ATTRS.find((a) => was.hasAttribute(a));
  change();
  if (was.isConnected && document.activeElement === was) return;
  const scope: ParentNode = item?.dataset.key !== undefined ? container.querySelector(`[data-key="${CSS.escape(item.dataset.key)}"]`) ?? container : container;
  const twin = attr ? scope.querySelector<HTMLElement>(`[${attr}="${CSS.escape(was.getAttribute(attr) ?? '')}"]`) : null;
  twin?.focus({ preventScroll: true });
}

const signatures = new WeakMap<Element, string>();

/**
 * Make `parent`'s children the elements for `items`, patching instead of rebuilding: an
 * item whose key and signature (e.g. its JSON) did not change keeps its element as it is
 * (focus, open details, selection, scroll); a changed one is built again in its place.
 */
export function keyed<T>(parent: Element, items: T[], key: (t: T) => string, sig: (t: T) => string, build: (t: T) => HTMLElement): void {
  keepFocus(parent, () => {
    const old = new Map<string, Element>();
    for (const c of Array.from(parent.children)) {
      const k = (c as HTMLElement).dataset.key;
      if (k !== undefined) old.set(k, c);
    }
    const next = items.map((t) => {
      const [k, s] = [key(t), sig(t)];
      const prev = old.get(k);
      if (prev && signatures.get(prev) === s) return prev;
      const el = build(t);
      el.dataset.key = k;
      signatures.set(el, s);
      return el;
    });
    // Move only what is out of place: an element taken out of the page loses the focus.
    let at: ChildNode | null = parent.firstChild;
    for (const el of next) {
      if (el === at) {
        at = at.nextSibling;
        continue;
      }
      parent.insertBefore(el, at);
    }
    while (at) {
      const n: ChildNode | null = at.nextSibling;
      at.remove();
      at = n;
    }
  });
}
