//! [`Replicast`]: the browser client. A WebSocket to the relay, the StreamAssembler behind it, and what a page
//! reads: windows, numeric series, aggregates (the read API it shares with `Assembler`, `../reads.rs`), status.
//!
//! Each binary message is copied into wasm memory once and applied at once; the page hears about it once per
//! animation frame, through its `onChange` callback, with the keys that changed since the last frame. Reads are
//! coarse calls that return typed arrays or plain objects, never one call per item.
//!
//! By job: this file holds the class and its state; `socket` the socket's lifecycle, `frames` the frame scheduling
//! and callbacks, `options` the page's options. The connection logic itself (statuses, backoff, idle detection,
//! which relay, what to resume from) is in [`replicast_assembler::link`], which has no I/O and is tested natively;
//! these files only wire it to the browser's WebSocket, timers and animation frames.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Function, Promise};
use replicast_protocol::text;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::WebSocket;

mod frames;
mod options;
mod saved_views;
mod socket;
mod token;

use super::error::{replicast_error, typed, words, ErrorCode};
use super::follow::{AggregateOptions, Follow};
use super::listeners::{self, Listeners};
use super::sends::{self, PendingSends};
use frames::{frame, report_status};
pub(super) use options::{options_watch, ReplicastOptions};
use options::{ChangeCallback, StatusCallback, SyncedCallback};
use replicast_assembler::assembler::StreamAssembler;
use replicast_assembler::link::{Link, Relays, Status};
use saved_views::SavedViews;
use socket::{connect, now};
use token::TokenSource;

/// How often an open socket is checked for silence.
const IDLE_CHECK_MS: i32 = 1_000;

/// A live connection to a Replicast relay and the windows of the keys it watches.
#[wasm_bindgen]
pub struct Replicast {
    shared: Rc<RefCell<Client>>,
}

#[wasm_bindgen]
impl Replicast {
    /// An `Assembler` over this client's windows: the glue gives `Replicast` the reads of `Assembler`
    /// (`read_api!`), each called on it (`scripts/wasm-reads.mjs`), so that they are exported once.
    #[wasm_bindgen(js_name = __reads, skip_typescript)]
    pub fn reads(&self) -> super::Assembler {
        super::Assembler::of_client(self.shared.clone())
    }
}

pub(crate) struct Client {
    relays: Relays,
    token: TokenSource,
    /// The relay said the session's token expires soon: ask the token function for a fresh one.
    refresh_due: bool,
    aggregate: Option<AggregateOptions>,
    pub(crate) assembler: StreamAssembler<Follow>,
    /// Notices the relay sent (refused top-ups and the like).
    pub(crate) notices: u64,
    /// Events sent and waiting for the relay's ack.
    sends: PendingSends,
    link: Link,
    socket: Option<WebSocket>,
    /// The socket's handlers; replaced on each reconnect, dropped on close.
    handlers: Vec<Closure<dyn FnMut(JsValue)>>,
    on_frame: Option<Closure<dyn FnMut(JsValue)>>,
    on_retry: Option<Closure<dyn FnMut()>>,
    on_idle_check: Option<Closure<dyn FnMut()>>,
    idle_timer: Option<i32>,
    change_listeners: Listeners,
    status_listeners: Listeners,
    synced_listeners: Listeners,
    /// The view is exact: live, and no window waits for a top-up. Cleared when either stops being so.
    synced: bool,
    /// Windows were rebuilt wholesale since the last frame: every key changed.
    all_changed: bool,
    frame_pending: bool,
    reported_status: Option<Status>,
    closed: bool,
    /// The view kept in IndexedDB across reloads (the `saveView` option), where the page has IndexedDB.
    saved: Option<SavedViews>,
}

#[wasm_bindgen]
impl Replicast {
    /// Connects to the relay's WebSocket at `url` (e.g. `ws://host:8080/ws`) and watches what `options` says.
    #[wasm_bindgen(constructor)]
    pub fn new(url: &str, options: ReplicastOptions) -> Result<Replicast, JsValue> {
        let (watch, options) = options_watch(options)?;
        let follow = Follow::new(options.aggregate.clone())
            .map_err(|e| typed(e, ErrorCode::InvalidOptions))?;
        let save_view = options
            .save_view()
            .map_err(|e| replicast_error(ErrorCode::InvalidOptions, &e))?;
        let shared = Rc::new(RefCell::new(Client {
            relays: Relays::new(url, &options.alternates),
            token: options.token.unwrap_or(TokenSource::None),
            refresh_due: false,
            aggregate: options.aggregate,
            assembler: StreamAssembler::with_observer(watch, follow),
            notices: 0,
            sends: PendingSends::default(),
            link: Link::new(options.idle_timeout_ms.unwrap_or(0.0)),
            socket: None,
            handlers: Vec::new(),
            on_frame: None,
            on_retry: None,
            on_idle_check: None,
            idle_timer: None,
            change_listeners: Listeners::default(),
            status_listeners: Listeners::default(),
            synced_listeners: Listeners::default(),
            synced: false,
            all_changed: false,
            frame_pending: false,
            reported_status: None,
            closed: false,
            saved: None,
        }));
        let weak = Rc::downgrade(&shared);
        let on_frame = Closure::new(move |_time: JsValue| {
            if let Some(shared) = weak.upgrade() {
                frame(&shared);
            }
        });
        let weak = Rc::downgrade(&shared);
        let on_retry = Closure::new(move || {
            if let Some(shared) = weak.upgrade() {
                connect(&shared);
            }
        });
        let weak = Rc::downgrade(&shared);
        let on_idle_check = Closure::new(move || {
            let Some(shared) = weak.upgrade() else {
                return;
            };
            let mut client = shared.borrow_mut();
            // Keys whose TTL passed go now, whether or not Redis's DEL for them has arrived yet.
            if client.assembler.tick(js_sys::Date::now() as u64) > 0 {
                client.request_frame();
            }
            if client.socket.is_some() && client.link.idle(now()) {
                web_sys::console::warn_1(&words(text!(
                    "replicast: the relay went silent; reconnecting"
                )));
                client.drop_socket(true);
            }
            drop(client);
            report_status(&shared);
        });
        {
            let mut client = shared.borrow_mut();
            client.idle_timer = web_sys::window().and_then(|w| {
                w.set_interval_with_callback_and_timeout_and_arguments_0(
                    on_idle_check.as_ref().unchecked_ref(),
                    IDLE_CHECK_MS,
                )
                .ok()
            });
            client.on_frame = Some(on_frame);
            client.on_retry = Some(on_retry);
            client.on_idle_check = Some(on_idle_check);
        }
        let saved = save_view.and_then(|settings| SavedViews::start(&shared, settings, url));
        shared.borrow_mut().saved = saved;
        connect(&shared);
        Ok(Replicast { shared })
    }

    /// Calls `callback` once per animation frame in which windows changed, with the changed keys (the first
    /// frame after it is registered names every key). Returns the function that removes it.
    #[wasm_bindgen(js_name = onChange, unchecked_return_type = "() => void")]
    pub fn on_change(&self, callback: ChangeCallback) -> Function {
        let id = {
            let mut client = self.shared.borrow_mut();
            let id = client.change_listeners.add(callback.unchecked_into());
            client.all_changed = true;
            client.request_frame();
            id
        };
        listeners::unsubscribe(&self.shared, |c: &mut Client| &mut c.change_listeners, id)
    }

    /// Calls `callback` with the current status now, then whenever it changes. Returns the function that removes
    /// it.
    #[wasm_bindgen(js_name = onStatus, unchecked_return_type = "() => void")]
    pub fn on_status(&self, callback: StatusCallback) -> Function {
        let callback: Function = callback.unchecked_into();
        let (id, status) = {
            let mut client = self.shared.borrow_mut();
            (
                client.status_listeners.add(callback.clone()),
                client.link.status().as_str(),
            )
        };
        // With no borrow held: the callback may read the client.
        listeners::call_each(&[callback], &status.into(), "onStatus");
        listeners::unsubscribe(&self.shared, |c: &mut Client| &mut c.status_listeners, id)
    }

    /// Calls `callback` each time the view becomes exact: the session is live (every shard's snapshot applied)
    /// and no window waits for a top-up. Again after a resync, a reconnect that needed a snapshot, or a stale
    /// window's top-up; at once if the view is exact now. Returns the function that removes it.
    #[wasm_bindgen(js_name = onSynced, unchecked_return_type = "() => void")]
    pub fn on_synced(&self, callback: SyncedCallback) -> Function {
        let callback: Function = callback.unchecked_into();
        let (id, synced) = {
            let mut client = self.shared.borrow_mut();
            (client.synced_listeners.add(callback.clone()), client.synced)
        };
        if synced {
            listeners::call_each(&[callback], &JsValue::UNDEFINED, "onSynced");
        }
        listeners::unsubscribe(&self.shared, |c: &mut Client| &mut c.synced_listeners, id)
    }

    /// Whether the view is exact now (see `onSynced`).
    #[wasm_bindgen(getter)]
    pub fn synced(&self) -> bool {
        self.shared.borrow().synced
    }

    /// `connecting`, `live`, `resyncing` or `offline`.
    #[wasm_bindgen(getter, unchecked_return_type = "ReplicastStatus")]
    pub fn status(&self) -> String {
        self.shared.borrow().link.status().as_str().to_string()
    }

    /// The relay's `/ws` URL in use (or to be tried next, while offline): the constructor's or an alternate.
    #[wasm_bindgen(getter)]
    pub fn relay(&self) -> String {
        self.shared.borrow().relays.current().to_string()
    }

    /// Appends an event to `key` through the relay, which adds who sent it and when: an entry of the stream `key`
    /// (or a member of the sorted set `key`), if the relay was started with `key` writable. Resolves with the new
    /// entry's id (for a sorted set, its score: the relay's time in ms) once Redis holds it; rejects with an Error
    /// carrying the relay's reason (a key that is not writable, a limit, a read-only Redis), or because the socket
    /// closed first or is not open. The entry itself arrives through the stream, like any write, to every client
    /// that watches `key`.
    #[wasm_bindgen(unchecked_return_type = "Promise<string>")]
    pub fn send(
        &self,
        key: &str,
        #[wasm_bindgen(unchecked_param_type = "Record<string, string | number | boolean>")]
        fields: JsValue,
    ) -> Promise {
        let shared = &self.shared;
        Promise::new(&mut |resolve: Function, reject: Function| {
            let refuse = |code: ErrorCode, reason: &str| {
                let _ = reject.call1(&JsValue::NULL, &replicast_error(code, reason));
            };
            let fields = match sends::fields_of(&fields) {
                Ok(fields) => fields,
                Err(reason) => return refuse(ErrorCode::InvalidEvent, &reason),
            };
            let mut client = shared.borrow_mut();
            let open = client
                .socket
                .as_ref()
                .filter(|socket| socket.ready_state() == WebSocket::OPEN)
                .cloned();
            let Some(socket) = open else {
                let status = client.link.status().as_str();
                return refuse(
                    ErrorCode::NotConnected,
                    &format!("not connected to the relay (status: {status}); send again once live"),
                );
            };
            let request = client.sends.register(resolve.clone(), reject.clone());
            let sent = sends::event_message(&request, key, &fields)
                .map_err(|reason| (ErrorCode::TooLarge, reason))
                .and_then(|message| {
                    socket.send_with_str(&message).map_err(|_| {
                        let reason = text!("the socket refused the message").to_string();
                        (ErrorCode::Disconnected, reason)
                    })
                });
            if let Err((code, reason)) = sent {
                client.sends.fail(&request, code, &reason);
            }
        })
    }

    /// Checks that this page's windows equal what the relay's own state holds for its subscription: the relay
    /// answers with a digest of its windows, in order in the stream, and the page digests its own windows when it
    /// reads that answer, so both are at the same offset. Resolves with a `ReplicastVerification` (`equal`, the
    /// offset, both digests and what they cover); rejects with code `refused` when the relay has no digest to give
    /// (no state, a window deeper than its state, a watched key it does not hold), or when the socket is not open
    /// or closes first.
    #[wasm_bindgen(unchecked_return_type = "Promise<ReplicastVerification>")]
    pub fn verify(&self) -> Promise {
        let shared = &self.shared;
        Promise::new(&mut |resolve: Function, reject: Function| {
            let mut client = shared.borrow_mut();
            let open = client
                .socket
                .as_ref()
                .filter(|socket| socket.ready_state() == WebSocket::OPEN)
                .cloned();
            let Some(socket) = open else {
                let status = client.link.status().as_str();
                let reason = format!(
                    "not connected to the relay (status: {status}); verify again once live"
                );
                let _ = reject.call1(
                    &JsValue::NULL,
                    &replicast_error(ErrorCode::NotConnected, &reason),
                );
                return;
            };
            let request = client.sends.register(resolve.clone(), reject.clone());
            if socket
                .send_with_str(&sends::digest_message(&request))
                .is_err()
            {
                let reason = text!("the socket refused the message");
                client.sends.fail(&request, ErrorCode::Disconnected, reason);
            }
        })
    }

    /// Saves the view now (with the `saveView` option), as `pagehide` does: resolves with whether a view was
    /// written (not when there is no IndexedDB, the session is not live, or nothing arrived since the last save).
    #[wasm_bindgen(js_name = saveView, unchecked_return_type = "Promise<boolean>")]
    pub fn save_view(&self) -> Promise {
        Promise::new(&mut |resolve: Function, _reject: Function| {
            saved_views::save(&self.shared, Some(resolve));
        })
    }

    /// Watches with another window length: reconnects, and the windows are rebuilt from a new snapshot (or from
    /// the view saved for that window, with the `saveView` option).
    #[wasm_bindgen(js_name = setWindow)]
    pub fn set_window(&self, window: usize) {
        saved_views::save(&self.shared, None);
        let mut client = self.shared.borrow_mut();
        let mut watch = client.assembler.watch().clone();
        watch.window = window;
        // The follower goes on until reset_windows replaces it, carrying over the keys `changes` reports on.
        let follow = std::mem::take(client.assembler.observer_mut());
        client.assembler = StreamAssembler::with_observer(watch, follow);
        client.reset_windows();
        if let Some(saved) = client.saved.as_mut() {
            saved.resubscribed();
        }
        client.drop_socket(false);
        drop(client);
        report_status(&self.shared);
    }

    /// Closes the socket and stops reconnecting (saving the view first, with the `saveView` option).
    pub fn close(&self) {
        if self.shared.borrow().closed {
            return;
        }
        saved_views::save(&self.shared, None);
        let mut client = self.shared.borrow_mut();
        client.closed = true;
        if let Some(saved) = client.saved.as_mut() {
            saved.stop();
        }
        if let Some(socket) = client.socket.take() {
            socket.set_onclose(None);
            let _ = socket.close();
        }
        client.handlers.clear();
        client.sends.reject_all(
            ErrorCode::Closed,
            text!("the client was closed before the relay answered"),
        );
        if let (Some(window), Some(timer)) = (web_sys::window(), client.idle_timer.take()) {
            window.clear_interval_with_handle(timer);
        }
        client.link.closed(0.0);
        drop(client);
        report_status(&self.shared);
    }
}

impl Drop for Replicast {
    fn drop(&mut self) {
        self.close();
    }
}
