//! When the page hears of changes: at most once per animation frame, however many messages arrived, with the keys
//! that changed; the status listeners when the status changes, the synced listeners when the view becomes exact.
//! Callbacks are called with no borrow of the
//! client held, since they read it.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::Function;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::super::listeners;
use super::super::objects::{object, strings};
use super::super::view;
use super::Client;
use replicast_assembler::link::Status;

/// Tells the page's status listeners about a new status, and its synced listeners that the view became exact;
/// called with no borrow held, since the callbacks may read the client.
pub(super) fn report_status(shared: &Rc<RefCell<Client>>) {
    let report = shared.borrow_mut().status_to_report();
    if let Some((callbacks, status)) = report {
        listeners::call_each(&callbacks, &status.into(), "onStatus");
    }
    let synced = shared.borrow_mut().synced_to_report();
    if let Some(callbacks) = synced {
        listeners::call_each(&callbacks, &JsValue::UNDEFINED, "onSynced");
    }
}

pub(super) fn frame(shared: &Rc<RefCell<Client>>) {
    let (callbacks, change) = {
        let mut client = shared.borrow_mut();
        client.frame_pending = false;
        if client.change_listeners.is_empty() {
            return;
        }
        let callbacks = client.change_listeners.to_call();
        let changed = client.assembler.observer_mut().take_changed();
        let keys: Vec<String> = if std::mem::take(&mut client.all_changed) {
            view::keys(&client.assembler)
        } else {
            changed
        };
        // A `ReplicastChange` (types.d.ts).
        let change = object(&[
            ("keys", strings(keys)),
            ("status", client.link.status().as_str().into()),
            ("offset", (client.assembler.offset() as f64).into()),
            ("positions", view::positions(&client.assembler)),
            ("relay", client.relays.current().into()),
        ]);
        (callbacks, change)
    };
    // Called with no borrow held: the callbacks read windows through the same client.
    listeners::call_each(&callbacks, &change, "onChange");
}

impl Client {
    /// Asks for one animation frame, however many messages arrive before it.
    pub(super) fn request_frame(&mut self) {
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
}
