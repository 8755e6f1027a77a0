//! The watched database as the assembler knows it: the windows of watched keys, which keys have an unknown
//! state (a top-up is due), and the top-ups to request. Commands (`crate::commands`) change it through an
//! [`Applying`], which carries what applying one command needs (where it comes from, its stream's `SELECT`ed
//! database, the observer) and whose [`Applying::update`] creates windows, checks types, reports to the
//! observer, and decides when a window can no longer be trusted without a top-up.
//!
//! With a relay following a Redis Cluster, commands come from several shards' streams. Each window has a home
//! shard, the one whose stream created it: only that stream changes it. A command of another shard on the key
//! means the key moved (a slot migration: `RESTORE-ASKING` on the new owner, `DEL` on the old one, the two
//! streams in no particular order), so the window becomes stale and a top-up is requested instead; the top-up's
//! snapshot, which the relay reads from the key's current owner and sends in that shard's stream, rebuilds the
//! window and makes that shard its home. With one Redis every window's home is shard 0.

use std::hash::{BuildHasherDefault, Hash, Hasher};

use crate::diagnostics::{Diagnostics, Problem};
use crate::observe::{ItemId, WindowObserver};
use crate::shard_set::ShardSet;
use crate::watch::WatchConfig;
use crate::windows::fast_hash::{same_bytes, FastHasher, FastMap, FastSet};
use crate::windows::{Body, Events, Inexact, Kind, Window};
use replicast_protocol::pattern::glob_match;
use replicast_protocol::quote::quoted_lossy;

/// Keys whose "watched?" decision is cached; the cache starts over when full.
const WATCH_CACHE: usize = 4096;

/// The windows by key. A `hashbrown` map rather than `std`'s, so that the hot lookup can compare keys with
/// [`same_bytes`] (through [`KeyBytes`]) instead of `memcmp`.
pub(crate) type Windows = hashbrown::HashMap<Vec<u8>, Window, BuildHasherDefault<FastHasher>>;

/// A key to look a window up by: hashed as the `Vec<u8>` keys are, compared with [`same_bytes`].
struct KeyBytes<'a>(&'a [u8]);

impl Hash for KeyBytes<'_> {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl hashbrown::Equivalent<Vec<u8>> for KeyBytes<'_> {
    #[inline]
    fn equivalent(&self, key: &Vec<u8>) -> bool {
        same_bytes(self.0, key)
    }
}

#[derive(Debug)]
pub(crate) struct Keyspace {
    pub(crate) watch: WatchConfig,
    /// Hashed, not ordered: every command looks its key up, and ordered lookups compare whole keys several
    /// times each (through wasm's byte-by-byte `memcmp`). Iterations that promise key order sort.
    pub(crate) windows: Windows,
    /// Watched keys without a window whose state in Redis is unknown (a top-up is due for each), with the shard
    /// whose stream said so. Hashed, like every key set here: what needs key order sorts when it reads.
    pub(crate) unknown: FastMap<Vec<u8>, u16>,
    /// Shards whose watched database was swapped (`SWAPDB`): no state of their keys is known until a full
    /// snapshot.
    pub(crate) swapped: ShardSet,
    /// Keys whose window another shard's stream touched (the key is moving there), with that shard, until a
    /// snapshot: when the home shard then deletes the key, its state is unknown, not "deleted".
    moved: FastMap<Vec<u8>, u16>,
    pub(crate) topups: FastSet<Vec<u8>>,
    pub(crate) next_id: ItemId,
    watched: FastMap<Vec<u8>, bool>,
    pub(crate) diagnostics: Diagnostics,
}

/// Where the command being applied comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin {
    /// The shard whose stream it is in.
    pub(crate) shard: u16,
    /// The stream offset where it ends, for diagnostics.
    pub(crate) offset: u64,
    /// It is part of a snapshot, which replaces the windows it names whatever their home shard.
    pub(crate) authoritative: bool,
}

/// Applying one command (or one message of the relay, like a stale notice) to the keyspace: the keyspace, the
/// observer its windows report to, where the command comes from, and its stream's `SELECT`ed database. Made for
/// each command and handed to `crate::commands`, so that nothing about the command being applied is left in the
/// keyspace between commands.
pub(crate) struct Applying<'a> {
    pub(crate) keyspace: &'a mut Keyspace,
    observer: &'a mut dyn WindowObserver,
    pub(crate) origin: Origin,
    /// The database `SELECT`ed in the stream being applied; `None` from a join until the stream's next `SELECT`
    /// (the one before the join's offset was not sent). The relay sends a session only its database's frames and
    /// those that write into it from another (`MOVE`, `COPY … DB`), so until then commands are taken as the
    /// watched database's, except a `COPY` whose source database that leaves open.
    pub(crate) selected_db: &'a mut Option<u32>,
    /// Set when a window changed (never cleared here: the caller's flag covers a whole message).
    changed: &'a mut bool,
}

/// Whether `key` matches a watched pattern, through the cache.
fn watched(watch: &WatchConfig, cache: &mut FastMap<Vec<u8>, bool>, key: &[u8]) -> bool {
    if let Some(&w) = cache.get(key) {
        return w;
    }
    let w = watch.patterns.iter().any(|p| glob_match(p, key));
    if cache.len() >= WATCH_CACHE {
        cache.clear();
    }
    cache.insert(key.to_vec(), w);
    w
}

impl Keyspace {
    pub(crate) fn new(watch: WatchConfig) -> Self {
        Keyspace {
            watch,
            windows: Windows::default(),
            unknown: FastMap::default(),
            swapped: ShardSet::new(),
            moved: FastMap::default(),
            topups: FastSet::default(),
            next_id: 0,
            watched: FastMap::default(),
            diagnostics: Diagnostics::default(),
        }
    }

    /// The windows in key order.
    pub(crate) fn sorted_windows(&self) -> Vec<(&[u8], &Window)> {
        let mut windows: Vec<(&[u8], &Window)> = self
            .windows
            .iter()
            .map(|(k, w)| (k.as_slice(), w))
            .collect();
        crate::sort::sort_by_bytes(&mut windows, |&(k, _)| k);
        windows
    }

    /// Watched keys without a window whose state is unknown, in key order.
    pub(crate) fn unknown_keys(&self) -> impl Iterator<Item = &[u8]> {
        let mut keys: Vec<&[u8]> = self.unknown.keys().map(Vec::as_slice).collect();
        crate::sort::sort(&mut keys);
        keys.into_iter()
    }

    pub(crate) fn is_watched(&mut self, key: &[u8]) -> bool {
        self.windows.contains_key(key) || watched(&self.watch, &mut self.watched, key)
    }

    /// After `key`'s window was dropped by its home shard: if another shard had touched it, the key lives there
    /// now, in a state unknown until the top-up.
    fn moved_away(&mut self, key: &[u8]) {
        if let Some(to) = self.moved.remove(key) {
            self.unknown.insert(key.to_vec(), to);
            Self::request_topup(&mut self.topups, &mut self.diagnostics, key);
        }
    }

    /// Marks `window` stale and requests its top-up, once.
    fn make_stale(
        window: &mut Window,
        key: &[u8],
        topups: &mut FastSet<Vec<u8>>,
        diagnostics: &mut Diagnostics,
    ) {
        if !window.stale {
            window.stale = true;
            Self::request_topup(topups, diagnostics, key);
        }
    }

    pub(crate) fn request_topup(
        topups: &mut FastSet<Vec<u8>>,
        diagnostics: &mut Diagnostics,
        key: &[u8],
    ) {
        if !topups.contains(key) {
            topups.insert(key.to_vec());
            diagnostics.topups_requested += 1;
        }
    }

    /// Drops `key`'s window whatever its home shard, and whatever was pending for the key; returns whether
    /// there was a window.
    fn remove_key(&mut self, observer: &mut dyn WindowObserver, key: &[u8]) -> bool {
        self.unknown.remove(key);
        if self.topups.remove(key) {
            #[cfg(feature = "withdrawn-topups")]
            observer.topup_withdrawn(key);
        }
        if self.windows.remove(key).is_some() {
            observer.key_cleared(key);
            return true;
        }
        false
    }

    /// Drops the windows whose deadline is at or before `now_ms`; returns how many.
    pub(crate) fn expire(&mut self, observer: &mut dyn WindowObserver, now_ms: u64) -> usize {
        let mut due: Vec<Vec<u8>> = self
            .windows
            .iter()
            .filter(|(_, w)| w.expires_at_ms.is_some_and(|at| at <= now_ms))
            .map(|(k, _)| k.clone())
            .collect();
        crate::sort::sort(&mut due);
        for key in &due {
            self.remove_key(observer, key);
        }
        due.len()
    }
}

impl<'a> Applying<'a> {
    pub(crate) fn new(
        keyspace: &'a mut Keyspace,
        observer: &'a mut dyn WindowObserver,
        origin: Origin,
        selected_db: &'a mut Option<u32>,
        changed: &'a mut bool,
    ) -> Self {
        Applying {
            keyspace,
            observer,
            origin,
            selected_db,
            changed,
        }
    }

    /// The same context for the command of the same stream that ends at `offset`.
    pub(crate) fn at(&mut self, offset: u64) -> Applying<'_> {
        Applying {
            keyspace: self.keyspace,
            observer: self.observer,
            origin: Origin {
                offset,
                ..self.origin
            },
            selected_db: self.selected_db,
            changed: self.changed,
        }
    }

    pub(crate) fn in_watched_db(&self) -> bool {
        self.selected_db
            .is_none_or(|db| db == self.keyspace.watch.db)
    }

    /// Whether the state of a watched key without a window is known (it does not exist, or has a type without
    /// windows, like a set).
    pub(crate) fn known(&self, key: &[u8]) -> bool {
        !self.keyspace.swapped.contains(self.origin.shard)
            && !self.keyspace.unknown.contains_key(key)
    }

    /// Whether `key`'s window has another home than the shard being applied: the command is then not applied,
    /// and the window becomes stale with a top-up requested (see the module's documentation).
    fn foreign(&mut self, key: &[u8]) -> bool {
        if self.origin.authoritative {
            return false;
        }
        let ks = &mut *self.keyspace;
        match ks.windows.get_mut(&KeyBytes(key)) {
            Some(window) if window.shard != self.origin.shard => {
                Keyspace::make_stale(window, key, &mut ks.topups, &mut ks.diagnostics);
                ks.moved.insert(key.to_vec(), self.origin.shard);
                true
            }
            _ => false,
        }
    }

    pub(crate) fn problem(&mut self, problem: Problem, message: impl Into<String>) {
        self.keyspace
            .diagnostics
            .record(problem, self.origin.offset, message.into());
    }

    /// A command that cannot be applied exactly (see `crate::commands`): `problem` is counted with `message`, and
    /// each watched key of `keys` becomes stale (or unknown, without a window) with a top-up requested.
    pub(crate) fn inexact(&mut self, problem: Problem, message: String, keys: &[&[u8]]) {
        self.problem(problem, message);
        for key in keys {
            self.mark_stale(key);
        }
    }

    /// A command with arguments Redis would not have propagated (a score it would refuse, an odd pair): what it
    /// did to `keys` is not known.
    pub(crate) fn bad_arguments(&mut self, command: &str, keys: &[&[u8]]) {
        self.inexact(
            Problem::BadArguments,
            format!("{command}: arguments Redis would not propagate; its keys are topped up"),
            keys,
        );
    }

    /// Applies `apply` to `key`'s window of `kind`. A missing window is created (empty) if `create` and the key
    /// is watched; a window of another kind is a wrong-type problem. `Err(Inexact)`, or a window left lacking
    /// items, makes it stale and requests a top-up; a window left empty that Redis deleted is removed.
    pub(crate) fn update(
        &mut self,
        key: &[u8],
        kind: Kind,
        create: bool,
        apply: impl FnOnce(&mut Window, &mut Events<'_>) -> Result<(), Inexact>,
    ) {
        let mut apply = Some(apply);
        self.update_with(
            key,
            kind,
            create,
            Change::Apply(&mut |window, events| match apply.take() {
                Some(apply) => apply(window, events),
                None => Ok(()),
            }),
        );
    }

    /// `ZADD key score member` without flags, nearly every command of a collector's stream: sets `member`'s score
    /// in `key`'s sorted-set window as [`Applying::update`] would with a closure calling
    /// [`ZsetWindow::insert`], without the closure.
    pub(crate) fn zset_insert(&mut self, key: &[u8], member: &[u8], score: f64) {
        self.update_with(key, Kind::Zset, true, Change::ZsetInsert { member, score });
    }

    /// [`Applying::update`]'s body, compiled once: generic over each command's closure, it was compiled into every
    /// command (two dozen copies of the lookup, the window's creation and the settling, in the browser's
    /// `.wasm` too). A closure is called once, through one indirect call; a plain `ZADD`'s insert directly.
    fn update_with(&mut self, key: &[u8], kind: Kind, create: bool, mut change: Change<'_, '_>) {
        let Origin {
            shard,
            offset,
            authoritative,
        } = self.origin;
        let ks = &mut *self.keyspace;
        if let Some(window) = ks.windows.get_mut(&KeyBytes(key)) {
            // The common case, one lookup: the window exists.
            if window.shard != shard && !authoritative {
                Keyspace::make_stale(window, key, &mut ks.topups, &mut ks.diagnostics);
                ks.moved.insert(key.to_vec(), shard);
                return;
            }
            let mut events = Events::new(key, &mut *self.observer, &mut ks.next_id);
            let outcome = change.apply_to(window, kind, &mut events);
            *self.changed |= events.reported() > 0;
            if let Applied::Full = outcome {
                // A full window neither lacks items nor is gone: nothing to settle.
                return;
            }
            let gone = settle(
                window,
                key,
                kind,
                outcome,
                &mut ks.topups,
                &mut ks.diagnostics,
                offset,
            );
            if gone {
                self.keyspace.windows.remove(key);
            }
            return;
        }
        if !create || !watched(&ks.watch, &mut ks.watched, key) {
            return;
        }
        let unknown = ks.swapped.contains(shard) || ks.unknown.remove(key).is_some();
        let mut window = Window::new(kind, ks.watch.window, !unknown);
        window.shard = shard;
        if unknown {
            window.stale = true;
            Keyspace::request_topup(&mut ks.topups, &mut ks.diagnostics, key);
        }
        let mut events = Events::new(key, &mut *self.observer, &mut ks.next_id);
        let outcome = change.apply_to(&mut window, kind, &mut events);
        *self.changed |= events.reported() > 0;
        let gone = settle(
            &mut window,
            key,
            kind,
            outcome,
            &mut ks.topups,
            &mut ks.diagnostics,
            offset,
        );
        if !gone {
            ks.windows.insert(key.to_vec(), window);
        }
    }

    /// Drops `key`'s window, if any: Redis deleted the key, or replaced it with something of another type.
    /// Its state is then known, so a pending top-up is withdrawn. A window of another shard stays (stale).
    pub(crate) fn drop_key(&mut self, key: &[u8]) {
        if self.foreign(key) {
            return;
        }
        self.remove_key(key);
        if !self.origin.authoritative {
            self.keyspace.moved_away(key);
        }
    }

    /// [`Applying::drop_key`], whatever the window's home shard.
    fn remove_key(&mut self, key: &[u8]) {
        if self.keyspace.remove_key(self.observer, key) {
            *self.changed = true;
        }
    }

    /// `key` now holds something the stream does not tell (a `ZUNIONSTORE` destination, a key moved in from
    /// another database): its window is dropped and, if watched, a top-up requested.
    pub(crate) fn mark_unknown(&mut self, key: &[u8]) {
        if self.foreign(key) {
            return;
        }
        self.remove_key(key);
        let ks = &mut *self.keyspace;
        ks.moved.remove(key);
        if watched(&ks.watch, &mut ks.watched, key) {
            ks.unknown.insert(key.to_vec(), self.origin.shard);
            Keyspace::request_topup(&mut ks.topups, &mut ks.diagnostics, key);
        }
    }

    /// A command changed `key` in a way its window cannot follow: the window stays, best effort, until the
    /// top-up.
    pub(crate) fn mark_stale(&mut self, key: &[u8]) {
        let ks = &mut *self.keyspace;
        match ks.windows.get_mut(key) {
            // Whatever the window's home: a stale window is what a command of another shard leaves too.
            Some(window) => Keyspace::make_stale(window, key, &mut ks.topups, &mut ks.diagnostics),
            None => self.mark_unknown(key),
        }
    }

    /// Takes `key`'s window out (for `RENAME`), reporting it cleared. A window of another shard stays (stale).
    pub(crate) fn take(&mut self, key: &[u8]) -> Option<Window> {
        if self.foreign(key) {
            return None;
        }
        let window = self.keyspace.windows.remove(key)?;
        self.observer.key_cleared(key);
        *self.changed = true;
        Some(window)
    }

    /// Puts `window` under `key` (for `RENAME`, `COPY`), replacing what was there, with fresh item ids; its home
    /// is the shard being applied. Over a window of another shard, nothing is put (that window goes stale).
    pub(crate) fn put(&mut self, key: &[u8], mut window: Window) {
        if self.foreign(key) {
            return;
        }
        self.remove_key(key);
        let ks = &mut *self.keyspace;
        if !ks.is_watched(key) {
            return;
        }
        window.shard = self.origin.shard;
        window.renumber(&mut Events::new(key, &mut *self.observer, &mut ks.next_id));
        if window.stale {
            Keyspace::request_topup(&mut ks.topups, &mut ks.diagnostics, key);
        }
        ks.windows.insert(key.to_vec(), window);
        *self.changed = true;
    }

    /// Sets when `key` expires, if it has a window (of the shard being applied).
    pub(crate) fn set_expiry(&mut self, key: &[u8], at_ms: Option<u64>) {
        if self.foreign(key) {
            return;
        }
        if let Some(window) = self.keyspace.windows.get_mut(key) {
            window.expires_at_ms = at_ms;
            *self.changed = true;
        }
    }

    /// Drops every window whose home is the shard being applied (`FLUSHDB`, `FLUSHALL`, `SWAPDB`, a stream
    /// restart): in a cluster, a node's flush empties that node's keys only. `known` says whether the database is
    /// then known (empty after a flush) or unknown (swapped with another).
    pub(crate) fn clear(&mut self, known: bool) {
        let shard = self.origin.shard;
        let ks = &mut *self.keyspace;
        let mut keys: Vec<Vec<u8>> = ks
            .windows
            .extract_if(|_, w| w.shard == shard)
            .map(|(k, _)| k)
            .collect();
        crate::sort::sort(&mut keys);
        ks.unknown.retain(|_, s| *s != shard);
        for key in keys {
            self.observer.key_cleared(&key);
            *self.changed = true;
            ks.moved_away(&key);
        }
        let (windows, unknown) = (&ks.windows, &ks.unknown);
        ks.topups.retain(|k| {
            let pending = windows.contains_key(k.as_slice()) || unknown.contains_key(k.as_slice());
            #[cfg(feature = "withdrawn-topups")]
            if !pending {
                self.observer.topup_withdrawn(k);
            }
            pending
        });
        if known {
            ks.swapped.remove(shard);
        } else {
            ks.swapped.insert(shard);
        }
    }

    /// After a snapshot rebuilt `key`: its window (if any) is exact again, complete if it holds fewer items
    /// than the capacity (Redis then gave everything it had), and its home is the snapshot's shard.
    pub(crate) fn snapshot_done(&mut self, key: &[u8]) {
        let ks = &mut *self.keyspace;
        ks.moved.remove(key);
        ks.unknown.remove(key);
        if ks.topups.remove(key) {
            #[cfg(feature = "withdrawn-topups")]
            self.observer.topup_withdrawn(key);
        }
        let capacity = ks.watch.window;
        if let Some(window) = ks.windows.get_mut(key) {
            window.stale = false;
            window.shard = self.origin.shard;
            let short = window.len() < capacity;
            match &mut window.body {
                Body::Zset(w) => w.set_complete(short),
                Body::Stream(w) => w.set_complete(short),
                Body::List(w) => w.set_complete(short),
                Body::Hash(_) | Body::String(_) => {}
            }
        }
    }

    /// Forgets that `key`'s state was unknown: a command gave its whole value (unless the key's window has
    /// another home shard, and the command was not applied).
    pub(crate) fn drop_unknown(&mut self, key: &[u8]) {
        let shard = self.origin.shard;
        let ks = &mut *self.keyspace;
        if !self.origin.authoritative && ks.windows.get(key).is_some_and(|w| w.shard != shard) {
            return;
        }
        ks.unknown.remove(key);
        if ks.topups.remove(key) {
            #[cfg(feature = "withdrawn-topups")]
            self.observer.topup_withdrawn(key);
        }
    }
}

/// What [`apply_to`] found.
enum Applied {
    /// The window is of another kind than the command's.
    WrongType,
    /// The command was applied; `false` if not exactly.
    Exact(bool),
    /// The command was applied exactly and left the window full, with a member at least (so it lacks no item and
    /// is not gone): a new sample in a window that has filled, the commonest outcome of all.
    Full,
}

/// What [`Applying::update_with`] does to the window it found or created.
enum Change<'c, 'm> {
    /// A command's closure.
    Apply(&'c mut dyn FnMut(&mut Window, &mut Events<'_>) -> Result<(), Inexact>),
    /// [`ZsetWindow::insert`] of one member, the commonest change of all, without the closure's indirect call.
    ZsetInsert { member: &'m [u8], score: f64 },
}

impl Change<'_, '_> {
    /// Applies the change, of a command of `kind`, to `window`, reporting to `events`.
    #[inline]
    fn apply_to(&mut self, window: &mut Window, kind: Kind, events: &mut Events<'_>) -> Applied {
        match self {
            Change::ZsetInsert { member, score } => match &mut window.body {
                Body::Zset(w) => {
                    w.insert(member, *score, events);
                    if w.len() >= w.capacity() && !w.is_empty() {
                        return Applied::Full;
                    }
                    // A member rescored below an incomplete window leaves it short: `settle` sees it lacking.
                    Applied::Exact(true)
                }
                _ => Applied::WrongType,
            },
            Change::Apply(apply) => {
                if window.kind() != kind {
                    return Applied::WrongType;
                }
                Applied::Exact(apply(window, events).is_ok())
            }
        }
    }
}

/// After [`Change::apply_to`]: a window that cannot be trusted becomes stale with a top-up requested. Returns whether
/// the window is gone (Redis deleted the key).
#[inline]
fn settle(
    window: &mut Window,
    key: &[u8],
    kind: Kind,
    applied: Applied,
    topups: &mut FastSet<Vec<u8>>,
    diagnostics: &mut Diagnostics,
    offset: u64,
) -> bool {
    match applied {
        Applied::WrongType => {
            wrong_type(window, key, kind, topups, diagnostics, offset);
            false
        }
        Applied::Full => false,
        Applied::Exact(exact) => {
            if !exact || window.lacks_items() {
                Keyspace::make_stale(window, key, topups, diagnostics);
            }
            window.gone()
        }
    }
}

/// A command of `kind` on `key`, whose window is of another type: Redis refuses such a command and propagates
/// nothing, so what the window holds is not what Redis holds. Out of line: [`settle`] is on every command's path,
/// this on almost none.
#[cold]
#[inline(never)]
fn wrong_type(
    window: &mut Window,
    key: &[u8],
    kind: Kind,
    topups: &mut FastSet<Vec<u8>>,
    diagnostics: &mut Diagnostics,
    offset: u64,
) {
    diagnostics.record(
        Problem::WrongType,
        offset,
        format!(
            "a {} command on {}, a {}: topped up",
            kind.name(),
            quoted_lossy(key),
            window.kind().name()
        ),
    );
    Keyspace::make_stale(window, key, topups, diagnostics);
}
