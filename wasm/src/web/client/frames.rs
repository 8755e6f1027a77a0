//! When the page hears of changes: at most once per animation frame, however many messages arrived, with the keys
//! that changed, and the status callback when the status changes. Callbacks are called with no borrow of the
//! client held, since they read it.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::Function;
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::super::view;
use super::Client;

#[derive(Serialize)]
struct Change<'a> {
    keys: Vec<String>,
    status: &'a str,
    offset: f64,
    positions: Vec<view::Position>,
    relay: &'a str,
}

/// Tells the page's status callback about a new status; called with no borrow held, since the callback may read
/// the client.
pub(super) fn report_status(shared: &Rc<RefCell<Client>>) {
    let report = shared.borrow_mut().status_to_report();
    if let Some((callback, status)) = report {
        if let Err(err) = callback.call1(&JsValue::NULL, &status.into()) {
            web_sys::console::error_2(&"replicast: the onStatus callback threw".into(), &err);
        }
    }
}

pub(super) fn frame(shared: &Rc<RefCell<Client>>) {
    let (callback, change) = {
        let mut client = shared.borrow_mut();
        client.frame_pending = false;
        let Some(callback) = client.change_callback.clone() else {
            return;
        };
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
            positions: view::positions(&client.assembler),
            relay: client.relays.current(),
        };
        (callback, serde_wasm_bindgen::to_value(&change))
    };
    // Called with no borrow held: the callback reads windows through the same client.
    match change {
        Ok(change) => {
            if let Err(err) = callback.call1(&JsValue::NULL, &change) {
                web_sys::console::error_2(&"replicast: the onChange callback threw".into(), &err);
            }
        }
        Err(err) => web_sys::console::error_1(&format!("replicast: {err}").into()),
    }
}

impl Client {
    /// Asks for one animation frame, however many messages arrive before it.
    pub(super) fn request_frame(&mut self) {
        if self.frame_pending || self.change_callback.is_none() {
            return;
        }
        if let (Some(window), Some(on_frame)) = (web_sys::window(), self.on_frame.as_ref()) {
            self.frame_pending = window
                .request_animation_frame(on_frame.as_ref().unchecked_ref())
                .is_ok();
        }
    }

    /// The status callback and the status to tell it, if the status changed since it was last told.
    pub(super) fn status_to_report(&mut self) -> Option<(Function, &'static str)> {
        let status = self.link.status();
        if self.reported_status == Some(status) {
            return None;
        }
        self.reported_status = Some(status);
        self.request_frame();
        Some((self.status_callback.clone()?, status.as_str()))
    }
}
