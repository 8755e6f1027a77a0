//! Per-user access with signed tokens (JWT): the relay verifies a token presented at the WebSocket upgrade (or
//! sent later over the socket to refresh it) against the keys of `--jwt-secret` or `--jwt-keys` (`keys.rs`), checks
//! its `exp`, `nbf` and `aud` with `--jwt-leeway`, and reads the [`Grant`] its claims make (`grant.rs`): the keys
//! and databases the session may watch and the keys it may write, which the relay intersects with `--allow` and
//! `--writable`. Every refusal is a [`TokenError`], whose text is the session's close reason and whose kind is the
//! `reason` label of the refusal counter.
//!
//! The signature and claim checks are the `jsonwebtoken` crate's; this module bounds what reaches it (the token's
//! size), refuses `alg: none` by name, and picks the key, whose algorithms must include the token's `alg`.

mod error;
mod grant;
mod keys;
mod subjects;

pub use error::TokenError;
pub use grant::{Grant, MAX_GRANT_DBS, MAX_SUBJECT_LEN};
pub use keys::{KeySource, MAX_KEY_FILE, MIN_SECRET_LEN};
pub use subjects::{SubjectSessions, SubjectSlot};

use std::sync::{Arc, RwLock};

use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::Validation;
use replicast_protocol::client_message::MAX_TOKEN_LEN;
use serde::Deserialize;

use keys::KeyRing;

/// Default of `--jwt-leeway`: seconds of clock difference between the token's issuer and the relay tolerated on
/// `exp` and `nbf`.
pub const DEFAULT_LEEWAY: u64 = 30;
/// Default of `--max-sessions-per-subject`: a user's tabs and devices, not a fleet.
pub const DEFAULT_MAX_SESSIONS_PER_SUBJECT: u64 = 100;

/// How tokens are checked besides their signature.
#[derive(Debug, Clone, Default)]
pub struct TokenChecks {
    /// `--jwt-audience`: a token's `aud` must name one of these; empty, `aud` is not checked.
    pub audience: Vec<String>,
    /// `--jwt-leeway`, seconds.
    pub leeway: u64,
    /// `--max-sessions-per-subject`.
    pub max_sessions_per_subject: u64,
}

/// Verifies tokens with the keys loaded now.
pub struct TokenVerifier {
    source: KeySource,
    checks: TokenChecks,
    keys: RwLock<Arc<KeyRing>>,
    sessions: Arc<SubjectSessions>,
}

/// The part of a token's header read before anything else, to refuse `alg: none` by name.
#[derive(Deserialize)]
struct HeaderAlg {
    alg: String,
}

impl TokenVerifier {
    /// Loads the keys; an error names the flag and what is wrong.
    pub fn new(source: KeySource, checks: TokenChecks) -> Result<Self, String> {
        let keys = KeyRing::load(&source)?;
        Ok(TokenVerifier {
            source,
            checks,
            keys: RwLock::new(Arc::new(keys)),
            sessions: Arc::default(),
        })
    }

    /// Reads the key file again (on SIGHUP); on error the keys loaded before stay. The number of keys loaded.
    pub fn reload(&self) -> Result<usize, String> {
        let keys = KeyRing::load(&self.source)?;
        let count = keys.len();
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        Ok(count)
    }

    /// A place for one more session of `grant`'s subject, held while the session runs.
    pub fn admit(&self, grant: &Grant) -> Result<SubjectSlot, TokenError> {
        self.sessions
            .admit(&grant.subject, self.checks.max_sessions_per_subject)
            .map_err(|held| TokenError::SessionsPerSubject {
                subject: grant.subject.chars().take(64).collect(),
                held,
            })
    }

    /// `--jwt-leeway`, seconds: a session lives until its token's `exp` plus this.
    pub fn leeway(&self) -> u64 {
        self.checks.leeway
    }

    /// Verifies `token` and reads what it grants.
    pub fn verify(&self, token: &str) -> Result<Grant, TokenError> {
        if token.is_empty() {
            return Err(TokenError::Missing);
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLong(token.len()));
        }
        let header = token
            .split('.')
            .next()
            .and_then(|h| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(h)
                    .ok()
            })
            .and_then(|h| serde_json::from_slice::<HeaderAlg>(&h).ok())
            .ok_or_else(|| {
                TokenError::Malformed("its header is not base64url JSON with an alg".into())
            })?;
        if header.alg.eq_ignore_ascii_case("none") {
            return Err(TokenError::AlgNone);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            ErrorKind::Json(_) => TokenError::Algorithm(header.alg.chars().take(16).collect()),
            _ => TokenError::Malformed(e.to_string()),
        })?;
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner()).clone();
        let key = keys.find(header.kid.as_deref())?;
        if !key.algorithms.contains(&header.alg) {
            return Err(TokenError::Algorithm(format!("{:?}", header.alg)));
        }
        let mut validation = Validation::new(header.alg);
        validation.algorithms = key.algorithms.clone();
        validation.leeway = self.checks.leeway;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        if self.checks.audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&self.checks.audience);
            validation.required_spec_claims.insert("aud".into());
        }
        let data = jsonwebtoken::decode::<grant::Claims>(token, &key.key, &validation).map_err(
            |e| match e.kind() {
                ErrorKind::InvalidSignature => TokenError::Signature,
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                ErrorKind::InvalidAudience => TokenError::Audience,
                ErrorKind::InvalidAlgorithm
                | ErrorKind::InvalidEcdsaKey
                | ErrorKind::InvalidEddsaKey
                | ErrorKind::InvalidRsaKey(_)
                | ErrorKind::InvalidKeyFormat => TokenError::Algorithm(format!("{:?}", header.alg)),
                ErrorKind::MissingRequiredClaim(claim) => {
                    TokenError::Claims(format!("missing {claim}"))
                }
                ErrorKind::InvalidClaimFormat(claim) => {
                    TokenError::Claims(format!("{claim} is not of its type"))
                }
                ErrorKind::Json(err) => TokenError::Claims(err.to_string()),
                _ => TokenError::Malformed(e.to_string()),
            },
        )?;
        Grant::from_claims(data.claims)
    }
}

/// Unix seconds now.
pub fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}
