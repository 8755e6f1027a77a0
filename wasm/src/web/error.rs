//! The errors the client throws and rejects with, typed for JavaScript: each is an `Error` named `ReplicastError`
//! with a `code` a page can branch on (a resync, a refusal by the relay, a closed socket), while the message says
//! the same in words for a person. `isReplicastError` tells them from any other error. Their TypeScript types
//! (`ReplicastError`, `ReplicastErrorCode`) are in `types.d.ts`.

use js_sys::Reflect;
use wasm_bindgen::prelude::*;

/// The `code` of a `ReplicastError` (`ReplicastErrorCode` in `types.d.ts` says what each means).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ErrorCode {
    InvalidOptions,
    BadMessage,
    Resync,
    InvalidEvent,
    TooLarge,
    NotConnected,
    Refused,
    Disconnected,
    Closed,
    BadSavedView,
}

impl ErrorCode {
    fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidOptions => "invalidOptions",
            ErrorCode::BadMessage => "badMessage",
            ErrorCode::Resync => "resync",
            ErrorCode::InvalidEvent => "invalidEvent",
            ErrorCode::TooLarge => "tooLarge",
            ErrorCode::NotConnected => "notConnected",
            ErrorCode::Refused => "refused",
            ErrorCode::Disconnected => "disconnected",
            ErrorCode::Closed => "closed",
            ErrorCode::BadSavedView => "badSavedView",
        }
    }
}

const NAME: &str = "ReplicastError";

#[wasm_bindgen]
extern "C" {
    /// `text` as a JavaScript string, for a message a person reads that is not an `Error`'s (the console's, the
    /// diagnostics' `lastError`): JavaScript's `String`, imported for this alone. The npm package's glue gives the
    /// error texts the `.wasm` holds as codes (`text!`) back their words here and in `Error`s only
    /// (scripts/wasm-texts.mjs); data (keys, values, members) goes through wasm-bindgen's own conversion, untouched.
    #[wasm_bindgen(js_name = String)]
    pub(super) fn words(text: &str) -> JsValue;
}

/// A new `ReplicastError` with `code` and `message`.
pub(super) fn replicast_error(code: ErrorCode, message: &str) -> JsValue {
    typed(js_sys::Error::new(message), code)
}

/// `error` (an `Error`, such as a [`JsError`] made deeper down) named `ReplicastError`, with `code`.
pub(super) fn typed(error: impl Into<JsValue>, code: ErrorCode) -> JsValue {
    let error = error.into();
    // Setting a property fails only on a frozen object, which a new Error is not.
    let _ = Reflect::set(&error, &"name".into(), &NAME.into());
    let _ = Reflect::set(&error, &"code".into(), &code.as_str().into());
    error
}

/// Whether `value` is an error this client threw or rejected with.
#[wasm_bindgen(js_name = isReplicastError, unchecked_return_type = "value is ReplicastError")]
pub fn is_replicast_error(value: &JsValue) -> bool {
    value.is_instance_of::<js_sys::Error>()
        && Reflect::get(value, &"name".into())
            .is_ok_and(|name| name.as_string().as_deref() == Some(NAME))
}
