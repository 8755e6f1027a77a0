//! The keys tokens are verified with: a shared secret (`--jwt-secret`, HS256), or a file (`--jwt-keys`) holding
//! one PEM public key or a JWKS (a JSON Web Key Set: several public keys, each picked by a token's `kid`). Each key
//! carries the algorithms it verifies, so a token whose `alg` does not fit its key (an RSA public key used as an
//! HMAC secret, the classic confusion) is refused before any signature is checked. The file is read again on
//! SIGHUP, so keys rotate without a restart; a file that no longer reads keeps the keys loaded before.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

use super::error::TokenError;

/// Largest `--jwt-keys` file read: far more than a JWKS of a few dozen RSA keys.
pub const MAX_KEY_FILE: u64 = 1024 * 1024;
/// Shortest `--jwt-secret`: HS256 with a shorter secret is guessable offline from any one token.
pub const MIN_SECRET_LEN: usize = 32;

/// One key and the algorithms it verifies.
pub(super) struct VerifyingKey {
    pub key: DecodingKey,
    pub algorithms: Vec<Algorithm>,
}

/// The keys loaded now.
pub(super) enum KeyRing {
    /// `--jwt-secret`, or a PEM file's one key: every token is checked against it, whatever its `kid`.
    One(VerifyingKey),
    /// A JWKS: a token names its key by `kid` (which it may leave out when the set holds one key).
    Set(HashMap<String, VerifyingKey>),
}

/// Where the keys come from, to read them again.
#[derive(Debug, Clone)]
pub enum KeySource {
    Secret(String),
    File(PathBuf),
}

impl KeyRing {
    pub(super) fn load(source: &KeySource) -> Result<KeyRing, String> {
        match source {
            KeySource::Secret(secret) => {
                if secret.len() < MIN_SECRET_LEN {
                    return Err(format!(
                        "--jwt-secret must be at least {MIN_SECRET_LEN} bytes, got {}",
                        secret.len()
                    ));
                }
                let key = DecodingKey::from_secret(secret.as_bytes())
                    .map_err(|e| format!("--jwt-secret: {e}"))?;
                Ok(KeyRing::One(VerifyingKey {
                    key,
                    algorithms: vec![Algorithm::HS256],
                }))
            }
            KeySource::File(path) => {
                let text = read_bounded(path)?;
                let at = path.display();
                if text.trim_start().starts_with('{') {
                    jwks(&text).map_err(|e| format!("--jwt-keys {at}: {e}"))
                } else {
                    pem(text.as_bytes())
                        .map(KeyRing::One)
                        .map_err(|e| format!("--jwt-keys {at}: {e}"))
                }
            }
        }
    }

    /// The key a token with this `kid` is checked against.
    pub(super) fn find(&self, kid: Option<&str>) -> Result<&VerifyingKey, TokenError> {
        match (self, kid) {
            (KeyRing::One(key), _) => Ok(key),
            (KeyRing::Set(keys), Some(kid)) => keys
                .get(kid)
                .ok_or_else(|| TokenError::UnknownKid(kid.chars().take(64).collect())),
            (KeyRing::Set(keys), None) if keys.len() == 1 => {
                keys.values().next().ok_or(TokenError::MissingKid)
            }
            (KeyRing::Set(_), None) => Err(TokenError::MissingKid),
        }
    }

    pub(super) fn len(&self) -> usize {
        match self {
            KeyRing::One(_) => 1,
            KeyRing::Set(keys) => keys.len(),
        }
    }
}

fn read_bounded(path: &Path) -> Result<String, String> {
    let at = path.display();
    let file = std::fs::File::open(path).map_err(|e| format!("--jwt-keys {at}: {e}"))?;
    let mut text = String::new();
    file.take(MAX_KEY_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("--jwt-keys {at}: {e}"))?;
    if text.len() as u64 > MAX_KEY_FILE {
        return Err(format!(
            "--jwt-keys {at}: larger than {MAX_KEY_FILE} bytes; a key file holds public keys only"
        ));
    }
    Ok(text)
}

/// One PEM public key: RSA, EC (P-256 or P-384) or Ed25519.
fn pem(text: &[u8]) -> Result<VerifyingKey, String> {
    let key = DecodingKey::from_rsa_pem(text)
        .or_else(|_| DecodingKey::from_ec_pem(text))
        .or_else(|_| DecodingKey::from_ed_pem(text))
        .map_err(|_| "not a PEM public key (RSA, EC or Ed25519) nor a JWKS".to_string())?;
    let algorithms = key.family().algorithms().to_vec();
    Ok(VerifyingKey { key, algorithms })
}

/// A JWKS: every key needs a distinct `kid`; symmetric (`oct`) keys belong in `--jwt-secret`, not in a file of
/// public keys.
fn jwks(text: &str) -> Result<KeyRing, String> {
    let set: JwkSet = serde_json::from_str(text).map_err(|e| format!("not a JWKS: {e}"))?;
    if set.keys.is_empty() {
        return Err("the JWKS holds no keys".into());
    }
    let mut keys = HashMap::new();
    for (i, jwk) in set.keys.iter().enumerate() {
        let kid = jwk
            .common
            .key_id
            .clone()
            .ok_or_else(|| format!("key {} has no kid", i + 1))?;
        let family_algorithms: Vec<Algorithm> = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => AlgorithmFamily::Rsa.algorithms().to_vec(),
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P256 => vec![Algorithm::ES256],
                EllipticCurve::P384 => vec![Algorithm::ES384],
                _ => return Err(format!("key {kid:?}: only the P-256 and P-384 curves verify")),
            },
            AlgorithmParameters::OctetKeyPair(_) => vec![Algorithm::EdDSA],
            AlgorithmParameters::OctetKey(_) => {
                return Err(format!(
                    "key {kid:?} is a shared secret (oct): give it with --jwt-secret, not in a file of public keys"
                ))
            }
            _ => {
                return Err(format!("key {kid:?} is of a type that does not verify JWTs"))
            }
        };
        // A key that names its algorithm verifies that one only.
        let algorithms = match jwk.common.key_algorithm.map(Algorithm::try_from) {
            Some(Ok(alg)) if family_algorithms.contains(&alg) => vec![alg],
            Some(_) => return Err(format!("key {kid:?}: its alg does not fit its key type")),
            None => family_algorithms,
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key {kid:?}: {e}"))?;
        if keys
            .insert(kid.clone(), VerifyingKey { key, algorithms })
            .is_some()
        {
            return Err(format!("kid {kid:?} is given twice"));
        }
    }
    Ok(KeyRing::Set(keys))
}
