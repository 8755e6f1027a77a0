//! Saved views (the `saveView` option): the client keeps its windows and stream positions in IndexedDB, so that
//! a reloaded page shows its last view at once and resumes the relay's stream (`at=`) instead of asking for a
//! snapshot. The bytes are the assembler's saved view (`replicast_assembler::assembler`'s `save_view`), which
//! checks a record it restores like any untrusted input.
//!
//! - Keyed by the relay's URL (the constructor's), the subscription (patterns, database, window) and the token's
//!   identity (a signed token's `sub` and `replicast` claims), so two users, or one user's two grants, never see
//!   each other's view. A view is restored before the first connect of a subscription (and after `setWindow`),
//!   and only into an empty client.
//! - Saved every `intervalMs`, on `pagehide` and when the page is hidden, only while live and only if something
//!   arrived since the last save: never per frame. A save is one transaction that writes and commits at once (so a
//!   page that is going away still completes it); older views are evicted, oldest saved first, past `maxBytes` in
//!   all, and a view larger than `maxBytes` alone is not kept.
//! - Cleared when the relay answers a restored view with a stream it cannot continue (a new epoch after Redis
//!   restarted, or a backlog that moved past the saved offset): the windows then come from a snapshot, as on any
//!   join.
//! - Absent where there is no IndexedDB (Node, a sandboxed frame): the client connects as without the option. A
//!   load that does not answer within [`LOAD_TIMEOUT_MS`] (a database blocked by another tab) is given up.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use js_sys::{Array, Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{IdbDatabase, IdbObjectStore, IdbRequest, IdbTransaction, IdbTransactionMode};

use super::super::error::words;
use super::socket::open_with;
use super::Client;
use replicast_protocol::text;

/// Default `saveView.maxBytes`: every view this origin's clients keep, together. The dashboard's overview holds at
/// most 120,000 samples of a few hundred bytes, about 40 MB at its largest.
pub(crate) const DEFAULT_SAVED_BYTES: usize = 64 << 20;
/// Default `saveView.intervalMs`. A save copies every window; `pagehide` saves the last view anyway.
pub(crate) const DEFAULT_SAVE_INTERVAL_MS: i32 = 30_000;
/// Shortest `saveView.intervalMs` accepted.
pub(crate) const MIN_SAVE_INTERVAL_MS: i32 = 1_000;
/// How long the first connect waits for IndexedDB's answer before connecting without a saved view.
const LOAD_TIMEOUT_MS: i32 = 2_000;

const DATABASE: &str = "replicast";
const DATABASE_VERSION: u32 = 1;
/// Saved views by record key.
const VIEWS: &str = "views";
/// `{key, bytes, savedAt}` by record key: what eviction reads, without reading the views themselves.
const SIZES: &str = "sizes";

/// What the `saveView` option asks for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SaveViewSettings {
    pub(crate) max_bytes: usize,
    pub(crate) interval_ms: i32,
}

/// A client's saved view: where it is kept and what is pending.
pub(super) struct SavedViews {
    settings: SaveViewSettings,
    /// The constructor's URL: alternates serve the same Redis, so one view serves them all.
    url: String,
    database: Option<IdbDatabase>,
    /// The record of the subscription in use, once the first connect named it (it needs the token).
    key: Option<String>,
    /// A view is to be looked for before the next connect: the subscription is new.
    load_due: bool,
    /// The load in progress, by number: its answer and its timeout race, and the first one wins.
    loading: Option<u32>,
    loads: u32,
    /// The windows came from a saved view and the relay has not said yet whether it continues their streams.
    restored: bool,
    /// Something arrived since the last save.
    pub(super) dirty: bool,
    /// The page's events and the timer that save, removed by [`SavedViews::stop`].
    on_save: Option<Closure<dyn FnMut(JsValue)>>,
    timer: Option<i32>,
}

impl SavedViews {
    /// Saved views for a client of `url`, if the page has IndexedDB; and the triggers that save.
    pub(super) fn start(
        shared: &Rc<RefCell<Client>>,
        settings: SaveViewSettings,
        url: &str,
    ) -> Option<SavedViews> {
        let window = web_sys::window()?;
        // Absent (Node has no `window` at all), or refused (an opaque origin): no saved views, and no error.
        window.indexed_db().ok().flatten()?;
        let weak = Rc::downgrade(shared);
        let on_save = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
            let Some(shared) = weak.upgrade() else {
                return;
            };
            let kind = Reflect::get(&event, &"type".into())
                .ok()
                .and_then(|t| t.as_string());
            let hidden = window.document().is_some_and(|d| d.hidden());
            if kind.as_deref() != Some("visibilitychange") || hidden {
                save(&shared, None);
            }
        });
        let window = web_sys::window()?;
        let handler = on_save.as_ref().unchecked_ref();
        let _ = window.add_event_listener_with_callback("pagehide", handler);
        if let Some(document) = window.document() {
            let _ = document.add_event_listener_with_callback("visibilitychange", handler);
        }
        let timer = window
            .set_interval_with_callback_and_timeout_and_arguments_0(handler, settings.interval_ms)
            .ok();
        Some(SavedViews {
            settings,
            url: url.to_string(),
            database: None,
            key: None,
            load_due: true,
            loading: None,
            loads: 0,
            restored: false,
            dirty: false,
            on_save: Some(on_save),
            timer,
        })
    }

    /// Removes the triggers: the client was closed.
    pub(super) fn stop(&mut self) {
        let Some(window) = web_sys::window() else {
            return;
        };
        if let Some(timer) = self.timer.take() {
            window.clear_interval_with_handle(timer);
        }
        if let Some(on_save) = self.on_save.take() {
            let handler = on_save.as_ref().unchecked_ref();
            let _ = window.remove_event_listener_with_callback("pagehide", handler);
            if let Some(document) = window.document() {
                let _ = document.remove_event_listener_with_callback("visibilitychange", handler);
            }
        }
        if let Some(database) = self.database.take() {
            database.close();
        }
    }

    /// The subscription changes (`setWindow`): its own view is looked for before the next connect.
    pub(super) fn resubscribed(&mut self) {
        self.key = None;
        self.load_due = true;
        self.restored = false;
    }

    /// The relay answered a hello: if it does not continue a restored stream, the saved view is of no use.
    pub(super) fn joined(&mut self, continuous: bool) {
        if self.restored && !continuous {
            self.restored = false;
            if let (Some(database), Some(key)) = (&self.database, &self.key) {
                delete(database, key);
            }
        }
    }
}

/// Called before a connect opens its socket with `token`: `true` if a saved view is being looked for first, and
/// the connect goes on once it is found, refused or timed out.
pub(super) fn load_first(shared: &Rc<RefCell<Client>>, token: &Option<String>) -> bool {
    let load = {
        let mut guard = shared.borrow_mut();
        let client = &mut *guard;
        let fresh = client.assembler.positions().is_empty();
        let watch = client.assembler.watch().clone();
        let Some(saved) = client.saved.as_mut() else {
            return false;
        };
        if !std::mem::take(&mut saved.load_due) {
            return false;
        }
        saved.key = Some(record_key(&saved.url, &watch, token.as_deref()));
        // Only an empty client takes a view; one that has windows resumes from them.
        if !fresh {
            return false;
        }
        saved.loads += 1;
        saved.loading = Some(saved.loads);
        saved.loads
    };
    let timeout = {
        let weak = Rc::downgrade(shared);
        let token = token.clone();
        Closure::once_into_js(move || {
            if let Some(shared) = weak.upgrade() {
                loaded(&shared, load, None, token);
            }
        })
    };
    if let Some(window) = web_sys::window() {
        let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(
            timeout.unchecked_ref(),
            LOAD_TIMEOUT_MS,
        );
    }
    let token = token.clone();
    with_database(shared, move |shared, database| {
        let key = shared.borrow().saved.as_ref().and_then(|s| s.key.clone());
        let request = database.zip(key).and_then(|(database, key)| {
            let transaction = database
                .transaction_with_str_and_mode(VIEWS, IdbTransactionMode::Readonly)
                .ok()?;
            transaction.object_store(VIEWS).ok()?.get(&key.into()).ok()
        });
        match request {
            Some(request) => when_done(&request, &Rc::downgrade(shared), move |shared, view| {
                loaded(shared, load, view, token)
            }),
            None => loaded(shared, load, None, token),
        }
    });
    true
}

/// The load numbered `load` ended with `view` (`None`: nothing saved, an error, or the timeout): restores it, if
/// this load is still the one awaited, and connects.
fn loaded(shared: &Rc<RefCell<Client>>, load: u32, view: Option<JsValue>, token: Option<String>) {
    {
        let mut guard = shared.borrow_mut();
        let client = &mut *guard;
        let Some(saved) = client.saved.as_mut() else {
            return;
        };
        if saved.loading != Some(load) {
            return;
        }
        saved.loading = None;
        let database = saved.database.clone();
        let key = saved.key.clone();
        let bytes = view.filter(|v| !v.is_undefined() && !v.is_null()).map(|v| {
            match v.dyn_into::<Uint8Array>() {
                Ok(bytes) => Ok(bytes.to_vec()),
                Err(_) => Err(text!("the record is not bytes").to_string()),
            }
        });
        if let Some(bytes) = bytes {
            client.assembler.observer_mut().set_now(js_sys::Date::now());
            let restored =
                bytes.and_then(|b| client.assembler.restore_view(&b).map_err(|e| e.to_string()));
            match restored {
                Ok(()) => {
                    if let Some(saved) = client.saved.as_mut() {
                        saved.restored = true;
                    }
                    client.all_changed = true;
                    client.request_frame();
                }
                Err(why) => {
                    web_sys::console::warn_1(&words(&format!(
                        "replicast: the saved view cannot be used ({why}); joining with a snapshot"
                    )));
                    if let (Some(database), Some(key)) = (&database, &key) {
                        delete(database, key);
                    }
                    client.reset_windows();
                }
            }
        }
    }
    open_with(shared, token);
}

/// Saves the view now, if it is worth it: live, changed since the last save, and the subscription's record named.
/// `done`, if given, is called with whether a view was written.
pub(super) fn save(shared: &Rc<RefCell<Client>>, done: Option<js_sys::Function>) {
    let report = |written: bool| {
        if let Some(done) = &done {
            let _ = done.call1(&JsValue::NULL, &written.into());
        }
    };
    let mut guard = shared.borrow_mut();
    let client = &mut *guard;
    let live = client.link.status() == replicast_assembler::link::Status::Live;
    let Some(saved) = client.saved.as_mut() else {
        return report(false);
    };
    let (Some(database), Some(key)) = (saved.database.clone(), saved.key.clone()) else {
        return report(false);
    };
    // Between a hello and its snapshot the windows are not at the positions: only a live view is saved.
    if !live || !saved.dirty {
        return report(false);
    }
    let Some(view) = client.assembler.save_view() else {
        return report(false);
    };
    saved.dirty = false;
    if view.len() > saved.settings.max_bytes {
        delete(&database, &key);
        return report(false);
    }
    let written = write(&database, &key, &view, done.clone());
    if !written {
        report(false);
    }
    evict(&database, &key, saved.settings.max_bytes);
}

/// Writes `view` under `key` in one transaction, committed at once; `done` hears whether it completed.
fn write(database: &IdbDatabase, key: &str, view: &[u8], done: Option<js_sys::Function>) -> bool {
    let Some((transaction, views, sizes)) = both_stores(database) else {
        return false;
    };
    let size = Object::new();
    let _ = Reflect::set(&size, &"key".into(), &key.into());
    let _ = Reflect::set(&size, &"bytes".into(), &(view.len() as f64).into());
    let _ = Reflect::set(&size, &"savedAt".into(), &js_sys::Date::now().into());
    let key = JsValue::from(key);
    let written = views
        .put_with_key(&Uint8Array::from(view), &key)
        .and_then(|_| sizes.put_with_key(&size, &key));
    if written.is_err() {
        let _ = transaction.abort();
        return false;
    }
    if let Some(done) = done {
        let finished = Closure::once_into_js(move |event: JsValue| {
            let kind = Reflect::get(&event, &"type".into())
                .ok()
                .and_then(|t| t.as_string());
            let _ = done.call1(
                &JsValue::NULL,
                &(kind.as_deref() == Some("complete")).into(),
            );
        });
        transaction.set_oncomplete(Some(finished.unchecked_ref()));
        transaction.set_onabort(Some(finished.unchecked_ref()));
    }
    // Committed now rather than when the page's task ends: a page going away (`pagehide`) still completes it.
    commit(&transaction);
    true
}

/// Deletes the oldest saved views other than `keep` while all of them hold more than `max_bytes`.
fn evict(database: &IdbDatabase, keep: &str, max_bytes: usize) {
    let Some((_transaction, views, sizes)) = both_stores(database) else {
        return;
    };
    let Ok(request) = sizes.get_all() else {
        return;
    };
    let keep = keep.to_string();
    let request_done = request.clone();
    let on_sizes = Closure::once_into_js(move |_event: JsValue| {
        let Ok(all) = request_done.result() else {
            return;
        };
        let field = |entry: &JsValue, name: &str| Reflect::get(entry, &name.into()).ok();
        let mut entries: Vec<(f64, String, f64)> = Array::from(&all)
            .iter()
            .filter_map(|entry| {
                let key = field(&entry, "key")?.as_string()?;
                let bytes = field(&entry, "bytes")?.as_f64()?;
                let saved_at = field(&entry, "savedAt")?.as_f64()?;
                Some((saved_at, key, bytes))
            })
            .collect();
        let mut total: f64 = entries.iter().map(|(_, _, bytes)| bytes).sum();
        replicast_assembler::sort::sort_by(&mut entries, |a, b| a.0.total_cmp(&b.0));
        for (_, key, bytes) in entries {
            if total <= max_bytes as f64 {
                break;
            }
            if key != keep {
                let key = JsValue::from(key);
                let _ = views.delete(&key);
                let _ = sizes.delete(&key);
                total -= bytes;
            }
        }
    });
    request.set_onsuccess(Some(on_sizes.unchecked_ref()));
}

/// Deletes the view saved under `key`.
fn delete(database: &IdbDatabase, key: &str) {
    if let Some((transaction, views, sizes)) = both_stores(database) {
        let key = JsValue::from(key);
        let _ = views.delete(&key);
        let _ = sizes.delete(&key);
        commit(&transaction);
    }
}

/// Commits `transaction` now instead of when the task that made it ends. web-sys marks `commit` deprecated (its
/// WebIDL once did), though it is standard and in every current browser; where it is missing, the transaction
/// commits at the task's end as before.
#[allow(deprecated)]
fn commit(transaction: &IdbTransaction) {
    let _ = transaction.commit();
}

fn both_stores(database: &IdbDatabase) -> Option<(IdbTransaction, IdbObjectStore, IdbObjectStore)> {
    let names = Array::of2(&VIEWS.into(), &SIZES.into());
    let transaction = database
        .transaction_with_str_sequence_and_mode(&names, IdbTransactionMode::Readwrite)
        .ok()?;
    let views = transaction.object_store(VIEWS).ok()?;
    let sizes = transaction.object_store(SIZES).ok()?;
    Some((transaction, views, sizes))
}

/// Calls `then` with the database, opened (and its stores made) the first time; `None` if it cannot be opened.
/// Not if the client is gone by then.
fn with_database(
    shared: &Rc<RefCell<Client>>,
    then: impl FnOnce(&Rc<RefCell<Client>>, Option<IdbDatabase>) + 'static,
) {
    let opened = shared
        .borrow()
        .saved
        .as_ref()
        .and_then(|s| s.database.clone());
    if let Some(database) = opened {
        return then(shared, Some(database));
    }
    let request = web_sys::window()
        .and_then(|w| w.indexed_db().ok().flatten())
        .and_then(|factory| factory.open_with_u32(DATABASE, DATABASE_VERSION).ok());
    let Some(request) = request else {
        return then(shared, None);
    };
    let upgrading = request.clone();
    let on_upgrade = Closure::once_into_js(move |_event: JsValue| {
        let database = upgrading
            .result()
            .ok()
            .and_then(|r| r.dyn_into::<IdbDatabase>().ok());
        let Some(database) = database else {
            return;
        };
        for store in [VIEWS, SIZES] {
            if !database.object_store_names().contains(store) {
                let _ = database.create_object_store(store);
            }
        }
    });
    request.set_onupgradeneeded(Some(on_upgrade.unchecked_ref()));
    let request: &IdbRequest = request.as_ref();
    when_done(request, &Rc::downgrade(shared), move |shared, result| {
        let database = result.and_then(|r| r.dyn_into::<IdbDatabase>().ok());
        if let Some(database) = &database {
            // A newer page's upgrade in another tab waits for this connection to close.
            let closing = database.clone();
            let on_change = Closure::once_into_js(move |_event: JsValue| closing.close());
            database.set_onversionchange(Some(on_change.unchecked_ref()));
            if let Some(saved) = shared.borrow_mut().saved.as_mut() {
                saved.database = Some(database.clone());
            }
        }
        then(shared, database);
    });
}

/// Calls `then` once `request` succeeded (with its result) or failed (`None`); not if the client is gone by then.
fn when_done(
    request: &IdbRequest,
    weak: &Weak<RefCell<Client>>,
    then: impl FnOnce(&Rc<RefCell<Client>>, Option<JsValue>) + 'static,
) {
    let weak = weak.clone();
    let answered = request.clone();
    // One function for both outcomes, freed once called: a request ends in exactly one of them.
    let done = Closure::once_into_js(move |event: JsValue| {
        let kind = Reflect::get(&event, &"type".into())
            .ok()
            .and_then(|t| t.as_string());
        let result = (kind.as_deref() == Some("success"))
            .then(|| answered.result().ok())
            .flatten();
        if let Some(shared) = weak.upgrade() {
            then(&shared, result);
        }
    });
    request.set_onsuccess(Some(done.unchecked_ref()));
    request.set_onerror(Some(done.unchecked_ref()));
}

/// The record of a subscription: the relay's URL, the database, the window, the patterns, and who the token says
/// the page acts for.
fn record_key(url: &str, watch: &replicast_assembler::WatchConfig, token: Option<&str>) -> String {
    let patterns: Array = watch
        .patterns
        .iter()
        .map(|p| JsValue::from(String::from_utf8_lossy(p).into_owned()))
        .collect();
    let key = Array::new();
    key.push(&url.into());
    key.push(&watch.db.into());
    key.push(&(watch.window as f64).into());
    key.push(&patterns);
    key.push(&token.map(token_identity).unwrap_or_default().into());
    js_sys::JSON::stringify(&key)
        .ok()
        .and_then(|k| k.as_string())
        .unwrap_or_default()
}

/// Who a token says the page acts for, and what it may see: a signed token's `sub` and `replicast` claims (its
/// `exp` changes with each refresh, and must not). Empty for the relay's shared `--token`, which every page holding
/// it uses alike.
fn token_identity(token: &str) -> String {
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return String::new();
    };
    let mut base64: String = payload
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while !base64.len().is_multiple_of(4) {
        base64.push('=');
    }
    let claims = web_sys::window()
        .and_then(|w| w.atob(&base64).ok())
        .and_then(|json| js_sys::JSON::parse(&json).ok())
        .filter(JsValue::is_object);
    let Some(claims) = claims else {
        return String::new();
    };
    let identity = Array::of2(
        &Reflect::get(&claims, &"sub".into()).unwrap_or_default(),
        &Reflect::get(&claims, &"replicast".into()).unwrap_or_default(),
    );
    js_sys::JSON::stringify(&identity)
        .ok()
        .and_then(|s| s.as_string())
        .unwrap_or_default()
}
