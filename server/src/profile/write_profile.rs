//! The profile every link feeds and `/profile` reads ([`WriteProfile`]): its windows under one lock, what it may
//! show of a key (`--allow`, `--profile-prefixes`), and the command name of a frame. Links feed it through
//! [`LinkProfile`](super::LinkProfile) (link.rs), which `mod.rs` hands out, so this file and link.rs do not import
//! each other.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use replicast_protocol::pattern::Glob;
use serde_json::{json, Value as Json};

use super::recent_keys::Shown;
use super::since_start::SinceStart;
use super::space_saving::{Hashed, MAX_PROFILE_KEY};
use super::window::Window;
use crate::subscription::Allow;

/// Default length of a window (`--profile-window`).
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10);

/// What the profile shows and for how long a window runs.
pub struct ProfileSettings {
    pub window: Duration,
    /// Prefixes (Redis globs over the prefix, `session:` or `session:*`) that may be shown for keys outside
    /// `--allow` (`--profile-prefixes`); none by default.
    pub hidden_prefixes: Vec<String>,
}

/// The profile every link feeds and `/profile` reads.
pub struct WriteProfile {
    allow: Arc<Allow>,
    hidden_prefixes: Vec<Glob>,
    window: Duration,
    state: Mutex<State>,
}

impl fmt::Debug for WriteProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteProfile")
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

pub(super) struct State {
    pub(super) current: Window,
    pub(super) previous: Option<Window>,
    /// The windows before `current`, added up.
    pub(super) since_start: SinceStart,
}

/// A key's `:`-prefixes that the profile counts: its first part (`user:`) and its first two (`user:42:`) when
/// the key has more parts after them.
pub(super) fn prefixes(key: &[u8]) -> impl Iterator<Item = &[u8]> {
    memchr::memchr_iter(b':', key)
        .map(|i| &key[..=i])
        .take(2)
        .filter(move |p| p.len() < key.len())
}

/// What follows a RESP frame's argument count (`*N\r\n`): its command name as a bulk string (`$L\r\n<name>\r\n`)
/// and the rest, if the frame has that form.
pub(super) fn name_line(frame: &[u8]) -> Option<&[u8]> {
    let rest = frame.strip_prefix(b"*")?;
    // The argument count matters to the reader, not here: only where its line ends.
    let count_end = rest.iter().take(32).position(|&b| b == b'\r')?;
    rest[count_end..].strip_prefix(b"\r\n")
}

/// The command name of a RESP frame (`*N\r\n$L\r\n<name>\r\n…`), if it has that form: read once per command,
/// so byte by byte rather than line by line.
pub(super) fn command_name(frame: &[u8]) -> Option<&[u8]> {
    let rest = name_line(frame)?.strip_prefix(b"$")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let mut len = 0usize;
    for &digit in &rest[..digits] {
        len = len.checked_mul(10)?.checked_add((digit - b'0') as usize)?;
    }
    rest[digits..].strip_prefix(b"\r\n")?.get(..len)
}

impl WriteProfile {
    pub fn new(allow: Arc<Allow>, settings: ProfileSettings) -> Arc<Self> {
        let now = Instant::now();
        Arc::new(WriteProfile {
            allow,
            hidden_prefixes: settings
                .hidden_prefixes
                .iter()
                .map(|p| Glob::new(p.as_bytes()))
                .collect(),
            window: settings.window.max(Duration::from_secs(1)),
            state: Mutex::new(State {
                current: Window::new(now),
                previous: None,
                since_start: SinceStart::new(now),
            }),
        })
    }

    /// What the profile may show of `key`: whether `--allow` lets it be named, and which of its prefixes may be
    /// shown (all of an allowed key's, and others' where `--profile-prefixes` names them), with their hashes.
    pub(super) fn settle(&self, key: &[u8]) -> Shown {
        let allowed = self.allow.allows(key);
        let mut shown = Shown {
            allowed,
            prefixes: [None; 2],
        };
        for (shown, prefix) in shown.prefixes.iter_mut().zip(prefixes(key)) {
            if prefix.len() <= MAX_PROFILE_KEY
                && (allowed || self.hidden_prefixes.iter().any(|g| g.matches(prefix)))
            {
                *shown = Some((prefix.len() as u16, Hashed::new(prefix).hash()));
            }
        }
        shown
    }

    /// The state, its current window rotated if it ran its length.
    pub(super) fn state(&self, now: Instant) -> MutexGuard<'_, State> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = now.duration_since(state.current.started);
        if elapsed >= self.window {
            let ended = state.current.started + self.window;
            // A window with no write since is as long as the others: the previous is the last whole window.
            let idle = elapsed >= 2 * self.window;
            let next = Window::new(if idle { now } else { ended });
            let mut finished = std::mem::replace(&mut state.current, next);
            finished.ended = Some(ended);
            state.since_start.retire(&finished);
            state.previous = Some(if idle {
                let mut empty = Window::new(now - self.window);
                empty.ended = Some(now);
                empty
            } else {
                finished
            });
        }
        state
    }

    /// `/profile`'s document.
    pub fn to_json(&self) -> Json {
        let now = Instant::now();
        let state = self.state(now);
        json!({
            "window_seconds": self.window.as_secs_f64(),
            "current": state.current.to_json(now),
            "previous": state.previous.as_ref().map(|w| w.to_json(now)),
            "since_start": state.since_start.to_json(&state.current, now),
        })
    }
}
