// Shared state of the page: the latest status, the live event stream, and the small
// interface every view implements. Views render from the status and refresh themselves
// on the events that concern them.

import { ApiError, EngineEvent, Status, get } from './api';
import { Attrs, h, throttle, toast } from './dom';

export interface View {
  el: HTMLElement;
  title: string;
  onEvent?(e: EngineEvent): void;
  onStatus?(s: Status): void;
  dispose?(): void;
}

type Listener = (s: Status) => void;

class Store {
  status: Status | null = null;
  private listeners = new Set<Listener>();

  listen(f: Listener): () => void {
    this.listeners.add(f);
    if (this.status) f(this.status);
    return () => this.listeners.delete(f);
  }

  async refresh(): Promise<void> {
    try {
      this.status = await get<Status>('/api/status');
      for (const f of this.listeners) f(this.status);
    } catch (e) {
      if (e instanceof ApiError && e.code !== 'unauthorized' && e.code !== 'offline') toast(e.message, 'error');
    }
  }

  /** At most four status requests a second, however many events arrive. */
  refreshSoon = throttle(() => void this.refresh(), 250);
}

export const store = new Store();

/** Run an action from a button: disable it meanwhile, report the outcome. */
export async function act(btn: HTMLButtonElement | null, what: () => Promise<unknown>, done?: string): Promise<boolean> {
  if (btn) btn.disabled = true;
  try {
    await what();
    if (done) toast(done);
    store.refreshSoon();
    return true;
  } catch (e) {
    toast(e instanceof Error ? e.message : String(e), 'error');
    return false;
  } finally {
    if (btn) btn.disabled = false;
  }
}

/** A button that runs `what` through [`act`] when pressed. */
export function actionButton(label: string, attrs: Attrs, what: () => Promise<unknown>, done?: string): HTMLButtonElement {
  return h('button', { type: 'button', ...attrs, onclick: (e: Event) => act(e.currentTarget as HTMLButtonElement, what, done) }, label);
}

export function isError(e: unknown, code: string): boolean {
  return e instanceof ApiError && e.code === code;
}
