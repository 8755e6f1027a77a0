//! Events a page sends through its client (`Replicast.send(key, fields)`): each one is a promise, settled by the
//! relay's ack for its request id, or rejected when the socket goes before the ack comes. A digest request
//! (`Replicast.verify()`) is one too, settled by the relay's digest message. The entry itself arrives
//! like any other write, through the stream, to every page that watches its key.

use js_sys::{Array, Function, Object};
use wasm_bindgen::prelude::*;

use super::error::{replicast_error, ErrorCode};
use replicast_assembler::link::Pending;
use replicast_protocol::client_message::{ClientMessage, DigestRequest, Event, MAX_CLIENT_MESSAGE};
use replicast_protocol::quote::quoted;
use replicast_protocol::text;
use replicast_protocol::wire::WindowsDigest;

// The rejection's text names the limit: a literal (`text!`), so held to the constant here.
const _: () = assert!(replicast_assembler::link::MAX_WAITING == 4096);

/// Promises waiting for the relay's ack, by request id.
#[derive(Default)]
pub(super) struct PendingSends {
    /// Each promise's `resolve` and `reject`, by the id it was sent with (in a `Vec` by id, not a hash table: one
    /// table type less in the `.wasm`).
    waiting: Pending<(Function, Function)>,
}

impl PendingSends {
    /// Files a promise's `resolve` and `reject` under a new request id, which it returns; rejects the oldest
    /// request still waiting when `link::MAX_WAITING` requests were sent after it unanswered.
    pub(super) fn register(&mut self, resolve: Function, reject: Function) -> String {
        if let Some(oldest) = self.waiting.overdue() {
            let reason = text!("no answer from the relay while 4096 later requests were sent");
            self.fail(&oldest, ErrorCode::Disconnected, reason);
        }
        self.waiting.file((resolve, reject))
    }

    /// Rejects one request that never reached the relay.
    pub(super) fn fail(&mut self, request: &str, code: ErrorCode, reason: &str) {
        if let Some((_, reject)) = self.waiting.take(request) {
            let _ = reject.call1(&JsValue::NULL, &replicast_error(code, reason));
        }
    }

    /// Settles the promise of `request` with the relay's answer: the entry id, or an Error with its reason. An ack
    /// for no pending request (a previous socket's) is ignored.
    pub(super) fn settle(&mut self, request: &str, entry: Result<String, String>) {
        let Some((resolve, reject)) = self.waiting.take(request) else {
            return;
        };
        // Promise callbacks run later, as microtasks: nothing re-enters the client from here.
        let _ = match entry {
            Ok(id) => resolve.call1(&JsValue::NULL, &JsValue::from_str(&id)),
            Err(reason) => reject.call1(
                &JsValue::NULL,
                &replicast_error(ErrorCode::Refused, &reason),
            ),
        };
    }

    /// Settles the promise of digest request `request`: with what the page found (`Ok`), or rejected with the
    /// relay's reason for giving no digest.
    pub(super) fn settle_digest(&mut self, request: &str, found: Result<JsValue, String>) {
        let Some((resolve, reject)) = self.waiting.take(request) else {
            return;
        };
        let _ = match found {
            Ok(verification) => resolve.call1(&JsValue::NULL, &verification),
            Err(reason) => reject.call1(
                &JsValue::NULL,
                &replicast_error(ErrorCode::Refused, &reason),
            ),
        };
    }

    /// The socket is gone (`code` says how): no ack will come for anything sent on it.
    pub(super) fn reject_all(&mut self, code: ErrorCode, reason: &str) {
        for (_, reject) in self.waiting.take_all() {
            let _ = reject.call1(&JsValue::NULL, &replicast_error(code, reason));
        }
    }
}

/// What `verify()` resolves with (`ReplicastVerification` in the package's types).
pub(super) struct Verification {
    equal: bool,
    offset: f64,
    relay: String,
    relay_keys: u32,
    relay_items: f64,
    page: String,
    page_keys: u32,
    page_items: f64,
}

impl Verification {
    pub(super) fn new(offset: u64, relay: WindowsDigest, page: WindowsDigest) -> Self {
        Verification {
            equal: relay == page,
            offset: offset as f64,
            relay: format!("{:016x}", relay.hash),
            relay_keys: relay.keys,
            relay_items: relay.items as f64,
            page: format!("{:016x}", page.hash),
            page_keys: page.keys,
            page_items: page.items as f64,
        }
    }

    /// The `ReplicastVerification` object.
    pub(super) fn to_js(&self) -> JsValue {
        super::objects::object(&[
            ("equal", JsValue::from_bool(self.equal)),
            ("offset", JsValue::from_f64(self.offset)),
            ("relay", JsValue::from_str(&self.relay)),
            ("relayKeys", JsValue::from(self.relay_keys)),
            ("relayItems", JsValue::from_f64(self.relay_items)),
            ("page", JsValue::from_str(&self.page)),
            ("pageKeys", JsValue::from(self.page_keys)),
            ("pageItems", JsValue::from_f64(self.page_items)),
        ])
    }
}

/// The digest request for `request`.
pub(super) fn digest_message(request: &str) -> String {
    ClientMessage::Digest(DigestRequest {
        id: request.to_string(),
    })
    .to_json()
}

/// An event's fields from the page's object: own enumerable properties in their order, each value a string, or a
/// number or boolean written as JavaScript's `String()` would.
pub(super) fn fields_of(fields: &JsValue) -> Result<Vec<(String, String)>, String> {
    if !fields.is_object() || Array::is_array(fields) {
        return Err(text!("send(key, fields): fields must be an object of strings").into());
    }
    let mut out = Vec::new();
    for entry in Object::entries(fields.unchecked_ref::<Object>()).iter() {
        let entry: Array = entry.unchecked_into();
        let name = entry.get(0).as_string().unwrap_or_default();
        let value = entry.get(1);
        let text = if let Some(text) = value.as_string() {
            text
        } else if let Some(flag) = value.as_bool() {
            flag.to_string()
        } else if value.as_f64().is_some() {
            String::from(
                js_sys::Number::from(value)
                    .to_string_with_radix(10)
                    .unwrap_or_default(),
            )
        } else {
            return Err(format!(
                "send(key, fields): field {} must be a string, a number or a boolean",
                quoted(&name)
            ));
        };
        out.push((name, text));
    }
    Ok(out)
}

/// The event message for `request`, if the relay would read it at all (a larger message closes the session).
pub(super) fn event_message(
    request: &str,
    key: &str,
    fields: &[(String, String)],
) -> Result<String, String> {
    let message = ClientMessage::Event(Event {
        id: request.to_string(),
        key: key.to_string(),
        fields: fields.to_vec(),
    })
    .to_json();
    if message.len() > MAX_CLIENT_MESSAGE {
        return Err(format!(
            "event too large to send: {} bytes of JSON, the relay reads at most {} per message",
            message.len(),
            MAX_CLIENT_MESSAGE
        ));
    }
    Ok(message)
}
