//! The page's files as the relay binary serves them, over raw HTTP: precompressed (br, gzip, or none, by
//! `Accept-Encoding`, each decoding to the file's bytes), with ETags that turn a revalidation into a 304, from the
//! binary itself or from --www/--pkg folders, and nothing outside the served files whatever the path says. A relay
//! without a whole page to serve names what is missing and does not claim to be live.

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};

use support::{scratch_dir, start_redis, start_relay_args, Proc};

/// An HTTP response as read off the socket: status, headers (names lowercased), body bytes.
struct Reply {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// Sends `target` with `headers` as an HTTP/1.1 request (one per connection) and reads the whole answer.
fn raw_request(addr: &str, method: &str, target: &str, headers: &[(&str, &str)]) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap();
    let mut request =
        format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a whole response head");
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

fn get(addr: &str, target: &str, headers: &[(&str, &str)]) -> Reply {
    raw_request(addr, "GET", target, headers)
}

/// The body decoded by its Content-Encoding.
fn decoded(reply: &Reply) -> Vec<u8> {
    let mut out = Vec::new();
    match reply.header("content-encoding") {
        Some("br") => {
            brotli::Decompressor::new(&reply.body[..], 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        Some("gzip") => {
            flate2::read::GzDecoder::new(&reply.body[..])
                .read_to_end(&mut out)
                .unwrap();
        }
        None => out = reply.body.clone(),
        Some(other) => panic!("unexpected content-encoding {other}"),
    }
    out
}

/// The relay's `host:port` from a `ws://…/ws` URL.
fn address(ws_url: &str) -> String {
    ws_url
        .trim_start_matches("ws://")
        .trim_end_matches("/ws")
        .to_string()
}

/// `file` is sent whole in each encoding: br and gzip when the client takes them (each smaller than the file, and
/// each decoding to it), the file itself otherwise; always with the same content type, Vary and Cache-Control, and
/// an ETag that a revalidation sends back for a bodiless 304.
fn check_served(addr: &str, path: &str, file: &[u8], content_type: &str) {
    let mut etags = Vec::new();
    for (accept, encoding) in [
        ("gzip, deflate, br, zstd", Some("br")),
        ("gzip", Some("gzip")),
        ("br;q=0, gzip;q=0.5", Some("gzip")),
        ("identity", None),
        ("", None),
    ] {
        let headers: &[(&str, &str)] = match accept {
            "" => &[],
            accept => &[("Accept-Encoding", accept)],
        };
        let reply = get(addr, path, headers);
        assert_eq!(reply.status, 200, "{path} ({accept})");
        assert_eq!(
            reply.header("content-encoding"),
            encoding,
            "{path} ({accept})"
        );
        assert_eq!(
            decoded(&reply),
            file,
            "{path} ({accept}) decodes to the file"
        );
        if encoding.is_some() {
            assert!(
                reply.body.len() < file.len(),
                "{path}: {encoding:?} is smaller"
            );
        }
        assert_eq!(reply.header("content-type"), Some(content_type), "{path}");
        assert_eq!(reply.header("vary"), Some("accept-encoding"), "{path}");
        assert_eq!(reply.header("cache-control"), Some("no-cache"), "{path}");
        let etag = reply.header("etag").expect("an ETag").to_string();
        assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");

        let again = get(
            addr,
            path,
            &[("Accept-Encoding", accept), ("If-None-Match", &etag)],
        );
        assert_eq!(
            again.status, 304,
            "{path} ({accept}) revalidated with {etag}"
        );
        assert!(again.body.is_empty());
        assert_eq!(again.header("etag"), Some(etag.as_str()));
        assert_eq!(again.header("vary"), Some("accept-encoding"));
        etags.push(etag);
    }
    etags.dedup();
    assert_eq!(etags.len(), 3, "one tag per encoding: {etags:?}");

    let other = get(addr, path, &[("If-None-Match", "\"0123456789abcdef\"")]);
    assert_eq!(other.status, 200, "another content's tag gets the file");
}

/// A page of a few files, and a wasm package, in two folders of a scratch folder that also holds a file beside
/// them that must never be served.
struct Folders {
    scratch: std::path::PathBuf,
    www: std::path::PathBuf,
    pkg: std::path::PathBuf,
}

impl Drop for Folders {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

const SECRET: &[u8] = b"a file beside the served folders: never served";

fn page_text(name: &str) -> Vec<u8> {
    format!("<!-- {name} -->\n").repeat(200).into_bytes()
}

fn folders() -> Folders {
    let scratch = scratch_dir("static-files");
    let www = scratch.join("www");
    let pkg = scratch.join("pkg");
    std::fs::create_dir_all(www.join("vendor")).unwrap();
    std::fs::create_dir_all(www.join("inspect")).unwrap();
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(scratch.join("secret.txt"), SECRET).unwrap();
    std::fs::write(www.join("index.html"), page_text("index")).unwrap();
    std::fs::write(www.join("inspect/index.html"), page_text("inspect")).unwrap();
    std::fs::write(www.join("vendor/d3.min.js"), page_text("d3")).unwrap();
    std::fs::write(www.join(".hidden"), SECRET).unwrap();
    // Bytes no compressor shrinks: served as they are, in every encoding asked for.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            // xorshift64: no pattern a compressor finds.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 56) as u8
        })
        .collect();
    std::fs::write(www.join("noise.bin"), &noise).unwrap();
    std::fs::write(pkg.join("replicast_wasm.js"), page_text("glue")).unwrap();
    std::fs::write(pkg.join("replicast_wasm_bg.wasm"), page_text("wasm")).unwrap();
    Folders { scratch, www, pkg }
}

#[test]
fn folders_are_served_precompressed_with_etags() {
    let (_redis, redis_port) = start_redis();
    let folders = folders();
    let (_relay, ws_url) = start_relay_args(&[
        "--redis-url",
        &format!("redis://127.0.0.1:{redis_port}"),
        "--www",
        folders.www.to_str().unwrap(),
        "--pkg",
        folders.pkg.to_str().unwrap(),
    ]);
    let addr = address(&ws_url);

    let index = page_text("index");
    check_served(&addr, "/", &index, "text/html; charset=utf-8");
    check_served(&addr, "/index.html", &index, "text/html; charset=utf-8");
    check_served(
        &addr,
        "/inspect/",
        &page_text("inspect"),
        "text/html; charset=utf-8",
    );
    check_served(
        &addr,
        "/vendor/d3.min.js",
        &page_text("d3"),
        "text/javascript; charset=utf-8",
    );
    check_served(
        &addr,
        "/pkg/replicast_wasm.js",
        &page_text("glue"),
        "text/javascript; charset=utf-8",
    );
    check_served(
        &addr,
        "/pkg/replicast_wasm_bg.wasm",
        &page_text("wasm"),
        "application/wasm",
    );

    let noise = std::fs::read(folders.www.join("noise.bin")).unwrap();
    let reply = get(&addr, "/noise.bin", &[("Accept-Encoding", "br, gzip")]);
    assert_eq!(
        (reply.status, reply.header("content-encoding")),
        (200, None)
    );
    assert_eq!(reply.body, noise);

    // A folder's name leads to the folder, its query kept.
    let reply = get(&addr, "/inspect?key=a", &[]);
    assert_eq!(reply.status, 308);
    assert_eq!(reply.header("location"), Some("/inspect/?key=a"));

    // HEAD: the headers of a GET, no body.
    let head = raw_request(&addr, "HEAD", "/", &[("Accept-Encoding", "br")]);
    assert_eq!(
        (head.status, head.header("content-encoding")),
        (200, Some("br"))
    );
    assert!(head.body.is_empty());
    assert_eq!(raw_request(&addr, "POST", "/", &[]).status, 405);
    assert_eq!(get(&addr, "/missing.js", &[]).status, 404);
}

#[test]
fn no_path_reaches_outside_the_served_files() {
    let (_redis, redis_port) = start_redis();
    let folders = folders();
    let (_relay, ws_url) = start_relay_args(&[
        "--redis-url",
        &format!("redis://127.0.0.1:{redis_port}"),
        "--www",
        folders.www.to_str().unwrap(),
        "--pkg",
        folders.pkg.to_str().unwrap(),
    ]);
    let addr = address(&ws_url);
    let secret = folders.scratch.join("secret.txt");
    let absolute = secret.to_str().unwrap();
    let targets = [
        "/../secret.txt".to_string(),
        "/pkg/../../secret.txt".to_string(),
        "/%2e%2e/secret.txt".to_string(),
        "/%2E%2E%2Fsecret.txt".to_string(),
        "/pkg/%2e%2e/%2e%2e/secret.txt".to_string(),
        "/..%5csecret.txt".to_string(),
        format!("/{absolute}"),
        format!("/%2F{}", &absolute[1..]),
        format!("http://{addr}/../secret.txt"),
        "/../../../../../../etc/passwd".to_string(),
        // A dot file inside the folder (a `.env`, wasm-pack's `.gitignore`) is not served either.
        "/.hidden".to_string(),
        "/%2ehidden".to_string(),
    ];
    for target in targets {
        let reply = get(&addr, &target, &[]);
        assert!(
            reply.status == 404 || reply.status == 400,
            "{target}: {} {:?}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        );
        assert!(
            !reply.body.windows(SECRET.len()).any(|w| w == SECRET),
            "{target} served the file beside the folders"
        );
    }
}

#[test]
fn the_binary_serves_the_page_it_embeds() {
    let (_redis, redis_port) = start_redis();
    let (_relay, ws_url) =
        start_relay_args(&["--redis-url", &format!("redis://127.0.0.1:{redis_port}")]);
    let addr = address(&ws_url);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    for (path, file, content_type) in [
        ("/", "www/index.html", "text/html; charset=utf-8"),
        (
            "/vendor/d3.min.js",
            "www/vendor/d3.min.js",
            "text/javascript; charset=utf-8",
        ),
        (
            "/pkg/replicast_wasm_bg.wasm",
            "wasm/pkg/replicast_wasm_bg.wasm",
            "application/wasm",
        ),
    ] {
        let built = std::fs::read(repo.join(file)).unwrap();
        check_served(&addr, path, &built, content_type);
    }
}

/// Starts `replicast serve` with `flags`; returns its exit status and stderr once it exits, failing the test if it
/// ever prints that it is live.
fn refused_start(flags: &[&str]) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_replicast"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(flags)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut stderr = child.stderr.take().unwrap();
    let proc = Proc::new(child);
    // Read to the end: the relay exits on its own when it refuses, and a live one fails the test on its line.
    for line in stdout.lines().map_while(Result::ok) {
        assert!(
            !line.contains("live"),
            "printed {line:?} with no page to serve"
        );
    }
    let mut errors = String::new();
    stderr.read_to_string(&mut errors).unwrap();
    let mut proc = proc;
    (proc.0.wait().unwrap(), errors)
}

#[test]
fn a_relay_without_a_whole_page_names_what_is_missing() {
    let (_redis, redis_port) = start_redis();
    let redis_url = format!("redis://127.0.0.1:{redis_port}");
    let folders = folders();
    let empty = folders.scratch.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let empty = empty.to_str().unwrap();

    let (status, errors) = refused_start(&["--redis-url", &redis_url, "--pkg", empty]);
    assert!(!status.success());
    for expected in [
        "no page to serve",
        "/pkg/replicast_wasm.js, the wasm client",
        "/pkg/replicast_wasm_bg.wasm",
        &format!("is not in --pkg {empty}"),
        "npm run build",
        "--stream-only",
    ] {
        assert!(errors.contains(expected), "{expected:?} in {errors}");
    }
    assert!(
        !errors.contains("/index.html"),
        "the page itself is there: {errors}"
    );

    let (status, errors) = refused_start(&["--redis-url", &redis_url, "--www", empty]);
    assert!(!status.success());
    assert!(
        errors.contains(&format!(
            "/index.html, the page (www/, or --www), is not in --www {empty}"
        )),
        "{errors}"
    );
    assert!(errors.contains("/vendor/d3.min.js"), "{errors}");

    // Past the most a folder may hold: a sparse file, so the test writes nothing of it.
    let large = folders.scratch.join("large");
    std::fs::create_dir_all(&large).unwrap();
    std::fs::File::create(large.join("replicast_wasm_bg.wasm"))
        .unwrap()
        .set_len(replicast_server::static_files::MAX_FOLDER_BYTES + 1)
        .unwrap();
    let (status, errors) =
        refused_start(&["--redis-url", &redis_url, "--pkg", large.to_str().unwrap()]);
    assert!(!status.success());
    assert!(
        errors.contains(&format!(
            "--pkg {}: holds more than 268435456 bytes of files, the most the relay reads into memory",
            large.display()
        )),
        "{errors}"
    );

    let missing = folders.scratch.join("missing");
    let (status, errors) = refused_start(&[
        "--redis-url",
        &redis_url,
        "--www",
        missing.to_str().unwrap(),
    ]);
    assert!(!status.success());
    assert!(
        errors.contains(&format!("--www {}: not a folder", missing.display())),
        "{errors}"
    );
}

#[test]
fn stream_only_serves_no_page() {
    let (_redis, redis_port) = start_redis();
    let mut command = Command::new(env!("CARGO_BIN_EXE_replicast"));
    command.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--redis-url",
        &format!("redis://127.0.0.1:{redis_port}"),
        "--stream-only",
    ]);
    let (_relay, line) = support::start_until(&mut command, "Replicast's stream is live at ");
    let ws_url = line.split(' ').find(|w| w.starts_with("ws://")).unwrap();
    let addr = address(ws_url);
    assert_eq!(get(&addr, "/", &[]).status, 404);
    assert_eq!(get(&addr, "/pkg/replicast_wasm.js", &[]).status, 404);
    // Routed (200 once the link is up, 503 before), unlike the page's paths.
    assert_ne!(get(&addr, "/healthz", &[]).status, 404);
}
