//! One browser's session over every shard of the topology: a [`ShardStream`] per shard, each on its shard's backlog
//! and snapshotter. One Redis is a topology of one shard, so this is the session of every relay; only the framing
//! at the edge differs: a cluster's hellos, commands, snapshots and stale messages go out in their shard's envelope
//! (`wire::encode_shard`), one Redis's as they are (PROTOCOL.md). The shards' streams are independent: each keeps
//! its own order, epoch and offsets, and a key's frames all come from the shard that holds it.
//!
//! [`ShardStreams`] writes to the socket what the streams queue, routes the browser's top-ups to the shard that
//! holds each key, starts a stream for a shard that joins the cluster, ends the stream of one that leaves, and,
//! when slots move, asks their new owner's stream to top up the watched keys in them.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Message;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, Sink, SinkExt, StreamExt};
use replicast_protocol::wire;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::{PollSendError, PollSender};

use crate::relay::Relay;
use crate::shard::Shard;
use crate::snapshot::MAX_SNAPSHOT_KEYS;
use crate::subscription::Subscription;
use crate::topology::{Shape, View};

use super::join::Resume;
use super::shard_stream::{Inbound, ShardStream, REQUEST_QUEUE};
use super::socket::{deliver, send, Close, CLOSE_GOING_AWAY, CLOSE_POLICY};

/// Messages the shards' streams may have queued for the socket.
const OUT_QUEUE: usize = 8;
/// How often requests that found a shard's queue full are offered again.
const RETRY_INTERVAL: Duration = Duration::from_millis(50);

/// What is waiting for one shard's stream.
struct Route {
    /// Set when the shard left the cluster.
    retired: watch::Receiver<bool>,
    requests: mpsc::Sender<Inbound>,
    /// Requests its full queue did not take yet, merged (so they stay bounded): keys and slots to top up.
    keys: BTreeSet<Vec<u8>>,
    slots: BTreeSet<u16>,
}

impl Route {
    /// Offers what waits to the stream; keeps it if the stream's queue is full.
    fn flush(&mut self) {
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
            if let Err(mpsc::error::TrySendError::Full(Inbound::Topup(keys))) =
                self.requests.try_send(Inbound::Topup(keys))
            {
                self.keys.extend(keys);
            }
        }
    }

    fn pending(&self) -> bool {
        !self.keys.is_empty() || !self.slots.is_empty()
    }
}

/// A shard's hello, commands, snapshots and stale messages in its envelope when the relay follows a cluster;
/// notices and acks, and everything of one Redis, as they are.
fn frame(shape: Shape, index: u16, message: Message) -> Message {
    match message {
        Message::Binary(bytes) if shape == Shape::Cluster && wire::is_shard_stream(&bytes) => {
            Message::Binary(Bytes::from(wire::encode_shard(index, &bytes)))
        }
        other => other,
    }
}

/// How one shard's stream ended: its shard's number, and how the session should close.
type Ended = (u32, Result<(), Close>);

pub(crate) struct ShardStreams<'a, W> {
    sink: &'a mut W,
    relay: &'a Relay,
    sub: &'a Subscription,
    resume: &'a [Resume],
    /// What the streams queued for the socket, framed.
    out: mpsc::Sender<Message>,
    queued: mpsc::Receiver<Message>,
    views: watch::Receiver<Arc<View>>,
    /// The topology the routes follow.
    view: Arc<View>,
    routes: HashMap<u32, Route>,
    streams: FuturesUnordered<BoxFuture<'a, Ended>>,
    /// The envelope index of the next shard's stream: an index is never reused in a session.
    next_index: u16,
}

impl<'a, W: Sink<Message> + Unpin> ShardStreams<'a, W> {
    /// Serves `sub` from every shard of the topology until the browser or the relay goes; `requests` are the
    /// browser's, handed over by the session's reading half.
    pub async fn run(
        sink: &'a mut W,
        relay: &'a Relay,
        sub: &'a Subscription,
        resume: &'a [Resume],
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
        let (out, queued) = mpsc::channel(OUT_QUEUE);
        let mut streams = ShardStreams {
            sink,
            relay,
            sub,
            resume,
            out,
            queued,
            views,
            view: view.clone(),
            routes: HashMap::new(),
            streams: FuturesUnordered::new(),
            next_index: 0,
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
            // Biased: a stream is polled first, so that what it queued goes out in the same wake-up rather than
            // after every other task the runtime has to run.
            tokio::select! {
                biased;
                Some((number, result)) = self.streams.next() => {
                    if let Err(close) = result {
                        // What the stream queued before it ended (a resync message) goes first.
                        self.flush_queued().await?;
                        return Err(close);
                    }
                    let left = self.routes.remove(&number).is_some_and(|route| *route.retired.borrow());
                    if !left {
                        // The stream ended without its shard leaving the cluster: the relay is going away.
                        return Ok(());
                    }
                }
                Some(message) = self.queued.recv() => deliver(self.sink, message).await?,
                inbound = requests.recv() => match inbound {
                    None => return Ok(()),
                    Some(Inbound::Ack(ack)) => send(self.sink, &self.relay.metrics, Bytes::from(ack)).await?,
                    Some(Inbound::Topup(keys)) => self.route_topup(keys).await?,
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
        let mut retired = shard.retired();
        let number = shard.number;
        self.routes.insert(
            number,
            Route {
                retired: retired.clone(),
                requests,
                keys: BTreeSet::new(),
                slots: BTreeSet::new(),
            },
        );
        let shape = self.relay.topology.shape();
        let sink = PollSender::new(self.out.clone()).with(move |m: Message| {
            futures_util::future::ready(Ok::<_, PollSendError<Message>>(frame(shape, index, m)))
        });
        let (relay, sub, resume) = (self.relay, self.sub, self.resume);
        let stream = async move {
            let result = tokio::select! {
                result = ShardStream::run(sink, relay, &shard, sub, resume, inbound, index == 0) => result,
                _ = retired.wait_for(|gone| *gone) => Ok(()),
            };
            (number, result)
        };
        self.streams.push(stream.boxed());
        Ok(())
    }

    /// Sends each key to the stream of the shard that holds it; tells the browser about keys no shard holds now.
    async fn route_topup(&mut self, keys: Vec<Vec<u8>>) -> Result<(), Close> {
        let mut unowned = Vec::new();
        for key in keys {
            match self
                .view
                .owner_of(&key)
                .and_then(|n| self.routes.get_mut(&n))
            {
                Some(route) if route.keys.len() < MAX_SNAPSHOT_KEYS => {
                    route.keys.insert(key);
                }
                Some(_) => {}
                None => unowned.push(String::from_utf8_lossy(&key).into_owned()),
            }
        }
        self.routes.values_mut().for_each(Route::flush);
        if unowned.is_empty() {
            return Ok(());
        }
        let text = format!(
            "top-up of keys no shard serves now (their slots have no owner): {}",
            unowned.join(", ")
        );
        let notice = Bytes::from(wire::encode_notice(&text));
        send(self.sink, &self.relay.metrics, notice).await
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

    /// Writes what the streams queued for the socket and nothing more.
    async fn flush_queued(&mut self) -> Result<(), Close> {
        while let Ok(message) = self.queued.try_recv() {
            deliver(self.sink, message).await?;
        }
        Ok(())
    }
}
