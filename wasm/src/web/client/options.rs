//! The options a page gives `Replicast` and `Assembler` (`ReplicastOptions`, declared in `../types.d.ts`), read
//! and checked, and what they watch.

use js_sys::Reflect;
use wasm_bindgen::prelude::*;

use super::super::error::{replicast_error, typed, ErrorCode};
use super::super::follow::AggregateOptions;
use super::super::objects::OptionsObject;
use super::token::TokenSource;
use replicast_assembler::assembler::WatchConfig;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(typescript_type = "ReplicastOptions")]
    pub type ReplicastOptions;
    #[wasm_bindgen(typescript_type = "(change: ReplicastChange) => void")]
    pub type ChangeCallback;
    #[wasm_bindgen(typescript_type = "(status: ReplicastStatus) => void")]
    pub type StatusCallback;
    #[wasm_bindgen(typescript_type = "() => void")]
    pub type SyncedCallback;
}

pub(crate) struct Options {
    patterns: Vec<String>,
    keys: Vec<String>,
    db: u32,
    window: usize,
    /// Read apart, before the rest (it may be a function): [`TokenSource::from_option`].
    pub(crate) token: Option<TokenSource>,
    pub(crate) alternates: Vec<String>,
    pub(crate) idle_timeout_ms: Option<f64>,
    pub(crate) aggregate: Option<AggregateOptions>,
}

/// The window's length when the options give none.
const DEFAULT_WINDOW: u32 = 100;

impl Options {
    /// Reads the options other than `token` from `value`.
    fn read(value: &JsValue) -> Result<Options, String> {
        let object = OptionsObject::new(
            value,
            &[
                "patterns",
                "keys",
                "db",
                "window",
                "token",
                "alternates",
                "idleTimeoutMs",
                "aggregate",
            ],
        )?;
        Ok(Options {
            patterns: object.strings("patterns")?,
            keys: object.strings("keys")?,
            db: object.whole("db", u32::MAX)?.unwrap_or(0),
            window: object.whole("window", u32::MAX)?.unwrap_or(DEFAULT_WINDOW) as usize,
            token: None,
            alternates: object.strings("alternates")?,
            idle_timeout_ms: object.number("idleTimeoutMs")?,
            aggregate: object
                .get("aggregate")
                .map(|aggregate| AggregateOptions::read(&aggregate))
                .transpose()?,
        })
    }
}

/// Reads the options a page gave, and what they watch.
pub(crate) fn options_watch(options: ReplicastOptions) -> Result<(WatchConfig, Options), JsValue> {
    let invalid = |e: &str| {
        replicast_error(
            ErrorCode::InvalidOptions,
            &format!("invalid Replicast options: {e}"),
        )
    };
    let options: JsValue = options.into();
    let token = if options.is_object() {
        Reflect::get(&options, &"token".into()).unwrap_or(JsValue::UNDEFINED)
    } else {
        JsValue::UNDEFINED
    };
    let token = TokenSource::from_option(token).map_err(|e| invalid(&e.to_string()))?;
    let mut options = Options::read(&options).map_err(|e| invalid(&e))?;
    options.token = Some(token);
    let watch = watch_config(&options).map_err(|e| typed(e, ErrorCode::InvalidOptions))?;
    Ok((watch, options))
}

/// The watch of `options`; exact keys become patterns that match only themselves.
fn watch_config(options: &Options) -> Result<WatchConfig, JsError> {
    let mut patterns: Vec<Vec<u8>> = options
        .patterns
        .iter()
        .map(|p| p.as_bytes().to_vec())
        .collect();
    patterns.extend(options.keys.iter().map(|k| escape_glob(k.as_bytes())));
    if patterns.is_empty() {
        return Err(JsError::new(
            "Replicast options watch nothing: give patterns or keys",
        ));
    }
    Ok(WatchConfig {
        patterns,
        db: options.db,
        window: options.window,
    })
}

fn escape_glob(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len());
    for &b in key {
        if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}
