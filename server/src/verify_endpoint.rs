//! `/verify`: the relay's state of chosen keys at a chosen offset, for `replicast verify` (`verify_command.rs`),
//! which reads the same keys from Redis at that offset and compares.
//!
//! `GET /verify` says where the state stands (epoch, offset) and what it keeps (depth, `--allow`), so that the
//! command reads Redis as deep and samples keys the state should hold. `POST /verify` with
//! `{"epoch", "offset", "keys": [...]}` answers each key's [`KeyState`] at exactly that offset, waiting (at most
//! [`CHECK_WAIT`]) for the state's thread to reach it; 409 when the state is already past it or follows another stream.
//! Both are behind the operators' checks of `/profile` (`operator_access`): the answer names keys, though
//! only those asked, and says nothing of a key outside `--allow` but that it is unknown. In debug builds only,
//! `POST /verify/corrupt?key=K` corrupts a key's window in the state, for the tests of the checks.

use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use replicast_protocol::client_message::MAX_NAME_LEN;
use serde::{Deserialize, Serialize};

use crate::operator_access::operator_access;
use crate::relay::Relay;
use crate::state::verify::{KeyState, NotAt, CHECK_WAIT, MAX_VERIFY_KEYS};
use crate::state::RelayState;

/// Largest `POST /verify` body: [`MAX_VERIFY_KEYS`] keys of [`MAX_NAME_LEN`] bytes, escaped, fit.
pub const MAX_VERIFY_BODY: usize = 8 * 1024 * 1024;

/// Where the state stands and what it keeps (`GET /verify`).
#[derive(Debug, Serialize, Deserialize)]
pub struct StateInfo {
    pub epoch: String,
    pub offset: u64,
    pub depth: usize,
    pub allow: Vec<String>,
}

/// The keys to read at `offset` of `epoch` (`POST /verify`).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateRequest {
    pub epoch: String,
    pub offset: u64,
    pub keys: Vec<String>,
}

/// One key of the answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct KeyAnswer {
    pub key: String,
    #[serde(flatten)]
    pub state: KeyState,
}

/// The answer to `POST /verify`.
#[derive(Debug, Serialize, Deserialize)]
pub struct StateAnswer {
    pub epoch: String,
    pub offset: u64,
    pub keys: Vec<KeyAnswer>,
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

pub fn routes() -> Router<Relay> {
    let router = Router::new().route("/verify", get(info).post(state_at));
    #[cfg(debug_assertions)]
    let router = router.route("/verify/corrupt", axum::routing::post(corrupt));
    router.layer(DefaultBodyLimit::max(MAX_VERIFY_BODY))
}

/// The state of the relay's single stream; `Err` when there is none to check (`--stateless`, a cluster: its
/// shards' states are not checked from here).
fn relay_state(relay: &Relay) -> Result<std::sync::Arc<RelayState>, (StatusCode, &'static str)> {
    let view = relay.topology.view();
    let single = relay.topology.shape() == crate::topology::Shape::OneRedis;
    let state = view
        .shard(0)
        .filter(|_| single)
        .and_then(|shard| shard.state.clone());
    state.ok_or((
        StatusCode::NOT_FOUND,
        "this relay keeps no state to verify (--stateless), or follows a cluster\n",
    ))
}

fn json(value: &impl Serialize) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        serde_json::to_string(value).unwrap_or_default(),
    )
        .into_response()
}

async fn info(
    headers: HeaderMap,
    Query(query): Query<TokenQuery>,
    State(relay): State<Relay>,
) -> Response {
    if let Err(refused) = operator_access(&relay, &headers, query.token.as_deref(), "/verify") {
        return refused.into_response();
    }
    let state = match relay_state(&relay) {
        Ok(state) => state,
        Err(refused) => return refused.into_response(),
    };
    match state.position() {
        Some((epoch, offset)) => json(&StateInfo {
            epoch,
            offset,
            depth: state.depth(),
            allow: state.patterns().to_vec(),
        }),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{}\n", NotAt::NotReady),
        )
            .into_response(),
    }
}

async fn state_at(
    headers: HeaderMap,
    Query(query): Query<TokenQuery>,
    State(relay): State<Relay>,
    body: axum::body::Bytes,
) -> Response {
    if let Err(refused) = operator_access(&relay, &headers, query.token.as_deref(), "/verify") {
        return refused.into_response();
    }
    let state = match relay_state(&relay) {
        Ok(state) => state,
        Err(refused) => return refused.into_response(),
    };
    let request: StateRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("expected {{\"epoch\", \"offset\", \"keys\": [...]}}: {err}\n"),
            )
                .into_response()
        }
    };
    if request.keys.len() > MAX_VERIFY_KEYS {
        let err = NotAt::TooManyKeys(request.keys.len());
        return (StatusCode::BAD_REQUEST, format!("{err}\n")).into_response();
    }
    if let Some(long) = request.keys.iter().find(|k| k.len() > MAX_NAME_LEN) {
        return (
            StatusCode::BAD_REQUEST,
            format!(
                "a key is at most {MAX_NAME_LEN} bytes, got {}\n",
                long.len()
            ),
        )
            .into_response();
    }
    let keys = request.keys.iter().map(|k| k.as_bytes().to_vec()).collect();
    let answer = match state.state_at(&request.epoch, request.offset, keys) {
        Ok(answer) => answer,
        Err(err) => return refusal(err),
    };
    let Ok(Ok(states)) = tokio::time::timeout(CHECK_WAIT, answer).await else {
        return refusal(NotAt::NotReached(request.offset));
    };
    json(&StateAnswer {
        epoch: request.epoch,
        offset: request.offset,
        keys: states
            .into_iter()
            .map(|(key, state)| KeyAnswer {
                key: String::from_utf8_lossy(&key).into_owned(),
                state,
            })
            .collect(),
    })
}

fn refusal(err: NotAt) -> Response {
    let status = match err {
        NotAt::NotReady => StatusCode::SERVICE_UNAVAILABLE,
        NotAt::OtherEpoch { .. } | NotAt::Past { .. } => StatusCode::CONFLICT,
        NotAt::Busy | NotAt::TooManyTracked => StatusCode::TOO_MANY_REQUESTS,
        NotAt::TooManyKeys(_) => StatusCode::BAD_REQUEST,
        NotAt::NotReached(_) => StatusCode::GATEWAY_TIMEOUT,
    };
    (status, format!("{err}\n")).into_response()
}

#[cfg(debug_assertions)]
#[derive(Deserialize)]
struct CorruptQuery {
    key: String,
    token: Option<String>,
}

/// Debug builds only: makes `key`'s window in the state the string `corrupted`, for the tests of the checks.
#[cfg(debug_assertions)]
async fn corrupt(
    headers: HeaderMap,
    Query(query): Query<CorruptQuery>,
    State(relay): State<Relay>,
) -> Response {
    if let Err(refused) = operator_access(&relay, &headers, query.token.as_deref(), "/verify") {
        return refused.into_response();
    }
    match relay_state(&relay) {
        Ok(state) if state.corrupt(query.key.as_bytes()) => "corrupted\n".into_response(),
        Ok(_) => (StatusCode::SERVICE_UNAVAILABLE, "the state is not ready\n").into_response(),
        Err(refused) => refused.into_response(),
    }
}
