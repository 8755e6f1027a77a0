//! The browser API, compiled only for `wasm32`: what JavaScript sees of the assembler.
//!
//! - [`Assembler`]: the StreamAssembler alone, for pages that bring their own socket and drawing.
//! - [`Replicast`]: the client a page uses: a WebSocket to the relay, reconnects and resumes, the assembler, and
//!   one change callback per animation frame.
//! - `reads`: what both let a page read (windows, series, aggregates, positions, diagnostics), one API for both.
//!
//! Bytes cross into wasm once per WebSocket message and results cross out once per frame, never per command.
//!
//! Not in the shipped package: `rdb` (`RdbScan`, feature `rdb`) and `bench` (`RespBench`, `AssemblerBench`,
//! feature `bench`), built for bench/ and for pages that read RDB files.

#[cfg(feature = "bench")]
pub mod bench;
mod client;
mod error;
mod follow;
mod listeners;
mod objects;
#[cfg(feature = "rdb")]
pub mod rdb;
mod reads;
mod sends;
mod view;

use std::cell::{Ref, RefCell, RefMut};
use std::rc::Rc;

use wasm_bindgen::prelude::*;

use error::{replicast_error, typed, ErrorCode};
use follow::Follow;
use reads::{read_api, ReadWindows};
use replicast_assembler::assembler::{Outcome, StreamAssembler};

pub use client::Replicast;

// The types the classes' methods name (options, changes, windows, statistics), declared in TypeScript beside the
// code and copied into the package's `.d.ts`.
#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = include_str!("types.d.ts");

/// The StreamAssembler alone: feed it the relay's binary messages yourself, read the windows of the keys it
/// watches. Works wherever wasm does, Node.js included.
#[wasm_bindgen]
pub struct Assembler {
    inner: Windows,
}

/// Where an [`Assembler`]'s windows are: its own, or a [`Replicast`]'s. `Replicast` exports no reads of its own:
/// the glue gives it `Assembler`'s, called on the `Assembler` of its windows that `Replicast.__reads` makes
/// (`scripts/wasm-reads.mjs`), so that the read API is exported once (each export is a shim in the `.wasm`).
// wasm-bindgen keeps every `Assembler` in a box of its own: a smaller client variant would save no memory.
#[allow(clippy::large_enum_variant)]
enum Windows {
    /// In a cell so that reads take `&self`.
    Own(RefCell<StreamAssembler<Follow>>),
    /// The client's, shared with its socket's callbacks, with the count of notices the relay sent.
    Client(Rc<RefCell<client::Client>>),
}

impl Assembler {
    /// An `Assembler` that reads (and would apply to) `client`'s windows.
    pub(super) fn of_client(client: Rc<RefCell<client::Client>>) -> Assembler {
        Assembler {
            inner: Windows::Client(client),
        }
    }

    /// The windows to read, with the count of notices the relay sent (none for an `Assembler`'s own): one
    /// function for every read, which calls its closure once.
    fn windows_ref(&self) -> (Ref<'_, StreamAssembler<Follow>>, u64) {
        match &self.inner {
            Windows::Own(windows) => (windows.borrow(), 0),
            Windows::Client(client) => {
                let client = client.borrow();
                let notices = client.notices;
                (Ref::map(client, |c| &c.assembler), notices)
            }
        }
    }

    fn windows(&self) -> RefMut<'_, StreamAssembler<Follow>> {
        match &self.inner {
            Windows::Own(windows) => windows.borrow_mut(),
            Windows::Client(client) => RefMut::map(client.borrow_mut(), |c| &mut c.assembler),
        }
    }
}

impl ReadWindows for Assembler {
    fn read<R>(&self, read: impl FnOnce(&StreamAssembler<Follow>, u64) -> R) -> R {
        let (windows, notices) = self.windows_ref();
        read(&windows, notices)
    }

    fn read_mut<R>(&self, read: impl FnOnce(&mut StreamAssembler<Follow>) -> R) -> R {
        read(&mut self.windows())
    }
}

read_api!(Assembler);

#[wasm_bindgen]
impl Assembler {
    /// Watches what `options` says (`patterns`, `keys`, `db`, `window`; the connection options are ignored).
    #[wasm_bindgen(constructor)]
    pub fn new(options: client::ReplicastOptions) -> Result<Assembler, JsValue> {
        let (watch, options) = client::options_watch(options)?;
        let follow =
            Follow::new(options.aggregate).map_err(|e| typed(e, ErrorCode::InvalidOptions))?;
        Ok(Assembler {
            inner: Windows::Own(RefCell::new(StreamAssembler::with_observer(watch, follow))),
        })
    }

    /// Applies one relay message; returns whether any window changed. Throws a `ReplicastError`: code
    /// `badMessage` for a malformed message, `resync` when the relay dropped the session's stream.
    pub fn push(&mut self, message: &[u8]) -> Result<bool, JsValue> {
        let mut inner = self.windows();
        inner.observer_mut().set_now(js_sys::Date::now());
        let outcome = inner
            .push_message(message)
            .map_err(|e| replicast_error(ErrorCode::BadMessage, &e.to_string()))?;
        match outcome {
            Outcome::Joined { .. } => Ok(true),
            Outcome::Applied { changed, .. } => Ok(changed),
            Outcome::Notice { .. }
            | Outcome::Ack { .. }
            | Outcome::Expiring { .. }
            | Outcome::Digest { .. } => Ok(false),
            Outcome::Resync { reason } => Err(replicast_error(
                ErrorCode::Resync,
                &format!("the relay dropped the session's stream: {reason}"),
            )),
        }
    }

    /// Keys whose windows changed since the last call, in key order.
    #[wasm_bindgen(js_name = takeChanged)]
    pub fn take_changed(&mut self) -> Vec<String> {
        self.windows().observer_mut().take_changed()
    }

    /// The windows and stream positions as bytes, to keep across a reload (what the client's `saveView` option
    /// keeps in IndexedDB); `undefined` before the first hello.
    #[wasm_bindgen(js_name = saveView)]
    pub fn save_view(&self) -> Option<Vec<u8>> {
        self.windows().save_view()
    }

    /// Starts this assembler, which has had no message yet, from `saveView`'s bytes; then resume the relay's
    /// stream at `positions()`. Throws a `ReplicastError` with code `badSavedView` for bytes that are not a whole,
    /// intact view of this assembler's subscription, and stays empty.
    #[wasm_bindgen(js_name = restoreView)]
    pub fn restore_view(&mut self, view: &[u8]) -> Result<(), JsValue> {
        let mut inner = self.windows();
        inner.observer_mut().set_now(js_sys::Date::now());
        inner
            .restore_view(view)
            .map_err(|e| replicast_error(ErrorCode::BadSavedView, &e.to_string()))
    }

    /// Drops windows whose TTL passed at `now_ms`; returns how many.
    pub fn tick(&mut self, now_ms: f64) -> usize {
        self.windows().tick(now_ms.max(0.0) as u64)
    }

    /// Keys whose windows need a top-up, each once.
    #[wasm_bindgen(js_name = takeTopups)]
    pub fn take_topups(&mut self) -> Vec<String> {
        self.windows()
            .take_topups()
            .into_iter()
            .map(|k| String::from_utf8_lossy(&k).into_owned())
            .collect()
    }
}
