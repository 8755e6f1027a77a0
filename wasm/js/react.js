// `useReplicast`: a Replicast client for a React component's life. It connects when the component mounts (or when
// the URL or the options change), re-renders the component on each change of its windows, of the status and of
// whether the view is exact, and closes the client when the component unmounts.
import { useEffect, useState } from 'react';
import { Replicast } from './index.js';

export function useReplicast(url, options) {
  // The options compared by value, so that a literal written in the component does not reconnect on each render.
  const watching = JSON.stringify([url, options]);
  const [state, setState] = useState({ client: null, status: 'connecting', synced: false, keys: [], version: 0 });
  useEffect(() => {
    const [url, options] = JSON.parse(watching);
    const client = new Replicast(url, options);
    setState({ client, status: client.status, synced: client.synced, keys: [], version: 0 });
    const update = (next) => setState((state) => (state.client === client ? { ...state, ...next(state) } : state));
    const stops = [
      client.onStatus((status) => update(() => ({ status }))),
      client.onSynced(() => update(() => ({ synced: true }))),
      client.onChange(({ keys, status }) =>
        update((state) => ({ keys, status, synced: client.synced, version: state.version + 1 }))),
    ];
    return () => {
      for (const stop of stops) stop();
      // Closed, not freed: an animation frame it asked for may still come, and the wasm memory goes with the
      // object when it is collected.
      client.close();
    };
  }, [watching]);
  return state;
}
