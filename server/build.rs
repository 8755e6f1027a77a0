//! Embeds the page and the wasm client in the relay binary, so that `replicast` copied anywhere serves them: every
//! file of each folder in [`EMBEDDED`] (relative to the workspace), with its content hash and its brotli and gzip
//! encodings made here, once, not by the relay at startup or per request. A folder that does not exist yet (the
//! wasm package before its first `wasm-pack build`, in a clean clone) embeds nothing: the relay then names what is
//! missing and refuses to serve a page without it (`static_files.rs`). scripts/build.sh builds the wasm package
//! before the relay, so its binaries always carry it.

use std::fmt::Write as _;
use std::path::PathBuf;

#[path = "src/static_files/prepare.rs"]
mod prepare;

/// (URL prefix, folder of the workspace) of each embedded folder; the relay's `--www`/`--pkg` replace one at run
/// time. Another wasm package served beside `/pkg/` is one more line here.
const EMBEDDED: &[(&str, &str)] = &[
    ("/", "www"),
    ("/pkg/", "wasm/pkg"),
    ("/pkg-rdb/", "wasm/pkg-rdb"),
];

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let workspace = manifest
        .parent()
        .expect("the relay's crate is in the workspace");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    let mut code = String::from("&[\n");
    for (n, (prefix, folder)) in EMBEDDED.iter().enumerate() {
        let root = workspace.join(folder);
        // A folder that is missing now is watched through its parent, so that it is embedded once it is built.
        let watched = if root.is_dir() {
            &root
        } else {
            root.parent().expect("a folder of the workspace")
        };
        println!("cargo:rerun-if-changed={}", watched.display());
        let files = match root.is_dir() {
            true => prepare::files(&root)
                .unwrap_or_else(|e| panic!("cannot list {}: {e}", root.display())),
            false => Vec::new(),
        };
        writeln!(
            code,
            "  EmbeddedFolder {{ prefix: {prefix:?}, folder: {folder:?}, files: &["
        )
        .unwrap();
        for (i, (relative, source)) in files.iter().enumerate() {
            let bytes = std::fs::read(source)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", source.display()));
            let encoded = |name: &str, encoding: Option<Vec<u8>>| match encoding {
                Some(bytes) => {
                    let path = out.join(format!("embedded-{n}-{i}.{name}"));
                    std::fs::write(&path, bytes)
                        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
                    format!("Some(include_bytes!({:?}))", path.display().to_string())
                }
                None => "None".to_string(),
            };
            writeln!(
                code,
                "    EmbeddedFile {{ path: {relative:?}, hash: {:?}, identity: include_bytes!({:?}), br: {}, gzip: {} }},",
                prepare::content_hash(&bytes),
                source.display().to_string(),
                encoded("br", prepare::brotli(&bytes)),
                encoded("gz", prepare::gzip(&bytes)),
            )
            .unwrap();
        }
        code.push_str("  ] },\n");
    }
    code.push(']');
    let generated = out.join("embedded.rs");
    std::fs::write(&generated, code)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", generated.display()));
}
