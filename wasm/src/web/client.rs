//! [`Replicast`]: the browser client. A WebSocket to the relay, the StreamAssembler behind it, and what a page
//! reads: windows, numeric series, aggregates, status.
//!
//! Each binary message is copied into wasm memory once and applied at once; the page hears about it once per
//! animation frame, through its `onChange` callback, with the keys that changed since the last frame. Reads are
//! coarse calls that return typed arrays or plain objects, never one call per item.
//!
//! The connection logic itself (statuses, backoff, idle detection, which relay, what to resume from) is in
//! [`crate::link`], which has no I/O and is tested natively; this file only wires it to the browser's WebSocket,
//! timers and animation frames.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{ArrayBuffer, Float64Array, Function, Promise, Uint8Array};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

use super::error::{replicast_error, typed, ErrorCode};
use super::follow::{AggregateOptions, Follow};
use super::listeners::{self, Listeners};
use super::sends::{self, PendingSends};
use super::view;
use crate::assembler::{Outcome, StreamAssembler, WatchConfig};
use crate::link::{self, Link, Relays, Status};
use crate::wire;

/// How often an open socket is checked for silence.
const IDLE_CHECK_MS: i32 = 1_000;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** What a Replicast client watches, and how. */
export interface ReplicastOptions {
  /** Redis glob patterns of keys to watch. */
  patterns?: string[];
  /** Exact keys to watch. */
  keys?: string[];
  /** The database (default 0). */
  db?: number;
  /** Newest items kept per key (default 100, at most 100,000). */
  window?: number;
  /** For a relay started with --token. */
  token?: string;
  /** Other relays' `/ws` URLs serving the same data: when the connection to the relay in use fails or drops, the
   *  next attempt goes to the next URL, round robin over [url, ...alternates], and resumes there where the windows
   *  are. */
  alternates?: string[];
  /** Silence after which an open socket counts as dead (default 30,000 ms). On a quiet stream the relay has
   *  something to send only when Redis pings its replicas (`repl-ping-replica-period`, 10 s by default): keep it
   *  above that. */
  idleTimeoutMs?: number;
  /** Incremental aggregates over numeric JSON fields (dotted paths such as `cpu.total`, `load.0`). */
  aggregate?: {
    fields?: string[];
    /** Counters (e.g. bytes sent so far): aggregated with a rate per second. */
    counters?: string[];
    /** A JSON field with each item's time in Unix ms, for items without one (sorted sets use the score). */
    time?: string;
    /** Rolling buckets (default [1000, 10000, 60000]). */
    bucketsMs?: number[];
  };
}

/** Statistics of one numeric field. Values are null when there is nothing to aggregate. */
export interface ReplicastStats {
  count: number;
  min: number | null;
  max: number | null;
  mean: number | null;
  p50: number | null;
  p95: number | null;
  p99: number | null;
  /** Per second, for counters. */
  rate: number | null;
}

/** A field's statistics over the window, its newest value, and over the rolling buckets. */
export interface ReplicastFieldStats extends ReplicastStats {
  last: { value: number; t: number } | null;
  buckets: (ReplicastStats & { ms: number })[];
}

/** Bad input seen so far, by kind; the assembler skipped it and kept the rest of its state. */
export interface ReplicastDiagnostics {
  badMessages: number;
  badSegments: number;
  overlaps: number;
  badSnapshots: number;
  unknownCommands: number;
  badArguments: number;
  wrongType: number;
  longTransactions: number;
  topupsRequested: number;
  notices: number;
  notJson: number;
  notNumeric: number;
  missingFields: number;
  lastError: string | null;
}

/** A window as a plain object, items newest first. */
export interface ReplicastWindow {
  type: "zset" | "stream" | "list" | "hash" | "string";
  /** Whether the window holds all Redis holds for the key. */
  complete: boolean;
  /** Whether a top-up was asked for and has not arrived. */
  stale: boolean;
  expiresAt: number | null;
  items: (
    | { member: string; score: number }
    | { id: string; fields: [string, string][] }
    | { value: string; previous?: string[] }
    | { field: string; value: string; previous: string[] }
  )[];
}

/** Where a session stands. */
export type ReplicastStatus = "connecting" | "live" | "resyncing" | "offline";

/** Where one shard's stream stands (a relay following one Redis has only shard 0). */
export interface ReplicastPosition {
  shard: number;
  /** The replication ID the shard's stream follows. */
  epoch: string;
  /** Replication offset applied so far (exact below 2^53). */
  offset: number;
}

/** What changed since the previous animation frame. */
export interface ReplicastChange {
  /** Keys whose windows changed (appeared, moved or went away). */
  keys: string[];
  status: ReplicastStatus;
  /** Replication offset applied so far (shard 0's). */
  offset: number;
  /** Every shard whose stream said hello. */
  positions: ReplicastPosition[];
  /** The `/ws` URL in use (or to be tried next, while offline). */
  relay: string;
}
"#;

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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct Options {
    #[serde(default)]
    patterns: Vec<String>,
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    db: u32,
    #[serde(default = "default_window")]
    window: usize,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    alternates: Vec<String>,
    #[serde(default)]
    idle_timeout_ms: Option<f64>,
    #[serde(default)]
    pub(super) aggregate: Option<AggregateOptions>,
}

fn default_window() -> usize {
    100
}

#[derive(Serialize)]
struct Change<'a> {
    keys: Vec<String>,
    status: &'a str,
    offset: f64,
    positions: Vec<Position>,
    relay: &'a str,
}

/// Where one shard's stream stands, for the page.
#[derive(Serialize)]
pub(super) struct Position {
    shard: u16,
    epoch: String,
    offset: f64,
}

pub(super) fn positions(assembler: &StreamAssembler<Follow>) -> Vec<Position> {
    assembler
        .positions()
        .into_iter()
        .map(|(shard, epoch, offset)| Position {
            shard,
            epoch,
            offset: offset as f64,
        })
        .collect()
}

/// A live connection to a Replicast relay and the windows of the keys it watches.
#[wasm_bindgen]
pub struct Replicast {
    shared: Rc<RefCell<Client>>,
}

struct Client {
    relays: Relays,
    token: Option<String>,
    aggregate: Option<AggregateOptions>,
    assembler: StreamAssembler<Follow>,
    /// Notices the relay sent (refused top-ups and the like).
    notices: u64,
    /// Events sent and waiting for the relay's ack.
    sends: PendingSends,
    /// The numbers behind the last `seriesView`.
    view_buffer: Vec<f64>,
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
}

#[wasm_bindgen]
impl Replicast {
    /// Connects to the relay's WebSocket at `url` (e.g. `ws://host:8080/ws`) and watches what `options` says.
    #[wasm_bindgen(constructor)]
    pub fn new(url: &str, options: ReplicastOptions) -> Result<Replicast, JsValue> {
        let (watch, options) = options_watch(options)?;
        let follow = Follow::new(options.aggregate.clone())
            .map_err(|e| typed(e, ErrorCode::InvalidOptions))?;
        let shared = Rc::new(RefCell::new(Client {
            relays: Relays::new(url, &options.alternates),
            token: options.token,
            aggregate: options.aggregate,
            assembler: StreamAssembler::with_observer(watch, follow),
            notices: 0,
            sends: PendingSends::default(),
            view_buffer: Vec::new(),
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

    /// Replication offset applied so far (exact below 2^53).
    #[wasm_bindgen(getter)]
    pub fn offset(&self) -> f64 {
        self.shared.borrow().assembler.offset() as f64
    }

    /// The replication ID of the stream followed (shard 0's), once the relay said hello.
    #[wasm_bindgen(getter)]
    pub fn epoch(&self) -> Option<String> {
        self.shared.borrow().assembler.epoch().map(str::to_string)
    }

    /// Where each shard's stream stands: one entry per shard whose hello arrived (only shard 0 with a relay
    /// following one Redis).
    #[wasm_bindgen(getter, unchecked_return_type = "ReplicastPosition[]")]
    pub fn positions(&self) -> Result<JsValue, JsError> {
        serde_wasm_bindgen::to_value(&positions(&self.shared.borrow().assembler))
            .map_err(|e| JsError::new(&e.to_string()))
    }

    /// The relay's `/ws` URL in use (or to be tried next, while offline): the constructor's or an alternate.
    #[wasm_bindgen(getter)]
    pub fn relay(&self) -> String {
        self.shared.borrow().relays.current().to_string()
    }

    /// Watched keys that have a window, in key order.
    pub fn keys(&self) -> Vec<String> {
        view::keys(&self.shared.borrow().assembler)
    }

    /// Items in `key`'s window.
    pub fn len(&self, key: &str) -> usize {
        view::len(&self.shared.borrow().assembler, key)
    }

    /// The items' times (sorted-set scores), oldest first.
    pub fn times(&self, key: &str) -> Float64Array {
        view::times(&self.shared.borrow().assembler, key)
    }

    /// The numeric JSON field at `path` (e.g. `cpu.total`, `load.0`) of each item, oldest first; NaN where an
    /// item lacks it.
    pub fn series(&self, key: &str, path: &str) -> Result<Float64Array, JsError> {
        view::series(&self.shared.borrow().assembler, key, path)
    }

    /// [`Replicast::series`] without the copy: a view of wasm memory, valid only until the next call into this
    /// client (or any call that may grow wasm memory, after which it reads as empty). For a page that draws the
    /// numbers at once and keeps nothing.
    #[wasm_bindgen(js_name = seriesView)]
    pub fn series_view(&self, key: &str, path: &str) -> Result<Float64Array, JsError> {
        let mut client = self.shared.borrow_mut();
        client.view_buffer = view::series_values(&client.assembler, key, path)?;
        // SAFETY: the view aliases `view_buffer`, which only the next call into this client replaces; the
        // contract above tells the page not to keep the view past that.
        Ok(unsafe { Float64Array::view(&client.view_buffer) })
    }

    /// The newest item, parsed as JSON; `undefined` when there is none or it is not JSON.
    pub fn latest(&self, key: &str) -> JsValue {
        view::latest(&self.shared.borrow().assembler, key)
    }

    /// `key`'s window as a plain object: its type and its items, newest first.
    #[wasm_bindgen(unchecked_return_type = "ReplicastWindow | undefined")]
    pub fn window(&self, key: &str) -> Result<JsValue, JsError> {
        view::window(&self.shared.borrow().assembler, key)
    }

    /// `key`'s statistics of an aggregated field over its window and the rolling buckets.
    #[wasm_bindgen(unchecked_return_type = "ReplicastFieldStats | null")]
    pub fn stats(&self, key: &str, path: &str) -> Result<JsValue, JsError> {
        self.shared
            .borrow_mut()
            .assembler
            .observer_mut()
            .stats(key, path)
    }

    /// Across keys, over each key's newest item: the statistics of an aggregated field.
    #[wasm_bindgen(unchecked_return_type = "ReplicastFieldStats | null")]
    pub fn fleet(&self, path: &str) -> Result<JsValue, JsError> {
        self.shared
            .borrow_mut()
            .assembler
            .observer_mut()
            .fleet(path)
    }

    /// Across keys, how many keys' newest value of an aggregated field is above `threshold`.
    #[wasm_bindgen(js_name = fleetAbove)]
    pub fn fleet_above(&self, path: &str, threshold: f64) -> Result<usize, JsError> {
        self.shared
            .borrow_mut()
            .assembler
            .observer_mut()
            .fleet_above(path, threshold)
    }

    /// Bad input seen so far, by kind.
    #[wasm_bindgen(unchecked_return_type = "ReplicastDiagnostics")]
    pub fn diagnostics(&self) -> Result<JsValue, JsError> {
        let client = self.shared.borrow();
        client
            .assembler
            .observer()
            .diagnostics(client.assembler.diagnostics(), client.notices)
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
                        let reason = "the socket refused the message".to_string();
                        (ErrorCode::Disconnected, reason)
                    })
                });
            if let Err((code, reason)) = sent {
                client.sends.fail(&request, code, &reason);
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
        client.sends.reject_all(
            ErrorCode::Closed,
            "the client was closed before the relay answered",
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

/// Reads the options a page gave, and what they watch.
pub(super) fn options_watch(options: ReplicastOptions) -> Result<(WatchConfig, Options), JsValue> {
    let options: Options = serde_wasm_bindgen::from_value(options.into()).map_err(|e| {
        replicast_error(
            ErrorCode::InvalidOptions,
            &format!("invalid Replicast options: {e}"),
        )
    })?;
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

fn now() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map(|p| p.now())
        .unwrap_or_else(js_sys::Date::now)
}

fn connect(shared: &Rc<RefCell<Client>>) {
    let mut client = shared.borrow_mut();
    if client.closed {
        return;
    }
    client.link.connecting(now());
    // Ask to resume where the windows are, shard by shard; the relay starts afresh each shard whose position its
    // backlog no longer holds.
    let mut query = Vec::new();
    if let Some(at) = link::resume_at(&client.assembler.positions()) {
        query.push(format!("at={}", js_sys::encode_uri_component(&at)));
    }
    if let Some(token) = &client.token {
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
            web_sys::console::error_2(&"replicast: cannot open the WebSocket".into(), &err);
            drop(client);
            closed(shared, "the WebSocket could not be opened", true);
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
        report_status(&shared);
    });
    let weak = Rc::downgrade(shared);
    let on_open = Closure::<dyn FnMut(JsValue)>::new(move |_event: JsValue| {
        let Some(shared) = weak.upgrade() else {
            return;
        };
        let client = shared.borrow();
        let watch = client.assembler.watch();
        let subscribe = wire::encode_subscribe(&watch.patterns, watch.db, watch.window);
        if let Some(socket) = &client.socket {
            if let Err(err) = socket.send_with_str(&subscribe) {
                web_sys::console::error_2(&"replicast: cannot subscribe".into(), &err);
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
            Err(_) => "the connection to the relay closed".to_string(),
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

/// Tells the page's status callback about a new status; called with no borrow held, since the callback may read
/// the client.
fn report_status(shared: &Rc<RefCell<Client>>) {
    let report = shared.borrow_mut().status_to_report();
    if let Some((callbacks, status)) = report {
        listeners::call_each(&callbacks, &status.into(), "onStatus");
    }
    let synced = shared.borrow_mut().synced_to_report();
    if let Some(callbacks) = synced {
        listeners::call_each(&callbacks, &JsValue::UNDEFINED, "onSynced");
    }
}

/// The socket closed (the relay closed it, or it never opened), for the reason `why`: schedules the reconnect,
/// to the next relay if the connection `failed`.
fn closed(shared: &Rc<RefCell<Client>>, why: &str, failed: bool) {
    shared.borrow_mut().socket_closed(why, failed);
    report_status(shared);
}

fn frame(shared: &Rc<RefCell<Client>>) {
    let (callbacks, change) = {
        let mut client = shared.borrow_mut();
        client.frame_pending = false;
        if client.change_listeners.is_empty() {
            return;
        }
        let callbacks = client.change_listeners.to_call();
        let changed = std::mem::take(&mut client.assembler.observer_mut().changed);
        let keys: Vec<String> = if std::mem::take(&mut client.all_changed) {
            view::keys(&client.assembler)
        } else {
            changed
                .into_iter()
                .map(|k| String::from_utf8_lossy(&k).into_owned())
                .collect()
        };
        let change = Change {
            keys,
            status: client.link.status().as_str(),
            offset: client.assembler.offset() as f64,
            positions: positions(&client.assembler),
            relay: client.relays.current(),
        };
        (callbacks, serde_wasm_bindgen::to_value(&change))
    };
    // Called with no borrow held: the callbacks read windows through the same client.
    match change {
        Ok(change) => listeners::call_each(&callbacks, &change, "onChange"),
        Err(err) => web_sys::console::error_1(&format!("replicast: {err}").into()),
    }
}

impl Client {
    fn receive(&mut self, message: &[u8]) {
        let now = now();
        self.link.message(now);
        let snapshot_of = wire::snapshot_shard(message);
        self.assembler.observer_mut().set_now(js_sys::Date::now());
        match self.assembler.push_message(message) {
            // Per shard: the assembler kept that shard's windows only if its stream continued.
            Ok(Outcome::Joined {
                shard, continuous, ..
            }) => {
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
                web_sys::console::warn_1(
                    &format!("replicast: the relay asked to resync: {reason}").into(),
                );
                self.link.resync();
                self.drop_socket(true);
            }
            Ok(Outcome::Notice { text }) => {
                self.notices += 1;
                web_sys::console::warn_1(&format!("replicast: relay notice: {text}").into());
            }
            Ok(Outcome::Ack { request, entry }) => self.sends.settle(&request, entry),
            Err(err) => {
                web_sys::console::error_1(
                    &format!("replicast: bad stream, reconnecting: {err}").into(),
                );
                self.drop_socket(true);
            }
        }
        if self.assembler.needs_resnapshot() {
            // SWAPDB swapped the watched database: only a fresh snapshot can say what it holds now.
            self.reset_windows();
            self.drop_socket(false);
        }
        if !self.assembler.observer().changed.is_empty() {
            self.request_frame();
        }
        // Removals left windows shorter than what Redis holds: ask the relay to read them again.
        let (topups, unnamable): (Vec<_>, Vec<_>) = self
            .assembler
            .take_topups()
            .into_iter()
            .partition(|key| wire::topup_can_name(key));
        if !topups.is_empty() || !unnamable.is_empty() {
            self.synced = false;
        }
        if !unnamable.is_empty() {
            web_sys::console::warn_1(
                &format!(
                    "replicast: {} windows cannot be topped up (keys that are not UTF-8 or longer than {} bytes); \
                     they stay short until the page reloads",
                    unnamable.len(),
                    wire::MAX_NAME_LEN
                )
                .into(),
            );
        }
        if let Some(socket) = &self.socket {
            // In requests the relay takes: a stale message alone may ask for 1,024 keys of 1 KiB.
            for request in wire::encode_topups(topups.iter().map(Vec::as_slice)) {
                if let Err(err) = socket.send_with_str(&request) {
                    web_sys::console::error_2(&"replicast: cannot ask for a top-up".into(), &err);
                }
            }
        }
    }

    /// Starts over with empty windows and no epoch, so the next session joins with a snapshot.
    fn reset_windows(&mut self) {
        let watch = self.assembler.watch().clone();
        // Options that were valid at construction still are.
        let follow = Follow::new(self.aggregate.clone()).unwrap_or_default();
        self.assembler = StreamAssembler::with_observer(watch, follow);
        self.link.forget_shards();
        self.all_changed = true;
    }

    /// Asks for one animation frame, however many messages arrive before it.
    fn request_frame(&mut self) {
        if self.frame_pending || self.change_listeners.is_empty() {
            return;
        }
        if let (Some(window), Some(on_frame)) = (web_sys::window(), self.on_frame.as_ref()) {
            self.frame_pending = window
                .request_animation_frame(on_frame.as_ref().unchecked_ref())
                .is_ok();
        }
    }

    /// The synced callbacks to call, if the view just became exact. Windows are scanned for stale ones only while
    /// live and not synced: after a join, or while a top-up is awaited.
    fn synced_to_report(&mut self) -> Option<Vec<Function>> {
        if self.link.status() != Status::Live {
            self.synced = false;
            return None;
        }
        if self.synced || self.assembler.windows().any(|(_, window)| window.stale()) {
            return None;
        }
        self.synced = true;
        Some(self.synced_listeners.to_call())
    }

    /// The status callbacks and the status to tell them, if the status changed since they were last told.
    fn status_to_report(&mut self) -> Option<(Vec<Function>, &'static str)> {
        let status = self.link.status();
        if self.reported_status == Some(status) {
            return None;
        }
        self.reported_status = Some(status);
        self.request_frame();
        Some((self.status_listeners.to_call(), status.as_str()))
    }

    /// Closes the socket and schedules the reconnect at once, without waiting for its `close` event: that comes
    /// only once the relay answers the close frame, and a relay that went silent never does (the browser would
    /// wait out its closing handshake, about a minute, still `live`). The socket's handlers go first, so nothing
    /// it still delivers reaches this client. `failed`: the relay failed this session (silent, a bad stream, a
    /// resync), and the reconnect goes to the next relay.
    fn drop_socket(&mut self, failed: bool) {
        let Some(socket) = self.socket.take() else {
            return;
        };
        socket.set_onopen(None);
        socket.set_onmessage(None);
        socket.set_onclose(None);
        let _ = socket.close();
        self.socket_closed(
            "the client dropped its connection to the relay (to reconnect)",
            failed,
        );
    }

    /// The socket is gone (`why`): events sent on it get no ack, the status says so and a reconnect is scheduled,
    /// unless the page closed the client; to the next relay (if the page named alternates) if the connection
    /// `failed`.
    fn socket_closed(&mut self, why: &str, failed: bool) {
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
