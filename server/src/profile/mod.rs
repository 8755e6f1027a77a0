//! The live write profile (`GET /profile`): what the primary writes, counted from the replication stream the link
//! already reads, at no cost to Redis. Commands by name, bytes, the keys and key prefixes written most (by writes
//! and by bytes, in the fixed memory of [`SpaceSaving`] summaries), `MULTI` block sizes, and the keys `DEL` and
//! `UNLINK` remove — which include Redis's expirations and evictions, since a primary propagates each as a `DEL`
//! (`UNLINK` with `lazyfree-lazy-expire`/`-eviction`) that the stream does not tell from a client's.
//!
//! What leaves the relay keeps `--allow`'s promise: a key outside it is never named. Its writes and bytes are
//! counted only in `hidden` totals, and its prefixes only when `--profile-prefixes` names them.
//!
//! Figures are kept for the window being filled (`current`), the last whole one (`previous`) and since the relay
//! started; each link feeds them through its own [`LinkProfile`], which follows its stream's `MULTI` blocks.

mod link;
mod recent_keys;
mod space_saving;
mod window;

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use replicast_protocol::pattern::Glob;
use serde_json::{json, Value as Json};

pub use link::LinkProfile;
use recent_keys::Shown;
pub use recent_keys::RECENT_KEYS;
pub use space_saving::{Hashed, Hitter, SpaceSaving};
use window::Window;
pub use window::{HITTERS, LISTED, MAX_COMMAND_NAMES};

use crate::subscription::Allow;

/// Longest key or prefix a summary keeps: a longer key is counted in `long_keys` only, and a longer prefix (of a
/// longer key still) not at all, so a summary's memory stays bounded whatever keys are written.
pub const MAX_PROFILE_KEY: usize = 256;
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

struct State {
    current: Window,
    previous: Option<Window>,
    since_start: Window,
}

/// A key's `:`-prefixes that the profile counts: its first part (`user:`) and its first two (`user:42:`) when
/// the key has more parts after them.
fn prefixes(key: &[u8]) -> impl Iterator<Item = &[u8]> {
    memchr::memchr_iter(b':', key)
        .map(|i| &key[..=i])
        .take(2)
        .filter(move |p| p.len() < key.len())
}

/// The command name of a RESP frame (`*N\r\n$L\r\n<name>\r\n…`), if it has that form: read once per command,
/// so byte by byte rather than line by line.
fn command_name(frame: &[u8]) -> Option<&[u8]> {
    let rest = frame.strip_prefix(b"*")?;
    // The argument count matters to the reader, not here: only where its line ends.
    let count_end = rest.iter().take(32).position(|&b| b == b'\r')?;
    let rest = rest[count_end..].strip_prefix(b"\r\n$")?;
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
                since_start: Window::new(now),
            }),
        })
    }

    /// What one link feeds the profile through.
    pub fn link(self: &Arc<Self>) -> LinkProfile {
        LinkProfile::new(self.clone())
    }

    /// What the profile may show of `key`: whether `--allow` lets it be named, and which of its prefixes may be
    /// shown (all of an allowed key's, and others' where `--profile-prefixes` names them), with their hashes.
    fn settle(&self, key: &[u8]) -> Shown {
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
    fn state(&self, now: Instant) -> MutexGuard<'_, State> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = now.duration_since(state.current.started);
        if elapsed >= self.window {
            // A window with no write since is as long as the others: the previous is the last whole window.
            let ended = state.current.started + self.window;
            let mut finished = if elapsed >= 2 * self.window {
                Window::new(now - self.window)
            } else {
                std::mem::replace(&mut state.current, Window::new(ended))
            };
            finished.ended = Some(finished.started + self.window);
            if elapsed >= 2 * self.window {
                state.current = Window::new(now);
            }
            state.previous = Some(finished);
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
            "since_start": state.since_start.to_json(now),
        })
    }
}

#[cfg(test)]
mod counted_tests;
#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::{Frame, FrameIndex, Kind};

    fn resp(args: &[&str]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend(format!("${}\r\n{a}\r\n", a.len()).bytes());
        }
        out
    }

    /// A batch of `commands`, each (args, kind, how many of its first arguments after the name are written keys).
    fn batch(commands: &[(&[&str], Kind, usize)]) -> (Vec<u8>, FrameIndex) {
        let mut raw = Vec::new();
        let mut index = FrameIndex::default();
        for (args, kind, keys) in commands {
            let start = raw.len();
            let first_key = index.keys.len() as u32;
            raw.extend(format!("*{}\r\n", args.len()).bytes());
            for (i, arg) in args.iter().enumerate() {
                raw.extend(format!("${}\r\n", arg.len()).bytes());
                if (1..=*keys).contains(&i) {
                    index
                        .keys
                        .push(raw.len() as u32..(raw.len() + arg.len()) as u32);
                }
                raw.extend(arg.bytes());
                raw.extend(b"\r\n");
            }
            index.frames.push(Frame {
                at: start as u32..raw.len() as u32,
                db: 0,
                target_db: 0,
                kind: *kind,
                keys: first_key..index.keys.len() as u32,
                written: *keys as u32,
            });
        }
        (raw, index)
    }

    fn profile(allow: &[&str], hidden_prefixes: &[&str]) -> Arc<WriteProfile> {
        WriteProfile::new(
            Arc::new(Allow::new(
                &allow.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            )),
            ProfileSettings {
                window: Duration::from_secs(3600),
                hidden_prefixes: hidden_prefixes.iter().map(|s| s.to_string()).collect(),
            },
        )
    }

    #[test]
    fn command_names_come_from_the_frame() {
        assert_eq!(command_name(&resp(&["SET", "k", "v"])), Some(&b"SET"[..]));
        assert_eq!(command_name(b"*1\r\n$4\r\nPI"), None);
        assert_eq!(command_name(b"PING\r\n"), None);
        assert_eq!(command_name(b"*1\r\n$99999999999999999999\r\n"), None);
    }

    #[test]
    fn prefixes_are_the_first_one_and_two_parts() {
        let got: Vec<&[u8]> = prefixes(b"user:42:cart").collect();
        assert_eq!(got, [&b"user:"[..], b"user:42:"]);
        let got: Vec<&[u8]> = prefixes(b"user:42").collect();
        assert_eq!(got, [&b"user:"[..]]);
        assert_eq!(prefixes(b"plain").count(), 0);
        assert_eq!(prefixes(b"trailing:").count(), 0);
    }

    #[test]
    fn a_batch_counts_commands_keys_multi_blocks_and_deletes() {
        let p = profile(&["perf:*"], &[]);
        let (raw, index) = batch(&[
            (&["SELECT", "0"], Kind::Select, 0),
            (&["MULTI"], Kind::Multi, 0),
            (&["ZADD", "perf:a", "1", "x"], Kind::Keyed, 1),
            (&["ZADD", "perf:a", "2", "y"], Kind::Keyed, 1),
            (&["SET", "perf:b:c", "v"], Kind::Keyed, 1),
            (&["EXEC"], Kind::Exec, 0),
            (&["DEL", "perf:a", "perf:b:c"], Kind::Keyed, 2),
        ]);
        let mut link = p.link();
        link.batch(&raw, &index);
        let j = p.to_json();
        let now = &j["current"];
        assert_eq!(now["commands"]["zadd"], 2);
        assert_eq!(now["commands"]["select"], 1);
        assert_eq!(now["commands"]["exec"], 1);
        assert_eq!(now["bytes"], raw.len() as u64);
        assert_eq!(now["key_writes"], 5);
        assert_eq!(now["multi"]["blocks"], 1);
        assert_eq!(now["multi"]["commands"], 3);
        assert_eq!(
            now["multi"]["sizes"][0],
            json!({"from": 3, "to": 4, "blocks": 1})
        );
        assert_eq!(now["deleted_keys"]["del"], 2);
        assert_eq!(now["keys"]["by_writes"][0]["name"], "perf:a");
        assert_eq!(now["keys"]["by_writes"][0]["writes"], 3);
        assert_eq!(now["prefixes"]["by_writes"][0]["name"], "perf:");
        assert_eq!(now["prefixes"]["by_writes"][0]["writes"], 5);
        assert_eq!(now["prefixes"]["by_writes"][1]["name"], "perf:b:");
        assert_eq!(j["since_start"]["key_writes"], 5);
        assert_eq!(j["previous"], Json::Null);
    }

    #[test]
    fn keys_outside_allow_are_never_named_and_their_prefixes_only_when_allowed() {
        let p = profile(&["perf:*"], &["session:"]);
        let (raw, index) = batch(&[
            (&["SET", "secret:token:abc", "v"], Kind::Keyed, 1),
            (&["SET", "session:u1:x", "v"], Kind::Keyed, 1),
            (&["SET", "perf:h", "v"], Kind::Keyed, 1),
        ]);
        p.link().batch(&raw, &index);
        let text = p.to_json().to_string();
        for hidden in ["secret", "token:", "abc", "u1"] {
            assert!(!text.contains(hidden), "{hidden} in {text}");
        }
        let j = p.to_json();
        assert_eq!(j["current"]["hidden"]["key_writes"], 2);
        assert_eq!(j["current"]["key_writes"], 3);
        let prefixes: Vec<&str> = j["current"]["prefixes"]["by_writes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["name"].as_str().unwrap())
            .collect();
        assert_eq!(prefixes, ["perf:", "session:"]);
    }

    #[test]
    fn keys_and_prefixes_past_the_longest_kept_are_counted_but_not_kept() {
        let p = profile(&["*"], &[]);
        let long_part = "p".repeat(MAX_PROFILE_KEY + 1);
        let long_key = format!("{long_part}:rest");
        let last_kept_prefix = format!("{}:", "q".repeat(MAX_PROFILE_KEY - 1));
        let key_of_kept_prefix = format!("{last_kept_prefix}rest");
        let (raw, index) = batch(&[
            (&["SET", &long_key, "v"], Kind::Keyed, 1),
            (&["SET", &key_of_kept_prefix, "v"], Kind::Keyed, 1),
        ]);
        p.link().batch(&raw, &index);
        let j = p.to_json();
        let now = &j["current"];
        assert_eq!(now["key_writes"], 2);
        assert_eq!(now["long_keys"], 2);
        assert_eq!(now["keys"]["by_writes"], json!([]));
        let prefixes: Vec<&str> = now["prefixes"]["by_writes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["name"].as_str().unwrap())
            .collect();
        assert_eq!(prefixes, [last_kept_prefix.as_str()]);
    }

    #[test]
    fn windows_rotate_after_their_length_and_an_idle_span_leaves_an_empty_previous() {
        let p = WriteProfile::new(
            Arc::new(Allow::new(&["*".to_string()])),
            ProfileSettings {
                window: Duration::from_secs(10),
                hidden_prefixes: Vec::new(),
            },
        );
        let start = p.state(Instant::now()).current.started;
        let (raw, index) = batch(&[(&["SET", "a", "1"], Kind::Keyed, 1)]);
        p.link().batch(&raw, &index);
        {
            let state = p.state(start + Duration::from_secs(15));
            let previous = state.previous.as_ref().unwrap();
            assert_eq!(previous.key_writes, 1);
            assert_eq!(previous.ended, Some(start + Duration::from_secs(10)));
            assert_eq!(state.current.started, start + Duration::from_secs(10));
            assert_eq!(state.current.key_writes, 0);
            assert_eq!(state.since_start.key_writes, 1);
        }
        let state = p.state(start + Duration::from_secs(50));
        assert_eq!(state.previous.as_ref().unwrap().key_writes, 0);
        assert_eq!(state.current.started, start + Duration::from_secs(50));
        assert_eq!(state.since_start.key_writes, 1);
    }

    #[test]
    fn a_multi_block_may_span_batches_of_one_link() {
        let p = profile(&["*"], &[]);
        let mut link = p.link();
        let (raw, index) = batch(&[
            (&["MULTI"], Kind::Multi, 0),
            (&["SET", "a", "1"], Kind::Keyed, 1),
        ]);
        link.batch(&raw, &index);
        let (raw, index) = batch(&[
            (&["SET", "b", "1"], Kind::Keyed, 1),
            (&["EXEC"], Kind::Exec, 0),
        ]);
        link.batch(&raw, &index);
        assert_eq!(p.to_json()["current"]["multi"]["largest"], 2);
    }
}
