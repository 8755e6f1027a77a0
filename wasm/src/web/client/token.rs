//! Where the client's signed token comes from (the `token` option): a fixed string, or a function the client calls
//! on every connect and reconnect and whenever the relay says the session's token is about to expire; it may
//! return the token or a Promise of it. A refreshed token is sent over the open socket (a `token` message), so the
//! session and its windows go on past the first token's `exp`.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::super::error::words;
use super::Client;
use replicast_protocol::text;

pub(crate) enum TokenSource {
    None,
    Fixed(String),
    /// `() => string | Promise<string>`.
    Provider(Function),
}

impl TokenSource {
    /// The `token` option's value: a string, a function, or nothing (`undefined`, `null`).
    pub fn from_option(value: JsValue) -> Result<TokenSource, String> {
        if value.is_undefined() || value.is_null() {
            Ok(TokenSource::None)
        } else if let Some(token) = value.as_string() {
            Ok(TokenSource::Fixed(token))
        } else if let Some(provider) = value.dyn_ref::<Function>() {
            Ok(TokenSource::Provider(provider.clone()))
        } else {
            Err(
                text!("token must be a string or a function returning one (or a Promise of one)")
                    .into(),
            )
        }
    }
}

/// Calls the page's token function and hands what it gives (awaited, if a Promise) to `then`, or why it gave no
/// token to `failed`. Each callback frees itself once called; neither runs if the client is gone by then.
pub(super) fn fetch(
    shared: &Rc<RefCell<Client>>,
    provider: &Function,
    then: fn(&Rc<RefCell<Client>>, String),
    failed: fn(&Rc<RefCell<Client>>, &str),
) {
    // Promise.resolve makes one path of a string and a Promise; a throw becomes a rejection.
    let promise = match provider.call0(&JsValue::NULL) {
        Ok(value) => Promise::resolve(&value),
        Err(err) => Promise::reject(&err),
    };
    let on_token = callback(Rc::downgrade(shared), move |shared, value| {
        match value.as_string() {
            Some(token) => then(shared, token),
            None => failed(shared, text!("the token function gave no string")),
        }
    });
    let on_error = callback(Rc::downgrade(shared), move |shared, err| {
        web_sys::console::error_2(&words(text!("replicast: the token function failed")), &err);
        failed(shared, text!("the token function failed"));
    });
    // `then` with two callbacks; js_sys's own takes `Closure`s it does not free.
    let then_method = Reflect::get(&promise, &"then".into())
        .ok()
        .and_then(|f| f.dyn_into::<Function>().ok());
    if let Some(method) = then_method {
        let _ = method.call2(&promise, &on_token, &on_error);
    }
}

fn callback(
    weak: Weak<RefCell<Client>>,
    handle: impl FnOnce(&Rc<RefCell<Client>>, JsValue) + 'static,
) -> JsValue {
    Closure::once_into_js(move |value: JsValue| {
        if let Some(shared) = weak.upgrade() {
            handle(&shared, value);
        }
    })
}
