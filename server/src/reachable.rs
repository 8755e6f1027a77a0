//! What of a batch some session could be sent, so the backlog keeps only that: the frames of keys `--allow`
//! permits (received, or, written by a withheld command, announced stale), `SELECT` and whole-database commands,
//! with their offsets. Frames of keys no session may see, and keyless ones (`PING`, `REPLCONF GETACK`, a module's
//! commands), are kept as their offsets alone: the same bytes of backlog then cover a longer resume horizon, and
//! nothing outside `--allow` stays in relay memory. A `MULTI` block is kept whole, or as offsets when nothing in it
//! is, so a block a session receives is never cut.

use std::ops::Range;

use crate::frames::{Frame, FrameIndex, Kind};
use crate::subscription::Allow;

/// A piece of a batch: whole commands of it, from `start` to `end` in the stream.
#[derive(Debug, PartialEq, Eq)]
pub struct Piece {
    pub start: u64,
    pub end: u64,
    /// The piece's bytes (a range of the batch's) and their index, when some session could be sent something of
    /// it; `None`: offsets only.
    pub held: Option<(Range<usize>, FrameIndex)>,
}

/// Whether some session could be sent something of every frame of the batch (every `MULTI` block taken whole): then
/// the batch is kept as it is, one piece, and [`pieces`] need not cut it. The link asks this of every batch first,
/// for a batch of writes all inside `--allow` is the common case, and answering it allocates nothing.
pub fn whole(raw: &[u8], index: &FrameIndex, allow: &Allow) -> bool {
    // Whether something of the open block is needed.
    let mut block: Option<bool> = None;
    for frame in &index.frames {
        let needed = needed(frame, raw, index, allow);
        match (frame.kind, &mut block) {
            (Kind::Multi, _) => {
                if block == Some(false) {
                    return false;
                }
                block = Some(false);
            }
            (Kind::Exec, Some(block_needed)) => {
                if !*block_needed {
                    return false;
                }
                block = None;
            }
            (_, Some(block_needed)) => *block_needed |= needed,
            (_, None) if !needed => return false,
            (_, None) => {}
        }
    }
    !index.frames.is_empty() && block != Some(false)
}

/// Cuts the batch of whole commands `raw`, which starts at offset `start` and is indexed by `index`, into pieces
/// kept whole and pieces kept as offsets, in stream order.
pub fn pieces(start: u64, raw: &[u8], index: &FrameIndex, allow: &Allow) -> Vec<Piece> {
    // Units: a frame, or a MULTI block with its EXEC; each kept whole or not at all.
    let mut units: Vec<(Range<usize>, bool)> = Vec::new();
    let mut block: Option<(usize, bool)> = None;
    for (i, frame) in index.frames.iter().enumerate() {
        let needed = needed(frame, raw, index, allow);
        match (frame.kind, &mut block) {
            (Kind::Multi, _) => {
                if let Some((first, needed)) = block.take() {
                    units.push((first..i, needed));
                }
                block = Some((i, false));
            }
            (Kind::Exec, Some((first, needed))) => {
                units.push((*first..i + 1, *needed));
                block = None;
            }
            (_, Some((_, block_needed))) => *block_needed |= needed,
            (_, None) => units.push((i..i + 1, needed)),
        }
    }
    if let Some((first, needed)) = block {
        // A block cut by the link's size cap: what it holds goes on in the next batch.
        units.push((first..index.frames.len(), needed));
    }
    let mut pieces: Vec<(Range<usize>, bool)> = Vec::new();
    for (frames, needed) in units {
        match pieces.last_mut() {
            Some((last, last_needed)) if *last_needed == needed => last.end = frames.end,
            _ => pieces.push((frames, needed)),
        }
    }
    let byte = |frame: usize| {
        index
            .frames
            .get(frame)
            .map_or(raw.len(), |f| f.at.start as usize)
    };
    let count = pieces.len();
    pieces
        .into_iter()
        .enumerate()
        .map(|(n, (frames, needed))| {
            // The first piece starts at the batch's start and the last ends at its end, whatever lies between
            // frames.
            let from = if n == 0 { 0 } else { byte(frames.start) };
            let to = if n + 1 == count {
                raw.len()
            } else {
                byte(frames.end)
            };
            Piece {
                start: start + from as u64,
                end: start + to as u64,
                held: needed.then(|| (from..to, rebased(index, frames, from))),
            }
        })
        .collect()
}

/// Overwrites with zeros every byte of the batch `raw` that no piece of `pieces` (cut from it by [`pieces`]) keeps:
/// the backlog may keep slices of the link's read buffer instead of copies (`Batch::read`), and the commands kept
/// as offsets alone must not stay in relay memory beside them.
pub fn wipe_unkept(raw: &mut [u8], pieces: &[Piece]) {
    let mut kept_to = 0;
    for (bytes, _) in pieces.iter().filter_map(|p| p.held.as_ref()) {
        raw[kept_to..bytes.start].fill(0);
        kept_to = bytes.end;
    }
    raw[kept_to..].fill(0);
}

/// Whether some session could be sent something of `frame`: the frame itself, or a stale message of its keys.
fn needed(frame: &Frame, raw: &[u8], index: &FrameIndex, allow: &Allow) -> bool {
    let any_allowed = || {
        index.keys[frame.keys.start as usize..frame.keys.end as usize]
            .iter()
            .any(|k| allow.allows(&raw[k.start as usize..k.end as usize]))
    };
    match frame.kind {
        Kind::Select | Kind::AllDbs | Kind::WholeDb | Kind::WithheldAll => true,
        Kind::Keyed | Kind::Withheld => any_allowed(),
        Kind::Multi | Kind::Exec | Kind::Other | Kind::Unfollowed => false,
    }
}

/// The index of `frames`, with positions relative to byte `from` of the batch.
fn rebased(index: &FrameIndex, frames: Range<usize>, from: usize) -> FrameIndex {
    let shift = from as u32;
    let mut out = FrameIndex::default();
    for frame in &index.frames[frames] {
        let first = out.keys.len() as u32;
        out.keys.extend(
            index.keys[frame.keys.start as usize..frame.keys.end as usize]
                .iter()
                .map(|k| k.start - shift..k.end - shift),
        );
        out.frames.push(Frame {
            at: frame.at.start - shift..frame.at.end - shift,
            keys: first..out.keys.len() as u32,
            ..frame.clone()
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command_table::CommandTable;
    use crate::frames::Indexer;
    use std::sync::Arc;

    /// `raw` indexed with Redis 7.0.15's own table.
    fn index(raw: &[u8]) -> FrameIndex {
        let reply =
            redis::parse_redis_value(include_bytes!("../tests/data/redis-7.0.15-command.resp"))
                .unwrap();
        let mut indexer = Indexer::new(Arc::new(CommandTable::from_command_reply(&reply)));
        let mut index = FrameIndex::default();
        let limits = replicast_protocol::resp::Limits::default();
        let mut at = 0;
        while let Some(command) =
            replicast_protocol::resp::parse_command(&raw[at..], at as u64, &limits).unwrap()
        {
            indexer.add(&mut index, raw, &command, at);
            at += command.frame_len();
        }
        index
    }

    fn resp(commands: &[&[&str]]) -> Vec<u8> {
        let mut out = Vec::new();
        for args in commands {
            let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
            crate::link_io::push_command(&mut out, &args);
        }
        out
    }

    #[test]
    fn frames_no_session_could_be_sent_are_kept_as_offsets() {
        let raw = resp(&[
            &["SELECT", "0"],
            &["SET", "secret:a", "1"],
            &["PING"],
            &["ZADD", "perf:a", "1", "x"],
            &["MULTI"],
            &["SET", "secret:b", "2"],
            &["EXEC"],
            &["MULTI"],
            &["SET", "secret:c", "3"],
            &["ZADD", "perf:b", "2", "y"],
            &["EXEC"],
            &["SET", "secret:d", "4"],
        ]);
        let index = index(&raw);
        let allow = Allow::new(&["perf:*".into()]);
        let pieces = pieces(100, &raw, &index, &allow);
        let kept: Vec<(bool, String)> = pieces
            .iter()
            .map(|p| {
                let bytes = &raw[(p.start - 100) as usize..(p.end - 100) as usize];
                (
                    p.held.is_some(),
                    String::from_utf8_lossy(bytes).into_owned(),
                )
            })
            .collect();
        let texts: Vec<(bool, Vec<&str>)> = kept
            .iter()
            .map(|(held, text)| {
                let words = text
                    .split("\r\n")
                    .filter(|w| !w.starts_with(['*', '$']) && !w.is_empty());
                (*held, words.collect())
            })
            .collect();
        assert_eq!(
            texts,
            vec![
                (true, vec!["SELECT", "0"]),
                (false, vec!["SET", "secret:a", "1", "PING"]),
                (true, vec!["ZADD", "perf:a", "1", "x"]),
                (false, vec!["MULTI", "SET", "secret:b", "2", "EXEC"]),
                // A block with an allowed write stays whole.
                (
                    true,
                    vec!["MULTI", "SET", "secret:c", "3", "ZADD", "perf:b", "2", "y", "EXEC"]
                ),
                (false, vec!["SET", "secret:d", "4"]),
            ]
        );
        // Contiguous, covering the batch; a kept piece's index points into its own bytes.
        assert_eq!(pieces.first().unwrap().start, 100);
        assert_eq!(pieces.last().unwrap().end, 100 + raw.len() as u64);
        assert!(pieces.windows(2).all(|w| w[0].end == w[1].start));
        let (bytes, index) = pieces[2].held.as_ref().unwrap();
        let piece = &raw[bytes.clone()];
        let key = &index.keys[index.frames[0].keys.start as usize];
        assert_eq!(&piece[key.start as usize..key.end as usize], b"perf:a");

        // What is kept as offsets is wiped from the buffer; what is kept stays as it was.
        let mut wiped = raw.clone();
        wipe_unkept(&mut wiped, &pieces);
        for piece in &pieces {
            let at = (piece.start - 100) as usize..(piece.end - 100) as usize;
            match piece.held {
                Some(_) => assert_eq!(wiped[at.clone()], raw[at]),
                None => assert!(wiped[at].iter().all(|&b| b == 0)),
            }
        }
        let wiped = String::from_utf8_lossy(&wiped);
        // Only the block kept whole still holds a key outside `--allow`.
        assert!(wiped.contains("secret:c"));
        for withheld in ["secret:a", "PING", "secret:b", "secret:d"] {
            assert!(!wiped.contains(withheld), "{withheld}");
        }
    }
}
