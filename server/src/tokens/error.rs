//! Why a token was refused ([`TokenError`]): the text a session is closed with, and the `reason` label its
//! refusal is counted under. Its own file so that the key ring and the grant, which refuse tokens too, do not
//! import the verifier that uses them.

use replicast_protocol::client_message::MAX_TOKEN_LEN;
use thiserror::Error;

use crate::metrics::Refusal;

/// Why a token was refused: the close reason's text.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TokenError {
    #[error(
        "a token is required: the relay verifies signed tokens (?token= or Authorization: Bearer)"
    )]
    Missing,
    #[error("token too long: {0} bytes, at most {MAX_TOKEN_LEN}")]
    TooLong(usize),
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("token refused: alg none (unsigned) is never accepted")]
    AlgNone,
    #[error("token refused: its alg {0} does not fit the key it names")]
    Algorithm(String),
    #[error("token refused: kid {0:?} names no key the relay holds")]
    UnknownKid(String),
    #[error("token refused: it names no kid, and the relay holds several keys")]
    MissingKid,
    #[error("token refused: bad signature")]
    Signature,
    #[error("token expired (exp, with --jwt-leeway)")]
    Expired,
    #[error("token not yet valid (nbf, with --jwt-leeway)")]
    NotYetValid,
    #[error("token refused: wrong audience (aud is not --jwt-audience)")]
    Audience,
    #[error("token claims refused: {0}")]
    Claims(String),
    #[error("subject {subject:?} has {held} sessions open, the most one subject may hold (see --max-sessions-per-subject)")]
    SessionsPerSubject { subject: String, held: u64 },
}

impl TokenError {
    /// The `reason` label this refusal is counted under.
    pub fn refusal(&self) -> Refusal {
        match self {
            TokenError::Missing => Refusal::Token,
            TokenError::TooLong(_) | TokenError::Malformed(_) => Refusal::TokenMalformed,
            TokenError::AlgNone | TokenError::Algorithm(_) => Refusal::TokenAlgorithm,
            TokenError::UnknownKid(_) | TokenError::MissingKid => Refusal::TokenKid,
            TokenError::Signature => Refusal::TokenSignature,
            TokenError::Expired => Refusal::TokenExpired,
            TokenError::NotYetValid => Refusal::TokenNotYetValid,
            TokenError::Audience => Refusal::TokenAudience,
            TokenError::Claims(_) => Refusal::TokenClaims,
            TokenError::SessionsPerSubject { .. } => Refusal::SessionsPerSubject,
        }
    }
}
