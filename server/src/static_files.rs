//! The page's files as the relay serves them: the page (`www/`) and the wasm client (`wasm/pkg`, under `/pkg/`),
//! embedded in the binary by build.rs, or read from a `--www`/`--pkg` folder once at startup. Every file is held in
//! memory with its brotli and gzip encodings made beforehand, so a request only picks one: by `Accept-Encoding`,
//! with an ETag of the content's hash for `If-None-Match`. Requests never touch the file system, so no path a
//! client sends (`/../`, `%2e%2e`, `//etc`) can name anything outside the served files.

mod prepare;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

/// The most bytes one `--www`/`--pkg` folder may hold: it is read whole into memory, three times over at most
/// (the file and its two encodings).
pub const MAX_FOLDER_BYTES: u64 = 256 * 1024 * 1024;

/// Every file names no hash of its content (`app.js`, `replicast_wasm.js`, which loads `replicast_wasm_bg.wasm`
/// by that name), so none can be cached for good: browsers keep them and ask again each load, and the ETag makes
/// the answer a bodiless 304 while the file is unchanged.
const CACHE_CONTROL: &str = "no-cache";

/// A file the relay will not serve a page without, and what it is (and where it comes from), for the error.
struct PagePart {
    path: &'static str,
    what: &'static str,
}

const PAGE_PARTS: &[PagePart] = &[
    PagePart {
        path: "index.html",
        what: "the page (www/, or --www)",
    },
    PagePart {
        path: "vendor/d3.min.js",
        what: "d3, which the page draws with (copied from npm's d3 into www/vendor by scripts/build.sh)",
    },
    PagePart {
        path: "pkg/replicast_wasm.js",
        what: "the wasm client (wasm/pkg, built by scripts/build.sh, or --pkg)",
    },
    PagePart {
        path: "pkg/replicast_wasm_bg.wasm",
        what: "the wasm client's module (wasm/pkg, built by scripts/build.sh, or --pkg)",
    },
];

struct EmbeddedFolder {
    prefix: &'static str,
    folder: &'static str,
    files: &'static [EmbeddedFile],
}

struct EmbeddedFile {
    path: &'static str,
    hash: &'static str,
    identity: &'static [u8],
    br: Option<&'static [u8]>,
    gzip: Option<&'static [u8]>,
}

/// The folders build.rs embedded: `(prefix, folder, files)`, each file with its hash and encodings.
static EMBEDDED: &[EmbeddedFolder] = include!(concat!(env!("OUT_DIR"), "/embedded.rs"));

/// Why a `--www`/`--pkg` folder cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum StaticFilesError {
    #[error("{flag} {}: not a folder", path.display())]
    NotAFolder { flag: &'static str, path: PathBuf },
    #[error("{flag} {}: cannot read it: {source}", path.display())]
    Unreadable {
        flag: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{flag} {}: holds more than {MAX_FOLDER_BYTES} bytes of files, the most the relay reads into memory", path.display())]
    TooLarge { flag: &'static str, path: PathBuf },
}

/// A folder given at run time in place of an embedded one: `--www` for `/`, `--pkg` for `/pkg/`.
pub struct FolderOverride {
    /// The flag that named it, for errors.
    pub flag: &'static str,
    /// The URL prefix it serves, as in build.rs's list (`/`, `/pkg/`).
    pub prefix: &'static str,
    pub path: PathBuf,
}

/// One file, ready to send in each encoding it has.
struct StaticFile {
    content_type: HeaderValue,
    hash: String,
    identity: Bytes,
    br: Option<Bytes>,
    gzip: Option<Bytes>,
}

/// Every file the relay serves, by URL path (without the leading `/`).
pub struct StaticFiles {
    files: HashMap<String, StaticFile>,
    /// Where each prefix's files come from, to say where a missing part was looked for.
    sources: Vec<(&'static str, String)>,
}

impl StaticFiles {
    /// The embedded folders, each replaced by its override if one is given.
    pub fn load(overrides: &[FolderOverride]) -> Result<Self, StaticFilesError> {
        let mut files = HashMap::new();
        let mut sources = Vec::new();
        for folder in EMBEDDED {
            let key = |path: &str| format!("{}{path}", &folder.prefix[1..]);
            match overrides.iter().find(|o| o.prefix == folder.prefix) {
                Some(given) => {
                    for (path, file) in read_folder(given)? {
                        files.insert(key(&path), file);
                    }
                    sources.push((
                        folder.prefix,
                        format!("{} {}", given.flag, given.path.display()),
                    ));
                }
                None => {
                    for file in folder.files {
                        files.insert(key(file.path), StaticFile::embedded(file));
                    }
                    sources.push((
                        folder.prefix,
                        format!(
                            "this binary (it embeds {}/ as it was when it was built)",
                            folder.folder
                        ),
                    ));
                }
            }
        }
        Ok(StaticFiles { files, sources })
    }

    /// The parts of the page that are missing, each with where it was looked for: empty when the page can work.
    pub fn missing_page_parts(&self) -> Vec<String> {
        PAGE_PARTS
            .iter()
            .filter(|part| !self.files.contains_key(part.path))
            .map(|part| {
                let source = self
                    .sources
                    .iter()
                    .filter(|(prefix, _)| part.path.starts_with(&prefix[1..]))
                    .max_by_key(|(prefix, _)| prefix.len())
                    .map_or("nowhere", |(_, source)| source.as_str());
                format!("/{}, {}, is not in {source}", part.path, part.what)
            })
            .collect()
    }

    /// The answer to a request for `uri`: the file in the best encoding the client accepts, a 304 when its
    /// `If-None-Match` names the file's content, a redirect from a folder's name to the folder (`/a` → `/a/`, for
    /// its `index.html`), or a 404.
    pub fn respond(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Response {
        if method != Method::GET && method != Method::HEAD {
            return (
                StatusCode::METHOD_NOT_ALLOWED,
                [(header::ALLOW, "GET, HEAD")],
                "static files are read with GET or HEAD\n",
            )
                .into_response();
        }
        let Some(key) = file_key(uri.path()) else {
            return not_found();
        };
        let Some(file) = self.files.get(&key) else {
            let folder_index = format!("{key}/index.html");
            if !key.is_empty() && !key.ends_with('/') && self.files.contains_key(&folder_index) {
                let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
                let location = format!("{}/{query}", uri.path());
                return (
                    StatusCode::PERMANENT_REDIRECT,
                    [(header::LOCATION, location)],
                )
                    .into_response();
            }
            return not_found();
        };
        file.respond(headers)
    }
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "no such file\n").into_response()
}

/// The served-files key a request path names: percent-decoded, without its leading `/`, a folder's `index.html`
/// for a path ending in `/`. `None` for a path that cannot name a file (not UTF-8 once decoded).
fn file_key(path: &str) -> Option<String> {
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .ok()?;
    let mut key = decoded.strip_prefix('/')?.to_string();
    if key.is_empty() || key.ends_with('/') {
        key.push_str("index.html");
    }
    Some(key)
}

impl StaticFile {
    fn embedded(file: &'static EmbeddedFile) -> Self {
        StaticFile {
            content_type: content_type(file.path),
            hash: file.hash.to_string(),
            identity: Bytes::from_static(file.identity),
            br: file.br.map(Bytes::from_static),
            gzip: file.gzip.map(Bytes::from_static),
        }
    }

    fn prepare(path: &str, bytes: Vec<u8>) -> Self {
        StaticFile {
            content_type: content_type(path),
            hash: prepare::content_hash(&bytes),
            br: prepare::brotli(&bytes).map(Bytes::from),
            gzip: prepare::gzip(&bytes).map(Bytes::from),
            identity: Bytes::from(bytes),
        }
    }

    fn respond(&self, request: &HeaderMap) -> Response {
        let (encoding, body) = match (&self.br, &self.gzip) {
            (Some(br), _) if accepts(request, "br") => (Some("br"), br),
            (_, Some(gzip)) if accepts(request, "gzip") => (Some("gzip"), gzip),
            _ => (None, &self.identity),
        };
        let etag = match encoding {
            // Each encoding is its own representation, so each has its own strong tag.
            Some(encoding) => format!("\"{}.{encoding}\"", self.hash),
            None => format!("\"{}\"", self.hash),
        };
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(CACHE_CONTROL),
        );
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        if let Ok(etag) = HeaderValue::from_str(&etag) {
            headers.insert(header::ETAG, etag);
        }
        if self.unchanged_for(request) {
            return (StatusCode::NOT_MODIFIED, headers).into_response();
        }
        headers.insert(header::CONTENT_TYPE, self.content_type.clone());
        if let Some(encoding) = encoding {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
        }
        (headers, body.clone()).into_response()
    }

    /// Whether the request's `If-None-Match` names this content, in any of its encodings (compared weakly, as
    /// RFC 9110 has it for `If-None-Match`: a client holding the gzip copy has the same content as the br one).
    fn unchanged_for(&self, request: &HeaderMap) -> bool {
        request
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(|tag| tag.trim())
            .any(|tag| {
                let opaque = tag.strip_prefix("W/").unwrap_or(tag);
                let inner = opaque.trim_matches('"');
                tag == "*"
                    || inner == self.hash
                    || inner
                        .strip_prefix(self.hash.as_str())
                        .is_some_and(|rest| rest == ".br" || rest == ".gzip")
            })
    }
}

/// Whether `Accept-Encoding` accepts `coding`: named with a q above 0, or not named while `*` is.
fn accepts(request: &HeaderMap, coding: &str) -> bool {
    let mut star = false;
    for item in request
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
    {
        let mut params = item.split(';');
        let name = params.next().unwrap_or("").trim();
        let quality = params
            .filter_map(|param| param.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if name.eq_ignore_ascii_case(coding) {
            return quality > 0.0;
        }
        if name == "*" {
            star = quality > 0.0;
        }
    }
    star
}

fn content_type(path: &str) -> HeaderValue {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let text =
        mime.type_() == mime_guess::mime::TEXT || mime.subtype() == mime_guess::mime::JAVASCRIPT;
    let value = match text {
        true => format!("{mime}; charset=utf-8"),
        false => mime.to_string(),
    };
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("application/octet-stream"))
}

/// Every file of a `--www`/`--pkg` folder, read and encoded.
fn read_folder(given: &FolderOverride) -> Result<Vec<(String, StaticFile)>, StaticFilesError> {
    let FolderOverride {
        flag, path: root, ..
    } = given;
    if !root.is_dir() {
        return Err(StaticFilesError::NotAFolder {
            flag,
            path: root.clone(),
        });
    }
    let unreadable = |path: &Path, source: std::io::Error| StaticFilesError::Unreadable {
        flag,
        path: path.to_path_buf(),
        source,
    };
    let listed = prepare::files(root).map_err(|e| {
        let path = e.path().unwrap_or(root).to_path_buf();
        unreadable(&path, e.into())
    })?;
    let mut total = 0u64;
    let mut files = Vec::with_capacity(listed.len());
    for (relative, path) in listed {
        total += std::fs::metadata(&path)
            .map_err(|e| unreadable(&path, e))?
            .len();
        if total > MAX_FOLDER_BYTES {
            return Err(StaticFilesError::TooLarge {
                flag,
                path: root.clone(),
            });
        }
        let bytes = std::fs::read(&path).map_err(|e| unreadable(&path, e))?;
        files.push((relative.clone(), StaticFile::prepare(&relative, bytes)));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: &'static str, value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn accept_encoding_weighs_codings() {
        let accept = |value| with("accept-encoding", value);
        assert!(accepts(&accept("gzip, deflate, br, zstd"), "br"));
        assert!(!accepts(&accept("gzip, br;q=0"), "br"));
        assert!(accepts(&accept("gzip, br;q=0"), "gzip"));
        assert!(accepts(&accept("*"), "br"));
        assert!(!accepts(&accept("*;q=0, gzip"), "br"));
        assert!(!accepts(&accept("identity"), "gzip"));
        assert!(!accepts(&HeaderMap::new(), "gzip"));
    }

    #[test]
    fn request_paths_name_only_served_files() {
        assert_eq!(file_key("/").as_deref(), Some("index.html"));
        assert_eq!(file_key("/pkg/").as_deref(), Some("pkg/index.html"));
        assert_eq!(file_key("/a%20b.js").as_deref(), Some("a b.js"));
        // Decoded, but never resolved: no served file's key has a `..` or an empty segment.
        assert_eq!(
            file_key("/%2e%2e/etc/passwd").as_deref(),
            Some("../etc/passwd")
        );
        assert_eq!(file_key("/%ff"), None);
        assert_eq!(file_key("relative"), None);
    }
}
