//! How a folder of static files is prepared for serving: which of its files are served, and each one's content
//! hash (the ETag) and brotli and gzip encodings. One definition for both places that prepare files: build.rs, for
//! the files embedded in the binary, and the relay at startup, for a `--www`/`--pkg` folder (build.rs includes this
//! file with `#[path]`, so it uses only std and the crates both depend on).

use std::io::Write;
use std::path::{Path, PathBuf};

/// The highest brotli quality and a 4 MiB window: the files are compressed once and downloaded by every browser.
const BROTLI_QUALITY: i32 = 11;
const BROTLI_WINDOW_BITS: i32 = 22;

/// A file's content hash, 32 hex digits (xxh3-128): its ETag, so a browser's copy is revalidated by content, not
/// by a modification time that differs between builds.
pub fn content_hash(bytes: &[u8]) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(bytes))
}

/// `bytes` brotli-compressed, or `None` when that is not smaller (an image, an archive).
pub fn brotli(bytes: &[u8]) -> Option<Vec<u8>> {
    let params = brotli::enc::BrotliEncoderParams {
        quality: BROTLI_QUALITY,
        lgwin: BROTLI_WINDOW_BITS,
        size_hint: bytes.len(),
        ..Default::default()
    };
    let mut out = Vec::new();
    brotli::BrotliCompress(&mut &bytes[..], &mut out, &params)
        .expect("compressing into memory cannot fail");
    smaller(out, bytes)
}

/// `bytes` gzip-compressed at the best level, or `None` when that is not smaller.
pub fn gzip(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder
        .write_all(bytes)
        .expect("compressing into memory cannot fail");
    let out = encoder
        .finish()
        .expect("compressing into memory cannot fail");
    smaller(out, bytes)
}

fn smaller(encoded: Vec<u8>, original: &[u8]) -> Option<Vec<u8>> {
    (encoded.len() < original.len()).then_some(encoded)
}

/// The files under `root` to serve, sorted: each one's `/`-separated path relative to `root` (its URL under the
/// folder's prefix) and its path on disk. Symbolic links are followed (a loop is an error, not a hang); dot files
/// are left out (wasm-pack writes a `.gitignore` into its package), and so are names that are not UTF-8, which no
/// URL could name.
pub fn files(root: &Path) -> Result<Vec<(String, PathBuf)>, walkdir::Error> {
    let mut files = Vec::new();
    let walk = walkdir::WalkDir::new(root)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|entry| {
            entry.depth() == 0 || !entry.file_name().to_string_lossy().starts_with('.')
        });
    for entry in walk {
        let entry = entry?;
        if !entry.file_type().is_file() {
            continue;
        }
        let relative = entry.path().strip_prefix(root).unwrap_or(entry.path());
        let parts: Option<Vec<&str>> = relative.iter().map(|part| part.to_str()).collect();
        if let Some(parts) = parts {
            files.push((parts.join("/"), entry.path().to_path_buf()));
        }
    }
    Ok(files)
}
