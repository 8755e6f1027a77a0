// Loads the wasm package and hands it the page: wasm keeps the socket, the windows and the table.
// Query parameters: ?keys=perf:*,other:* (Redis globs, comma-separated) and ?window=20 (members per key).
import init, { LiveTable } from '/pkg/replicast_wasm.js';

const params = new URLSearchParams(location.search);
const patterns = (params.get('keys') ?? 'perf:*').split(',').filter(Boolean);
const windowSize = Number.parseInt(params.get('window') ?? '20', 10) || 20;

await init();
const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
const table = new LiveTable(
  `${scheme}://${location.host}/ws`,
  patterns,
  windowSize,
  document.getElementById('rows'),
  document.getElementById('status'),
);
document.getElementById('watching').textContent = `watching ${patterns.join(', ')} · newest ${windowSize}`;
// Exposed for the console and the end-to-end tests.
globalThis.replicast = table;
