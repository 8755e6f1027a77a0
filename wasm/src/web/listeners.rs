//! The page's callbacks for one kind of event (`onChange`, `onStatus`, `onSynced`): any number of them, each
//! registration answered with a function that removes it, so that a component can stop listening when it goes
//! away without closing the client.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::Function;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::error::words;

/// Callbacks in the order they were registered, each under an id its unsubscribe function names.
#[derive(Default)]
pub(super) struct Listeners {
    next: u32,
    callbacks: Vec<(u32, Function)>,
}

impl Listeners {
    pub(super) fn add(&mut self, callback: Function) -> u32 {
        self.next = self.next.wrapping_add(1);
        self.callbacks.push((self.next, callback));
        self.next
    }

    pub(super) fn remove(&mut self, id: u32) {
        self.callbacks.retain(|(held, _)| *held != id);
    }

    pub(super) fn is_empty(&self) -> bool {
        self.callbacks.is_empty()
    }

    /// The callbacks to call, copied out: they run with no borrow of the client held, and one of them may
    /// register or remove another.
    pub(super) fn to_call(&self) -> Vec<Function> {
        self.callbacks.iter().map(|(_, f)| f.clone()).collect()
    }
}

/// Calls each of `callbacks` with `value`; one that throws is reported on the console and the others still run.
pub(super) fn call_each(callbacks: &[Function], value: &JsValue, what: &str) {
    for callback in callbacks {
        if let Err(err) = callback.call1(&JsValue::NULL, value) {
            web_sys::console::error_2(
                &words(&format!("replicast: the {what} callback threw")),
                &err,
            );
        }
    }
}

/// The function a registration returns: removes callback `id` from the listeners `pick` chooses in `owner`,
/// and does nothing once `owner` is gone or when called again.
pub(super) fn unsubscribe<T: 'static>(
    owner: &Rc<RefCell<T>>,
    pick: fn(&mut T) -> &mut Listeners,
    id: u32,
) -> Function {
    let owner = Rc::downgrade(owner);
    Closure::<dyn FnMut()>::new(move || {
        if let Some(owner) = owner.upgrade() {
            pick(&mut owner.borrow_mut()).remove(id);
        }
    })
    .into_js_value()
    .unchecked_into()
}
