//! What the windows tell whoever follows them (the aggregation): items entering and leaving a key's window.
//!
//! Every item a window holds has an [`ItemId`], unique within one assembler and never reused, so a follower can
//! key its own state by it and learn of a removal in O(1) without comparing bytes. A changed item (a re-scored
//! sorted-set member, an `LSET`, a hash field after `HSET`) is reported as the old id removed and a new id added.
//!
//! What an item is, per type: a sorted-set member (`Value`, `time_ms` its score), a stream entry (`Fields`, its
//! field/value pairs, `time_ms` its id's milliseconds), a list item (`Value`), a hash *field* (`Fields` of one
//! pair `[field, value]`: each field is its own item, so a change costs one removal and one addition, not the
//! whole hash), a string's value (`Value`). A window that moves to another key (`RENAME`, `COPY`) is cleared
//! under the old key and its items added under the new one with new ids.
//!
//! With the crate's feature `entry-ids` (the relay's build; not the browser's), a stream entry enters through
//! [`WindowObserver::entry_added`], which also gives its whole id: `time_ms` alone drops the sequence number.
//! With the feature `withdrawn-topups` (the relay's build too), [`WindowObserver::topup_withdrawn`] tells of a
//! key that stopped being exact and was made exact again before the top-ups were taken (`ZUNIONSTORE k …; DEL k`).

/// Identity of one item in one window; unique within an assembler for its whole life.
pub type ItemId = u64;

/// What an item holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Payload<'a> {
    /// One value: a sorted-set member, a list item, a string's value. Often a JSON object.
    Value(&'a [u8]),
    /// Field/value pairs, alternating: a stream entry, or a hash's fields.
    Fields(&'a [Vec<u8>]),
}

/// One item entering a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Item<'a> {
    pub id: ItemId,
    /// The item's own time in Unix milliseconds when it has one: a sorted-set score (collectors score samples by
    /// time), a stream entry id's milliseconds. `None` for lists, hashes and strings, which the follower may
    /// stamp with the arrival time.
    pub time_ms: Option<f64>,
    pub payload: Payload<'a>,
}

/// Follows the windows of an assembler. Calls come in stream order, all within one `push_message`.
pub trait WindowObserver {
    /// `item` entered `key`'s window.
    fn added(&mut self, key: &[u8], item: Item<'_>);
    /// The stream entry `ms-seq` entered `key`'s window as `item` (its fields). By default, [`Self::added`].
    #[cfg(feature = "entry-ids")]
    fn entry_added(&mut self, key: &[u8], _ms: u64, _seq: u64, item: Item<'_>) {
        self.added(key, item);
    }
    /// The item `id` left `key`'s window.
    fn removed(&mut self, key: &[u8], id: ItemId);
    /// `item` entered `key`'s full window and the item `removed` left it to make room: by default,
    /// [`Self::added`] then [`Self::removed`]. One call where a sample evicts the lowest one, the usual traffic.
    fn replaced(&mut self, key: &[u8], item: Item<'_>, removed: ItemId) {
        self.added(key, item);
        self.removed(key, removed);
    }
    /// `key`'s window was dropped whole (`DEL`, a flush, expiry, a snapshot replacing it, the source of a
    /// `RENAME`); no `removed` call follows for its items.
    fn key_cleared(&mut self, key: &[u8]);
    /// `key`'s top-up, requested since the last [`crate::StreamAssembler::take_topups`], was withdrawn: a command
    /// said what the key holds whole (a `DEL`, a `SET`, a flush) or a snapshot rebuilt it. The key was not exact
    /// from the request to this call, which `take_topups` no longer shows. By default, nothing.
    #[cfg(feature = "withdrawn-topups")]
    fn topup_withdrawn(&mut self, _key: &[u8]) {}
}

/// Follows nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoObserver;

impl WindowObserver for NoObserver {
    fn added(&mut self, _key: &[u8], _item: Item<'_>) {}
    fn removed(&mut self, _key: &[u8], _id: ItemId) {}
    fn key_cleared(&mut self, _key: &[u8]) {}
}
