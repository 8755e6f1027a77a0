//! Writing batches to PostgreSQL, exactly once: each [`Batch`] goes in one transaction with the stream position
//! it brings the database to, so after any crash the database's position and its rows agree, and the sink
//! resumes from there.
//!
//! History rows go by binary `COPY` straight into the partitioned table; when PostgreSQL refuses that for a row
//! already stored (re-snapshots bring such rows, and so does a batch retried after a commit whose answer was lost),
//! they go into a temporary staging table and from there by `INSERT … ON CONFLICT DO NOTHING`. Mirror states
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
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, Transaction};

use super::copy::{copy_rows, copy_stream_rows, JsonCheck, STREAM_COLUMNS, ZSET_COLUMNS};
use super::metrics::SinkMetrics;
use super::rows::{json_text_strict, Batch, MirrorState, SetOp};
use super::schema::{self, Partitions};

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

/// The keys the mirror tables hold.
pub async fn load_mirror_keys(client: &Client) -> Result<Vec<Vec<u8>>, tokio_postgres::Error> {
    let rows = client
        .query("SELECT key FROM replicast.mirror_key", &[])
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
    /// The `COPY` data of the batch being written, its allocation kept from one batch to the next.
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

    /// Writes `batch`, retrying until it is written.
    pub async fn write(&mut self, batch: &Batch) {
        let mut wait = RETRY_FIRST;
        let mut check = JsonCheck::AsRead;
        loop {
            match self.try_write(batch, check).await {
                Ok(deduplicated) => {
                    self.metrics.committed(batch, deduplicated);
                    return;
                }
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

    /// Writes `batch` in one transaction with its position; `Ok(true)` when rows already stored were skipped.
    async fn try_write(
        &mut self,
        batch: &Batch,
        check: JsonCheck,
    ) -> Result<bool, tokio_postgres::Error> {
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
        let tx = client.transaction().await?;
        let mut deduplicated = false;
        if !batch.zsets.is_empty() {
            copy_rows(batch, check, &mut self.copy);
            let data = self.copy.split().freeze();
            deduplicated |=
                write_history(&tx, "zset_history_raw", "zset_stage", ZSET_COLUMNS, &data).await?;
        }
        if !batch.streams.is_empty() {
            copy_stream_rows(batch, &mut self.copy);
            let data = self.copy.split().freeze();
            deduplicated |=
                write_history(&tx, "stream_history", "stream_stage", STREAM_COLUMNS, &data).await?;
        }
        for op in &batch.sets {
            write_set_op(&tx, op).await?;
        }
        for (key, state) in &batch.mirror {
            write_mirror(&tx, key, state).await?;
        }
        write_positions(&tx, batch).await?;
        tx.commit().await?;
        Ok(deduplicated)
    }
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

/// Bytes of `COPY` data per message to PostgreSQL: slices of the batch's one buffer, not copies.
const COPY_CHUNK: usize = 1 << 20;

/// Sends `data` (binary `COPY` rows, [`super::copy`]) by `statement`.
async fn copy_in(
    tx: &Transaction<'_>,
    statement: &str,
    data: &Bytes,
) -> Result<(), tokio_postgres::Error> {
    let sink = tx.copy_in::<_, Bytes>(statement).await?;
    let mut sink = std::pin::pin!(sink);
    let mut at = 0;
    while at < data.len() {
        let end = (at + COPY_CHUNK).min(data.len());
        sink.as_mut().feed(data.slice(at..end)).await?;
        at = end;
    }
    sink.finish().await.map(drop)
}

/// Writes history rows (`data`, binary `COPY` of `columns`) into `table`: straight by `COPY` when none is stored
/// yet (the usual case: the stream only brings new rows), else — PostgreSQL refused the `COPY` for a row already
/// there, after a re-snapshot or a batch retried after a commit whose answer was lost — through the staging table
/// and `ON CONFLICT DO NOTHING`. The direct way writes each row once and parses its JSON once, which is most of
/// PostgreSQL's cost per row; the savepoint undoes a refused `COPY` without losing the rest of the transaction.
/// `Ok(true)`: it deduplicated.
async fn write_history(
    tx: &Transaction<'_>,
    table: &str,
    stage: &str,
    columns: &str,
    data: &Bytes,
) -> Result<bool, tokio_postgres::Error> {
    tx.batch_execute("SAVEPOINT direct").await?;
    let direct = format!("COPY replicast.{table} ({columns}) FROM STDIN BINARY");
    match copy_in(tx, &direct, data).await {
        Ok(()) => {
            return tx
                .batch_execute("RELEASE SAVEPOINT direct")
                .await
                .map(|()| false)
        }
        Err(err) if err.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            tracing::debug!(table, "rows already stored: writing the batch deduplicated");
            tx.batch_execute("ROLLBACK TO SAVEPOINT direct").await?;
        }
        Err(err) => return Err(err),
    }
    copy_in(
        tx,
        &format!("COPY {stage} ({columns}) FROM STDIN BINARY"),
        data,
    )
    .await?;
    tx.batch_execute(&format!(
        "INSERT INTO replicast.{table} ({columns}) SELECT {columns} FROM {stage} ON CONFLICT DO NOTHING"
    ))
    .await?;
    Ok(true)
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
    Ok(())
}
