//! The sink's tables in PostgreSQL, created and migrated by the sink (`--create-schema`), and their daily
//! partitions. Everything lives in the schema `replicast`; docs/SINK.md shows the tables and how to query them.
//!
//! The history tables are partitioned by day on `time` (native range partitions), so old days are dropped (or
//! detached and archived) whole. A partition is made for a day before the first row of it is written, for days
//! from [`PARTITION_DAYS_BACK`] before today to [`PARTITION_DAYS_AHEAD`] after; rows outside (a backfill of old
//! samples, a clock far ahead) go to the `_default` partition, so no writer can make the sink create partitions
//! without bound.
//!
//! Sorted-set samples are stored as the JSON text the sink checked (`zset_history_raw.value`, type `json`) and
//! read through the view `zset_history`, whose `value` is that text as `jsonb`: PostgreSQL's `jsonb` input is most
//! of what writing a sample costs it, so the parse is paid by the rows a query reads, not by every row written.

use std::collections::{HashMap, HashSet};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio_postgres::Client;

/// The schema version this sink writes; `replicast.schema_version` holds the database's.
pub const VERSION: i32 = 8;
/// The version whose migration gives each stored history window its stream's epoch (`history_window.epoch`).
pub const WINDOW_EPOCH_VERSION: i32 = 7;
/// Days before today that get a partition of their own.
pub const PARTITION_DAYS_BACK: i64 = 31;
/// Days after today that get a partition of their own.
pub const PARTITION_DAYS_AHEAD: i64 = 2;
const DAY_MS: i64 = 86_400_000;

/// Each migration takes the schema from the version before it to its index + 1.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE replicast.schema_version (version integer NOT NULL);
INSERT INTO replicast.schema_version VALUES (0);

-- Where the replication stream of each epoch was when the rows were written: the sink resumes from here.
CREATE TABLE replicast.position (
  epoch text PRIMARY KEY,
  "offset" bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- History: every sorted-set member ever written to a --history key, scored by its time in Unix ms.
CREATE TABLE replicast.zset_history (
  key text NOT NULL,
  time timestamptz NOT NULL,
  score double precision NOT NULL,
  value jsonb NOT NULL,
  digest bytea NOT NULL,
  PRIMARY KEY (key, time, digest)
) PARTITION BY RANGE (time);
CREATE TABLE replicast.zset_history_default PARTITION OF replicast.zset_history DEFAULT;

-- History: every stream entry ever written to a --history key.
CREATE TABLE replicast.stream_history (
  key text NOT NULL,
  time timestamptz NOT NULL,
  id text NOT NULL,
  fields jsonb NOT NULL,
  digest bytea NOT NULL,
  PRIMARY KEY (key, time, digest)
) PARTITION BY RANGE (time);
CREATE TABLE replicast.stream_history_default PARTITION OF replicast.stream_history DEFAULT;

-- Mirror: the current value of --mirror keys, one table per type, and one row per key saying what it is.
CREATE TABLE replicast.mirror_key (
  key text PRIMARY KEY,
  type text NOT NULL CHECK (type IN ('string', 'hash', 'list', 'set')),
  exact boolean NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE replicast.mirror_string (
  key text PRIMARY KEY,
  value text NOT NULL,
  json jsonb
);
CREATE TABLE replicast.mirror_hash (
  key text NOT NULL,
  field text NOT NULL,
  value text NOT NULL,
  json jsonb,
  PRIMARY KEY (key, field)
);
CREATE TABLE replicast.mirror_list (
  key text NOT NULL,
  position integer NOT NULL,
  item text NOT NULL,
  json jsonb,
  PRIMARY KEY (key, position)
);
CREATE TABLE replicast.mirror_set (
  key text NOT NULL,
  member text NOT NULL,
  PRIMARY KEY (key, member)
);
"#,
    r#"
-- Samples go in as json (checked, stored as written) and are read as jsonb through the view that takes the old
-- table's name, so queries written for version 1 keep working. The partitions keep their names.
ALTER TABLE replicast.zset_history RENAME TO zset_history_raw;
ALTER TABLE replicast.zset_history_raw ALTER COLUMN value TYPE json USING value::json;
CREATE VIEW replicast.zset_history AS
  SELECT key, time, score, value::jsonb AS value, digest FROM replicast.zset_history_raw;
"#,
    r#"
-- The history assembler's window of each key whose history depends on what it holds (a ZINCRBY, a ZADD with
-- NX/XX/GT/LT/INCR, a key renamed, stored into or read again), as of the position: a restarted sink starts from
-- these windows (windows.rs). known = false: a top-up of the key was pending; members highest score first.
CREATE TABLE replicast.history_window (
  key text PRIMARY KEY,
  shard integer NOT NULL,
  known boolean NOT NULL,
  complete boolean NOT NULL,
  scores double precision[] NOT NULL,
  members bytea[] NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
"#,
    r#"
-- Spans of a history key's stream (epoch, shard, offsets) whose rows may miss a score: a command whose rows a top-up
-- reads (a ZINCRBY on a member the window does not hold, a ...STORE into the key, a key renamed in) followed, before
-- the top-up's answer, by a write that may have changed or removed what it wrote. Written with the rows. From
-- version 6, a row whose pattern is true has a --history pattern as its key and stands for every key it matches.
CREATE TABLE replicast.inexact_span (
  epoch text NOT NULL,
  key text NOT NULL,
  shard integer NOT NULL,
  from_offset bigint NOT NULL,
  to_offset bigint NOT NULL,
  noted_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (epoch, key, shard, from_offset)
);
"#,
    r#"
-- A window stored as unknown (its top-up pending) with a span open: where the span starts and whether it is inexact
-- already. A resumed sink opens the span from there and asks the top-up with that offset as its "since", so that the
-- relay's past writes close it (or it is recorded from where it started). Null: no span open (or a version 4 row).
ALTER TABLE replicast.history_window
  ADD COLUMN span_from bigint,
  ADD COLUMN span_inexact boolean NOT NULL DEFAULT false;
"#,
    r#"
-- A span of every key a --history pattern matches, the pattern (a Redis glob) as its key: a command the relay withheld
-- whose keys it could not all name (a stale message for every window) may have written keys the sink holds no window
-- of, whose rows no top-up reads. false: the span of the one key named (every row before version 6).
ALTER TABLE replicast.inexact_span ADD COLUMN IF NOT EXISTS pattern boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN replicast.inexact_span.pattern IS
  'key is a --history pattern (a Redis glob): the span is of every key it matches';
"#,
    // WINDOW_EPOCH_VERSION.
    r#"
-- The epoch of the stream a window's shard followed at the position (its span's offsets are of it): a resumed sink
-- rebuilds the window, and opens its span again, on the stream that continues that epoch, whatever its shard index
-- in the new session, and records the span of one no stream continues. Null: a row an older sink stored (matched by
-- its shard's index, as that sink did).
ALTER TABLE replicast.history_window ADD COLUMN IF NOT EXISTS epoch text;
"#,
    r#"
-- The stream's shard must have its mirrored keys listed again (a SWAPDB of the watched database, a stale message for
-- every window, a segment the sink could not read): every key the relay lists on it is read again by a top-up. Stored
-- with the position it covers, so that a sink stopped before those keys were all read lists them again at its resume.
ALTER TABLE replicast.position ADD COLUMN IF NOT EXISTS mirror_relist boolean NOT NULL DEFAULT false;
"#,
];

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("the database has no replicast schema: start the sink once with --create-schema")]
    Missing,
    #[error("the database's replicast schema is version {found}, this sink writes version {VERSION}: {what}")]
    Version { found: i32, what: &'static str },
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
}

/// The schema's version, or `None` when there is none.
async fn version(
    client: &impl tokio_postgres::GenericClient,
) -> Result<Option<i32>, tokio_postgres::Error> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('replicast.schema_version') IS NOT NULL",
            &[],
        )
        .await?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let row = client
        .query_one("SELECT max(version) FROM replicast.schema_version", &[])
        .await?;
    Ok(row.get::<_, Option<i32>>(0))
}

/// Creates the schema or brings it to [`VERSION`] (with `create`), else checks that it is there at that version.
pub async fn prepare(client: &mut Client, create: bool) -> Result<(), SchemaError> {
    let found = version(client).await?;
    match found {
        Some(v) if v == VERSION => return Ok(()),
        Some(v) if v > VERSION => {
            return Err(SchemaError::Version {
                found: v,
                what: "a newer sink migrated it; run that one",
            })
        }
        None if !create => return Err(SchemaError::Missing),
        Some(_) if !create => {
            return Err(SchemaError::Version {
                found: found.unwrap_or(0),
                what: "start the sink with --create-schema to migrate it",
            })
        }
        _ => {}
    }
    migrate(client, VERSION).await
}

/// Creates the schema at version `target`, or brings an older one to it, in one transaction. The sink migrates
/// to [`VERSION`]; an older `target` makes the schema an older sink wrote (the migration tests start there).
pub async fn migrate(client: &mut Client, target: i32) -> Result<(), SchemaError> {
    let tx = client.transaction().await?;
    // One migrating sink at a time; the others wait here, then find the work done.
    tx.execute("SELECT pg_advisory_xact_lock(7023601)", &[])
        .await?;
    tx.batch_execute("CREATE SCHEMA IF NOT EXISTS replicast")
        .await?;
    let start = version(&tx).await?.unwrap_or(0);
    let migrations = MIGRATIONS.iter().take(target.max(0) as usize);
    for (i, migration) in migrations.enumerate().skip(start as usize) {
        tx.batch_execute(migration).await?;
        tx.execute(
            "UPDATE replicast.schema_version SET version = $1",
            &[&(i as i32 + 1)],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A time in Unix ms as PostgreSQL keeps a `timestamptz`: whole microseconds (since 1970-01-01 here).
pub fn time_us(ms: f64) -> i64 {
    (ms * 1000.0).round() as i64
}

/// The day (days since 1970-01-01) of a time in Unix ms: the day of its `timestamptz`, rounded to the microsecond
/// as PostgreSQL stores it, so that a row sent straight to a day's partition always belongs there.
pub fn day_of_ms(ms: f64) -> i64 {
    time_us(ms).div_euclid(DAY_MS * 1000)
}

fn today() -> i64 {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    ms.div_euclid(DAY_MS)
}

/// The daily partitions made so far by this sink (or found made), and which of them the sink writes to directly.
#[derive(Debug, Default)]
pub struct Partitions {
    /// By table and day: the partition's qualified name when it is the table's partition for that day under the
    /// sink's name, `None` when the day's rows go through the table (they are in its default partition, or another
    /// sink named the day's partition otherwise).
    made: HashMap<(&'static str, i64), Option<String>>,
}

impl Partitions {
    /// Makes the partitions of `table` (`zset_history_raw` or `stream_history`), named `<prefix>_<day>`, for
    /// `days` that fall within the window around today and are not made yet. Each is its own statement outside
    /// the batch's transaction; one that cannot be made (its day already has rows in the default partition) is
    /// left to the default.
    pub async fn ensure(
        &mut self,
        client: &Client,
        table: &'static str,
        prefix: &str,
        days: impl IntoIterator<Item = i64>,
    ) -> Result<(), tokio_postgres::Error> {
        let now = today();
        let wanted: HashSet<i64> = days
            .into_iter()
            .filter(|d| (now - PARTITION_DAYS_BACK..=now + PARTITION_DAYS_AHEAD).contains(d))
            .filter(|d| !self.made.contains_key(&(table, *d)))
            .collect();
        for day in wanted {
            let from = day * DAY_MS;
            let name = format!("replicast.{prefix}_{}", partition_name(day));
            let sql = format!(
                "CREATE TABLE IF NOT EXISTS {name} PARTITION OF replicast.{table} \
                 FOR VALUES FROM (to_timestamp({from} / 1000.0)) TO (to_timestamp({to} / 1000.0))",
                to = from + DAY_MS,
            );
            // A day made before (by another of the sink's connections, or before a restart) is only looked up.
            let direct = if is_partition(client, &name, table).await? {
                Some(name)
            } else {
                let made = match client.batch_execute(&sql).await {
                    Ok(()) => true,
                    // Made at the same moment by another of the sink's connections (or another sink).
                    Err(err)
                        if err
                            .code()
                            .is_some_and(|c| c.code() == "42P07" || c.code() == "23505") =>
                    {
                        true
                    }
                    // The day's rows went to the default partition before this sink made one (an older sink, or
                    // a day that entered the window since): they stay there.
                    Err(err) if err.code().is_some_and(|c| c.code() == "23514") => {
                        tracing::info!(
                            table,
                            day = partition_name(day),
                            "rows of this day are in the default partition; it keeps them"
                        );
                        false
                    }
                    // A partition made meanwhile by another sink under another name.
                    Err(err) if err.code().is_some_and(|c| c.code() == "42P17") => false,
                    Err(err) => return Err(err),
                };
                (made && is_partition(client, &name, table).await?).then_some(name)
            };
            self.made.insert((table, day), direct);
        }
        Ok(())
    }

    /// Where rows of `day` go: the day's partition when [`Partitions::ensure`] found it the sink's to write to,
    /// else `table` itself (PostgreSQL routes each row: the default partition, or a partition named otherwise).
    pub fn target<'a>(&'a self, table: &'static str, day: i64) -> std::borrow::Cow<'a, str> {
        match self.made.get(&(table, day)) {
            Some(Some(name)) => name.as_str().into(),
            _ => format!("replicast.{table}").into(),
        }
    }

    /// Forgets every partition: the next [`Partitions::ensure`] looks for them again (one was dropped meanwhile).
    pub fn forget(&mut self) {
        self.made.clear();
    }
}

/// Whether the table `name` is a partition of `replicast.<table>`: a table of that name kept after being detached
/// (archived) is not, and takes no rows.
async fn is_partition(
    client: &Client,
    name: &str,
    table: &str,
) -> Result<bool, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_inherits
               WHERE inhrelid = to_regclass($1) AND inhparent = to_regclass($2))",
            &[&name, &format!("replicast.{table}")],
        )
        .await?;
    Ok(row.get(0))
}

/// `20240501` for the day 19844.
fn partition_name(day: i64) -> String {
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_named_by_their_day() {
        assert_eq!(partition_name(0), "19700101");
        assert_eq!(partition_name(19_844), "20240501");
        assert_eq!(partition_name(day_of_ms(1_709_251_199_999.0)), "20240229");
        assert_eq!(partition_name(day_of_ms(1_709_251_200_000.0)), "20240301");
        // The day of the time PostgreSQL stores, rounded to the microsecond: the next day's first instant.
        assert_eq!(day_of_ms(86_399_999.999_6), 1);
        assert_eq!(day_of_ms(86_399_999.999_4), 0);
    }
}
