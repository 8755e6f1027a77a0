// The RDB inspector page: a dump dropped or chosen is read by a worker (worker.js, the wasm RDB reader) while a
// progress bar follows it; Cancel terminates the worker. The summary it returns is the one `replicast rdb --stats`
// prints (the same Rust code), drawn by report.js, and can be saved as JSON.

import { bytes as formatBytes } from '../format.js';
import { renderReport } from './report.js';

/** How many of the biggest keys the report lists. */
const TOP_KEYS = 50;

const $ = (id) => document.getElementById(id);
let worker = null;

function show(state) {
  document.body.dataset.state = state;
  $('reading').hidden = state !== 'reading';
}

function cancel() {
  worker?.terminate();
  worker = null;
  show('idle');
  $('reading-text').textContent = '';
}

function read(file) {
  cancel();
  $('error').hidden = true;
  $('report').hidden = true;
  $('reading-name').textContent = `${file.name} (${formatBytes(file.size)})`;
  $('progress').value = 0;
  show('reading');
  const started = performance.now();
  worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
  worker.onmessage = ({ data }) => {
    if (data.type === 'progress') {
      $('progress').value = file.size ? data.bytes / file.size : 1;
      const seconds = (performance.now() - started) / 1000;
      $('reading-text').textContent = `${formatBytes(data.bytes)} of ${formatBytes(file.size)}, ${data.keys.toLocaleString('en')} keys, ${(data.bytes / 1e6 / Math.max(seconds, 1e-3)).toFixed(0)} MB/s`;
    } else if (data.type === 'done') {
      worker.terminate();
      worker = null;
      show('done');
      const summary = JSON.parse(data.summary);
      renderReport($('report'), summary, file.name);
      $('report').hidden = false;
    } else if (data.type === 'error') {
      worker.terminate();
      worker = null;
      show('failed');
      $('error').textContent = `Cannot read ${file.name}: ${data.message}`;
      $('error').hidden = false;
    }
  };
  worker.onerror = (event) => {
    cancel();
    show('failed');
    $('error').textContent = `The reader failed to start: ${event.message ?? 'see the console'}`;
    $('error').hidden = false;
  };
  worker.postMessage({ file, top: TOP_KEYS, now: Date.now() });
}

$('file').addEventListener('change', (event) => {
  const [file] = event.target.files;
  if (file) read(file);
  event.target.value = '';
});
$('cancel').addEventListener('click', cancel);
document.addEventListener('dragover', (event) => {
  event.preventDefault();
  document.body.dataset.dragging = '';
});
document.addEventListener('dragleave', () => delete document.body.dataset.dragging);
document.addEventListener('drop', (event) => {
  event.preventDefault();
  delete document.body.dataset.dragging;
  const file = event.dataTransfer?.files?.[0];
  if (file) read(file);
});
