// The page's entry: reads the connection settings from the query string and starts the dashboard.
// ?keys=perf:*,other:* (Redis globs, comma-separated; default perf:*), ?token=… for a relay that requires one,
// ?window=10m (the window when the fragment does not say: 30s, 10m, 1h; a bare number is seconds), ?notes=KEY (the
// stream of the hosts' notes; default annotations:perf, which the relay must allow and make writable),
// ?history=URL (the history sink; without it the page asks the relay's config.json, and "off" means none). What
// the user chooses lives in the fragment (#host=web-01&filter=web&window=10m&sort=cpu&group=role&tz=utc&cpu=90/1m;
// see js/controls.js).
import { Dashboard } from './js/dashboard.js';
import { parseDuration } from './js/format.js';

const params = new URLSearchParams(location.search);
// The header's link to the write profile carries the relay's token, which its /profile asks for as sessions do.
if (params.get('token')) {
  document.querySelector('nav.pages a[href="profile.html"]')
    ?.setAttribute('href', `profile.html?token=${encodeURIComponent(params.get('token'))}`);
}
const patterns = (params.get('keys') ?? 'perf:*').split(',').filter(Boolean);
const windowFallback = parseDuration(params.get('window')) || undefined;

const notesKey = params.get('notes') || undefined;
const dashboard = await Dashboard.start({
  patterns, token: params.get('token'), windowFallback, notesKey, history: params.get('history'),
});
// For the console, the end-to-end tests and the benchmarks (frameTimes: ms of drawing per frame, newest last).
globalThis.replicastDashboard = dashboard;
