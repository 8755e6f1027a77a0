// The connection badge and the loading bar. The badge says what the client says ('connecting', 'live',
// 'resyncing', 'offline'), in text and in `data-state`; the bar runs while a snapshot is on its way.

const LABELS = { connecting: 'connecting', live: 'live', resyncing: 'resyncing', offline: 'offline' };

export class StatusView {
  constructor(badge, progress) {
    this.badge = badge;
    this.text = badge.querySelector('.text');
    this.progress = progress;
    this.label = progress.querySelector('.label');
    this.loads = new Map();
  }

  set(status) {
    if (this.badge.dataset.state === status) return;
    this.badge.dataset.state = status;
    this.text.textContent = LABELS[status] ?? status;
    this.badge.title = status === 'offline' ? 'The relay is unreachable; reconnecting with backoff' : '';
  }

  /** Shows the loading bar while any `what` is loading; `text` says what (the newest one shown wins). */
  loading(what, text) {
    if (text) this.loads.set(what, text);
    else this.loads.delete(what);
    const shown = [...this.loads.values()].at(-1);
    this.progress.hidden = shown === undefined;
    this.progress.setAttribute('aria-busy', String(shown !== undefined));
    if (shown !== undefined && this.label.textContent !== shown) this.label.textContent = shown;
  }
}
