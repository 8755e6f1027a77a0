//! One browser's session on a relay following a Redis Cluster: one [`session::serve`] per shard, each on its
//! shard's backlog and snapshotter, whose hellos, commands and snapshots go out in that shard's envelope
//! (`wire::encode_shard`). The shards' streams are independent: each keeps its own order, epoch and offsets, and
//! a key's frames all come from the shard that owns it. This task writes to the socket, routes the browser's
//! top-ups to the shard that owns each key, starts a loop for a shard that joins the cluster, ends the loop of one
//! that leaves, and, when slots move, asks their new owner's loop to top up the watched keys in them.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use axum::extract::ws::Message;
use bytes::Bytes;
use futures_util::stream::FuturesUnordered;
use futures_util::{Sink, SinkExt, StreamExt};
use replicast_protocol::wire;
use tokio::sync::mpsc;
use tokio_util::sync::{PollSendError, PollSender};

use crate::cluster::Cluster;
use crate::http::Relay;
use crate::session::{self, Close, Inbound, Resume, CLOSE_GOING_AWAY, CLOSE_POLICY};
use crate::snapshot::MAX_SNAPSHOT_KEYS;
use crate::subscription::Subscription;

/// Messages the shards' loops may have queued for the socket.
const OUT_QUEUE: usize = 8;
/// How often requests that found a shard's queue full are offered again.
const RETRY_INTERVAL: Duration = Duration::from_millis(50);

/// What is waiting for one shard's loop.
struct Route {
    number: u32,
    /// Set when the shard left the cluster.
    retired: tokio::sync::watch::Receiver<bool>,
    requests: mpsc::Sender<Inbound>,
    /// Requests its full queue did not take yet, merged (so they stay bounded): keys and slots to top up.
    keys: BTreeSet<Vec<u8>>,
    slots: BTreeSet<u16>,
}

impl Route {
    /// Offers what waits to the loop; keeps it if the loop's queue is full.
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

/// A shard's hello, commands, snapshots and stale messages in its envelope; notices and acks as they are.
fn wrap(index: u16, message: Message) -> Message {
    match message {
        Message::Binary(bytes) if wire::is_shard_stream(&bytes) => {
            Message::Binary(Bytes::from(wire::encode_shard(index, &bytes)))
        }
        other => other,
    }
}

/// Serves `sub` from every shard of `cluster` until the browser or the relay goes.
pub(crate) async fn serve<W: Sink<Message> + Unpin>(
    sink: &mut W,
    relay: &Relay,
    cluster: &Cluster,
    sub: &Subscription,
    resume: Vec<Resume>,
    requests: &mut mpsc::Receiver<Inbound>,
) -> Result<(), Close> {
    if sub.db != 0 {
        return Err(Close(
            CLOSE_POLICY,
            "a Redis Cluster has only database 0: subscribe with db 0".into(),
        ));
    }
    let (out, mut queued) = mpsc::channel::<Message>(OUT_QUEUE);
    let mut views = cluster.subscribe();
    let mut view = views.borrow_and_update().clone();
    while view.shards.is_empty() {
        if views.changed().await.is_err() {
            return Ok(());
        }
        view = views.borrow_and_update().clone();
    }
    let mut loops = FuturesUnordered::new();
    let mut routes: HashMap<u32, Route> = HashMap::new();
    let mut next_index: u16 = 0;
    let resume = &resume;
    let start = |shard: &std::sync::Arc<crate::cluster::Shard>, index: u16, first: bool| {
        let (requests, mut inbound) = mpsc::channel(session::REQUEST_QUEUE);
        let shard_relay = Relay {
            backlog: shard.backlog.clone(),
            snapshots: shard.snapshots.clone(),
            ..relay.clone()
        };
        let mut retired = shard.retired.subscribe();
        let left = retired.clone();
        let out = out.clone();
        let number = shard.number;
        let run = async move {
            let mut sink = PollSender::new(out).with(move |m: Message| {
                futures_util::future::ready(Ok::<_, PollSendError<Message>>(wrap(index, m)))
            });
            let result = tokio::select! {
                result = session::serve(&mut sink, &shard_relay, sub, resume, &mut inbound, first) => result,
                _ = retired.wait_for(|gone| *gone) => Ok(()),
            };
            (number, result)
        };
        (
            Route {
                number,
                retired: left,
                requests,
                keys: BTreeSet::new(),
                slots: BTreeSet::new(),
            },
            run,
        )
    };
    for shard in &view.shards {
        let (route, run) = start(shard, next_index, next_index == 0);
        next_index += 1;
        routes.insert(route.number, route);
        loops.push(run);
    }
    let mut retry = tokio::time::interval(RETRY_INTERVAL);
    loop {
        let pending = routes.values().any(Route::pending);
        tokio::select! {
            Some(message) = queued.recv() => {
                match tokio::time::timeout(session::SEND_TIMEOUT, sink.send(message)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return Err(Close(CLOSE_GOING_AWAY, "send failed".into())),
                    Err(_) => return Err(Close(CLOSE_POLICY, "stopped reading".into())),
                }
            }
            inbound = requests.recv() => match inbound {
                None => return Ok(()),
                Some(Inbound::Ack(ack)) => {
                    if tokio::time::timeout(session::SEND_TIMEOUT, sink.send(Message::Binary(Bytes::from(ack)))).await.is_err() {
                        return Err(Close(CLOSE_POLICY, "stopped reading".into()));
                    }
                }
                Some(Inbound::Topup(keys)) => {
                    let mut unowned = Vec::new();
                    for key in keys {
                        match view.owner_of(&key).and_then(|n| routes.get_mut(&n)) {
                            Some(route) if route.keys.len() < MAX_SNAPSHOT_KEYS => { route.keys.insert(key); }
                            Some(_) => {}
                            None => unowned.push(String::from_utf8_lossy(&key).into_owned()),
                        }
                    }
                    routes.values_mut().for_each(Route::flush);
                    if !unowned.is_empty() {
                        let text = format!("top-up of keys no shard serves now (their slots have no owner): {}", unowned.join(", "));
                        queue_notice(sink, &text).await?;
                    }
                }
                Some(Inbound::Slots(_)) => {}
            },
            changed = views.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let new = views.borrow_and_update().clone();
                for shard in &new.shards {
                    if !routes.contains_key(&shard.number) {
                        if usize::from(next_index) >= wire::MAX_SHARDS {
                            return Err(Close(CLOSE_GOING_AWAY, "the cluster changed shards more times than one session can follow; reconnect".into()));
                        }
                        let (route, run) = start(shard, next_index, false);
                        next_index += 1;
                        routes.insert(route.number, route);
                        loops.push(run);
                    }
                }
                for route in routes.values_mut() {
                    let gained = new.gained(&view, route.number);
                    if new.shard(route.number).is_some() && !gained.is_empty() {
                        route.slots.extend(gained);
                        route.flush();
                    }
                }
                view = new;
            }
            Some((number, result)) = loops.next() => {
                result?;
                let left = routes.remove(&number).is_some_and(|route| *route.retired.borrow());
                if !left {
                    // The loop ended without its shard leaving the cluster: the relay is going away.
                    return Ok(());
                }
            }
            _ = retry.tick(), if pending => routes.values_mut().for_each(Route::flush),
        }
    }
}

async fn queue_notice<W: Sink<Message> + Unpin>(sink: &mut W, text: &str) -> Result<(), Close> {
    let notice = Message::Binary(Bytes::from(wire::encode_notice(text)));
    match tokio::time::timeout(session::SEND_TIMEOUT, sink.send(notice)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(Close(CLOSE_GOING_AWAY, "send failed".into())),
        Err(_) => Err(Close(CLOSE_POLICY, "stopped reading".into())),
    }
}
