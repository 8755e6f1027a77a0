//! Writing batches to PostgreSQL, exactly once: each [`Batch`] goes in one transaction with the stream position
//! it brings the database to, so after any crash the database's position and its rows agree, and the sink
//! resumes from there. Batches are written on several connections at once ([`write_all`]): a batch's rows go in
//! while the batch before commits, and the transactions commit in stream order ([`Writer::write`]).
//!
//! History rows go by binary `COPY` straight into the day's partition (the sink knows each row's day, so
//! PostgreSQL routes none), encoded a chunk at a time while PostgreSQL reads the chunk before; when PostgreSQL
//! refuses that for a row already stored (re-snapshots bring such rows, and so does a batch retried after a commit
//! whose answer was lost), they go into a temporary staging table and from there by `INSERT … ON CONFLICT DO
//! NOTHING` into the partitioned table. Mirror states
//! replace each key's rows; set operations apply in stream order.
//!
//! A batch PostgreSQL refuses for its data (SQLSTATE class 22: a member that looked like JSON and is not, which
//! the sink leaves PostgreSQL's `json` input to find) is written again with its members parsed by the sink first
//! (those that are not JSON go as JSON strings), and if refused again, with every JSON value re-encoded strictly
//! ([`super::copy::JsonCheck`]); any other error
//! (the server restarting, a lost connection) is retried with backoff on a new connection, the same batch, until
//! it is written. The sink reads no more from the relay meanwhile (the channel to the writer holds one batch), so
//! memory stays bounded and the relay's backlog holds what is not read yet.

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::SinkExt;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, Transaction};

use super::copy::{
    copy_end, copy_start, copy_stream_entries, copy_zset_rows, JsonCheck, STREAM_COLUMNS,
    ZSET_COLUMNS,
};
use super::metrics::SinkMetrics;
use super::rows::{json_text_strict, Batch, MirrorState, SetOp};
use super::schema::{self, Partitions};
use super::windows::{StoredSpan, StoredWindow};

/// Waits between attempts to write a batch: from the first to the last, doubling.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_LAST: Duration = Duration::from_secs(5);

/// Opens a connection to `url`; its driver task runs until the connection ends.
pub async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!("PostgreSQL connection ended: {err}");
        }
    });
    Ok(client)
}

/// The database's stream positions, `(epoch, offset)`, newest first.
pub async fn load_positions(client: &Client) -> Result<Vec<(String, u64)>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT epoch, \"offset\" FROM replicast.position ORDER BY updated_at DESC LIMIT $1",
            &[&(replicast_protocol::wire::MAX_SHARDS as i64)],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64))
        .collect())
}

/// The epochs whose shard's mirror is to be listed again (`position.mirror_relist`).
pub async fn load_mirror_relists(client: &Client) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT epoch FROM replicast.position WHERE mirror_relist",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
}

/// The stored history windows of stateful keys (`windows.rs`), by key. A row that does not make sense (another
/// count of scores than of members, a shard past the protocol's) is an error: the schema is the sink's own.
pub async fn load_history_windows(client: &Client) -> anyhow::Result<Vec<(Vec<u8>, StoredWindow)>> {
    let rows = client
        .query(
            "SELECT key, shard, known, complete, scores, members, span_from, span_inexact, epoch
             FROM replicast.history_window",
            &[],
        )
        .await?;
    let mut windows = Vec::with_capacity(rows.len());
    for row in rows {
        let key: String = row.get(0);
        let scores: Vec<f64> = row.get(4);
        let members: Vec<Vec<u8>> = row.get(5);
        let shard: i32 = row.get(1);
        let max = replicast_protocol::wire::MAX_SHARDS;
        let Some(shard) = u16::try_from(shard).ok().filter(|s| usize::from(*s) < max) else {
            anyhow::bail!(
                "replicast.history_window: the row of {key:?} is not one this sink wrote: shard {shard}, not 0 to {}",
                max - 1
            );
        };
        if scores.len() != members.len() {
            anyhow::bail!(
                "replicast.history_window: the row of {key:?} is not one this sink wrote: {} scores for {} members",
                scores.len(),
                members.len()
            );
        }
        let span_from: Option<i64> = row.get(6);
        let span = match span_from.map(u64::try_from) {
            None => None,
            Some(Ok(from)) => Some(StoredSpan {
                from,
                inexact: row.get(7),
            }),
            Some(Err(_)) => anyhow::bail!(
                "replicast.history_window: the row of {key:?} is not one this sink wrote: span_from {span_from:?}"
            ),
        };
        windows.push((
            key.into_bytes(),
            StoredWindow {
                shard,
                known: row.get(2),
                complete: row.get(3),
                members: scores.into_iter().zip(members).collect(),
                span,
                epoch: row.get(8),
            },
        ));
    }
    Ok(windows)
}

/// The strings, hashes and lists the mirror tables hold (the keys a restarted sink reads again; sets are followed
/// by the sink itself, from the stored position, and read by no snapshot).
pub async fn load_mirror_keys(client: &Client) -> Result<Vec<Vec<u8>>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT key FROM replicast.mirror_key WHERE type <> 'set'",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| r.get::<_, String>(0).into_bytes())
        .collect())
}

/// Writes batches to one database, reconnecting as needed.
pub struct Writer {
    url: String,
    client: Option<Client>,
    partitions: Partitions,
    metrics: Arc<SinkMetrics>,
    /// The `COPY` data being sent, a chunk at a time.
    copy: BytesMut,
}

impl Writer {
    pub fn new(url: String, metrics: Arc<SinkMetrics>) -> Self {
        Writer {
            url,
            client: None,
            partitions: Partitions::default(),
            metrics,
            copy: BytesMut::new(),
        }
    }

    /// Writes `batch`, retrying until it is written; its transaction commits once `after` (the batch before,
    /// written on another connection) says it committed. `false`: the batch before was never written (its
    /// writer stopped), so this one is not either.
    pub async fn write(&mut self, batch: &Batch, mut after: Option<oneshot::Receiver<()>>) -> bool {
        let mut wait = RETRY_FIRST;
        let mut check = JsonCheck::AsRead;
        loop {
            match self.try_write(batch, check, &mut after).await {
                Ok(Some(deduplicated)) => {
                    self.metrics.committed(batch, deduplicated);
                    return true;
                }
                Ok(None) => return false,
                Err(err)
                    if err.code().is_some_and(|c| c.code().starts_with("22"))
                        && check.next().is_some() =>
                {
                    // A member that looked like JSON and is not (the sink leaves that check to PostgreSQL):
                    // expected, and answered by parsing them; anything PostgreSQL still refuses is worth a warning.
                    if check == JsonCheck::AsRead {
                        tracing::debug!("PostgreSQL refused the batch's data ({err}); writing it again with every member parsed as JSON first");
                    } else {
                        tracing::warn!("PostgreSQL refused the batch's data ({err}); writing it again with every JSON value re-encoded");
                    }
                    check = check.next().unwrap_or(JsonCheck::Strict);
                }
                Err(err) => {
                    Self::count_failure(&self.metrics);
                    if err.code() == Some(&SqlState::UNDEFINED_TABLE) {
                        // A day's partition dropped while the sink writes it: made again, or its rows routed.
                        self.partitions.forget();
                    }
                    tracing::warn!(
                        "writing a batch of {} rows failed ({}); trying again in {wait:?}",
                        batch.len(),
                        describe(&err)
                    );
                    if self.client.as_ref().is_none_or(|c| c.is_closed()) || err.code().is_none() {
                        self.client = None;
                    }
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(RETRY_LAST);
                }
            }
        }
    }

    fn count_failure(metrics: &SinkMetrics) {
        metrics
            .write_failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Writes `batch` in one transaction with its position; `Ok(Some(true))` when rows already stored were
    /// skipped, `Ok(None)` when `after` ended without the batch before committing.
    ///
    /// The history rows go first, while the batch before may still be being written on another connection (they
    /// hold no row of it, [`super::rows::Seen`], so neither waits for the other); the mirror's changes, which
    /// read and replace what the batch before wrote, and the position come after it committed, and so does the
    /// commit: the database's transactions commit in stream order, and its position always covers exactly the
    /// rows before it.
    async fn try_write(
        &mut self,
        batch: &Batch,
        check: JsonCheck,
        after: &mut Option<oneshot::Receiver<()>>,
    ) -> Result<Option<bool>, tokio_postgres::Error> {
        let client = ensure_client(&mut self.client, &self.url).await?;
        self.partitions
            .ensure(
                client,
                "zset_history_raw",
                "zset_history",
                batch.zsets.iter().map(|r| schema::day_of_ms(r.score)),
            )
            .await?;
        self.partitions
            .ensure(
                client,
                "stream_history",
                "stream_history",
                batch.streams.iter().map(|r| schema::day_of_ms(r.ms as f64)),
            )
            .await?;
        let zsets = by_partition(
            &self.partitions,
            "zset_history_raw",
            batch.zsets.iter().map(|r| schema::day_of_ms(r.score)),
        );
        let streams = by_partition(
            &self.partitions,
            "stream_history",
            batch.streams.iter().map(|r| schema::day_of_ms(r.ms as f64)),
        );
        let tx = client.transaction().await?;
        let mut deduplicated = false;
        if !batch.zsets.is_empty() {
            let history = History {
                table: "zset_history_raw",
                stage: "zset_stage",
                columns: ZSET_COLUMNS,
                rows: HistoryRows::Zsets(batch, check),
            };
            deduplicated |= history.write(&tx, &zsets, &mut self.copy).await?;
        }
        if !batch.streams.is_empty() {
            let history = History {
                table: "stream_history",
                stage: "stream_stage",
                columns: STREAM_COLUMNS,
                rows: HistoryRows::Streams(batch),
            };
            deduplicated |= history.write(&tx, &streams, &mut self.copy).await?;
        }
        if let Some(before) = after.as_mut() {
            if before.await.is_err() {
                return Ok(None);
            }
            *after = None;
        }
        for op in &batch.sets {
            write_set_op(&tx, op).await?;
        }
        for (key, state) in &batch.mirror {
            write_mirror(&tx, key, state).await?;
        }
        for (key, window) in &batch.windows {
            match window {
                Some(window) => write_window(&tx, key, window).await?,
                None => {
                    tx.execute(
                        "DELETE FROM replicast.history_window WHERE key = $1",
                        &[key],
                    )
                    .await?;
                }
            }
        }
        for span in &batch.inexact_spans {
            tx.execute(
                // A span read again (a restarted sink's catch-up) keeps the widest end; a key that is also a
                // pattern's text (`perf:*`) keeps the pattern's wider meaning.
                "INSERT INTO replicast.inexact_span (epoch, key, shard, from_offset, to_offset, pattern)
                   VALUES ($1, $2, $3, $4, $5, $6)
                   ON CONFLICT (epoch, key, shard, from_offset)
                   DO UPDATE SET to_offset = greatest(inexact_span.to_offset, excluded.to_offset),
                                 pattern = inexact_span.pattern OR excluded.pattern",
                &[
                    &span.epoch,
                    &span.key,
                    &i32::from(span.shard),
                    &(span.from_offset as i64),
                    &(span.to_offset as i64),
                    &span.pattern,
                ],
            )
            .await?;
        }
        write_positions(&tx, batch).await?;
        tx.commit().await?;
        Ok(Some(deduplicated))
    }
}

/// Whose turn it is: the batches in stream order, and the signal the last one taken gives when it committed.
struct Turns {
    batches: mpsc::Receiver<Batch>,
    last: Option<oneshot::Receiver<()>>,
}

/// Writes the batches of `batches` on `connections` connections, each taking the next batch when it is free:
/// while one commits, the next batch's rows already go in on another, so PostgreSQL works on more than one
/// backend and its commits' waits are hidden. Each transaction commits after the one before it
/// ([`Writer::write`]). Ends when `batches` closes (every batch taken is written first), or when a writer stops.
pub async fn write_all(
    url: String,
    metrics: Arc<SinkMetrics>,
    batches: mpsc::Receiver<Batch>,
    connections: usize,
) {
    let turns = Arc::new(tokio::sync::Mutex::new(Turns {
        batches,
        last: None,
    }));
    let mut writers = tokio::task::JoinSet::new();
    for _ in 0..connections.max(1) {
        let turns = turns.clone();
        let mut writer = Writer::new(url.clone(), metrics.clone());
        writers.spawn(async move {
            loop {
                let (batch, after, done) = {
                    let mut turns = turns.lock().await;
                    let idle = std::time::Instant::now();
                    let Some(batch) = turns.batches.recv().await else {
                        return;
                    };
                    SinkMetrics::waited(&writer.metrics.writer_idle_us, idle.elapsed());
                    let (done, next) = oneshot::channel();
                    (batch, turns.last.replace(next), done)
                };
                if !writer.write(&batch, after).await {
                    // Dropping `done` stops the writers of the batches after this one too.
                    tracing::error!("a batch before this one was not written: the writer stops");
                    return;
                }
                let _ = done.send(());
            }
        });
    }
    while writers.join_next().await.is_some() {}
}

/// The writer's connection, opened (and prepared) again if it is closed.
async fn ensure_client<'a>(
    held: &'a mut Option<Client>,
    url: &str,
) -> Result<&'a mut Client, tokio_postgres::Error> {
    let client = match held.take() {
        Some(client) if !client.is_closed() => client,
        _ => {
            let client = connect(url).await?;
            // Commits wait for their WAL to be written (the server's synchronous_commit, on by default): a crash
            // that lost an acknowledged commit would leave this sink, which goes on from its own position, with a
            // gap in the history — it reads the database's position only when it starts.
            client
                .batch_execute(
                    "CREATE TEMP TABLE zset_stage (LIKE replicast.zset_history_raw) ON COMMIT DELETE ROWS;
                     CREATE TEMP TABLE stream_stage (LIKE replicast.stream_history) ON COMMIT DELETE ROWS;",
                )
                .await?;
            client
        }
    };
    Ok(held.insert(client))
}

fn describe(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => format!("{} ({}): {}", db.severity(), db.code().code(), db.message()),
        None => match err.source() {
            Some(source) => format!("{err}: {source}"),
            None => err.to_string(),
        },
    }
}

/// Bytes of `COPY` data encoded before they are sent: PostgreSQL reads one chunk while the next is encoded.
const COPY_CHUNK: usize = 1 << 20;

/// A batch's rows of one history table, grouped by where they go: `(table, indices in the batch)`, the groups in
/// the order of their first row, each in stream order. A day's rows go straight into its partition when the sink
/// made it ([`Partitions::target`]): PostgreSQL then routes no row, and a batch of one day (the usual case) is
/// one `COPY`.
fn by_partition(
    partitions: &Partitions,
    table: &'static str,
    days: impl Iterator<Item = i64>,
) -> Vec<(String, Vec<u32>)> {
    let mut groups: Vec<(i64, Vec<u32>)> = Vec::new();
    for (i, day) in days.enumerate() {
        // Batches hold at most --batch-rows (1,000,000) rows.
        let i = i as u32;
        match groups.iter_mut().find(|(d, _)| *d == day) {
            Some((_, rows)) => rows.push(i),
            None => groups.push((day, vec![i])),
        }
    }
    let mut targets: Vec<(String, Vec<u32>)> = Vec::new();
    for (day, rows) in groups {
        let target = partitions.target(table, day);
        // Days without a partition of their own share the table.
        match targets.iter_mut().find(|(t, _)| *t == target) {
            Some((_, into)) => into.extend(rows),
            None => targets.push((target.into_owned(), rows)),
        }
    }
    targets
}

/// The rows a [`History`] writes.
enum HistoryRows<'a> {
    /// The batch's sorted-set rows, their values as the check says.
    Zsets(&'a Batch, JsonCheck),
    /// The batch's stream entries.
    Streams(&'a Batch),
}

impl HistoryRows<'_> {
    /// Appends the rows `indices[*at..]` to `out` until it holds [`COPY_CHUNK`] bytes, advancing `at`.
    fn encode(&self, indices: &[u32], at: &mut usize, out: &mut BytesMut) {
        let start = *at;
        let mut bytes = out.len();
        while *at < indices.len() && bytes < COPY_CHUNK {
            let i = indices[*at] as usize;
            bytes += match self {
                HistoryRows::Zsets(batch, _) => {
                    let row = &batch.zsets[i];
                    batch.zset_key(row).len() + batch.zset_value(row).len() + 60
                }
                HistoryRows::Streams(batch) => {
                    let row = &batch.streams[i];
                    row.key.len() + row.id.len() + row.fields.len() + 60
                }
            };
            *at += 1;
        }
        out.reserve(bytes - out.len());
        let chunk = indices[start..*at].iter().map(|&i| i as usize);
        match self {
            HistoryRows::Zsets(batch, check) => {
                copy_zset_rows(batch, chunk.map(|i| &batch.zsets[i]), *check, out)
            }
            HistoryRows::Streams(batch) => {
                copy_stream_entries(chunk.map(|i| &batch.streams[i]), out)
            }
        }
    }
}

/// A batch's rows of one history table and how they are written.
struct History<'a> {
    /// The partitioned table, under `replicast`.
    table: &'static str,
    /// Its staging table (temporary, of the connection).
    stage: &'static str,
    columns: &'static str,
    rows: HistoryRows<'a>,
}

impl History<'_> {
    /// Writes the rows (`groups`, [`by_partition`]): straight by `COPY` when none is stored yet (the usual case:
    /// the stream only brings new rows), else — PostgreSQL refused a `COPY` for a row already there, after a
    /// re-snapshot or a batch retried after a commit whose answer was lost — all of them through the staging
    /// table and `ON CONFLICT DO NOTHING`. The direct way writes each row once and parses its JSON once, which is
    /// most of PostgreSQL's cost per row; the savepoint undoes the refused `COPY`s without losing the rest of the
    /// transaction. `Ok(true)`: it deduplicated.
    async fn write(
        &self,
        tx: &Transaction<'_>,
        groups: &[(String, Vec<u32>)],
        buf: &mut BytesMut,
    ) -> Result<bool, tokio_postgres::Error> {
        let columns = self.columns;
        tx.batch_execute("SAVEPOINT direct").await?;
        let mut refused = false;
        for (target, indices) in groups {
            let direct = format!("COPY {target} ({columns}) FROM STDIN BINARY");
            match self.copy_in(tx, &direct, indices, buf).await {
                Ok(()) => {}
                Err(err) if err.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                    tracing::debug!(
                        table = self.table,
                        "rows already stored: writing the batch deduplicated"
                    );
                    refused = true;
                    break;
                }
                Err(err) => return Err(err),
            }
        }
        if !refused {
            tx.batch_execute("RELEASE SAVEPOINT direct").await?;
            return Ok(false);
        }
        tx.batch_execute("ROLLBACK TO SAVEPOINT direct").await?;
        let all: Vec<u32> = groups.iter().flat_map(|(_, rows)| rows).copied().collect();
        let stage = self.stage;
        let staged = format!("COPY {stage} ({columns}) FROM STDIN BINARY");
        self.copy_in(tx, &staged, &all, buf).await?;
        tx.batch_execute(&format!(
            "INSERT INTO replicast.{table} ({columns}) SELECT {columns} FROM {stage} ON CONFLICT DO NOTHING",
            table = self.table
        ))
        .await?;
        Ok(true)
    }

    /// Sends the rows `indices` by `statement` (a binary `COPY … FROM STDIN`), a chunk encoded while PostgreSQL
    /// reads the one before.
    async fn copy_in(
        &self,
        tx: &Transaction<'_>,
        statement: &str,
        indices: &[u32],
        buf: &mut BytesMut,
    ) -> Result<(), tokio_postgres::Error> {
        let sink = tx.copy_in::<_, Bytes>(statement).await?;
        let mut sink = std::pin::pin!(sink);
        buf.clear();
        copy_start(buf);
        let mut at = 0;
        loop {
            self.rows.encode(indices, &mut at, buf);
            if at == indices.len() {
                copy_end(buf);
                sink.as_mut().feed(buf.split().freeze()).await?;
                break;
            }
            sink.as_mut().feed(buf.split().freeze()).await?;
        }
        sink.finish().await.map(drop)
    }
}

/// A value as `jsonb` when it is JSON, for the mirror's `json` columns.
fn json_or_null(value: &str) -> Option<String> {
    serde_json::from_str::<serde::de::IgnoredAny>(value).ok()?;
    String::from_utf8(json_text_strict(value.as_bytes())).ok()
}

async fn write_set_op(tx: &Transaction<'_>, op: &SetOp) -> Result<(), tokio_postgres::Error> {
    match op {
        SetOp::Add(key, members, exact) => {
            tx.execute(
                "INSERT INTO replicast.mirror_key (key, type, exact) VALUES ($1, 'set', $2)
                 ON CONFLICT (key) DO UPDATE SET
                   exact = CASE WHEN mirror_key.type = 'set' THEN mirror_key.exact AND excluded.exact
                                ELSE excluded.exact END,
                   type = 'set', updated_at = now()",
                &[key, exact],
            )
            .await?;
            tx.execute(
                "INSERT INTO replicast.mirror_set (key, member) SELECT $1, m FROM unnest($2::text[]) AS m
                 ON CONFLICT DO NOTHING",
                &[key, members],
            )
            .await?;
        }
        SetOp::Remove(key, members) => {
            tx.execute(
                "DELETE FROM replicast.mirror_set WHERE key = $1 AND member = ANY($2::text[])",
                &[key, members],
            )
            .await?;
            // Redis deletes a set whose last member goes; an inexact set's other members are not known.
            tx.execute(
                "DELETE FROM replicast.mirror_key k WHERE key = $1 AND type = 'set' AND exact
                   AND NOT EXISTS (SELECT 1 FROM replicast.mirror_set s WHERE s.key = $1)",
                &[key],
            )
            .await?;
        }
        SetOp::Delete(key) => {
            tx.execute("DELETE FROM replicast.mirror_set WHERE key = $1", &[key])
                .await?;
            tx.execute(
                "DELETE FROM replicast.mirror_key WHERE key = $1 AND type = 'set'",
                &[key],
            )
            .await?;
        }
        SetOp::Rename(src, dst) => {
            tx.execute("DELETE FROM replicast.mirror_set WHERE key = $1", &[dst])
                .await?;
            tx.execute(
                "DELETE FROM replicast.mirror_key WHERE key = $1 AND type = 'set'",
                &[dst],
            )
            .await?;
            tx.execute(
                "UPDATE replicast.mirror_set SET key = $2 WHERE key = $1",
                &[src, dst],
            )
            .await?;
            tx.execute(
                "UPDATE replicast.mirror_key SET key = $2, updated_at = now() WHERE key = $1 AND type = 'set'
                   AND NOT EXISTS (SELECT 1 FROM replicast.mirror_key WHERE key = $2)",
                &[src, dst],
            )
            .await?;
        }
        SetOp::Inexact(key) => {
            tx.execute(
                "UPDATE replicast.mirror_key SET exact = false, updated_at = now() WHERE key = $1 AND type = 'set'",
                &[key],
            )
            .await?;
        }
        SetOp::Unreadable(key) => {
            tx.execute(
                "UPDATE replicast.mirror_key SET exact = false, updated_at = now() WHERE key = $1",
                &[key],
            )
            .await?;
        }
        SetOp::KeepSets(keys) => {
            tx.execute(
                "DELETE FROM replicast.mirror_set WHERE NOT (key = ANY($1::text[]))",
                &[keys],
            )
            .await?;
            tx.execute(
                "DELETE FROM replicast.mirror_key WHERE type = 'set' AND NOT (key = ANY($1::text[]))",
                &[keys],
            )
            .await?;
        }
        SetOp::DeleteAll => {
            tx.batch_execute(
                "DELETE FROM replicast.mirror_set; DELETE FROM replicast.mirror_key WHERE type = 'set';",
            )
            .await?;
        }
        SetOp::AllInexact => {
            tx.batch_execute(
                "UPDATE replicast.mirror_key SET exact = false, updated_at = now() WHERE type = 'set' AND exact",
            )
            .await?;
        }
    }
    Ok(())
}

async fn write_mirror(
    tx: &Transaction<'_>,
    key: &str,
    state: &MirrorState,
) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        "DELETE FROM replicast.mirror_string WHERE key = $1",
        &[&key],
    )
    .await?;
    tx.execute("DELETE FROM replicast.mirror_hash WHERE key = $1", &[&key])
        .await?;
    tx.execute("DELETE FROM replicast.mirror_list WHERE key = $1", &[&key])
        .await?;
    let (kind, exact) = match state {
        MirrorState::Deleted => {
            tx.execute(
                "DELETE FROM replicast.mirror_key WHERE key = $1 AND type <> 'set'",
                &[&key],
            )
            .await?;
            return Ok(());
        }
        MirrorState::String { value } => {
            tx.execute(
                "INSERT INTO replicast.mirror_string (key, value, json) VALUES ($1, $2, $3::text::jsonb)",
                &[&key, value, &json_or_null(value)],
            )
            .await?;
            ("string", true)
        }
        MirrorState::Hash { fields, complete } => {
            let names: Vec<&str> = fields.iter().map(|(f, _)| f.as_str()).collect();
            let values: Vec<&str> = fields.iter().map(|(_, v)| v.as_str()).collect();
            let json: Vec<Option<String>> = values.iter().map(|v| json_or_null(v)).collect();
            tx.execute(
                "INSERT INTO replicast.mirror_hash (key, field, value, json)
                 SELECT $1, f, v, j::jsonb FROM unnest($2::text[], $3::text[], $4::text[]) AS u(f, v, j)",
                &[&key, &names, &values, &json],
            )
            .await?;
            ("hash", *complete)
        }
        MirrorState::List { items, complete } => {
            let json: Vec<Option<String>> = items.iter().map(|v| json_or_null(v)).collect();
            tx.execute(
                "INSERT INTO replicast.mirror_list (key, position, item, json)
                 SELECT $1, (n - 1)::integer, i, j::jsonb FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS u(i, j, n)",
                &[&key, items, &json],
            )
            .await?;
            ("list", *complete)
        }
    };
    // The key is a string, hash or list now: a set it was is gone.
    tx.execute("DELETE FROM replicast.mirror_set WHERE key = $1", &[&key])
        .await?;
    tx.execute(
        "INSERT INTO replicast.mirror_key (key, type, exact) VALUES ($1, $2, $3)
         ON CONFLICT (key) DO UPDATE SET type = excluded.type, exact = excluded.exact, updated_at = now()",
        &[&key, &kind, &exact],
    )
    .await?;
    Ok(())
}

/// A stateful history key's window, as of the batch's position.
async fn write_window(
    tx: &Transaction<'_>,
    key: &str,
    window: &StoredWindow,
) -> Result<(), tokio_postgres::Error> {
    let (scores, members): (Vec<f64>, Vec<&[u8]>) = window
        .members
        .iter()
        .map(|(score, member)| (*score, member.as_slice()))
        .unzip();
    tx.execute(
        "INSERT INTO replicast.history_window
           (key, shard, known, complete, scores, members, span_from, span_inexact, epoch)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (key) DO UPDATE SET shard = excluded.shard, known = excluded.known,
           complete = excluded.complete, scores = excluded.scores, members = excluded.members,
           span_from = excluded.span_from, span_inexact = excluded.span_inexact, epoch = excluded.epoch,
           updated_at = now()",
        &[
            &key,
            &i32::from(window.shard),
            &window.known,
            &window.complete,
            &scores,
            &members,
            &window.span.map(|s| s.from as i64),
            &window.span.is_some_and(|s| s.inexact),
            &window.epoch,
        ],
    )
    .await?;
    Ok(())
}

async fn write_positions(tx: &Transaction<'_>, batch: &Batch) -> Result<(), tokio_postgres::Error> {
    for epoch in &batch.retired_epochs {
        tx.execute("DELETE FROM replicast.position WHERE epoch = $1", &[epoch])
            .await?;
    }
    for (epoch, offset) in &batch.positions {
        tx.execute(
            "INSERT INTO replicast.position (epoch, \"offset\") VALUES ($1, $2)
             ON CONFLICT (epoch) DO UPDATE SET \"offset\" = excluded.\"offset\", updated_at = now()",
            &[epoch, &(*offset as i64)],
        )
        .await?;
    }
    if batch.write_relists {
        tx.execute(
            "UPDATE replicast.position SET mirror_relist = (epoch = ANY($1))
             WHERE mirror_relist <> (epoch = ANY($1))",
            &[&batch.mirror_relists],
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_of_days_without_a_partition_of_their_own_go_together_through_the_table() {
        let groups = by_partition(
            &Partitions::default(),
            "zset_history_raw",
            [5, 7, 5, 9].into_iter(),
        );
        assert_eq!(
            groups,
            [("replicast.zset_history_raw".to_string(), vec![0, 2, 1, 3])]
        );
    }
}
