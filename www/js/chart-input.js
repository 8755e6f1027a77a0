// What a pointer, a finger or the keyboard does on a LineChart. Hovering (mouse, pen) or touching shows the crosshair
// at the nearest sample; a mouse drag pans, a drag with Shift held brushes a range to zoom into; a double-click
// goes back to live. With the chart focused: ← and → step through the samples, Home and End go to the first and
// newest, + and − zoom, Shift with ← or → pans. The chart only reports what was asked for (`ChartInput`); the view
// decides what the range becomes (clamped to what the page holds, paused, loaded from history).

/**
 * @typedef {{hover: (chart: object, t: number | null, tooltip: boolean) => void,
 *            range: (t0: number, t1: number) => void, live: () => void, announce: (text: string) => void}} ChartInput
 */

/** Pixels a mouse must move with the button down before it pans rather than clicks. */
const DRAG_PX = 3;
/** A zoom step: + shows this share of the range, − this many times more. */
const ZOOM_STEP = 2;
/** A pan step of Shift+arrow: this share of the range. */
const PAN_STEP = 0.25;

/** Binds pointer and keyboard input on `chart`'s plot to `input`. */
export function bindChartInput(chart, input) {
  const svg = chart.svg.node();
  let drag = null;
  const local = (e) => e.clientX - svg.getBoundingClientRect().left;
  const inPlot = (px) => Math.min(chart.plotRight, Math.max(chart.plotLeft, px));

  svg.addEventListener('pointermove', (e) => {
    if (!chart.data) return;
    const px = local(e);
    if (drag && e.pointerId === drag.id) {
      if (!drag.moved && Math.abs(px - drag.x) < DRAG_PX) return;
      drag.moved = true;
      if (drag.brush) {
        chart.showBrush(drag.x, inPlot(px));
      } else {
        const msPerPx = (drag.t1 - drag.t0) / (chart.plotRight - chart.plotLeft);
        const dt = (px - drag.x) * msPerPx;
        input.range(drag.t0 - dt, drag.t1 - dt);
      }
      return;
    }
    input.hover(chart, chart.timeAt(inPlot(px)), true);
  });
  svg.addEventListener('pointerdown', (e) => {
    if (!chart.data) return;
    if (e.pointerType === 'touch') {
      // A finger points: the crosshair follows it, and the page still scrolls vertically (touch-action: pan-y).
      input.hover(chart, chart.timeAt(inPlot(local(e))), true);
      return;
    }
    if (e.button !== 0) return;
    const { t0, t1 } = chart.data;
    drag = { id: e.pointerId, x: inPlot(local(e)), t0, t1, brush: e.shiftKey, moved: false };
    svg.setPointerCapture(e.pointerId);
  });
  const endDrag = (e) => {
    if (!drag || e.pointerId !== drag.id) return;
    const { brush, moved, x } = drag;
    drag = null;
    chart.showBrush(null);
    if (brush && moved) {
      const a = chart.timeAt(x);
      const b = chart.timeAt(inPlot(local(e)));
      if (Math.abs(b - a) > 0) input.range(Math.min(a, b), Math.max(a, b));
    }
  };
  svg.addEventListener('pointerup', endDrag);
  svg.addEventListener('pointercancel', endDrag);
  svg.addEventListener('pointerleave', (e) => {
    if (e.pointerType !== 'touch' && !drag && document.activeElement !== svg) input.hover(chart, null, false);
  });
  svg.addEventListener('dblclick', (e) => {
    e.preventDefault();
    input.live();
  });

  svg.addEventListener('focus', () => {
    if (!chart.data) return;
    const { times, t1 } = chart.data;
    const t = chart.cursor ?? (times.length ? Math.min(times[times.length - 1], t1) : t1);
    input.hover(chart, t, true);
    input.announce(chart.describeCursor());
  });
  svg.addEventListener('blur', () => input.hover(chart, null, false));
  svg.addEventListener('keydown', (e) => {
    if (!chart.data || e.metaKey || e.ctrlKey || e.altKey) return;
    const { times, t0, t1 } = chart.data;
    const span = t1 - t0;
    const at = chart.cursor ?? t1;
    let handled = true;
    if (e.shiftKey && (e.key === 'ArrowLeft' || e.key === 'ArrowRight')) {
      const dt = (e.key === 'ArrowLeft' ? -1 : 1) * PAN_STEP * span;
      input.range(t0 + dt, t1 + dt);
    } else if (e.key === 'ArrowLeft' || e.key === 'ArrowRight' || e.key === 'Home' || e.key === 'End') {
      const sample = chart.sampleAt(at);
      const step = { ArrowLeft: -1, ArrowRight: 1 }[e.key] ?? 0;
      let t = at;
      if (e.key === 'Home') t = times.find((v) => v >= t0) ?? t0;
      else if (e.key === 'End') t = times.findLast((v) => v <= t1) ?? t1;
      else if (sample && !sample.history) t = times[Math.max(0, Math.min(times.length - 1, sample.index + step))];
      else if (sample) t = sample.t + step * (span / 100);
      input.hover(chart, t, true);
      input.announce(chart.describeCursor());
    } else if (e.key === '+' || e.key === '=' || e.key === '-' || e.key === '_') {
      const zoomIn = e.key === '+' || e.key === '=';
      const center = Math.min(t1, Math.max(t0, at));
      const share = (center - t0) / (span || 1);
      const next = zoomIn ? span / ZOOM_STEP : span * ZOOM_STEP;
      input.range(center - share * next, center + (1 - share) * next);
    } else {
      handled = false;
    }
    if (handled) {
      e.preventDefault();
      e.stopPropagation();
    }
  });
}
