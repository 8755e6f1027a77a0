//! The options a page gives `Replicast` and `Assembler` (`ReplicastOptions`, declared in `../types.d.ts`), read
//! and checked, and what they watch.

use js_sys::Reflect;
use wasm_bindgen::prelude::*;

use super::super::error::{replicast_error, typed, ErrorCode};
use super::super::follow::AggregateOptions;
use super::super::objects::OptionsObject;
use super::saved_views::{
    SaveViewSettings, DEFAULT_SAVED_BYTES, DEFAULT_SAVE_INTERVAL_MS, MIN_SAVE_INTERVAL_MS,
};
use super::token::TokenSource;
use replicast_assembler::assembler::WatchConfig;
use replicast_protocol::text;

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
    /// Read into [`SaveViewSettings`] by [`Options::save_view`].
    save_view: Option<SaveViewOption>,
}

/// The `saveView` option: `true`, `false`, or settings (which turn it on).
enum SaveViewOption {
    On(bool),
    With(SaveViewFields),
}

struct SaveViewFields {
    max_bytes: Option<f64>,
    interval_ms: Option<f64>,
}

impl SaveViewOption {
    /// Reads `saveView`: a boolean, or an object of `maxBytes` and `intervalMs`.
    fn read(value: &JsValue) -> Result<SaveViewOption, String> {
        if let Some(on) = value.as_bool() {
            return Ok(SaveViewOption::On(on));
        }
        let object = OptionsObject::new(value, &["maxBytes", "intervalMs"]).map_err(|e| {
            format!("`saveView` must be true, false or {{ maxBytes, intervalMs }}: {e}")
        })?;
        Ok(SaveViewOption::With(SaveViewFields {
            max_bytes: object.number("maxBytes")?,
            interval_ms: object.number("intervalMs")?,
        }))
    }
}

impl Options {
    /// What the `saveView` option asks for, if it turns saving on.
    pub(crate) fn save_view(&self) -> Result<Option<SaveViewSettings>, String> {
        let fields = match &self.save_view {
            None | Some(SaveViewOption::On(false)) => return Ok(None),
            Some(SaveViewOption::On(true)) => None,
            Some(SaveViewOption::With(fields)) => Some(fields),
        };
        let max_bytes = fields
            .and_then(|f| f.max_bytes)
            .unwrap_or(DEFAULT_SAVED_BYTES as f64);
        let interval_ms = fields
            .and_then(|f| f.interval_ms)
            .unwrap_or(f64::from(DEFAULT_SAVE_INTERVAL_MS));
        if !(1.0..=f64::from(u32::MAX)).contains(&max_bytes) {
            return Err(
                text!("saveView.maxBytes must be a number of bytes from 1 to 2^32 - 1").into(),
            );
        }
        if !(f64::from(MIN_SAVE_INTERVAL_MS)..=f64::from(i32::MAX)).contains(&interval_ms) {
            return Err(format!(
                "saveView.intervalMs must be at least {MIN_SAVE_INTERVAL_MS} ms (saving costs a copy of every window)"
            ));
        }
        Ok(Some(SaveViewSettings {
            max_bytes: max_bytes as usize,
            interval_ms: interval_ms as i32,
        }))
    }
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
                "saveView",
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
            save_view: object
                .get("saveView")
                .map(|value| SaveViewOption::read(&value))
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
        return Err(JsError::new(text!(
            "Replicast options watch nothing: give patterns or keys"
        )));
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
