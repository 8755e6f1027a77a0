// The alerts panel of the overview: the rules (a threshold and how long it must hold, per measure), the list of
// alerts with when each began and ended, and browser notifications, asked for only when the user clicks for them
// (the Notification API wants a gesture, and a page that asks unprompted is a page people close).
import { MEASURES, ruleText } from './alerts.js';
import * as fmt from './format.js';

/** How long a rule must hold, offered in the editor (ms). */
export const HOLDS = [0, 10_000, 30_000, 60_000, 300_000, 600_000, 1_800_000];
/** Alerts listed, newest first (the book keeps more). */
const LISTED = 100;

export class AlertPanel {
  /**
   * @param {HTMLElement} root the panel
   * @param {{onRules: (rules: object) => void}} actions — the user changed a rule
   */
  constructor(root, { onRules }) {
    this.root = root;
    this.onRules = onRules;
    this.form = root.querySelector('.rules');
    this.list = root.querySelector('.alert-list tbody');
    this.counts = root.querySelector('.alert-counts');
    this.notifyButton = root.querySelector('[data-action="notify"]');
    this.notifyState = root.querySelector('.notify-state');
    /** Notifications this page showed, newest last (title and body), for whoever wants to know. */
    this.notified = [];
    this.rules = null;
    this.version = -1;
    this.buildForm();
    this.notifyButton.addEventListener('click', () => this.askToNotify());
    this.showNotifyState();
  }

  buildForm() {
    for (const [measure, m] of Object.entries(MEASURES)) {
      const row = document.createElement('fieldset');
      row.className = 'rule';
      row.dataset.measure = measure;
      const id = (part) => `rule-${measure}-${part}`;
      row.innerHTML = `
        <legend class="sr-only">${m.label} rule</legend>
        <input type="checkbox" id="${id('on')}" name="on"><label for="${id('on')}">${m.label}</label>
        <label for="${id('above')}" class="sr-only">${m.label} above</label>
        <span aria-hidden="true">&gt;</span><input type="number" id="${id('above')}" name="above" min="0" step="any">
        <span class="unit">${m.unit}</span>
        <label for="${id('for')}">for</label><select id="${id('for')}" name="for"></select>`;
      const hold = row.querySelector('select');
      for (const ms of HOLDS) hold.add(new Option(ms ? fmt.duration(ms) : 'at once', String(ms)));
      row.addEventListener('change', () => this.changed());
      this.form.append(row);
    }
    this.form.addEventListener('submit', (e) => e.preventDefault());
  }

  /** Shows `rules` in the editor (after a URL change). */
  showRules(rules) {
    this.rules = rules;
    for (const row of this.form.querySelectorAll('fieldset.rule')) {
      const rule = rules[row.dataset.measure];
      const { on, above } = row.elements;
      const hold = row.elements.for;
      on.checked = rule.on;
      if (Number(above.value) !== rule.above || above.value === '') above.value = String(rule.above);
      if (![...hold.options].some((o) => o.value === String(rule.forMs))) {
        hold.add(new Option(fmt.duration(rule.forMs), String(rule.forMs)));
      }
      hold.value = String(rule.forMs);
      above.disabled = !rule.on;
      hold.disabled = !rule.on;
      row.title = ruleText(row.dataset.measure, rule);
    }
  }

  changed() {
    const rules = {};
    for (const row of this.form.querySelectorAll('fieldset.rule')) {
      const { on, above } = row.elements;
      const value = Number.parseFloat(above.value);
      const old = this.rules[row.dataset.measure];
      rules[row.dataset.measure] = {
        on: on.checked,
        above: Number.isFinite(value) && value >= 0 ? value : old.above,
        forMs: Number(row.elements.for.value),
      };
    }
    this.onRules(rules);
  }

  /** Shows the book's alerts if they changed since the last call (`version` counts the book's changes). */
  show(book, version) {
    if (version === this.version) return;
    this.version = version;
    const alerts = book.alerts.slice(0, LISTED);
    const firing = book.firingCount();
    const text = `${fmt.count(firing)} firing · ${fmt.count(book.alerts.length - firing)} ended`;
    if (this.counts.textContent !== text) this.counts.textContent = text;
    this.root.dataset.firing = String(firing);
    while (this.list.rows.length > alerts.length) this.list.deleteRow(-1);
    alerts.forEach((alert, i) => {
      const tr = this.list.rows[i] ?? this.row();
      if (tr.dataset.id === alert.id && tr.dataset.ended === String(alert.ended) && tr.dataset.peak === String(alert.peak)) return;
      tr.dataset.id = alert.id;
      tr.dataset.ended = String(alert.ended);
      tr.dataset.peak = String(alert.peak);
      tr.dataset.host = alert.host;
      tr.dataset.measure = alert.measure;
      tr.dataset.began = String(alert.began);
      const [state, host, rule, peak, began, ended] = tr.cells;
      state.textContent = alert.ended === null ? '▲ firing' : '✓ ended';
      host.firstChild.textContent = alert.host;
      host.firstChild.href = `#host=${encodeURIComponent(alert.host)}`;
      host.firstChild.dataset.host = alert.host;
      rule.textContent = alert.rule;
      peak.textContent = MEASURES[alert.measure].format(alert.peak);
      setTime(began, alert.began);
      if (alert.ended === null) {
        ended.textContent = 'ongoing';
        ended.removeAttribute('title');
      } else {
        setTime(ended, alert.ended);
      }
    });
  }

  row() {
    const tr = this.list.insertRow();
    for (let i = 0; i < 6; i += 1) tr.insertCell();
    const link = document.createElement('a');
    tr.cells[1].append(link);
    return tr;
  }

  /** The zone changed: the times listed are printed again. */
  redrawTimes(book) {
    this.version = -1;
    for (const tr of [...this.list.rows]) tr.dataset.id = '';
    this.show(book, -2);
  }

  async askToNotify() {
    if (!('Notification' in globalThis)) {
      this.showNotifyState('This browser has no notifications.');
      return;
    }
    if (Notification.permission === 'granted') {
      this.enabled = !this.enabled;
    } else {
      this.enabled = (await Notification.requestPermission()) === 'granted';
    }
    this.showNotifyState();
  }

  showNotifyState(problem) {
    const permission = globalThis.Notification?.permission ?? 'unsupported';
    const on = Boolean(this.enabled) && permission === 'granted';
    this.root.dataset.notify = on ? 'on' : 'off';
    this.notifyButton.textContent = on ? 'Stop notifications' : 'Notify me';
    this.notifyButton.setAttribute('aria-pressed', String(on));
    this.notifyState.textContent = problem
      ?? (on ? 'Alerts that begin are notified.' : permission === 'denied' ? 'Notifications are blocked for this page.' : '');
  }

  /** An alert began while the page watched: a notification, if the user asked for them. */
  notify(alert) {
    if (!this.enabled || globalThis.Notification?.permission !== 'granted') return;
    const title = `${alert.host}: ${alert.rule}`;
    const body = `Since ${fmt.dateTime(alert.began)}; now ${MEASURES[alert.measure].format(alert.value)}`;
    try {
      new Notification(title, { body, tag: alert.id });
      this.notified.push({ title, body });
      if (this.notified.length > 100) this.notified.shift();
    } catch (err) {
      this.showNotifyState(`Notifications failed: ${err.message}`);
    }
  }
}

function setTime(cell, t) {
  cell.textContent = fmt.clock(t);
  cell.title = fmt.dateTime(t);
}
