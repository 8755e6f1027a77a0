//! The client's socket: connecting (resuming where the windows are), what arrives on it, and what happens when it
//! closes or goes silent (the reconnect, to the next relay when the session failed). The decisions (statuses,
//! backoff, idle detection) are the I/O-free `replicast_assembler::link`'s; this file wires them to the browser.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{ArrayBuffer, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

use super::super::error::{words, ErrorCode};
use super::super::follow::Follow;
use super::super::sends;
use super::frames::report_status;
use super::saved_views;
use super::token::{self, TokenSource};
use super::Client;
use replicast_assembler::assembler::{Outcome, StreamAssembler};
use replicast_assembler::link;
use replicast_protocol::client_message::{
    ClientMessage, Subscribe, TokenRefresh, Topup, MAX_NAME_LEN,
};
use replicast_protocol::text;
use replicast_protocol::wire;

pub(super) fn now() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map(|p| p.now())
        .unwrap_or_else(js_sys::Date::now)
}

/// Connects, with the token of the `token` option: a fixed one at once, a function's once it gave one.
pub(super) fn connect(shared: &Rc<RefCell<Client>>) {
    let token = {
        let mut client = shared.borrow_mut();
        if client.closed {
            return;
        }
        client.link.connecting(now());
        match &client.token {
            TokenSource::None => None,
            TokenSource::Fixed(token) => Some(token.clone()),
            TokenSource::Provider(provider) => {
                let provider = provider.clone();
                drop(client);
                report_status(shared);
                token::fetch(shared, &provider, open, |shared, why| {
                    closed(shared, &format!("no token to connect with: {why}"), true)
                });
                return;
            }
        }
    };
    open_with(shared, token);
}

/// Asks the token function for a fresh token and sends it over the open socket: the relay said the session's
/// token expires soon. A fixed token cannot be refreshed: the session ends at its `exp` and reconnects.
pub(super) fn refresh_token(shared: &Rc<RefCell<Client>>) {
    let provider = match &shared.borrow().token {
        TokenSource::Provider(provider) => provider.clone(),
        _ => {
            web_sys::console::warn_1(
                &words(text!("replicast: the session's token expires soon; give a function as the token option to refresh it")),
            );
            return;
        }
    };
    token::fetch(
        shared,
        &provider,
        |shared, token| {
            let message = ClientMessage::Token(TokenRefresh { token }).to_json();
            if let Some(socket) = &shared.borrow().socket {
                if let Err(err) = socket.send_with_str(&message) {
                    web_sys::console::error_2(
                        &words(text!("replicast: cannot send the fresh token")),
                        &err,
                    );
                }
            }
        },
        |_, why| {
            web_sys::console::error_1(&words(&format!(
                "replicast: no fresh token ({why}): the session ends at its token's exp"
            )))
        },
    );
}

/// Opens the socket, presenting `token` if there is one.
fn open(shared: &Rc<RefCell<Client>>, token: String) {
    open_with(shared, Some(token));
}

pub(super) fn open_with(shared: &Rc<RefCell<Client>>, token: Option<String>) {
    if shared.borrow().closed || saved_views::load_first(shared, &token) {
        return;
    }
    let mut client = shared.borrow_mut();
    // Ask to resume where the windows are, shard by shard; the relay starts afresh each shard whose position its
    // backlog no longer holds.
    let mut query = Vec::new();
    if let Some(at) = link::resume_at(&client.assembler.positions()) {
        query.push(format!("at={}", js_sys::encode_uri_component(&at)));
    }
    if let Some(token) = &token {
        query.push(format!("token={}", js_sys::encode_uri_component(token)));
    }
    let relay = client.relays.current();
    let url = if query.is_empty() {
        relay.to_string()
    } else {
        let joiner = if relay.contains('?') { '&' } else { '?' };
        format!("{relay}{joiner}{}", query.join("&"))
    };
    let socket = match WebSocket::new(&url) {
        Ok(socket) => socket,
        Err(err) => {
            web_sys::console::error_2(&words(text!("replicast: cannot open the WebSocket")), &err);
            drop(client);
            closed(shared, text!("the WebSocket could not be opened"), true);
            return;
        }
    };
    socket.set_binary_type(BinaryType::Arraybuffer);

    let weak = Rc::downgrade(shared);
    let on_message = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
        let (Some(shared), Ok(event)) = (weak.upgrade(), event.dyn_into::<MessageEvent>()) else {
            return;
        };
        let Ok(buffer) = event.data().dyn_into::<ArrayBuffer>() else {
            return;
        };
        // The one copy of the message into wasm memory.
        let bytes = Uint8Array::new(&buffer).to_vec();
        let refresh = {
            let mut client = shared.borrow_mut();
            client.receive(&bytes);
            std::mem::take(&mut client.refresh_due)
        };
        if refresh {
            refresh_token(&shared);
        }
        report_status(&shared);
    });
    let weak = Rc::downgrade(shared);
    let on_open = Closure::<dyn FnMut(JsValue)>::new(move |_event: JsValue| {
        let Some(shared) = weak.upgrade() else {
            return;
        };
        let client = shared.borrow();
        let watch = client.assembler.watch();
        let subscribe = ClientMessage::Subscribe(Subscribe {
            patterns: watch
                .patterns
                .iter()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect(),
            keys: Vec::new(),
            db: watch.db,
            window: watch.window,
        })
        .to_json();
        if let Some(socket) = &client.socket {
            if let Err(err) = socket.send_with_str(&subscribe) {
                web_sys::console::error_2(&words(text!("replicast: cannot subscribe")), &err);
            }
        }
    });
    let weak = Rc::downgrade(shared);
    let on_close = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
        let Some(shared) = weak.upgrade() else {
            return;
        };
        let why = match event.dyn_into::<CloseEvent>() {
            Ok(close) if !close.reason().is_empty() => format!(
                "the relay closed the session ({}: {})",
                close.code(),
                close.reason()
            ),
            Ok(close) => format!("the connection to the relay closed ({})", close.code()),
            Err(_) => text!("the connection to the relay closed").to_string(),
        };
        closed(&shared, &why, true);
    });
    socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    socket.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    client.handlers = vec![on_open, on_message, on_close];
    client.socket = Some(socket);
    drop(client);
    report_status(shared);
}

/// The socket closed (the relay closed it, or it never opened), for the reason `why`: schedules the reconnect,
/// to the next relay if the connection `failed`.
pub(super) fn closed(shared: &Rc<RefCell<Client>>, why: &str, failed: bool) {
    shared.borrow_mut().socket_closed(why, failed);
    report_status(shared);
}

impl Client {
    pub(super) fn receive(&mut self, message: &[u8]) {
        let now = now();
        self.link.message(now);
        let snapshot_of = wire::snapshot_shard(message);
        self.assembler.observer_mut().set_now(js_sys::Date::now());
        if let Some(saved) = self.saved.as_mut() {
            saved.dirty = true;
        }
        match self.assembler.push_message(message) {
            // Per shard: the assembler kept that shard's windows only if its stream continued.
            Ok(Outcome::Joined {
                shard, continuous, ..
            }) => {
                if let Some(saved) = self.saved.as_mut() {
                    saved.joined(continuous);
                }
                self.link.shard_hello(shard, continuous, now);
                if !continuous {
                    self.all_changed = true;
                    self.request_frame();
                }
            }
            Ok(Outcome::Applied { .. }) => {
                if let Some(shard) = snapshot_of {
                    self.link.shard_snapshot(shard, now);
                }
            }
            Ok(Outcome::Resync { reason }) => {
                web_sys::console::warn_1(&words(&format!(
                    "replicast: the relay asked to resync: {reason}"
                )));
                self.link.resync();
                self.drop_socket(true);
            }
            Ok(Outcome::Notice { text }) => {
                self.notices += 1;
                web_sys::console::warn_1(&words(&format!("replicast: relay notice: {text}")));
            }
            Ok(Outcome::Ack { request, entry }) => self.sends.settle(&request, entry),
            Ok(Outcome::Digest {
                request,
                offset,
                relay,
                page,
            }) => {
                let found =
                    relay.map(|relay| sends::Verification::new(offset, relay, page).to_js());
                self.sends.settle_digest(&request, found);
            }
            Ok(Outcome::Expiring { .. }) => self.refresh_due = true,
            Err(err) => {
                web_sys::console::error_1(&words(&format!(
                    "replicast: bad stream, reconnecting: {err}"
                )));
                self.drop_socket(true);
            }
        }
        if self.assembler.needs_resnapshot() {
            // SWAPDB swapped the watched database: only a fresh snapshot can say what it holds now.
            self.reset_windows();
            self.drop_socket(false);
        }
        if self.change_listeners.is_empty() {
            // Nobody reads the changed keys, so they are not kept (they would grow with every key that ever
            // changed): a listener added later is told every key (`all_changed`).
            self.assembler.observer_mut().changed.clear();
        } else if !self.assembler.observer().changed.is_empty() {
            self.request_frame();
        }
        // Removals left windows shorter than what Redis holds: ask the relay to read them again.
        let (topups, unnamable): (Vec<_>, Vec<_>) = self
            .assembler
            .take_topups()
            .into_iter()
            .partition(|key| Topup::can_name(key));
        if !topups.is_empty() || !unnamable.is_empty() {
            self.synced = false;
        }
        if !unnamable.is_empty() {
            web_sys::console::warn_1(
                &words(&format!(
                    "replicast: {} windows cannot be topped up (keys that are not UTF-8 or longer than {} bytes); \
                     they stay short until the page reloads",
                    unnamable.len(),
                    MAX_NAME_LEN
                )),
            );
        }
        if let Some(socket) = &self.socket {
            // In requests the relay takes: a stale message alone may ask for 1,024 keys of 1 KiB.
            for request in Topup::requests(topups.iter().map(Vec::as_slice)) {
                if let Err(err) = socket.send_with_str(&request) {
                    web_sys::console::error_2(
                        &words(text!("replicast: cannot ask for a top-up")),
                        &err,
                    );
                }
            }
        }
    }

    /// Starts over with empty windows and no epoch, so the next session joins with a snapshot.
    pub(super) fn reset_windows(&mut self) {
        let watch = self.assembler.watch().clone();
        // Options that were valid at construction still are.
        let follow = Follow::new(self.aggregate.clone()).unwrap_or_default();
        // The page's tracked keys stay tracked, each read whole when its window is back.
        let changes = self.assembler.observer_mut().take_changes();
        self.assembler = StreamAssembler::with_observer(watch, follow.with_changes(changes));
        self.link.forget_shards();
        self.all_changed = true;
    }

    /// Closes the socket and schedules the reconnect at once, without waiting for its `close` event: that comes
    /// only once the relay answers the close frame, and a relay that went silent never does (the browser would
    /// wait out its closing handshake, about a minute, still `live`). The socket's handlers go first, so nothing
    /// it still delivers reaches this client. `failed`: the relay failed this session (silent, a bad stream, a
    /// resync), and the reconnect goes to the next relay.
    pub(super) fn drop_socket(&mut self, failed: bool) {
        let Some(socket) = self.socket.take() else {
            return;
        };
        socket.set_onopen(None);
        socket.set_onmessage(None);
        socket.set_onclose(None);
        let _ = socket.close();
        self.socket_closed(
            text!("the client dropped its connection to the relay (to reconnect)"),
            failed,
        );
    }

    /// The socket is gone (`why`): events sent on it get no ack, the status says so and a reconnect is scheduled,
    /// unless the page closed the client; to the next relay (if the page named alternates) if the connection
    /// `failed`.
    pub(super) fn socket_closed(&mut self, why: &str, failed: bool) {
        self.socket = None;
        if failed {
            self.relays.advance();
        }
        self.sends.reject_all(
            ErrorCode::Disconnected,
            &format!("{why} before the relay answered"),
        );
        if self.closed {
            return;
        }
        let delay = self.link.closed(js_sys::Math::random());
        if let (Some(window), Some(retry)) = (web_sys::window(), self.on_retry.as_ref()) {
            let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(
                retry.as_ref().unchecked_ref(),
                delay as i32,
            );
        }
    }
}
