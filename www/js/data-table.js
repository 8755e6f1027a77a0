// Text alternatives for the charts: a chart's recent values as a table, inside a <details> whose summary the
// keyboard reaches. The table is filled when it opens and kept up to date only while it is open, so a closed one
// costs nothing per frame.

export class DataTable {
  /**
   * @param {HTMLElement} parent
   * @param {{caption: string, fill: (table: DataTable) => void}} options — `fill` is called when the table opens;
   *        the owner calls `show` then, and again while `open` is true.
   */
  constructor(parent, { caption, fill, label = 'Table of recent values' }) {
    this.details = document.createElement('details');
    this.details.className = 'chart-table';
    const summary = document.createElement('summary');
    summary.textContent = label;
    // A region the keyboard can scroll: the table may be wider or taller than its box.
    this.wrap = document.createElement('div');
    this.wrap.className = 'table-wrap';
    this.wrap.tabIndex = 0;
    this.wrap.setAttribute('role', 'region');
    this.wrap.setAttribute('aria-label', caption);
    this.table = document.createElement('table');
    const cap = document.createElement('caption');
    cap.textContent = caption;
    this.table.append(cap, document.createElement('thead'), document.createElement('tbody'));
    this.wrap.append(this.table);
    this.details.append(summary, this.wrap);
    parent.append(this.details);
    this.head = '';
    this.details.addEventListener('toggle', () => {
      if (this.details.open) fill(this);
    });
  }

  get open() {
    return this.details.open;
  }

  /** Shows `rows` (arrays of cell texts) under the column names `head`; the first cell of a row heads it. */
  show(head, rows) {
    const key = head.join('\n');
    if (key !== this.head) {
      this.head = key;
      const tr = document.createElement('tr');
      for (const name of head) {
        const th = document.createElement('th');
        th.scope = 'col';
        th.textContent = name;
        tr.append(th);
      }
      this.table.tHead.replaceChildren(tr);
    }
    const body = this.table.tBodies[0];
    while (body.rows.length > rows.length) body.deleteRow(-1);
    rows.forEach((cells, r) => {
      const tr = body.rows[r] ?? body.insertRow();
      while (tr.cells.length > cells.length) tr.deleteCell(-1);
      cells.forEach((text, c) => {
        let cell = tr.cells[c];
        if (!cell) {
          cell = document.createElement(c === 0 ? 'th' : 'td');
          if (c === 0) cell.scope = 'row';
          tr.append(cell);
        }
        if (cell.textContent !== text) cell.textContent = text;
      });
    });
  }
}
