//! How long a session with a signed token lives: until its token's `exp` (plus `--jwt-leeway`), unless the page
//! sends a fresh token first. [`REFRESH_NOTICE`] before then the page gets an expiring message, its cue to ask
//! for one; a fresh token is verified like the first and must grant the same access (the session's windows and
//! filters were built from it), and only moves the end later. A session without a token never expires.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use replicast_protocol::wire;
use tokio::sync::{mpsc, watch};

use crate::events::Identity;
use crate::metrics::Metrics;
use crate::relay::Relay;
use crate::tokens::TokenVerifier;

use super::shard_stream::Inbound;
use super::socket::{Close, CLOSE_POLICY, CLOSE_TOKEN_EXPIRED};

/// How long before its token expires a session is told so (at once, for a token that lives less).
pub const REFRESH_NOTICE: Duration = Duration::from_secs(60);

/// A session's token: its verifier, and the `exp` the session lives until, which a refresh moves.
pub(crate) struct TokenLifetime<'a> {
    verifier: Option<&'a TokenVerifier>,
    identity: &'a Identity,
    metrics: &'a Metrics,
    expires: watch::Sender<Option<u64>>,
}

impl<'a> TokenLifetime<'a> {
    /// The session's lifetime, and the future that ends it: it sends the expiring message through `notices`, then
    /// resolves when the token (the last refreshed) expires. Never, for a session without a token.
    pub fn new(
        relay: &'a Relay,
        identity: &'a Identity,
        notices: mpsc::Sender<Inbound>,
    ) -> (Self, impl std::future::Future<Output = Close> + 'a) {
        let first = identity.grant.as_ref().map(|grant| grant.expires);
        let (expires, watched) = watch::channel(first);
        let leeway = relay.tokens.as_ref().map_or(0, |t| t.leeway());
        let lifetime = TokenLifetime {
            verifier: relay.tokens.as_deref(),
            identity,
            metrics: &relay.metrics,
            expires,
        };
        (lifetime, expire(watched, notices, leeway))
    }

    /// Takes a fresh token sent over the socket: `Ok(None)` when it moves the session's end, `Ok(Some)` with a
    /// notice when it is valid but expires no later than the one held; a close when it is refused or grants
    /// other access.
    pub fn refresh(&self, token: &str) -> Result<Option<String>, Close> {
        let (Some(verifier), Some(held)) = (self.verifier, &self.identity.grant) else {
            return Err(Close(
                CLOSE_POLICY,
                "this session has no signed token to refresh: the relay does not verify tokens"
                    .into(),
            ));
        };
        let fresh = verifier.verify(token).map_err(|refused| {
            self.metrics.refuse(refused.refusal());
            Close(CLOSE_POLICY, format!("refresh refused: {refused}"))
        })?;
        if !held.same_access(&fresh) {
            return Err(Close(
                CLOSE_POLICY,
                "a refreshed token must grant the same access (sub, replicast); reconnect with it"
                    .into(),
            ));
        }
        let moved = self.expires.send_if_modified(|expires| match expires {
            Some(at) if fresh.expires > *at => {
                *at = fresh.expires;
                true
            }
            _ => false,
        });
        Ok((!moved).then(|| {
            "the fresh token expires no later than the one held: kept the one held".into()
        }))
    }
}

/// Sends the expiring message [`REFRESH_NOTICE`] before the held token's `exp` and resolves at `exp + leeway`;
/// starts over whenever a refresh moves `exp`.
async fn expire(
    mut expires: watch::Receiver<Option<u64>>,
    notices: mpsc::Sender<Inbound>,
    leeway: u64,
) -> Close {
    loop {
        let Some(exp) = *expires.borrow_and_update() else {
            return std::future::pending().await;
        };
        let end = UNIX_EPOCH + Duration::from_secs(exp.saturating_add(leeway));
        let left = end
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        let deadline = tokio::time::Instant::now() + left;
        let notice_at = deadline - left.min(REFRESH_NOTICE);
        let mut noticed = false;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(notice_at), if !noticed => {
                    noticed = true;
                    // The sender may be gone (the session is ending): nothing to tell then.
                    let _ = notices.send(Inbound::Forward(wire::encode_expiring(exp))).await;
                }
                _ = tokio::time::sleep_until(deadline) => {
                    return Close(
                        CLOSE_TOKEN_EXPIRED,
                        "token expired: a fresh one was not sent before its exp".into(),
                    );
                }
                changed = expires.changed() => {
                    if changed.is_err() {
                        return std::future::pending().await;
                    }
                    break;
                }
            }
        }
    }
}
