//! Signed tokens as the relay verifies them (server/src/tokens), over arbitrary bytes: as a whole token (header,
//! payload and signature all arbitrary), and as the claims of a token signed with the relay's own secret, so that
//! they pass the signature and reach the checks behind it (exp, nbf, the replicast claim and its limits).
//!
//! Besides never panicking or hanging: an arbitrary token is never accepted (it would need the secret), and a
//! grant that is accepted keeps every limit: a subject of 1..=256 bytes, at most 64 patterns of at most 1,024
//! bytes each way, at most 16 databases, each at most 1,023, and at least one pattern to read.
//!
//! Run: `cargo +nightly fuzz run tokens -- -max_total_time=600` from the repository root.
#![no_main]

use std::sync::OnceLock;

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use replicast_server::tokens::{Grant, KeySource, TokenChecks, TokenVerifier};

const SECRET: &str = "the fuzz target's secret, 32 bytes or more";

fn verifier() -> &'static TokenVerifier {
    static VERIFIER: OnceLock<TokenVerifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        let checks = TokenChecks {
            audience: vec!["fuzz".into()],
            leeway: 30,
            max_sessions_per_subject: 1,
        };
        TokenVerifier::new(KeySource::Secret(SECRET.into()), checks).expect("a valid secret")
    })
}

fn keeps_the_limits(grant: &Grant) {
    assert!((1..=256).contains(&grant.subject.len()));
    assert!((1..=64).contains(&grant.read.len()));
    assert!(grant.write.len() <= 64);
    if let Some(dbs) = &grant.dbs {
        assert!(dbs.len() <= 16 && dbs.iter().all(|db| *db <= 1023));
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    assert!(
        verifier().verify(&text).is_err(),
        "an arbitrary token was accepted: {text}"
    );
    if let Ok(grant) = Grant::from_payload(data) {
        keeps_the_limits(&grant);
    }
    // The input as the claims of a token the relay's own secret signed.
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let body = format!("{}.{}", b64(br#"{"alg":"HS256","typ":"JWT"}"#), b64(data));
    let key = EncodingKey::from_secret(SECRET.as_bytes()).expect("a secret");
    let signature =
        jsonwebtoken::crypto::sign(body.as_bytes(), &key, Algorithm::HS256).expect("signs");
    if let Ok(grant) = verifier().verify(&format!("{body}.{signature}")) {
        keeps_the_limits(&grant);
    }
});
