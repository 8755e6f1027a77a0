//! Per-user signed tokens against a real `redis-server` and the relay binary, over raw WebSockets: two tenants'
//! sessions, each with a token for its own keys, never receive a byte of the other's key names or values, whatever
//! the workload (`MULTI` blocks, `RENAME`/`COPY` across, a Lua script writing both, `FLUSHDB`); tokens that are
//! expired, not yet valid, tampered, unsigned (`alg: none`), for another audience, for an unknown key, or signed
//! with an algorithm their key does not verify are refused with their reasons; keys rotate through a JWKS file and
//! SIGHUP; a token refreshed over the socket keeps its session past the first `exp`, which closes the others; and
//! a write outside the token's write patterns is refused with its reason.
//!
//! Tokens are signed here with `jsonwebtoken` and the test-only keys of `fixtures/`.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use replicast_protocol::client_message::{ClientMessage, Event, TokenRefresh};
use replicast_protocol::wire::{self, Message};
use serde_json::json;
use support::*;
use tokio_tungstenite::tungstenite;

const SECRET: &str = "a test-only secret of at least 32 bytes";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// The claims of a token for `sub`, reading `read`, writing `write`, valid for `ttl` seconds.
fn claims(sub: &str, read: &[&str], write: &[&str], ttl: u64) -> serde_json::Value {
    json!({"sub": sub, "exp": now() + ttl, "aud": "replicast-test",
        "replicast": {"read": read, "write": write}})
}

fn hs256(claims: &serde_json::Value) -> String {
    let key = EncodingKey::from_secret(SECRET.as_bytes()).unwrap();
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key).unwrap()
}

/// A signing key of the fixtures and its algorithm.
struct Signer {
    kid: &'static str,
    alg: Algorithm,
    key: EncodingKey,
}

impl Signer {
    fn rsa() -> Signer {
        Signer {
            kid: "rsa-1",
            alg: Algorithm::RS256,
            key: EncodingKey::from_rsa_pem(&fixture("test-only-rsa-private.pem")).unwrap(),
        }
    }

    fn ec(which: &str) -> Signer {
        Signer {
            kid: if which == "a" { "ec-a" } else { "ec-b" },
            alg: Algorithm::ES256,
            key: EncodingKey::from_ec_pem(&fixture(&format!(
                "test-only-ec-p256-{which}-private.pem"
            )))
            .unwrap(),
        }
    }

    fn ed() -> Signer {
        Signer {
            kid: "ed-1",
            alg: Algorithm::EdDSA,
            key: EncodingKey::from_ed_pem(&fixture("test-only-ed25519-private.pem")).unwrap(),
        }
    }

    fn sign(&self, claims: &serde_json::Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.into());
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }

    /// The public half, as a JWKS entry.
    fn jwk(&self) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.key, self.alg).unwrap();
        jwk.common.key_id = Some(self.kid.into());
        jwk
    }
}

/// Writes a JWKS of `signers`' public keys to `path`.
fn write_jwks(path: &Path, signers: &[&Signer]) {
    let set = JwkSet {
        keys: signers.iter().map(|s| s.jwk()).collect(),
    };
    std::fs::write(path, serde_json::to_vec(&set).unwrap()).unwrap();
}

fn with_token(ws_url: &str, token: &str) -> String {
    format!("{ws_url}?token={token}")
}

/// What a session was refused with: the close frame's code and reason, before any binary message.
async fn refusal(ws_url: &str, token: Option<&str>) -> (u16, String) {
    let url = token.map_or(ws_url.to_string(), |t| with_token(ws_url, t));
    let (mut socket, _) = within(
        "the relay's answer to a WebSocket upgrade",
        tokio_tungstenite::connect_async(&url),
    )
    .await
    .unwrap();
    let _ = socket
        .send(tungstenite::Message::text(subscribe_message(
            &["tenant:*"],
            10,
        )))
        .await;
    closed(&mut socket).await
}

/// Reads until the relay closes the session; its close code and reason. Binary messages before it are skipped.
async fn closed(socket: &mut Socket) -> (u16, String) {
    within("the relay's close frame", async {
        loop {
            match next_message(socket).await {
                tungstenite::Message::Close(Some(frame)) => {
                    return (u16::from(frame.code), frame.reason.to_string())
                }
                tungstenite::Message::Close(None) => panic!("closed without a reason"),
                _ => continue,
            }
        }
    })
    .await
}

/// A session opened with `token`, subscribed to every tenant's keys, joined (hello and snapshot).
async fn joined(ws_url: &str, token: &str) -> Socket {
    let mut socket = connect(
        &with_token(ws_url, token),
        &subscribe_message(&["tenant:*"], 10),
    )
    .await;
    join(&mut socket).await;
    socket
}

/// The same, with the raw bytes of the snapshot and where it is valid (epoch, offset).
async fn joined_raw(ws_url: &str, token: &str) -> (Socket, Vec<u8>, (String, u64)) {
    let mut socket = connect(
        &with_token(ws_url, token),
        &subscribe_message(&["tenant:*"], 10),
    )
    .await;
    let at = hello(&mut socket).await;
    let snapshot = next_binary(&mut socket).await;
    assert!(matches!(
        wire::decode(&snapshot),
        Ok(Message::Snapshot { .. })
    ));
    (socket, snapshot, at)
}

/// Every binary message's raw bytes until the session has been sent a command naming `last` (a key of its own).
async fn raw_until(socket: &mut Socket, last: &[u8]) -> Vec<u8> {
    let what = format!("a command naming {}", last.escape_ascii());
    within(&what, async {
        let mut raw = Vec::new();
        loop {
            let message = next_binary(socket).await;
            raw.extend_from_slice(&message);
            if let Ok(Message::Commands(segments)) = wire::decode(&message) {
                let seen = segments.map(|s| s.unwrap()).any(|s| {
                    parse_all(s.bytes)
                        .iter()
                        .any(|c| c.get(1).is_some_and(|k| k == last))
                });
                if seen {
                    return raw;
                }
            }
        }
    })
    .await
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn redis(conn: &mut redis::aio::MultiplexedConnection, words: &[&str]) -> redis::Value {
    let mut cmd = redis::cmd(words[0]);
    for w in &words[1..] {
        cmd.arg(*w);
    }
    cmd.query_async(conn).await.unwrap()
}

#[tokio::test]
async fn each_tenant_receives_only_its_own_keys_and_values() {
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay_with(
        &format!("redis://127.0.0.1:{port}"),
        &[
            "--allow",
            "tenant:*",
            "--jwt-secret",
            SECRET,
            "--jwt-audience",
            "replicast-test",
        ],
    );
    wait_healthy(&ws_url).await;
    let mut conn = redis_conn(port).await;
    // Written before the joins: the snapshots too must keep to each token.
    redis(&mut conn, &["SET", "tenant:a:before", "A-VALUE-before"]).await;
    redis(&mut conn, &["SET", "tenant:b:before", "B-VALUE-before"]).await;
    // The relay has the writes, so its state's snapshots hold them (the stream would bring them otherwise).
    link_reaches(&ws_url, master_repl_offset(&mut conn).await).await;
    let (token_a, token_b) = (
        hs256(&claims("alice", &["tenant:a:*"], &[], 300)),
        hs256(&claims("bob", &["tenant:b:*"], &[], 300)),
    );
    let (mut a, snapshot_a, (epoch, offset)) = joined_raw(&ws_url, &token_a).await;
    let (mut b, snapshot_b, _) = joined_raw(&ws_url, &token_b).await;
    assert!(contains(&snapshot_a, b"A-VALUE-before") && !contains(&snapshot_a, b"tenant:b"));
    assert!(contains(&snapshot_b, b"B-VALUE-before") && !contains(&snapshot_b, b"tenant:a"));

    for tenant in ["a", "b"] {
        let big = tenant.to_uppercase();
        redis(
            &mut conn,
            &[
                "SET",
                &format!("tenant:{tenant}:k"),
                &format!("{big}-VALUE-set"),
            ],
        )
        .await;
    }
    let mut block = redis::pipe();
    block
        .atomic()
        .cmd("ZADD")
        .arg("tenant:a:z")
        .arg(1)
        .arg("A-VALUE-multi")
        .cmd("ZADD")
        .arg("tenant:b:z")
        .arg(1)
        .arg("B-VALUE-multi")
        .cmd("SET")
        .arg("tenant:a:m")
        .arg("A-VALUE-multi2");
    let _: redis::Value = block.query_async(&mut conn).await.unwrap();
    redis(&mut conn, &["RENAME", "tenant:a:k", "tenant:b:renamed"]).await;
    redis(&mut conn, &["COPY", "tenant:b:z", "tenant:a:copied"]).await;
    redis(
        &mut conn,
        &[
            "EVAL",
            "redis.call('SET', KEYS[1], ARGV[1]); redis.call('SET', KEYS[2], ARGV[2])",
            "2",
            "tenant:a:lua",
            "tenant:b:lua",
            "A-VALUE-lua",
            "B-VALUE-lua",
        ],
    )
    .await;
    redis(&mut conn, &["FLUSHDB"]).await;
    redis(&mut conn, &["SET", "tenant:a:done", "A-VALUE-done"]).await;
    redis(&mut conn, &["SET", "tenant:b:done", "B-VALUE-done"]).await;

    let seen_by_a = raw_until(&mut a, b"tenant:a:done").await;
    let seen_by_b = raw_until(&mut b, b"tenant:b:done").await;
    // A session of tenant b resuming inside the backlog, from before the workload, reads it filtered the same.
    let resume = format!("{ws_url}?epoch={epoch}&offset={offset}&token={token_b}");
    let mut resumed = connect(&resume, &subscribe_message(&["tenant:*"], 10)).await;
    assert_eq!(
        hello(&mut resumed).await,
        (epoch, offset),
        "resumed, no snapshot"
    );
    let resumed_by_b = raw_until(&mut resumed, b"tenant:b:done").await;
    // A top-up of the other tenant's key is refused, and names nothing but what was asked.
    b.send(tungstenite::Message::text(
        r#"{"type":"topup","keys":["tenant:a:lua"]}"#,
    ))
    .await
    .unwrap();
    within("the top-up's refusal", async {
        loop {
            if let Ok(Message::Notice { text }) = wire::decode(&next_binary(&mut b).await) {
                assert!(text.starts_with("top-up refused"), "{text}");
                break;
            }
        }
    })
    .await;
    for (own, other, raw) in [
        ("A", "b", &seen_by_a),
        ("B", "a", &seen_by_b),
        ("B", "a", &resumed_by_b),
    ] {
        let other_key = format!("tenant:{other}:");
        let other_value = format!("{}-VALUE", other.to_uppercase());
        assert!(
            !contains(raw, other_key.as_bytes()) && !contains(raw, other_value.as_bytes()),
            "tenant {own} was sent tenant {other}'s keys or values: {}",
            raw.escape_ascii()
        );
        // What it may see reached it: its side of the block and of the script, and the FLUSHDB.
        for expected in [
            format!("{own}-VALUE-set"),
            format!("{own}-VALUE-multi"),
            format!("{own}-VALUE-lua"),
            "FLUSHDB".into(),
        ] {
            assert!(
                contains(raw, expected.as_bytes()),
                "tenant {own} was not sent {expected}: {}",
                raw.escape_ascii()
            );
        }
    }
}

#[tokio::test]
async fn a_session_may_subscribe_only_to_its_tokens_databases() {
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay_with(
        &format!("redis://127.0.0.1:{port}"),
        &["--allow", "tenant:*", "--jwt-secret", SECRET],
    );
    wait_healthy(&ws_url).await;
    let token = hs256(&json!({"sub": "alice", "exp": now() + 300,
        "replicast": {"read": ["tenant:a:*"], "db": [0]}}));
    let mut socket = connect(
        &with_token(&ws_url, &token),
        r#"{"type":"subscribe","patterns":["tenant:*"],"db":1,"window":5}"#,
    )
    .await;
    assert_eq!(
        closed(&mut socket).await,
        (
            1008,
            "database 1 is not among this token's replicast.db".into()
        )
    );
}

/// The write profile names keys of all of `--allow`: under signed tokens a tenant's token may not read it, nor
/// may a request without a token; an operator's token (read `*`) may.
#[tokio::test]
async fn the_write_profile_is_for_tokens_that_read_everything() {
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay_with(
        &format!("redis://127.0.0.1:{port}"),
        &["--allow", "tenant:*", "--jwt-secret", SECRET],
    );
    wait_healthy(&ws_url).await;
    let mut conn = redis_conn(port).await;
    redis(&mut conn, &["SET", "tenant:b:secret-name", "v"]).await;
    let tenant = hs256(&claims("alice", &["tenant:a:*"], &[], 300));
    let operator = hs256(&claims("ops", &["*"], &[], 300));
    let (status, body) = http_get(&ws_url, "/profile").await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = http_get(&ws_url, &format!("/profile?token={tenant}")).await;
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains("tenant:b"), "{body}");
    let (status, body) = http_get(&ws_url, &format!("/profile?token={operator}")).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn refused_tokens_close_their_sessions_with_the_reason() {
    let (_redis, port) = start_redis();
    let dir = scratch_dir("jwks");
    let jwks = dir.join("keys.json");
    let (rsa, ec, ed) = (Signer::rsa(), Signer::ec("a"), Signer::ed());
    write_jwks(&jwks, &[&rsa, &ec, &ed]);
    let (_relay, ws_url) = start_relay_with(
        &format!("redis://127.0.0.1:{port}"),
        &[
            "--allow",
            "tenant:*",
            "--jwt-keys",
            jwks.to_str().unwrap(),
            "--jwt-audience",
            "replicast-test",
            "--jwt-leeway",
            "0",
        ],
    );
    wait_healthy(&ws_url).await;
    let good = claims("alice", &["tenant:a:*"], &[], 300);
    for signer in [&rsa, &ec, &ed] {
        let mut socket = joined(&ws_url, &signer.sign(&good)).await;
        drop(socket.close(None).await);
    }

    let b64 = |v: &serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    };
    let unsigned = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&good)
    );
    let signed = ec.sign(&good);
    let mut parts: Vec<&str> = signed.split('.').collect();
    let widened = b64(&claims("alice", &["tenant:*"], &[], 300));
    parts[1] = &widened;
    let tampered = parts.join(".");
    // The RSA key's public PEM used as an HMAC secret: the classic confusion of algorithms.
    let mut confused_header = Header::new(Algorithm::HS256);
    confused_header.kid = Some("rsa-1".into());
    let confused = jsonwebtoken::encode(
        &confused_header,
        &good,
        &EncodingKey::from_secret(&fixture("test-only-rsa-public.pem")).unwrap(),
    )
    .unwrap();
    let mut later = good.clone();
    later["nbf"] = json!(now() + 300);
    let mut expired = good.clone();
    expired["exp"] = json!(now() - 10);
    let mut elsewhere = good.clone();
    elsewhere["aud"] = json!("another-service");
    let unknown = Signer {
        kid: "retired",
        ..Signer::ec("b")
    };
    let mut no_grant = good.clone();
    no_grant.as_object_mut().unwrap().remove("replicast");
    let too_long = "x".repeat(8193);

    let cases = [
        (None, "a token is required", "token"),
        (
            Some(unsigned),
            "token refused: alg none (unsigned) is never accepted",
            "token_algorithm",
        ),
        (
            Some(tampered),
            "token refused: bad signature",
            "token_signature",
        ),
        (
            Some(confused),
            "token refused: its alg HS256 does not fit the key it names",
            "token_algorithm",
        ),
        (
            Some(ec.sign(&later)),
            "token not yet valid",
            "token_not_yet_valid",
        ),
        (Some(ec.sign(&expired)), "token expired", "token_expired"),
        (
            Some(ec.sign(&elsewhere)),
            "token refused: wrong audience",
            "token_audience",
        ),
        (
            Some(unknown.sign(&good)),
            "token refused: kid \"retired\" names no key the relay holds",
            "token_kid",
        ),
        (
            Some(ec.sign(&no_grant)),
            "token claims refused: missing field `replicast`",
            "token_claims",
        ),
        (
            Some(too_long),
            "token too long: 8193 bytes, at most 8192",
            "token_malformed",
        ),
    ];
    for (token, reason, label) in &cases {
        let (code, text) = refusal(&ws_url, token.as_deref()).await;
        assert_eq!(code, 1008, "{text}");
        assert!(
            text.starts_with(reason),
            "expected {reason:?}, got {text:?}"
        );
        let counted = metric(
            &ws_url,
            &format!("replicast_refusals_total{{reason=\"{label}\"}}"),
        )
        .await;
        assert!(counted >= 1, "{label} counted");
    }
    assert_eq!(
        metric(
            &ws_url,
            r#"replicast_refusals_total{reason="token_algorithm"}"#
        )
        .await,
        2
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn keys_rotate_through_the_jwks_file_on_sighup() {
    let (_redis, port) = start_redis();
    let dir = scratch_dir("jwks-rotation");
    let jwks: PathBuf = dir.join("keys.json");
    let (old, new) = (Signer::ec("a"), Signer::ec("b"));
    write_jwks(&jwks, &[&old]);
    let (relay, ws_url) = start_relay_with(
        &format!("redis://127.0.0.1:{port}"),
        &["--allow", "tenant:*", "--jwt-keys", jwks.to_str().unwrap()],
    );
    wait_healthy(&ws_url).await;
    let grant = claims("alice", &["tenant:a:*"], &[], 300);
    let (old_token, new_token) = (old.sign(&grant), new.sign(&grant));
    drop(joined(&ws_url, &old_token).await);
    assert_eq!(
        refusal(&ws_url, Some(&new_token)).await.1,
        "token refused: kid \"ec-b\" names no key the relay holds"
    );

    write_jwks(&jwks, &[&new]);
    hang_up(&relay);
    // The reload happens on the relay's own time: wait (bounded) for the old key to go.
    let mut refused = String::new();
    for _ in 0..100 {
        refused = refusal(&ws_url, Some(&old_token)).await.1;
        if refused.contains("ec-a") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        refused,
        "token refused: kid \"ec-a\" names no key the relay holds"
    );
    drop(joined(&ws_url, &new_token).await);

    // A file that no longer reads keeps the keys loaded before.
    std::fs::write(&jwks, b"{ not json").unwrap();
    hang_up(&relay);
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(joined(&ws_url, &new_token).await);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Sends SIGHUP to the relay this test started, by its own pid.
fn hang_up(relay: &Proc) {
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &relay.0.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// Reads until an ack: its request id, and the entry id or the reason.
async fn ack(socket: &mut Socket) -> (String, Result<String, String>) {
    within("an ack", async {
        loop {
            if let Ok(Message::Ack { request, entry }) = wire::decode(&next_binary(socket).await) {
                return (
                    request.to_string(),
                    entry.map(str::to_string).map_err(str::to_string),
                );
            }
        }
    })
    .await
}

/// Reads until an expiring message; the `exp` it names.
async fn expiring(socket: &mut Socket) -> u64 {
    within("an expiring message", async {
        loop {
            if let Ok(Message::Expiring { expires }) = wire::decode(&next_binary(socket).await) {
                return expires;
            }
        }
    })
    .await
}

#[tokio::test]
async fn a_token_refreshed_over_the_socket_keeps_its_session_past_the_first_exp() {
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay_with(
        &format!("redis://127.0.0.1:{port}"),
        &[
            "--allow",
            "tenant:*",
            "--jwt-secret",
            SECRET,
            "--jwt-leeway",
            "0",
        ],
    );
    wait_healthy(&ws_url).await;
    let short = claims("alice", &["tenant:a:*"], &[], 3);
    let exp = short["exp"].as_u64().unwrap();
    let mut kept = joined(&ws_url, &hs256(&short)).await;
    let mut left = joined(&ws_url, &hs256(&short)).await;
    let mut widened = joined(&ws_url, &hs256(&short)).await;
    // A token that lives less than the notice's lead is noticed at once.
    assert_eq!(expiring(&mut kept).await, exp);
    assert_eq!(expiring(&mut left).await, exp);
    assert_eq!(expiring(&mut widened).await, exp);

    let refresh = |claims: &serde_json::Value| {
        tungstenite::Message::text(
            ClientMessage::Token(TokenRefresh {
                token: hs256(claims),
            })
            .to_json(),
        )
    };
    kept.send(refresh(&claims("alice", &["tenant:a:*"], &[], 300)))
        .await
        .unwrap();
    widened
        .send(refresh(&claims("alice", &["tenant:*"], &[], 300)))
        .await
        .unwrap();
    assert_eq!(
        closed(&mut widened).await,
        (
            1008,
            "a refreshed token must grant the same access (sub, replicast); reconnect with it"
                .into()
        )
    );
    assert_eq!(
        closed(&mut left).await,
        (
            4001,
            "token expired: a fresh one was not sent before its exp".into()
        )
    );
    assert!(
        jsonwebtoken::get_current_timestamp() >= exp,
        "closed at exp, not before"
    );

    // Past the first exp, the refreshed session still streams.
    let mut conn = redis_conn(port).await;
    redis(&mut conn, &["SET", "tenant:a:after", "still here"]).await;
    let raw = raw_until(&mut kept, b"tenant:a:after").await;
    assert!(contains(&raw, b"still here"));
}

#[tokio::test]
async fn writes_keep_to_the_tokens_write_patterns_and_carry_its_subject() {
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay_with(
        &format!("redis://127.0.0.1:{port}"),
        &[
            "--allow",
            "tenant:*",
            "--writable",
            "tenant:*:notes",
            "--jwt-secret",
            SECRET,
        ],
    );
    wait_healthy(&ws_url).await;
    let token = hs256(&claims("alice", &["tenant:a:*"], &["tenant:a:notes"], 300));
    let mut socket = joined(&ws_url, &token).await;
    let event = |id: &str, key: &str| {
        tungstenite::Message::text(
            ClientMessage::Event(Event {
                id: id.into(),
                key: key.into(),
                fields: vec![("text".into(), "hello".into())],
            })
            .to_json(),
        )
    };
    socket.send(event("r1", "tenant:b:notes")).await.unwrap();
    assert_eq!(
        ack(&mut socket).await,
        (
            "r1".into(),
            Err("key \"tenant:b:notes\" is not writable with this token: it matches none of its replicast.write patterns".into())
        )
    );
    socket.send(event("r2", "tenant:a:notes")).await.unwrap();
    let (request, entry) = ack(&mut socket).await;
    assert_eq!(request, "r2");
    let entry = entry.unwrap();
    let mut conn = redis_conn(port).await;
    let written: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg("tenant:a:notes")
        .arg(&entry)
        .arg(&entry)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        written[0].1.contains(&("_sub".into(), "alice".into())),
        "{written:?}"
    );
    let other: i64 = redis::cmd("EXISTS")
        .arg("tenant:b:notes")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(other, 0);
}

#[test]
fn the_shared_token_and_signed_tokens_are_one_or_the_other() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_replicast"))
        .args(["serve", "--token", "t", "--jwt-secret", SECRET])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot be used with"), "{err}");
    assert!(!err.contains(SECRET), "a secret is never printed: {err}");
}

#[tokio::test]
async fn one_pem_public_key_verifies_its_own_algorithms_only() {
    let (_redis, port) = start_redis();
    let pem = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/test-only-rsa-public.pem");
    let (_relay, ws_url) = start_relay_with(
        &format!("redis://127.0.0.1:{port}"),
        &["--allow", "tenant:*", "--jwt-keys", pem.to_str().unwrap()],
    );
    wait_healthy(&ws_url).await;
    let grant = claims("alice", &["tenant:a:*"], &[], 300);
    // One key: the token's kid, whatever it is, does not pick another.
    drop(joined(&ws_url, &Signer::rsa().sign(&grant)).await);
    assert_eq!(
        refusal(&ws_url, Some(&Signer::ec("a").sign(&grant))).await,
        (
            1008,
            "token refused: its alg ES256 does not fit the key it names".into()
        )
    );
}

#[tokio::test]
async fn one_subject_cannot_multiply_its_sessions_or_its_event_rate() {
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay_with(
        &format!("redis://127.0.0.1:{port}"),
        &[
            "--allow",
            "tenant:*",
            "--writable",
            "tenant:*:notes",
            "--jwt-secret",
            SECRET,
            "--max-sessions-per-subject",
            "2",
            "--event-rate",
            "0",
            "--event-burst",
            "2",
        ],
    );
    wait_healthy(&ws_url).await;
    let alice = hs256(&claims("alice", &["tenant:a:*"], &["tenant:a:notes"], 300));
    let mut first = joined(&ws_url, &alice).await;
    let mut second = joined(&ws_url, &alice).await;
    assert_eq!(
        refusal(&ws_url, Some(&alice)).await,
        (
            1008,
            "subject \"alice\" has 2 sessions open, the most one subject may hold (see --max-sessions-per-subject)"
                .into()
        )
    );
    assert_eq!(
        metric(
            &ws_url,
            r#"replicast_refusals_total{reason="sessions_per_subject"}"#
        )
        .await,
        1
    );
    let mut bob = joined(
        &ws_url,
        &hs256(&claims("bob", &["tenant:b:*"], &["tenant:b:notes"], 300)),
    )
    .await;

    // The burst of 2 is the subject's, whichever of its sessions spends it.
    let event = |key: &str| {
        tungstenite::Message::text(
            ClientMessage::Event(Event {
                id: "e".into(),
                key: key.into(),
                fields: vec![("text".into(), "hi".into())],
            })
            .to_json(),
        )
    };
    first.send(event("tenant:a:notes")).await.unwrap();
    assert!(ack(&mut first).await.1.is_ok());
    second.send(event("tenant:a:notes")).await.unwrap();
    assert!(ack(&mut second).await.1.is_ok());
    second.send(event("tenant:a:notes")).await.unwrap();
    let refused = ack(&mut second).await.1.unwrap_err();
    assert!(refused.starts_with("rate limit:"), "{refused}");
    bob.send(event("tenant:b:notes")).await.unwrap();
    assert!(ack(&mut bob).await.1.is_ok(), "another subject has its own");

    // A session that ends gives its place back.
    first.close(None).await.unwrap();
    within("the end of the closed session", async {
        while let Some(Ok(_)) = first.next().await {}
    })
    .await;
    let mut again = None;
    for _ in 0..100 {
        let mut socket = connect(
            &with_token(&ws_url, &alice),
            &subscribe_message(&["tenant:*"], 10),
        )
        .await;
        if let tungstenite::Message::Binary(_) = next_message(&mut socket).await {
            again = Some(socket);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(again.is_some(), "alice's place came back");
}

/// A page's digest request (`client.verify()`) is answered from the relay's state over the windows its session may
/// see: its token's keys only, however wide its subscription, so the hash and counts tell it nothing of another
/// tenant's keys.
#[tokio::test]
async fn a_sessions_digest_covers_only_the_keys_its_token_lets_it_see() {
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay_with(
        &format!("redis://127.0.0.1:{port}"),
        &["--allow", "tenant:*", "--jwt-secret", SECRET],
    );
    wait_healthy(&ws_url).await;
    let mut conn = redis_conn(port).await;
    for key in [
        "tenant:a:1",
        "tenant:a:2",
        "tenant:b:1",
        "tenant:b:2",
        "tenant:b:3",
    ] {
        redis(&mut conn, &["RPUSH", key, "x", "y"]).await;
    }
    link_reaches(&ws_url, master_repl_offset(&mut conn).await).await;
    // Subscribed to every tenant's keys (`tenant:*`), with a token for tenant a's.
    let token = hs256(&claims("alice", &["tenant:a:*"], &[], 300));
    let mut socket = joined(&ws_url, &token).await;
    socket
        .send(tungstenite::Message::text(r#"{"type":"digest","id":"d1"}"#))
        .await
        .unwrap();
    let digest = within("the digest d1", async {
        loop {
            let message = next_binary(&mut socket).await;
            if let Ok(Message::Digest {
                request, digest, ..
            }) = wire::decode(&message)
            {
                assert_eq!(request, "d1");
                break digest.map_err(str::to_string);
            }
        }
    })
    .await;
    let digest = digest.expect("a digest from the relay's state");
    assert_eq!(
        (digest.keys, digest.items),
        (2, 4),
        "tenant a's two lists of two items, nothing of tenant b's"
    );
}
