//! The sink's session with the relay: a WebSocket client like a page (docs/PROTOCOL.md). It subscribes to the
//! history and mirror patterns, resumes with `at=<epoch>:<offset>,…` from where the database (or the last
//! session) stands, asks for the ended message of a cluster's shard that leaves (`ended=1`), reads the relay's
//! messages into batches ([`Changes`]), asks for the top-ups the windows need (again, in time, those not answered),
//! and hands each batch to the writer when it is full or old enough.
//!
//! The channel to the writer holds one batch: while PostgreSQL is slower than the stream, the session waits and
//! reads nothing, the relay's backlog keeps what it has not read, and the sink's memory stays one batch being
//! filled, one waiting and one per writer connection being written. A session the relay drops (it fell behind the backlog, the relay restarted) is
//! opened again with the position of the last message read; when the relay cannot resume it there, its hello and
//! snapshot start the stream afresh and history rows already stored are skipped by their primary key.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use ws_client::tungstenite::Message as WsMessage;

use super::changes::Changes;
use super::connection::{connect, BatchLimits, Session};
use super::metrics::SinkMetrics;
use super::rows::Batch;
use replicast_protocol::client_message::{ClientMessage, Subscribe, Topup};
use replicast_protocol::wire;

/// Silence from the relay after which the session is opened again: it sends progress at least every second
/// while the stream moves, and Redis pings its replicas every 10 s.
const IDLE: Duration = Duration::from_secs(30);
/// Waits between connection attempts: from the first to the last, doubling.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_LAST: Duration = Duration::from_secs(5);
/// Time without a hello, since the session's last, after which a shard that said none is taken as gone from the
/// cluster (`Changes::hellos_settled`): the relay starts every shard's stream when the session opens, and a resume
/// sends its hello at once.
const HELLOS_SETTLE: Duration = Duration::from_secs(5);

/// Follows the relay for ever, from `positions` (`(epoch, offset)`, the database's), sending batches to `writer`.
pub async fn follow(
    session: Session,
    mut changes: Changes,
    mut positions: Vec<(String, u64)>,
    writer: mpsc::Sender<Batch>,
    metrics: Arc<SinkMetrics>,
) -> anyhow::Result<()> {
    let mut wait = RETRY_FIRST;
    let mut batch = Batch::default();
    let mut first_change: Option<Instant> = None;
    loop {
        match run_session(
            &session,
            &mut changes,
            &positions,
            &writer,
            &metrics,
            &mut batch,
            &mut first_change,
        )
        .await
        {
            Ok(reason) => {
                tracing::info!("the relay session ended ({reason}); opening another");
                wait = RETRY_FIRST;
            }
            Err(err) => {
                tracing::warn!("relay session: {err:#}; trying again in {wait:?}");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(RETRY_LAST);
            }
        }
        if writer.is_closed() {
            anyhow::bail!("the writer stopped");
        }
        changes.reconnected();
        let now = changes.positions();
        if !now.is_empty() {
            positions = now;
        }
    }
}

/// The relay's `/ws` with what the sink asks of it: the ended message of a shard that leaves the cluster
/// (`ended=1`; a relay before protocol version 5 ignores the parameter and sends none), and where to resume
/// (`at=<epoch>:<offset>,…`).
fn session_url(relay: &str, positions: &[(String, u64)]) -> String {
    let join = if relay.contains('?') { '&' } else { '?' };
    let mut url = format!("{relay}{join}ended=1");
    if positions.is_empty() {
        return url;
    }
    let at: Vec<String> = positions
        .iter()
        .map(|(epoch, offset)| format!("{epoch}:{offset}"))
        .collect();
    // Epochs are hex replication ids: nothing to escape but the separators.
    let at = at.join(",").replace(':', "%3A").replace(',', "%2C");
    url.push_str("&at=");
    url.push_str(&at);
    url
}

/// One session: returns why it ended when the relay ended it, or the error.
async fn run_session(
    session: &Session,
    changes: &mut Changes,
    positions: &[(String, u64)],
    writer: &mpsc::Sender<Batch>,
    metrics: &SinkMetrics,
    batch: &mut Batch,
    first_change: &mut Option<Instant>,
) -> anyhow::Result<String> {
    changes.resuming(positions);
    let mut socket = connect(session, &session_url(&session.relay, positions)).await?;
    metrics
        .sessions
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(relay = %session.relay, resume = ?positions, "following the relay");
    socket
        .send(WsMessage::text(
            ClientMessage::Subscribe(Subscribe {
                // From the command line: text.
                patterns: session
                    .patterns
                    .iter()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect(),
                keys: Vec::new(),
                db: session.db,
                window: session.window,
            })
            .to_json(),
        ))
        .await?;
    let mut last_hello: Option<Instant> = None;
    loop {
        if last_hello.is_some_and(|at| at.elapsed() >= HELLOS_SETTLE) {
            changes.hellos_settled();
            last_hello = None;
        }
        let deadline = first_change.map(|t| t + session.limits.age);
        // Keys asked and not answered are asked again in time even if the stream is quiet.
        let ask_again = changes.asks_again_at().map(Instant::from_std);
        // So is a listing that failed.
        let list_again = changes.lists_again_at().map(Instant::from_std);
        let message = tokio::select! {
            message = tokio::time::timeout(IDLE, socket.next()) => message,
            _ = sleep_until(deadline) => {
                flush(batch, first_change, session.limits, writer, metrics).await?;
                continue;
            }
            _ = sleep_until(ask_again) => {
                ask_topups(&mut socket, changes, metrics).await?;
                continue;
            }
            _ = sleep_until(list_again) => {
                list_mirrors(session, changes, writer, metrics, batch, first_change).await?;
                ask_topups(&mut socket, changes, metrics).await?;
                continue;
            }
        };
        let message = match message {
            Err(_) => anyhow::bail!("the relay sent nothing for {IDLE:?}"),
            Ok(None) => return Ok("the relay closed the connection".into()),
            Ok(Some(message)) => message?,
        };
        let bytes = match message {
            WsMessage::Binary(bytes) => bytes,
            WsMessage::Close(frame) => {
                return Ok(frame.map_or("closed".into(), |f| {
                    format!("closed {}: {}", f.code, f.reason)
                }))
            }
            _ => continue,
        };
        if wire::is_snapshot(&bytes) {
            metrics
                .snapshots
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let spans = batch.inexact_spans.len();
        let applied = changes
            .apply(&bytes, batch)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for span in &batch.inexact_spans[spans..] {
            if span.pattern {
                tracing::warn!(
                    pattern = span.key,
                    shard = span.shard,
                    from_offset = span.from_offset,
                    to_offset = span.to_offset,
                    "the history of any key this pattern matches may miss a score at this offset: a command the \
                     relay withheld may have written keys the sink holds no window of (replicast.inexact_span, \
                     pattern = true)"
                );
                continue;
            }
            tracing::warn!(
                key = span.key,
                shard = span.shard,
                from_offset = span.from_offset,
                to_offset = span.to_offset,
                "the history of a key may miss a score between these offsets: a command whose rows a top-up reads, \
                 and the key written again before its answer, or no answer (its shard left the cluster) \
                 (replicast.inexact_span)"
            );
        }
        for (why, key) in changes.take_refusals() {
            metrics.refuse(why);
            tracing::warn!(
                key,
                reason = why.label(),
                "a history row could not be stored"
            );
        }
        if applied.hello {
            last_hello = Some(Instant::now());
        }
        if let Some(text) = applied.notice {
            tracing::warn!("relay notice: {text}");
        }
        if let Some(reason) = applied.ended {
            tracing::warn!(
                "a shard's stream ended ({reason}): its open spans are recorded, its position let go"
            );
        }
        metrics.received(&batch.positions);
        first_change.get_or_insert_with(Instant::now);
        list_mirrors(session, changes, writer, metrics, batch, first_change).await?;
        ask_topups(&mut socket, changes, metrics).await?;
        if batch.len() >= session.limits.rows || batch.bytes >= session.limits.bytes {
            flush(batch, first_change, session.limits, writer, metrics).await?;
        }
        if let Some(reason) = applied.reconnect {
            // What was read so far is written; the next session resumes after it.
            flush(batch, first_change, session.limits, writer, metrics).await?;
            return Ok(format!("resync: {reason}"));
        }
    }
}

/// Has the relay list the mirrored keys of the shards `changes` wants listed now ([`Changes::take_listings`]), each by
/// a session of its own (`listing.rs`); a listing that failed is tried again later in this session.
async fn list_mirrors(
    session: &Session,
    changes: &mut Changes,
    writer: &mpsc::Sender<Batch>,
    metrics: &SinkMetrics,
    batch: &mut Batch,
    first_change: &mut Option<Instant>,
) -> anyhow::Result<()> {
    let listings = changes.take_listings(Instant::now().into_std());
    if listings.is_empty() {
        return Ok(());
    }
    // Stored first, with the shard marked to be listed again: a sink stopped before every key listed is read lists
    // them again when it resumes.
    flush(batch, first_change, session.limits, writer, metrics).await?;
    for (shard, epoch) in listings {
        match super::listing::list(session, &epoch).await {
            Ok(listing) => {
                tracing::info!(
                    shard,
                    keys = listing.keys.len(),
                    sets = listing.sets.len(),
                    "the relay listed the mirrored keys of a shard: each is read again"
                );
                changes.listed(shard, listing.keys, listing.sets, batch);
                first_change.get_or_insert_with(Instant::now);
            }
            Err(err) => {
                tracing::warn!(
                    shard,
                    "the mirrored keys could not be listed ({err:#}): keys the mirror holds no window of are read \
                     again once a listing is, tried again after a wait"
                );
                changes.listing_failed(shard, Instant::now().into_std());
            }
        }
    }
    Ok(())
}

/// Sends the relay the top-ups `changes` asks now ([`Changes::take_topups`]), counted.
async fn ask_topups(
    socket: &mut (impl futures_util::Sink<WsMessage, Error = ws_client::tungstenite::Error> + Unpin),
    changes: &mut Changes,
    metrics: &SinkMetrics,
) -> anyhow::Result<()> {
    for ask in changes.take_topups(Instant::now().into_std()) {
        metrics
            .topups
            .fetch_add(ask.keys.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let keys = ask.keys.iter().map(Vec::as_slice);
        let requests = match ask.since {
            Some(since) => Topup::requests_since(keys, since),
            None => Topup::requests(keys),
        };
        for request in requests {
            socket.send(WsMessage::text(request)).await?;
        }
    }
    Ok(())
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Hands the batch to the writer (waiting while it writes the one before).
async fn flush(
    batch: &mut Batch,
    first_change: &mut Option<Instant>,
    limits: BatchLimits,
    writer: &mpsc::Sender<Batch>,
    metrics: &SinkMetrics,
) -> anyhow::Result<()> {
    *first_change = None;
    if batch.is_empty() && batch.positions.is_empty() {
        return Ok(());
    }
    let mut full = std::mem::take(batch);
    // The next batch starts where this one ends, even if no row comes before it is written.
    batch.positions = full.positions.clone();
    batch.mirror_relists = full.mirror_relists.clone();
    batch.seen = full.seen.next(limits.writing.max(1) - 1);
    let blocked = Instant::now();
    let sent = writer.send(full).await;
    SinkMetrics::waited(&metrics.session_blocked_us, blocked.elapsed());
    sent.map_err(|_| anyhow::anyhow!("the writer stopped"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_resume_from_every_stream_and_ask_for_ended_messages() {
        assert_eq!(session_url("ws://r/ws", &[]), "ws://r/ws?ended=1");
        assert_eq!(
            session_url("ws://r/ws", &[("e1".into(), 10), ("e2".into(), 0)]),
            "ws://r/ws?ended=1&at=e1%3A10%2Ce2%3A0"
        );
        assert_eq!(
            session_url("ws://r/ws?token=t", &[("e".into(), 1)]),
            "ws://r/ws?token=t&ended=1&at=e%3A1"
        );
    }
}
