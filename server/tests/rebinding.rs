//! DNS rebinding and cross-site pages against the relay binary, with requests written by hand: a page whose name
//! was rebound to the relay's address sends its own name as `Host` and its own origin, and must reach no route;
//! `Origin`s that are not the relay's own (another scheme, bytes that are not ASCII, empty) must not open a
//! session; the relay's own pages, `localhost`, `--public-host` names and `--origin` pages still do.

mod support;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends a GET of `path` with `Host` and `Origin` as given (raw bytes; `None`: no such header), as a WebSocket
/// upgrade when `path` is `/ws`; returns the status and the body of a refusal.
async fn request(
    addr: &str,
    path: &str,
    host: Option<&[u8]>,
    origin: Option<&[u8]>,
) -> (u16, String) {
    let mut head = format!("GET {path} HTTP/1.1\r\n").into_bytes();
    for (name, value) in [("Host", host), ("Origin", origin)] {
        if let Some(value) = value {
            head.extend_from_slice(format!("{name}: ").as_bytes());
            head.extend_from_slice(value);
            head.extend_from_slice(b"\r\n");
        }
    }
    if path == "/ws" {
        head.extend_from_slice(
            b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
        );
    } else {
        head.extend_from_slice(b"Connection: close\r\n");
    }
    head.extend_from_slice(b"\r\n");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(&head).await.unwrap();
    within("the relay's whole answer", async {
        let mut answer = Vec::new();
        let mut byte = [0u8; 1];
        while !answer.ends_with(b"\r\n\r\n") {
            assert_eq!(
                stream.read(&mut byte).await.unwrap(),
                1,
                "the relay hung up"
            );
            answer.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&answer).into_owned();
        let status: u16 = head[9..12].parse().unwrap();
        if status == 101 {
            return (status, String::new());
        }
        let length = content_length(&head).unwrap_or(0);
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body).await.unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    })
    .await
}

#[tokio::test]
async fn a_rebound_name_reaches_no_route_and_only_the_relays_own_origins_open_sessions() {
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay_with(
        &format!("redis://127.0.0.1:{port}"),
        &[
            "--allow",
            "perf:*",
            "--public-host",
            "dash.example,.corp.example",
            "--origin",
            "https://other.example",
        ],
    );
    wait_healthy(&ws_url).await;
    let addr = ws_url
        .trim_start_matches("ws://")
        .trim_end_matches("/ws")
        .to_string();
    let relay_port = addr.rsplit(':').next().unwrap().to_string();
    let own = format!("http://{addr}");
    let rebound = format!("evil.example:{relay_port}");
    let rebound_origin = format!("http://{rebound}");

    // A rebound page: its name as Host, on every route, with its own origin or none.
    for path in ["/ws", "/healthz", "/metrics", "/", "/pkg/replicast_wasm.js"] {
        let (status, body) = request(
            &addr,
            path,
            Some(rebound.as_bytes()),
            Some(rebound_origin.as_bytes()),
        )
        .await;
        assert_eq!(status, 403, "{path}: {body}");
        assert_eq!(
            body,
            format!("host {rebound} is not one this relay answers to: an IP address, localhost, or a --public-host\n"),
            "{path}"
        );
        assert_eq!(
            request(&addr, path, Some(rebound.as_bytes()), None).await.0,
            403,
            "{path}"
        );
    }

    // Origins that are not the relay's own, with the relay's own Host.
    let https_own = format!("https://{addr}");
    let other_scheme = format!("evil://{addr}");
    let not_ascii = [own.as_bytes(), b"\xff"].concat();
    for origin in [
        https_own.as_bytes(),
        other_scheme.as_bytes(),
        not_ascii.as_slice(),
        b"",
        b"null",
        rebound_origin.as_bytes(),
    ] {
        let (status, body) = request(&addr, "/ws", Some(addr.as_bytes()), Some(origin)).await;
        assert_eq!(status, 403, "origin {}: {body}", origin.escape_ascii());
        assert!(
            body.ends_with("is not allowed: not this relay's own, nor listed with --origin\n"),
            "{body}"
        );
    }

    // What still opens a session: the relay's own page by address or by localhost, a public name (plain or
    // through a TLS proxy), a listed origin, and a client that sends no Origin.
    let localhost = format!("localhost:{relay_port}");
    let localhost_origin = format!("http://{localhost}");
    let accepted: [(&[u8], Option<&[u8]>); 7] = [
        (addr.as_bytes(), Some(own.as_bytes())),
        (localhost.as_bytes(), Some(localhost_origin.as_bytes())),
        (b"dash.example", Some(b"https://dash.example")),
        (b"dash.example", Some(b"http://dash.example")),
        (b"eu.corp.example", Some(b"https://eu.corp.example")),
        (addr.as_bytes(), Some(b"https://other.example")),
        (addr.as_bytes(), None),
    ];
    for (host, origin) in accepted {
        let (status, body) = request(&addr, "/ws", Some(host), origin).await;
        assert_eq!(
            status,
            101,
            "Host {}, Origin {:?}: {body}",
            host.escape_ascii(),
            origin.map(|o| o.escape_ascii().to_string())
        );
    }
    assert_eq!(
        request(&addr, "/healthz", Some(b"dash.example"), None)
            .await
            .0,
        200
    );
    assert_eq!(
        http_get(&ws_url, "/healthz").await.0,
        200,
        "HTTP/1.0 without Host"
    );

    // A --public-host with a port or a scheme is a mistake the relay names at startup.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_replicast"))
        .args(["serve", "--listen", "127.0.0.1:0", "--redis-url"])
        .arg(format!("redis://127.0.0.1:{port}"))
        .args(["--public-host", "dash.example:443"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("--public-host takes host names, without scheme, port or wildcard"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
