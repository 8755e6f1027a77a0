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
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::WebSocket;

mod frames;
mod options;
mod socket;

use super::follow::{AggregateOptions, Follow};
use super::reads::{read_api, ReadWindows};
use super::sends::{self, PendingSends};
use frames::{frame, report_status};
pub(super) use options::{options_watch, ReplicastOptions};
use options::{ChangeCallback, StatusCallback};
use replicast_assembler::assembler::StreamAssembler;
use replicast_assembler::link::{Link, Relays, Status};
use socket::{connect, now};

/// How often an open socket is checked for silence.
const IDLE_CHECK_MS: i32 = 1_000;

/// A live connection to a Replicast relay and the windows of the keys it watches.
#[wasm_bindgen]
pub struct Replicast {
    shared: Rc<RefCell<Client>>,
}

impl ReadWindows for Replicast {
    fn read<R>(&self, read: impl FnOnce(&StreamAssembler<Follow>, u64) -> R) -> R {
        let client = self.shared.borrow();
        read(&client.assembler, client.notices)
    }

    fn read_mut<R>(&self, read: impl FnOnce(&mut StreamAssembler<Follow>) -> R) -> R {
        read(&mut self.shared.borrow_mut().assembler)
    }
}

read_api!(Replicast);

struct Client {
    relays: Relays,
    token: Option<String>,
    aggregate: Option<AggregateOptions>,
    assembler: StreamAssembler<Follow>,
    /// Notices the relay sent (refused top-ups and the like).
    notices: u64,
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
    change_callback: Option<Function>,
    status_callback: Option<Function>,
    /// Windows were rebuilt wholesale since the last frame: every key changed.
    all_changed: bool,
    frame_pending: bool,
    reported_status: Option<Status>,
    closed: bool,
}

#[wasm_bindgen]
impl Replicast {
    /// Connects to the relay's WebSocket at `url` (e.g. `ws://host:8080/ws`) and watches what `options` says.
    #[wasm_bindgen(constructor)]
    pub fn new(url: &str, options: ReplicastOptions) -> Result<Replicast, JsError> {
        let (watch, options) = options_watch(options)?;
        let follow = Follow::new(options.aggregate.clone())?;
        let shared = Rc::new(RefCell::new(Client {
            relays: Relays::new(url, &options.alternates),
            token: options.token,
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
            change_callback: None,
            status_callback: None,
            all_changed: false,
            frame_pending: false,
            reported_status: None,
            closed: false,
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
                web_sys::console::warn_1(&"replicast: the relay went silent; reconnecting".into());
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
        connect(&shared);
        Ok(Replicast { shared })
    }

    /// Calls `callback` once per animation frame in which windows changed, with the changed keys.
    #[wasm_bindgen(js_name = onChange)]
    pub fn on_change(&self, callback: ChangeCallback) {
        let mut client = self.shared.borrow_mut();
        client.change_callback = callback.dyn_into::<Function>().ok();
        client.all_changed = true;
        client.request_frame();
    }

    /// Calls `callback` with the current status now, then whenever it changes.
    #[wasm_bindgen(js_name = onStatus)]
    pub fn on_status(&self, callback: StatusCallback) {
        {
            let mut client = self.shared.borrow_mut();
            client.status_callback = callback.dyn_into::<Function>().ok();
            client.reported_status = None;
        }
        report_status(&self.shared);
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
            let refuse = |reason: &str| {
                let _ = reject.call1(&JsValue::NULL, &js_sys::Error::new(reason));
            };
            let fields = match sends::fields_of(&fields) {
                Ok(fields) => fields,
                Err(reason) => return refuse(&reason),
            };
            let mut client = shared.borrow_mut();
            let open = client
                .socket
                .as_ref()
                .filter(|socket| socket.ready_state() == WebSocket::OPEN)
                .cloned();
            let Some(socket) = open else {
                let status = client.link.status().as_str();
                return refuse(&format!(
                    "not connected to the relay (status: {status}); send again once live"
                ));
            };
            let request = client.sends.register(resolve.clone(), reject.clone());
            let sent = sends::event_message(&request, key, &fields).and_then(|message| {
                socket
                    .send_with_str(&message)
                    .map_err(|_| "the socket refused the message".to_string())
            });
            if let Err(reason) = sent {
                client.sends.fail(&request, &reason);
            }
        })
    }

    /// Watches with another window length: reconnects, and the windows are rebuilt from a new snapshot.
    #[wasm_bindgen(js_name = setWindow)]
    pub fn set_window(&self, window: usize) {
        let mut client = self.shared.borrow_mut();
        let mut watch = client.assembler.watch().clone();
        watch.window = window;
        client.assembler = StreamAssembler::with_observer(watch, Follow::default());
        client.reset_windows();
        client.drop_socket(false);
        drop(client);
        report_status(&self.shared);
    }

    /// Closes the socket and stops reconnecting.
    pub fn close(&self) {
        let mut client = self.shared.borrow_mut();
        client.closed = true;
        if let Some(socket) = client.socket.take() {
            socket.set_onclose(None);
            let _ = socket.close();
        }
        client.handlers.clear();
        client
            .sends
            .reject_all("the client was closed before the relay answered");
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
