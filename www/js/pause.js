// Pausing the page. While paused, the views keep what they drew (the overview's tiles, strip and heatmap, the host's
// charts) and the user can read, zoom and pan it at leisure, while the clients go on applying the stream underneath;
// a badge says how many new samples are waiting. Alerts are not paused: a rule that fires while the view is frozen
// still shows in the alert list and notifies. Resuming draws the newest data at once.

export class Pause {
  /**
   * @param {HTMLButtonElement} button the header's Pause/Resume button
   * @param {HTMLElement} badge where the waiting count shows
   */
  constructor(button, badge) {
    this.button = button;
    this.badge = badge;
    this.paused = false;
    /** source (a view) → how many new samples it holds back */
    this.waiting = new Map();
    this.listeners = new Set();
    this.shown = '';
    button.addEventListener('click', () => this.set(!this.paused));
    this.show();
  }

  /** Calls `listener(paused)` when the page pauses or resumes. */
  onChange(listener) {
    this.listeners.add(listener);
  }

  set(paused) {
    if (paused === this.paused) return;
    this.paused = paused;
    this.waiting.clear();
    document.body.dataset.paused = String(paused);
    for (const listener of this.listeners) listener(paused);
    this.show();
  }

  /** `source` now holds back `n` new samples. */
  setWaiting(source, n) {
    if (!this.paused || this.waiting.get(source) === n) return;
    this.waiting.set(source, n);
    this.show();
  }

  /** How many new samples wait, over every source. */
  get count() {
    let n = 0;
    for (const v of this.waiting.values()) n += v;
    return n;
  }

  show() {
    const label = this.paused ? 'Resume' : 'Pause';
    if (this.button.textContent !== label) this.button.textContent = label;
    this.button.setAttribute('aria-pressed', String(this.paused));
    const n = this.count;
    const text = this.paused ? `Paused · ${n.toLocaleString('en')} new ${n === 1 ? 'sample' : 'samples'} waiting` : '';
    if (text === this.shown) return;
    this.shown = text;
    this.badge.textContent = text;
    this.badge.hidden = !this.paused;
    this.badge.dataset.waiting = String(n);
  }
}
