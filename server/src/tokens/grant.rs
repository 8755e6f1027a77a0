//! What a verified token grants a session: the claims the relay reads from its payload, checked against the same
//! kind of limits as a subscription (a token is a client's input, however well signed), and the session's own
//! read and write patterns that follow from them.
//!
//! The claims (documented in `docs/SECURITY.md`):
//! `{"sub": "alice", "exp": 1700000000, "replicast": {"read": ["tenant:a:*"], "write": ["tenant:a:notes"], "db": [0]}}`.
//! `sub` names who the session acts for (its events carry it); `replicast.read` the keys it may watch, within
//! `--allow`; `replicast.write` the keys it may append events to, within `--writable`/`--writable-zset`; `db` the
//! databases it may subscribe to (any, if absent). An unknown field inside `replicast` is refused, so that a typo
//! in an issuer's claims fails loudly rather than granting less (or more) than meant.

use replicast_protocol::client_message::{
    MAX_DB, MAX_NAME_LEN, MAX_PATTERNS, MAX_PATTERN_WILDCARDS,
};
use replicast_protocol::pattern::Glob;
use serde::Deserialize;

use super::error::TokenError;

/// Longest `sub` a token may carry (it is written into every event the session appends).
pub const MAX_SUBJECT_LEN: usize = 256;
/// Most databases one token's `replicast.db` may list.
pub const MAX_GRANT_DBS: usize = 16;

/// A token's payload as the relay reads it; `exp`, `nbf` and `aud` are checked by the verifier before this.
#[derive(Debug, Deserialize)]
pub(super) struct Claims {
    sub: String,
    exp: u64,
    replicast: GrantClaim,
}

/// The `replicast` claim.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantClaim {
    read: Vec<String>,
    #[serde(default)]
    write: Vec<String>,
    db: Option<Vec<u32>>,
}

/// What one verified token lets its session do.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The verified `sub`: who the session acts for.
    pub subject: String,
    /// The token's `exp`, Unix seconds.
    pub expires: u64,
    /// Keys the session may watch (also within `--allow`).
    pub read: Vec<Glob>,
    /// Keys the session may append events to (also within `--writable` / `--writable-zset`).
    pub write: Vec<Glob>,
    /// Databases the session may subscribe to; `None`: any.
    pub dbs: Option<Vec<u32>>,
    /// The claims' patterns as written, to compare a refreshed token's grant with this one.
    patterns: (Vec<String>, Vec<String>),
}

impl Grant {
    /// Reads a token payload's claims (JSON) and checks them against the limits; `exp` and the rest are the
    /// verifier's to check.
    pub fn from_payload(payload: &[u8]) -> Result<Grant, TokenError> {
        let claims: Claims =
            serde_json::from_slice(payload).map_err(|e| TokenError::Claims(e.to_string()))?;
        Grant::from_claims(claims)
    }

    pub(super) fn from_claims(claims: Claims) -> Result<Grant, TokenError> {
        let Claims {
            sub,
            exp,
            replicast,
        } = claims;
        if sub.is_empty() || sub.len() > MAX_SUBJECT_LEN {
            return Err(TokenError::Claims(format!(
                "sub must be 1..={MAX_SUBJECT_LEN} bytes, got {}",
                sub.len()
            )));
        }
        if replicast.read.is_empty() {
            return Err(TokenError::Claims(
                "replicast.read is empty: the token grants nothing to watch".into(),
            ));
        }
        let read = patterns("replicast.read", &replicast.read)?;
        let write = patterns("replicast.write", &replicast.write)?;
        if let Some(dbs) = &replicast.db {
            if dbs.len() > MAX_GRANT_DBS {
                return Err(TokenError::Claims(format!(
                    "replicast.db lists at most {MAX_GRANT_DBS} databases, got {}",
                    dbs.len()
                )));
            }
            if let Some(db) = dbs.iter().find(|db| **db > MAX_DB) {
                return Err(TokenError::Claims(format!(
                    "replicast.db holds databases 0..={MAX_DB}, got {db}"
                )));
            }
        }
        Ok(Grant {
            subject: sub,
            expires: exp,
            read,
            write,
            dbs: replicast.db,
            patterns: (replicast.read, replicast.write),
        })
    }

    /// Whether the token may read every key `--allow` lets out (a read pattern `*`): an operator's token.
    pub fn reads_everything(&self) -> bool {
        self.read.iter().any(|glob| glob.as_bytes() == b"*")
    }

    /// Whether the session may subscribe to database `db`.
    pub fn may_watch_db(&self, db: u32) -> bool {
        self.dbs.as_ref().is_none_or(|dbs| dbs.contains(&db))
    }

    /// Whether `key` matches one of the token's write patterns.
    pub fn may_write(&self, key: &[u8]) -> bool {
        self.write.iter().any(|p| p.matches(key))
    }

    /// Whether `other` (a refreshed token) grants exactly what this one does, to the same subject: only its
    /// expiry may differ, so that a refresh never changes what a session's windows were built from.
    pub fn same_access(&self, other: &Grant) -> bool {
        self.subject == other.subject && self.patterns == other.patterns && self.dbs == other.dbs
    }
}

/// A claim's patterns, compiled, within the limits a subscription's patterns keep.
fn patterns(claim: &str, given: &[String]) -> Result<Vec<Glob>, TokenError> {
    if given.len() > MAX_PATTERNS {
        return Err(TokenError::Claims(format!(
            "{claim} holds at most {MAX_PATTERNS} patterns, got {}",
            given.len()
        )));
    }
    given
        .iter()
        .map(|p| {
            if p.len() > MAX_NAME_LEN {
                return Err(TokenError::Claims(format!(
                    "a {claim} pattern is at most {MAX_NAME_LEN} bytes, got {}",
                    p.len()
                )));
            }
            Glob::within(p.as_bytes(), MAX_PATTERN_WILDCARDS).map_err(|span| {
                TokenError::Claims(format!(
                    "a {claim} pattern's parts between two * holding ?, [ or \\ may span at most {MAX_PATTERN_WILDCARDS} bytes of a key, got {span}"
                ))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(payload: &str) -> Result<Grant, String> {
        Grant::from_payload(payload.as_bytes()).map_err(|e| e.to_string())
    }

    #[test]
    fn claims_name_the_keys_and_databases_a_session_may_use() {
        let g = grant(
            r#"{"sub":"alice","exp":10,"replicast":{"read":["tenant:a:*"],"write":["tenant:a:notes"],"db":[0,2]}}"#,
        )
        .unwrap();
        assert_eq!((g.subject.as_str(), g.expires), ("alice", 10));
        assert!(g.read[0].matches(b"tenant:a:x") && !g.read[0].matches(b"tenant:b:x"));
        assert!(g.may_write(b"tenant:a:notes") && !g.may_write(b"tenant:a:x"));
        assert!(g.may_watch_db(2) && !g.may_watch_db(1));
        let any_db = grant(r#"{"sub":"a","exp":1,"replicast":{"read":["x"]}}"#).unwrap();
        assert!(any_db.may_watch_db(1023) && !any_db.may_write(b"x"));
    }

    #[test]
    fn claims_past_a_limit_are_refused_with_the_limit() {
        let long = "k".repeat(MAX_NAME_LEN + 1);
        let many: Vec<String> = (0..=MAX_PATTERNS).map(|i| format!("\"p{i}\"")).collect();
        let cases = [
            (r#"{"sub":"a","exp":1}"#.to_string(), "missing field `replicast`"),
            (r#"{"exp":1,"replicast":{"read":["x"]}}"#.into(), "missing field `sub`"),
            (r#"{"sub":"","exp":1,"replicast":{"read":["x"]}}"#.into(), "sub must be 1..=256 bytes, got 0"),
            (format!(r#"{{"sub":"{}","exp":1,"replicast":{{"read":["x"]}}}}"#, "s".repeat(257)), "got 257"),
            (r#"{"sub":"a","exp":1,"replicast":{"read":[]}}"#.into(), "grants nothing to watch"),
            (r#"{"sub":"a","exp":1,"replicast":{"read":["x"],"reads":["y"]}}"#.into(), "unknown field `reads`"),
            (format!(r#"{{"sub":"a","exp":1,"replicast":{{"read":[{}]}}}}"#, many.join(",")), "replicast.read holds at most 64 patterns, got 65"),
            (format!(r#"{{"sub":"a","exp":1,"replicast":{{"read":["x"],"write":["{long}"]}}}}"#), "a replicast.write pattern is at most 1024 bytes, got 1025"),
            (format!(r#"{{"sub":"a","exp":1,"replicast":{{"read":["*{}*"]}}}}"#, "?".repeat(65)), "may span at most 64 bytes of a key, got 65"),
            (r#"{"sub":"a","exp":1,"replicast":{"read":["x"],"db":[1024]}}"#.into(), "replicast.db holds databases 0..=1023, got 1024"),
            (r#"{"sub":"a","exp":1,"replicast":{"read":["x"],"db":[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]}}"#.into(), "at most 16 databases, got 17"),
            (r#"{"sub":"a","exp":-1,"replicast":{"read":["x"]}}"#.into(), "invalid value"),
        ];
        for (payload, expected) in cases {
            let err = grant(&payload).unwrap_err();
            assert!(err.contains(expected), "{payload}: {err}");
        }
    }

    #[test]
    fn a_refresh_keeps_access_only_when_it_grants_the_same() {
        let a = grant(r#"{"sub":"a","exp":1,"replicast":{"read":["x"],"write":["w"]}}"#).unwrap();
        let later =
            grant(r#"{"sub":"a","exp":9,"replicast":{"read":["x"],"write":["w"]}}"#).unwrap();
        let wider =
            grant(r#"{"sub":"a","exp":9,"replicast":{"read":["x","y"],"write":["w"]}}"#).unwrap();
        let other =
            grant(r#"{"sub":"b","exp":9,"replicast":{"read":["x"],"write":["w"]}}"#).unwrap();
        assert!(a.same_access(&later));
        assert!(!a.same_access(&wider) && !a.same_access(&other));
    }
}
