// The page's entry: reads the connection settings from the query string and starts the dashboard.
// ?keys=perf:*,other:* (Redis globs, comma-separated; default perf:*), ?token=… for a relay that requires one,
// ?window=N (samples per host when the fragment does not say), ?notes=KEY (the stream of the hosts' notes; default
// annotations:perf, which the relay must allow and make writable). What the user chooses lives in the fragment
// (#host=web-01&filter=web&window=300&above=80; see js/controls.js).
import { Dashboard } from './js/dashboard.js';

const params = new URLSearchParams(location.search);
const patterns = (params.get('keys') ?? 'perf:*').split(',').filter(Boolean);
const windowFallback = Number.parseInt(params.get('window') ?? '', 10) || undefined;

const notesKey = params.get('notes') || undefined;
const dashboard = await Dashboard.start({ patterns, token: params.get('token'), windowFallback, notesKey });
// For the console, the end-to-end tests and the benchmarks (frameTimes: ms of drawing per frame, newest last).
globalThis.replicastDashboard = dashboard;
