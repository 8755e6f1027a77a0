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
//! started (the windows that ended, added up, and the current one); each link feeds the current window through its
//! own [`LinkProfile`], which follows its stream's `MULTI` blocks.

mod link;
mod merged_hitters;
mod recent_keys;
mod since_start;
mod space_saving;
mod window;
mod write_profile;

use std::sync::Arc;

pub use link::LinkProfile;
pub use recent_keys::RECENT_KEYS;
pub use space_saving::{Hashed, Hitter, SpaceSaving, MAX_PROFILE_KEY};
pub use window::{HITTERS, LISTED, MAX_COMMAND_NAMES};
pub use write_profile::{ProfileSettings, WriteProfile, DEFAULT_WINDOW};

impl WriteProfile {
    /// What one link feeds the profile through.
    pub fn link(self: &Arc<Self>) -> LinkProfile {
        LinkProfile::new(self.clone())
    }
}

#[cfg(test)]
mod counted_tests;
#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use serde_json::{json, Value as Json};

    use super::write_profile::{command_name, prefixes};
    use super::*;
    use crate::frames::{Frame, FrameIndex, Kind};
    use crate::subscription::Allow;

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
        let mut link = p.link();
        link.batch(&raw, &index);
        {
            let state = p.state(start + Duration::from_secs(15));
            let previous = state.previous.as_ref().unwrap();
            assert_eq!(previous.counts.key_writes, 1);
            assert_eq!(previous.ended, Some(start + Duration::from_secs(10)));
            assert_eq!(state.current.started, start + Duration::from_secs(10));
            assert_eq!(state.current.counts.key_writes, 0);
            assert_eq!(state.since_start.counts(&state.current).key_writes, 1);
        }
        // Written in the window that began at 10 s, which the idle span then leaves unshown but counted.
        link.batch(&raw, &index);
        let state = p.state(start + Duration::from_secs(50));
        assert_eq!(state.previous.as_ref().unwrap().counts.key_writes, 0);
        assert_eq!(state.current.started, start + Duration::from_secs(50));
        assert_eq!(state.since_start.counts(&state.current).key_writes, 2);
        let since_start = state.since_start.to_json(&state.current, start);
        assert_eq!(since_start["keys"]["by_writes"][0]["name"], "a");
        assert_eq!(since_start["keys"]["by_writes"][0]["writes"], 2);
        assert_eq!(since_start["keys"]["by_writes"][0]["error"], 0);
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
