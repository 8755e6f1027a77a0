// Loads the wasm package and hands it the page: wasm keeps the socket, the windows and the table.
// Query parameters: ?keys=perf:*,other:* (Redis globs, comma-separated), ?window=20 (members per key), and
// ?token=… for a relay that requires one.
import init, { LiveTable } from '/pkg/replicast_wasm.js';

const params = new URLSearchParams(location.search);
const patterns = (params.get('keys') ?? 'perf:*').split(',').filter(Boolean);
const windowSize = Number.parseInt(params.get('window') ?? '20', 10) || 20;

await init();
const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
// A relay started with --token needs it: open the page as ?token=….
const token = params.get('token');
const socketUrl = `${scheme}://${location.host}/ws${token ? `?token=${encodeURIComponent(token)}` : ''}`;
const table = new LiveTable(
  socketUrl,
  patterns,
  windowSize,
  document.getElementById('rows'),
  document.getElementById('status'),
);
document.getElementById('watching').textContent = `watching ${patterns.join(', ')} · newest ${windowSize}`;
// Exposed for the console and the end-to-end tests.
globalThis.replicast = table;
