//! [`LiveTable`]: the page's connection to the relay and its table, driven entirely from wasm.
//!
//! On open it sends its subscription (the watched patterns, database and window); the relay answers with a hello
//! and, unless it resumed the session, a snapshot of the windows. States: `connecting` (socket opening, or open
//! but the relay has not said hello), `live` (a hello arrived and
//! commands flow), `offline` (the socket closed; a reconnect is scheduled with backoff). A reconnect asks to resume
//! at the assembler's epoch and offset, so a short outage costs no data when the relay's backlog still holds it. Each message goes into the
//! assembler at once; drawing waits for the next animation frame, so a burst of messages costs one render.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{ArrayBuffer, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{BinaryType, Document, Element, MessageEvent, WebSocket};

use super::table::render_table;
use super::watch_config;
use crate::assembler::{Outcome, StreamAssembler};
use crate::wire;

/// First and largest delay before reconnecting, in milliseconds.
const RETRY_FIRST_MS: i32 = 250;
const RETRY_MAX_MS: i32 = 5_000;

/// A live table of the windows of watched keys, fed by a WebSocket to the relay.
#[wasm_bindgen]
pub struct LiveTable {
    shared: Rc<RefCell<Inner>>,
}

struct Inner {
    url: String,
    assembler: StreamAssembler,
    document: Document,
    tbody: Element,
    status: Element,
    state: &'static str,
    socket: Option<WebSocket>,
    /// The socket's handlers; replaced on each reconnect, dropped on stop.
    handlers: Vec<Closure<dyn FnMut(JsValue)>>,
    on_frame: Option<Closure<dyn FnMut(JsValue)>>,
    on_retry: Option<Closure<dyn FnMut()>>,
    dirty: bool,
    frame_pending: bool,
    retry_ms: i32,
    stopped: bool,
}

#[wasm_bindgen]
impl LiveTable {
    /// Connects to the relay at `url` (e.g. `ws://host/ws`) and renders into `tbody` the newest `window` members
    /// of keys matching any of `patterns` in database 0; the connection state goes to `status` (its text and its
    /// `data-state` attribute).
    #[wasm_bindgen(constructor)]
    pub fn new(
        url: &str,
        patterns: Vec<String>,
        window: usize,
        tbody: Element,
        status: Element,
    ) -> Result<LiveTable, JsValue> {
        let document = web_sys::window()
            .and_then(|w| w.document())
            .ok_or_else(|| JsValue::from_str("LiveTable needs a document"))?;
        let shared = Rc::new(RefCell::new(Inner {
            url: url.to_string(),
            assembler: StreamAssembler::new(watch_config(patterns, window, 0)),
            document,
            tbody,
            status,
            state: "",
            socket: None,
            handlers: Vec::new(),
            on_frame: None,
            on_retry: None,
            dirty: false,
            frame_pending: false,
            retry_ms: RETRY_FIRST_MS,
            stopped: false,
        }));
        let weak = Rc::downgrade(&shared);
        shared.borrow_mut().on_frame = Some(Closure::new(move |_time: JsValue| {
            if let Some(shared) = weak.upgrade() {
                shared.borrow_mut().draw();
            }
        }));
        let weak = Rc::downgrade(&shared);
        shared.borrow_mut().on_retry = Some(Closure::new(move || {
            if let Some(shared) = weak.upgrade() {
                connect(&shared);
            }
        }));
        connect(&shared);
        Ok(LiveTable { shared })
    }

    /// `connecting`, `live` or `offline`.
    #[wasm_bindgen(getter)]
    pub fn state(&self) -> String {
        self.shared.borrow().state.to_string()
    }

    /// Closes the socket and stops reconnecting.
    pub fn stop(&self) {
        let mut inner = self.shared.borrow_mut();
        inner.stopped = true;
        if let Some(socket) = inner.socket.take() {
            let _ = socket.close();
        }
        inner.handlers.clear();
        inner.set_state("offline");
    }
}

impl Drop for LiveTable {
    fn drop(&mut self) {
        self.stop();
    }
}

fn connect(shared: &Rc<RefCell<Inner>>) {
    let mut inner = shared.borrow_mut();
    if inner.stopped {
        return;
    }
    inner.set_state("connecting");
    // Ask to resume where the windows are; the relay falls back to a fresh start if its backlog moved on.
    let url = match inner.assembler.epoch() {
        Some(epoch) => format!(
            "{}{}epoch={}&offset={}",
            inner.url,
            if inner.url.contains('?') { '&' } else { '?' },
            js_sys::encode_uri_component(epoch),
            inner.assembler.offset()
        ),
        None => inner.url.clone(),
    };
    let socket = match WebSocket::new(&url) {
        Ok(socket) => socket,
        Err(err) => {
            web_sys::console::error_2(&"replicast: cannot open the WebSocket".into(), &err);
            drop(inner);
            schedule_retry(shared);
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
        shared.borrow_mut().receive(&bytes);
    });
    let weak = Rc::downgrade(shared);
    let on_open = Closure::<dyn FnMut(JsValue)>::new(move |_event: JsValue| {
        let Some(shared) = weak.upgrade() else {
            return;
        };
        let inner = shared.borrow();
        let watch = inner.assembler.watch();
        let subscribe = wire::encode_subscribe(&watch.patterns, watch.db, watch.window);
        if let Some(socket) = &inner.socket {
            if let Err(err) = socket.send_with_str(&subscribe) {
                web_sys::console::error_2(&"replicast: cannot subscribe".into(), &err);
            }
        }
    });
    let weak = Rc::downgrade(shared);
    let on_close = Closure::<dyn FnMut(JsValue)>::new(move |_event: JsValue| {
        if let Some(shared) = weak.upgrade() {
            shared.borrow_mut().set_state("offline");
            schedule_retry(&shared);
        }
    });
    socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    socket.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    inner.handlers = vec![on_open, on_message, on_close];
    inner.socket = Some(socket);
}

fn schedule_retry(shared: &Rc<RefCell<Inner>>) {
    let mut inner = shared.borrow_mut();
    if inner.stopped {
        return;
    }
    let delay = inner.retry_ms;
    inner.retry_ms = (inner.retry_ms * 2).min(RETRY_MAX_MS);
    if let (Some(window), Some(retry)) = (web_sys::window(), inner.on_retry.as_ref()) {
        let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(
            retry.as_ref().unchecked_ref(),
            delay,
        );
    }
}

impl Inner {
    fn receive(&mut self, message: &[u8]) {
        match self.assembler.push_message(message) {
            Ok(Outcome::Joined { .. }) => {
                self.retry_ms = RETRY_FIRST_MS;
                self.set_state("live");
                self.request_frame();
            }
            Ok(Outcome::Applied { changed, .. }) => {
                if changed {
                    self.request_frame();
                }
            }
            Ok(Outcome::Resync { reason }) => {
                web_sys::console::warn_1(
                    &format!("replicast: relay asked to resync: {reason}").into(),
                );
                self.close_socket();
            }
            Ok(Outcome::Notice { text }) => {
                web_sys::console::warn_1(&format!("replicast: relay notice: {text}").into());
            }
            Err(err) => {
                web_sys::console::error_1(
                    &format!("replicast: bad stream, reconnecting: {err}").into(),
                );
                self.close_socket();
            }
        }
    }

    /// Marks the table dirty and asks for one animation frame, however many messages arrive before it.
    fn request_frame(&mut self) {
        self.dirty = true;
        if self.frame_pending {
            return;
        }
        if let (Some(window), Some(on_frame)) = (web_sys::window(), self.on_frame.as_ref()) {
            self.frame_pending = window
                .request_animation_frame(on_frame.as_ref().unchecked_ref())
                .is_ok();
        }
    }

    fn draw(&mut self) {
        self.frame_pending = false;
        if !self.dirty {
            return;
        }
        self.dirty = false;
        if let Err(err) = render_table(&self.document, &self.tbody, &self.assembler) {
            web_sys::console::error_2(&"replicast: rendering failed".into(), &err);
        }
    }

    fn close_socket(&mut self) {
        if let Some(socket) = &self.socket {
            let _ = socket.close();
        }
    }

    fn set_state(&mut self, state: &'static str) {
        if self.state == state {
            return;
        }
        self.state = state;
        self.status.set_text_content(Some(state));
        let _ = self.status.set_attribute("data-state", state);
    }
}
