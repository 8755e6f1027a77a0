//! One browser's session over every shard of the topology: a [`ShardStream`] per shard, each on its shard's backlog
//! and snapshotter. One Redis is a topology of one shard, so this is the session of every relay; only the framing
//! at the edge differs: a cluster's hellos, commands, snapshots and stale messages go out in their shard's envelope
//! (`wire::encode_shard`), one Redis's as they are (PROTOCOL.md). The shards' streams are independent: each keeps
//! its own order, epoch and offsets, and a key's frames all come from the shard that holds it.
//!
//! The streams write to the socket themselves, one message at a time ([`ShardSink`]). [`ShardStreams`] routes the
//! browser's top-ups to the shard that holds each key and what else the browser is sent (acks, notices) to one
//! stream, starts a stream for a shard that joins the cluster, ends the stream of one that leaves (with an ended
//! message, for a client that reads it: the history sink), and, when slots
//! move, asks their new owner's stream to top up the watched keys in them. It writes to the socket itself only
//! when no stream is left: a stream that waits for a full socket holds it, and only this loop polls that stream,
//! so a write of its own could wait forever.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Message;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, Sink, StreamExt};
use replicast_protocol::wire;
use tokio::sync::{mpsc, watch, Mutex};

use crate::relay::Relay;
use crate::shard::Shard;
use crate::snapshot::MAX_SNAPSHOT_KEYS;
use crate::subscription::Subscription;
use crate::topology::{Shape, View};

use super::join::Resume;
use super::shard_stream::{Inbound, ShardSink, ShardStream, REQUEST_QUEUE};
use super::socket::{send, Close, CLOSE_GOING_AWAY, CLOSE_POLICY};
use super::topups::{earliest, not_taken};

/// How often requests that found a shard's queue full are offered again.
const RETRY_INTERVAL: Duration = Duration::from_millis(50);

/// The reason of every ended message: the shard's node is not named (it is logged), since any session may ask.
const ENDED_REASON: &str = "the shard left the cluster";

/// What is waiting for one shard's stream.
struct Route {
    /// The shard's index in the session's envelopes: the lowest is sent acks and notices.
    index: u16,
    /// Set when the shard left the cluster.
    retired: watch::Receiver<bool>,
    requests: mpsc::Sender<Inbound>,
    /// Requests its full queue did not take yet, merged (so they stay bounded): keys and slots to top up.
    keys: BTreeSet<Vec<u8>>,
    /// The smallest `since` of the top-ups merged in `keys`.
    since: Option<u64>,
    slots: BTreeSet<u16>,
    /// Messages to send as they are (acks, notices), in order; the browser's requests are not read while any wait.
    forward: VecDeque<Vec<u8>>,
    /// Digest requests (their ids) for the stream to answer, in order; requests are not read while any wait either.
    digests: VecDeque<String>,
}

impl Route {
    /// The route to a stream of index `index` in the session, taking `requests`, with nothing waiting yet.
    fn new(index: u16, retired: watch::Receiver<bool>, requests: mpsc::Sender<Inbound>) -> Self {
        Route {
            index,
            retired,
            requests,
            keys: BTreeSet::new(),
            since: None,
            slots: BTreeSet::new(),
            forward: VecDeque::new(),
            digests: VecDeque::new(),
        }
    }

    /// Offers what waits to the stream; keeps it if the stream's queue is full.
    fn flush(&mut self) {
        while let Some(message) = self.forward.pop_front() {
            match self.requests.try_send(Inbound::Forward(message)) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(Inbound::Forward(message))) => {
                    self.forward.push_front(message);
                    return;
                }
                Err(_) => return,
            }
        }
        while let Some(id) = self.digests.pop_front() {
            match self.requests.try_send(Inbound::Digest(id)) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(Inbound::Digest(id))) => {
                    self.digests.push_front(id);
                    return;
                }
                Err(_) => return,
            }
        }
        if !self.slots.is_empty() {
            match self
                .requests
                .try_send(Inbound::Slots(std::mem::take(&mut self.slots)))
            {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(Inbound::Slots(slots))) => self.slots = slots,
                Err(_) => return,
            }
        }
        if !self.keys.is_empty() {
            let keys: Vec<Vec<u8>> = std::mem::take(&mut self.keys).into_iter().collect();
            let since = self.since.take();
            if let Err(mpsc::error::TrySendError::Full(Inbound::Topup { keys, since })) =
                self.requests.try_send(Inbound::Topup { keys, since })
            {
                self.keys.extend(keys);
                self.since = since;
            }
        }
    }

    fn pending(&self) -> bool {
        !self.keys.is_empty()
            || !self.slots.is_empty()
            || !self.forward.is_empty()
            || !self.digests.is_empty()
    }
}

/// Where a top-up's keys went ([`place_topup`]): those no shard holds now, and how many were not taken.
#[derive(Debug, Default, PartialEq)]
struct Placed {
    unowned: Vec<String>,
    refused: u64,
}

/// Puts each key to top up on the route of the shard that holds it now in `view`, at most [`MAX_SNAPSHOT_KEYS`]
/// waiting on one route (what one snapshot reads): the others are counted as not taken, for the notice.
fn place_topup(
    view: &View,
    routes: &mut HashMap<u32, Route>,
    keys: Vec<Vec<u8>>,
    since: Option<u64>,
) -> Placed {
    let mut placed = Placed::default();
    for key in keys {
        match view.owner_of(&key).and_then(|n| routes.get_mut(&n)) {
            Some(route) if route.keys.len() < MAX_SNAPSHOT_KEYS => {
                route.keys.insert(key);
                route.since = earliest(route.since, since);
            }
            Some(_) => placed.refused += 1,
            None => placed
                .unowned
                .push(String::from_utf8_lossy(&key).into_owned()),
        }
    }
    placed
}

/// What the route of a shard that left the cluster (removed from `routes`) still held: its messages to send, in
/// order, and its keys to top up, put on the routes of the shards that hold them now (with their `since`).
fn hand_over(
    view: &View,
    routes: &mut HashMap<u32, Route>,
    route: Route,
) -> (VecDeque<Vec<u8>>, Placed) {
    let keys = route.keys.into_iter().collect();
    (route.forward, place_topup(view, routes, keys, route.since))
}

/// How one shard's stream ended: its shard's number, and how the session should close.
type Ended = (u32, Result<(), Close>);

pub(crate) struct ShardStreams<'a, W> {
    socket: &'a Mutex<&'a mut W>,
    relay: &'a Relay,
    sub: &'a Subscription,
    resume: &'a [Resume],
    views: watch::Receiver<Arc<View>>,
    /// The topology the routes follow.
    view: Arc<View>,
    routes: HashMap<u32, Route>,
    streams: FuturesUnordered<BoxFuture<'a, Ended>>,
    /// The envelope index of the next shard's stream: an index is never reused in a session.
    next_index: u16,
    /// Whether the client reads the ended message (`/ws?ended=1`): the stream of a shard that leaves the cluster
    /// then ends with one.
    reads_ended: bool,
}

impl<'a, W: Sink<Message> + Unpin + Send> ShardStreams<'a, W> {
    /// Serves `sub` from every shard of the topology until the browser or the relay goes; `requests` are the
    /// browser's, handed over by the session's reading half; `reads_ended`: the client asked for ended messages.
    pub async fn run(
        sink: &mut W,
        relay: &Relay,
        sub: &Subscription,
        resume: &[Resume],
        reads_ended: bool,
        requests: &mut mpsc::Receiver<Inbound>,
    ) -> Result<(), Close> {
        let socket = Mutex::new(sink);
        ShardStreams::follow(&socket, relay, sub, resume, reads_ended, requests).await
    }

    async fn follow(
        socket: &'a Mutex<&'a mut W>,
        relay: &'a Relay,
        sub: &'a Subscription,
        resume: &'a [Resume],
        reads_ended: bool,
        requests: &mut mpsc::Receiver<Inbound>,
    ) -> Result<(), Close> {
        if let Some(refusal) = relay.topology.refusal(sub) {
            return Err(Close(CLOSE_POLICY, refusal.into()));
        }
        let mut views = relay.topology.subscribe();
        let mut view = views.borrow_and_update().clone();
        // A cluster's shards are known once its topology was first read.
        while view.shards.is_empty() {
            if views.changed().await.is_err() {
                return Ok(());
            }
            view = views.borrow_and_update().clone();
        }
        let mut streams = ShardStreams {
            socket,
            relay,
            sub,
            resume,
            views,
            view: view.clone(),
            routes: HashMap::new(),
            streams: FuturesUnordered::new(),
            next_index: 0,
            reads_ended,
        };
        for shard in &view.shards {
            streams.start(shard)?;
        }
        streams.serve(requests).await
    }

    async fn serve(&mut self, requests: &mut mpsc::Receiver<Inbound>) -> Result<(), Close> {
        let mut retry = tokio::time::interval(RETRY_INTERVAL);
        loop {
            let pending = self.routes.values().any(Route::pending);
            // While a message waits for a stream's full queue, the browser's next requests wait in its socket.
            let forwarding = self
                .routes
                .values()
                .any(|route| !route.forward.is_empty() || !route.digests.is_empty());
            tokio::select! {
                Some((number, result)) = self.streams.next() => {
                    result?;
                    let Some(route) = self.routes.remove(&number).filter(|route| *route.retired.borrow()) else {
                        // The stream ended without its shard leaving the cluster: the relay is going away.
                        return Ok(());
                    };
                    // What waited for the stream of a shard that left goes through another: its messages to the
                    // lowest index left, its keys to top up to the shard that holds each now.
                    let (forward, placed) = hand_over(&self.view, &mut self.routes, route);
                    for message in forward {
                        self.forward(message).await?;
                    }
                    self.routes.values_mut().for_each(Route::flush);
                    self.tell(placed).await?;
                }
                inbound = requests.recv(), if !forwarding => match inbound {
                    None => return Ok(()),
                    Some(Inbound::Forward(message)) => self.forward(message).await?,
                    Some(Inbound::Topup { keys, since }) => self.route_topup(keys, since).await?,
                    Some(Inbound::Digest(id)) => self.route_digest(id).await?,
                    Some(Inbound::Slots(_)) => {}
                },
                changed = self.views.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    let view = self.views.borrow_and_update().clone();
                    self.adopt(view)?;
                }
                _ = retry.tick(), if pending => self.routes.values_mut().for_each(Route::flush),
            }
        }
    }

    /// Starts following `shard` for this session. The first shard's stream tells the browser which of its keys
    /// `--allow` never lets leave.
    fn start(&mut self, shard: &Arc<Shard>) -> Result<(), Close> {
        if usize::from(self.next_index) >= wire::MAX_SHARDS {
            return Err(Close(
                CLOSE_GOING_AWAY,
                "the cluster changed shards more times than one session can follow; reconnect"
                    .into(),
            ));
        }
        let index = self.next_index;
        self.next_index += 1;
        let (requests, inbound) = mpsc::channel(REQUEST_QUEUE);
        let shard = shard.clone();
        let retired = shard.retired();
        let number = shard.number;
        self.routes
            .insert(number, Route::new(index, retired.clone(), requests));
        let socket = self.socket;
        let envelope = (self.relay.topology.shape() == Shape::Cluster).then_some(index);
        let (relay, sub, resume, reads_ended) =
            (self.relay, self.sub, self.resume, self.reads_ended);
        let stream = async move {
            let greeted = Arc::new(AtomicBool::new(false));
            let sink = ShardSink {
                socket,
                envelope,
                greeted: greeted.clone(),
            };
            // A shard that leaves the cluster ends its stream where its backlog ended then, the batches a session
            // behind was not sent yet sent first (a top-up read already in them too).
            let result = ShardStream::run(
                sink,
                relay,
                &shard,
                sub,
                resume,
                inbound,
                index == 0,
                retired.clone(),
            )
            .await;
            // The shard left the cluster: a client that reads it is told, after the last message of the stream it
            // followed, that nothing more of it will come, not even the answer of a top-up it asked and not read
            // yet. A stream that sent nothing, not even its hello, is no stream of the client's.
            let ended = reads_ended && *retired.borrow() && greeted.load(Ordering::Relaxed);
            let result = match result {
                Ok(()) if ended => {
                    // The node's address is the relay's to log, not the client's to read (a restricted token may
                    // ask for ended messages too): the reason is the same for every shard.
                    tracing::info!(
                        "session: the stream of the shard at {} ended, the shard left the cluster",
                        shard.upstream.addr()
                    );
                    let sink = ShardSink {
                        socket,
                        envelope,
                        greeted,
                    };
                    let message = Bytes::from(wire::encode_ended(ENDED_REASON));
                    sink.send(&relay.metrics, message).await
                }
                result => result,
            };
            (number, result)
        };
        self.streams.push(stream.boxed());
        Ok(())
    }

    /// Sends each key to the stream of the shard that holds it; tells the browser about keys no shard holds now.
    async fn route_topup(&mut self, keys: Vec<Vec<u8>>, since: Option<u64>) -> Result<(), Close> {
        let placed = place_topup(&self.view, &mut self.routes, keys, since);
        self.routes.values_mut().for_each(Route::flush);
        self.tell(placed).await
    }

    /// Tells the browser about a top-up's keys no shard holds now, and counts, in the notice a client asks them
    /// again on, those past what may wait on a route.
    async fn tell(&mut self, placed: Placed) -> Result<(), Close> {
        if !placed.unowned.is_empty() {
            let text = format!(
                "top-up of keys no shard serves now (their slots have no owner): {}",
                placed.unowned.join(", ")
            );
            self.forward(wire::encode_notice(&text)).await?;
        }
        match not_taken(self.relay, placed.refused) {
            Some(text) => self.forward(wire::encode_notice(&text)).await,
            None => Ok(()),
        }
    }

    /// Hands a digest request to the stream of one Redis, whose state answers it; a cluster's shards' states do not
    /// (each is at an offset of its own stream).
    async fn route_digest(&mut self, id: String) -> Result<(), Close> {
        let single = self.relay.topology.shape() != Shape::Cluster;
        match self.routes.values_mut().next().filter(|_| single) {
            Some(route) => {
                route.digests.push_back(id);
                route.flush();
                Ok(())
            }
            None => {
                // Each shard's state is at an offset of its own stream: one digest of every window has no place.
                let refused =
                    Err("the relay follows a cluster: its shards' states are not digested");
                self.forward(wire::encode_digest(&id, 0, refused)).await
            }
        }
    }

    /// Sends `message` as it is, through the stream of the lowest index whose shard is still in the cluster (or,
    /// if all are leaving, any), so that nothing else writes while a stream holds the socket; with no stream left
    /// (every shard gone), itself.
    async fn forward(&mut self, message: Vec<u8>) -> Result<(), Close> {
        let route = self
            .routes
            .values_mut()
            .min_by_key(|route| (*route.retired.borrow(), route.index));
        match route {
            Some(route) => {
                route.forward.push_back(message);
                route.flush();
                Ok(())
            }
            None => {
                let mut socket = self.socket.lock().await;
                send(&mut **socket, &self.relay.metrics, Bytes::from(message)).await
            }
        }
    }

    /// Follows a new view of the topology: a stream for each shard that joined, and a top-up of the watched keys
    /// in the slots each shard gained. The streams of shards that left end by themselves.
    fn adopt(&mut self, view: Arc<View>) -> Result<(), Close> {
        for shard in &view.shards {
            if !self.routes.contains_key(&shard.number) {
                self.start(shard)?;
            }
        }
        for (&number, route) in &mut self.routes {
            let gained = view.gained(&self.view, number);
            if view.shard(number).is_some() && !gained.is_empty() {
                route.slots.extend(gained);
                route.flush();
            }
        }
        self.view = view;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Owners;

    /// A route of envelope index `index`, its queue full (so what is asked waits on it), and its queue's receiver.
    fn full_route(index: u16, retired: bool) -> (Route, mpsc::Receiver<Inbound>) {
        let (requests, inbound) = mpsc::channel(1);
        requests.try_send(Inbound::Slots(BTreeSet::new())).unwrap();
        let (_, retired) = watch::channel(retired);
        (Route::new(index, retired, requests), inbound)
    }

    fn view(owner: u32) -> View {
        View {
            version: 0,
            shards: Vec::new(),
            owners: Owners::All(owner),
        }
    }

    fn keys(from: usize, to: usize) -> Vec<Vec<u8>> {
        (from..to).map(|i| format!("k{i}").into_bytes()).collect()
    }

    /// Review of issue 23's fixes, item 3: keys past what may wait on a route are counted for the "not taken"
    /// notice (on which a client asks every unanswered key again), not dropped unsaid.
    #[test]
    fn keys_past_what_waits_on_a_route_are_counted_not_taken() {
        let (route, _inbound) = full_route(0, false);
        let mut routes = HashMap::from([(1, route)]);
        let placed = place_topup(
            &view(1),
            &mut routes,
            keys(0, MAX_SNAPSHOT_KEYS + 3),
            Some(7),
        );
        assert_eq!(
            placed,
            Placed {
                unowned: Vec::new(),
                refused: 3
            }
        );
        assert_eq!(routes[&1].keys.len(), MAX_SNAPSHOT_KEYS);
        let placed = place_topup(&view(2), &mut routes, keys(0, 2), None);
        assert_eq!(placed.unowned, ["k0", "k1"], "no route of shard 2");
        assert_eq!(placed.refused, 0);
    }

    /// Review of issue 23's fixes, item 3: the keys waiting on the route of a shard that left the cluster go to the
    /// route of the shard that holds them now, with their `since`, and its messages are handed back to send.
    #[test]
    fn a_retired_route_s_waiting_keys_go_to_their_current_owner() {
        let (mut gone, _gone_inbound) = full_route(0, true);
        let (live, _live_inbound) = full_route(1, false);
        let mut routes = HashMap::from([(2, live)]);
        gone.keys.extend(keys(0, 3));
        gone.since = Some(40);
        gone.forward.push_back(b"ack".to_vec());
        let (forward, placed) = hand_over(&view(2), &mut routes, gone);
        assert_eq!(forward, [b"ack".to_vec()]);
        assert_eq!(placed, Placed::default());
        assert_eq!(routes[&2].keys, keys(0, 3).into_iter().collect());
        assert_eq!(routes[&2].since, Some(40));
    }
}
