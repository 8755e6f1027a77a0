//! The dashboard's look back: `GET /history?key=&from=&to=&points=&fields=` on the sink's `--listen`, answering a
//! key's samples as the page's contract says (docs/PROTOCOL.md, "Page ↔ history sink"), downsampled in
//! PostgreSQL with `date_bin` to at most `points` buckets, each with the average, minimum and maximum of every
//! field. When the range holds no more samples than `points`, the samples themselves come back (`step_ms` 0).
//!
//! Every parameter is checked before the database is asked, and refused (400) with what and which limit: the key
//! must match `--serve` (the patterns the sink may answer), the range is at most [`MAX_SPAN_MS`], `points` at
//! most [`MAX_POINTS`], `fields` at most [`MAX_FIELDS`] dotted paths of plain names. At most
//! [`MAX_CONCURRENT`] requests run at once (others get 503), each within [`STATEMENT_TIMEOUT_MS`].

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio_postgres::Client;

use super::changes::Patterns;
use super::metrics::SinkMetrics;
use super::rows::{time_of_ms, MAX_TIME_MS};

/// Most points one answer holds (the page asks for at most 2,000).
pub const MAX_POINTS: u32 = 2000;
/// Most fields one request names (the host view asks for 11 and one per core, up to 64 cores).
pub const MAX_FIELDS: usize = 128;
/// Parts of one field's dotted path, and bytes of each part.
pub const MAX_PATH_PARTS: usize = 8;
pub const MAX_PART_LEN: usize = 64;
/// Longest range asked for: 400 days (the page goes back 30).
pub const MAX_SPAN_MS: u64 = 400 * 86_400_000;
/// Longest key named.
pub const MAX_KEY_LEN: usize = 1024;
/// Requests answered at once; the database connection serves them in turn.
pub const MAX_CONCURRENT: usize = 4;
/// How long one request's query may run in PostgreSQL.
pub const STATEMENT_TIMEOUT_MS: u64 = 10_000;

/// The endpoint connection's settings: each query's time limit, and parallel workers for the scan that parses the
/// samples. PostgreSQL prices a row's `json`→`jsonb` cast like one operator, far below what parsing a ~1 KB sample
/// costs, so with its default costs it never spreads a day's parsing over its workers (`max_parallel_workers_per_
/// gather`, 2 by default): cheaper setup and tuple costs let it.
pub fn session_settings() -> String {
    format!(
        "SET statement_timeout = {STATEMENT_TIMEOUT_MS};
         SET parallel_setup_cost = 100;
         SET parallel_tuple_cost = 0.001;"
    )
}

/// What the endpoint needs.
pub struct HistoryService {
    pub client: Client,
    /// Keys it may answer (`--serve`).
    pub serve: Patterns,
    /// Origins whose pages may read it (`--origin`; `*` for any).
    pub origins: Vec<String>,
    pub metrics: Arc<SinkMetrics>,
    pub busy: Semaphore,
    /// `--public-host` and the `Host` check, as the relay has them (against DNS rebinding).
    pub access: crate::access::Access,
}

#[derive(Debug, Deserialize)]
struct HistoryQuery {
    key: Option<String>,
    from: Option<String>,
    to: Option<String>,
    points: Option<String>,
    fields: Option<String>,
}

/// One request, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub key: String,
    pub from: u64,
    pub to: u64,
    pub points: u32,
    pub fields: Vec<String>,
}

/// Checks a request's parameters; `Err` is the reason, for a 400.
pub fn check(
    key: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
    points: Option<&str>,
    fields: Option<&str>,
    serve: &Patterns,
) -> Result<Request, String> {
    let key = key.ok_or("key is missing")?;
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(format!("key must be 1 to {MAX_KEY_LEN} bytes"));
    }
    if !serve.allows(key.as_bytes()) {
        return Err(format!("key {key:?} is not one this sink serves (--serve)"));
    }
    let ms = |name: &str, value: Option<&str>| -> Result<u64, String> {
        let value = value.ok_or(format!("{name} is missing"))?;
        value
            .parse::<u64>()
            .ok()
            .filter(|v| (*v as f64) < MAX_TIME_MS)
            .ok_or(format!(
                "{name} must be a time in Unix ms between 0 and {MAX_TIME_MS}, got {value:?}"
            ))
    };
    let from = ms("from", from)?;
    let to = ms("to", to)?;
    if to < from {
        return Err(format!("to ({to}) is before from ({from})"));
    }
    if to - from > MAX_SPAN_MS {
        return Err(format!(
            "the range is {} ms, at most {MAX_SPAN_MS} (400 days)",
            to - from
        ));
    }
    let points = points.ok_or("points is missing")?;
    let points = points
        .parse::<u32>()
        .ok()
        .filter(|p| (1..=MAX_POINTS).contains(p))
        .ok_or(format!("points must be 1 to {MAX_POINTS}, got {points:?}"))?;
    let fields = fields.ok_or("fields is missing")?;
    let fields: Vec<String> = fields.split(',').map(str::to_string).collect();
    if fields.len() > MAX_FIELDS {
        return Err(format!("{} fields, at most {MAX_FIELDS}", fields.len()));
    }
    for field in &fields {
        let parts: Vec<&str> = field.split('.').collect();
        let plain = |p: &&str| {
            !p.is_empty()
                && p.len() <= MAX_PART_LEN
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if parts.len() > MAX_PATH_PARTS || !parts.iter().all(plain) {
            return Err(format!(
                "field {field:?} must be a dotted path of at most {MAX_PATH_PARTS} names of 1 to {MAX_PART_LEN} letters, digits, _ or -"
            ));
        }
    }
    Ok(Request {
        key: key.to_string(),
        from,
        to,
        points,
        fields,
    })
}

/// The bucket width for `points` over `[from, to]`: whole ms, so that at most `points` buckets cover the range.
pub fn step_ms(request: &Request) -> u64 {
    (request.to - request.from + 1).div_ceil(u64::from(request.points))
}

/// The query answering `fields` fields: one row per point, its time then each field's average, minimum and
/// maximum (`$1` the key, `$2` and `$3` the range; with `buckets`, `$4` the bucket width in ms; then one `text[]`
/// path per field). Each row's JSON is parsed once and each field read from it once: the samples are stored as
/// `json` text (schema.rs), and the `OFFSET 0` fences keep PostgreSQL from inlining `doc` (and each field) into
/// every expression that reads it, which would parse a row once per field. A field is a column rather than a row
/// of an unnested list: grouping a day of 1 s samples by bucket and field made 1.1 M rows of 13 fields, and took
/// 3.4 times as long (docs/BENCHMARKS.md, "History endpoint's day query").
fn points_sql(fields: usize, buckets: bool) -> String {
    let first = if buckets { 5 } else { 4 };
    let paths: Vec<String> = (0..fields)
        .map(|i| format!("doc #> ${} AS j{i}", first + i))
        .collect();
    let numbers: Vec<String> = (0..fields)
        .map(|i| format!("CASE WHEN jsonb_typeof(j{i}) = 'number' THEN j{i}::float8 END AS x{i}"))
        .collect();
    let aggregates: Vec<String> = (0..fields)
        .map(|i| format!("avg(x{i}), min(x{i}), max(x{i})"))
        .collect();
    // Samples of one key sharing a time are one point; buckets are `$4` ms wide from `from`.
    let t = if buckets {
        "extract(epoch FROM date_bin(make_interval(secs => $4::float8 / 1000), time, $2))::float8 * 1000"
    } else {
        "score"
    };
    format!(
        "SELECT {t} AS t, {aggregates}
FROM (SELECT time, score, {numbers}
      FROM (SELECT time, score, {paths}
            FROM (SELECT h.time, h.score, h.value::jsonb AS doc FROM replicast.zset_history_raw h
                  WHERE h.key = $1 AND h.time >= $2 AND h.time <= $3 OFFSET 0) r
            OFFSET 0) j
      OFFSET 0) x
GROUP BY 1
ORDER BY 1",
        aggregates = aggregates.join(", "),
        numbers = numbers.join(", "),
        paths = paths.join(", "),
    )
}

/// Answers a checked request from the database: `{key, from, to, step_ms, points}`.
pub async fn answer(
    client: &Client,
    request: &Request,
) -> Result<serde_json::Value, tokio_postgres::Error> {
    let from = time_of_ms(request.from as f64);
    let to = time_of_ms(request.to as f64);
    // More samples than points? Counted no further than that.
    let counted: i64 = client
        .query_one(
            "SELECT count(*) FROM (SELECT 1 FROM replicast.zset_history_raw
               WHERE key = $1 AND time >= $2 AND time <= $3 LIMIT $4) s",
            &[&request.key, &from, &to, &(i64::from(request.points) + 1)],
        )
        .await?
        .get(0);
    let downsample = counted > i64::from(request.points);
    let step = if downsample { step_ms(request) } else { 0 };
    let step_param = step as f64;
    let paths: Vec<Vec<&str>> = request
        .fields
        .iter()
        .map(|f| f.split('.').collect())
        .collect();
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
        vec![&request.key, &from, &to];
    if downsample {
        params.push(&step_param);
    }
    params.extend(
        paths
            .iter()
            .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync)),
    );
    let rows = client
        .query(&points_sql(paths.len(), downsample), &params)
        .await?;
    let mut points = Vec::with_capacity(rows.len());
    for row in rows {
        let t: f64 = row.get(0);
        let mut fields = serde_json::Map::new();
        for (i, name) in request.fields.iter().enumerate() {
            let (avg, min, max): (Option<f64>, Option<f64>, Option<f64>) =
                (row.get(1 + 3 * i), row.get(2 + 3 * i), row.get(3 + 3 * i));
            // A field that is not a number in any of the point's samples has no value there.
            if let (Some(avg), Some(min), Some(max)) = (avg, min, max) {
                fields.insert(
                    name.clone(),
                    serde_json::json!({"avg": avg, "min": min, "max": max}),
                );
            }
        }
        // Whole ms as integers (the usual case), as the page writes times.
        let t = match t.fract() == 0.0 && t.abs() < 2f64.powi(53) {
            true => serde_json::json!(t as i64),
            false => serde_json::json!(t),
        };
        points.push(serde_json::json!([t, fields]));
    }
    Ok(serde_json::json!({
        "key": request.key,
        "from": request.from,
        "to": request.to,
        "step_ms": step,
        "points": points,
    }))
}

/// The routes on `--listen`: `/history`, `/healthz`, `/metrics`.
pub fn router(service: Arc<HistoryService>) -> Router {
    Router::new()
        .route("/history", get(history))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .with_state(service)
}

async fn metrics(State(service): State<Arc<HistoryService>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        service.metrics.render(),
    )
        .into_response()
}

async fn history(
    State(service): State<Arc<HistoryService>>,
    headers: HeaderMap,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let cors = cors_origin(&service.origins, &headers);
    let mut response = respond(&service, &headers, query).await;
    if let Some(origin) = cors {
        response
            .headers_mut()
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        response
            .headers_mut()
            .insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}

async fn respond(
    service: &HistoryService,
    headers: &HeaderMap,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Err((status, reason)) = service.access.check_host(headers) {
        return (status, reason).into_response();
    }
    let Ok(Query(q)) = query else {
        return (
            StatusCode::BAD_REQUEST,
            "the query string could not be read\n",
        )
            .into_response();
    };
    let request = match check(
        q.key.as_deref(),
        q.from.as_deref(),
        q.to.as_deref(),
        q.points.as_deref(),
        q.fields.as_deref(),
        &service.serve,
    ) {
        Ok(request) => request,
        Err(reason) => return (StatusCode::BAD_REQUEST, format!("{reason}\n")).into_response(),
    };
    let Ok(_permit) = service.busy.try_acquire() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the sink answers at most {MAX_CONCURRENT} history requests at once; try again\n"
            ),
        )
            .into_response();
    };
    match answer(&service.client, &request).await {
        Ok(json) => (
            [(header::CONTENT_TYPE, "application/json")],
            json.to_string(),
        )
            .into_response(),
        Err(err) => {
            tracing::warn!(key = %request.key, "history query failed: {err}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the database could not answer; try again\n",
            )
                .into_response()
        }
    }
}

/// The `Access-Control-Allow-Origin` to send: the page's origin when `--origin` lists it (or `*`).
fn cors_origin(origins: &[String], headers: &HeaderMap) -> Option<HeaderValue> {
    let origin = headers.get(header::ORIGIN)?;
    origins
        .iter()
        .any(|o| o == "*" || o.as_bytes() == origin.as_bytes())
        .then(|| origin.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_checked_with_their_reasons() {
        let serve = Patterns::new(&["perf:*".to_string()]);
        let ok = |key, from, to, points, fields| {
            check(
                Some(key),
                Some(from),
                Some(to),
                Some(points),
                Some(fields),
                &serve,
            )
        };
        let request = ok("perf:web-01", "1000", "2000", "10", "cpu.total,load.0").unwrap();
        assert_eq!(request.fields, ["cpu.total", "load.0"]);
        assert_eq!(
            step_ms(&request),
            101,
            "11 buckets of 101 ms would pass 1001 ms: 10 cover it"
        );
        assert_eq!(
            ok("secret:x", "1", "2", "1", "a").unwrap_err(),
            "key \"secret:x\" is not one this sink serves (--serve)"
        );
        assert_eq!(
            ok("perf:a", "2", "1", "1", "a").unwrap_err(),
            "to (1) is before from (2)"
        );
        assert_eq!(
            ok("perf:a", "0", "34560000001", "1", "a").unwrap_err(),
            "the range is 34560000001 ms, at most 34560000000 (400 days)"
        );
        assert_eq!(
            ok("perf:a", "0", "1", "2001", "a").unwrap_err(),
            "points must be 1 to 2000, got \"2001\""
        );
        assert_eq!(
            ok("perf:a", "0", "1", "0", "a").unwrap_err(),
            "points must be 1 to 2000, got \"0\""
        );
        assert_eq!(
            ok("perf:a", "-1", "1", "1", "a").unwrap_err(),
            "from must be a time in Unix ms between 0 and 253402300800000, got \"-1\""
        );
        assert!(ok("perf:a", "0", "1", "1", "cpu..total")
            .unwrap_err()
            .starts_with("field \"cpu..total\" must be"));
        assert!(ok("perf:a", "0", "1", "1", "a') OR 1=1 --").is_err());
        assert!(ok("perf:a", "0", "1", "1", "a.b.c.d.e.f.g.h.i").is_err());
        let many = vec!["a"; MAX_FIELDS + 1].join(",");
        assert_eq!(
            ok("perf:a", "0", "1", "1", &many).unwrap_err(),
            "129 fields, at most 128"
        );
        assert_eq!(
            check(None, None, None, None, None, &serve).unwrap_err(),
            "key is missing"
        );
    }
}
