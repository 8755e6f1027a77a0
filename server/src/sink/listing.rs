//! The names of a shard's mirrored keys, from the relay, for the mirror to read each again (docs/SINK.md, "Exactly
//! once"). After a `SWAPDB` of the watched database, a stale message for every window or a segment the sink cannot
//! read, the mirror reads again the keys it held a window of; a key only the swapped-in database holds, or one the
//! withheld command made, it cannot name. The relay can: a session opened with no `at=` gets a snapshot of every key
//! its subscription matches. So the sink opens a second, short-lived session (the same relay and token, the mirror's
//! patterns, the same database, a window of one item), reads from the shard's snapshot only the keys' names (and
//! which are sets, named with no window), and closes it; the main session asks a top-up of each, whose answer is
//! exact at an offset of its own stream, so nothing is applied twice or missed.
//!
//! A snapshot too big for one part sends its other keys as top-ups in that session afterwards, unasked, and the
//! relay does not say how many. So once the first part has come the listing asks a top-up of one key it named (the
//! last a top-up can name: the relay closes a session asking one over 1,024 bytes): the relay reads it together with
//! the keys still waiting, and the listing ends at an answer naming that key and no key not named before.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use ws_client::tungstenite::Message as WsMessage;

use super::connection::{connect, Session};
use crate::snapshot::MAX_SNAPSHOT_KEYS;
use replicast_protocol::client_message::{ClientMessage, Subscribe, Topup};
use replicast_protocol::resp::CommandReader;
use replicast_protocol::wire::{self, Message};

/// Most keys a listing holds: the relay reads at most [`MAX_SNAPSHOT_KEYS`] keys of a subscription, and those a part
/// leaves for later wait within the same bound.
pub const MAX_LISTED: usize = 2 * MAX_SNAPSHOT_KEYS;
/// Silence from the relay after which a listing gives up.
const IDLE: Duration = Duration::from_secs(30);
/// Longest a listing may take in all.
const LISTING_TIME: Duration = Duration::from_secs(300);

/// The mirrored keys of a shard, as the relay listed them.
#[derive(Debug, Default, PartialEq)]
pub struct Listing {
    /// Strings, hashes and lists (and keys gone when read): read again by a top-up.
    pub keys: Vec<Vec<u8>>,
    /// Sets: named with no window, their members unread.
    pub sets: Vec<Vec<u8>>,
}

/// Lists the mirrored keys of the shard whose stream is `epoch`, by a session of its own.
pub async fn list(session: &Session, epoch: &str) -> anyhow::Result<Listing> {
    tokio::time::timeout(LISTING_TIME, list_within(session, epoch))
        .await
        .map_err(|_| anyhow::anyhow!("the listing took more than {LISTING_TIME:?}"))?
}

async fn list_within(session: &Session, epoch: &str) -> anyhow::Result<Listing> {
    let mut socket = connect(session, &session.relay).await?;
    socket
        .send(WsMessage::text(
            ClientMessage::Subscribe(Subscribe {
                patterns: session
                    .mirror_patterns
                    .iter()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect(),
                keys: Vec::new(),
                db: session.db,
                // Only the names are read: the smallest window makes the smallest snapshot.
                window: 1,
            })
            .to_json(),
        ))
        .await?;
    let mut names = Names::default();
    let mut shard = None;
    // The key whose top-up ends the listing, once the first part has come.
    let mut last: Option<Vec<u8>> = None;
    loop {
        let message = match tokio::time::timeout(IDLE, socket.next()).await {
            Err(_) => anyhow::bail!("the relay sent nothing for {IDLE:?}"),
            Ok(None) => anyhow::bail!("the relay closed the connection"),
            Ok(Some(message)) => message?,
        };
        let bytes = match message {
            WsMessage::Binary(bytes) => bytes,
            WsMessage::Close(frame) => anyhow::bail!(
                "the relay closed the listing: {}",
                frame.map_or("no reason".into(), |f| format!("{} {}", f.code, f.reason))
            ),
            _ => continue,
        };
        let (index, inner) = match wire::decode(&bytes).map_err(|e| anyhow::anyhow!("{e}"))? {
            Message::Shard { index, message } => (index, *message),
            other => (0, other),
        };
        match inner {
            Message::Hello { epoch: e, .. } if e == epoch => shard = Some(index),
            Message::Snapshot { commands, .. } if shard == Some(index) => {
                let (named, new) = names.read(commands)?;
                let done = match &last {
                    None => names.keys.is_empty(),
                    Some(key) => named.contains(key) && new == 0,
                };
                if done {
                    let _ = socket.close(None).await;
                    return Ok(names.into_listing());
                }
                if last.is_none() || last.as_ref().is_some_and(|key| named.contains(key)) {
                    let key = match &last {
                        Some(key) => key.clone(),
                        // A key no top-up can name (over 1,024 bytes) would have the relay close the listing.
                        None => match names.keys.keys().rev().find(|key| Topup::can_name(key)) {
                            Some(key) => key.clone(),
                            None => {
                                let _ = socket.close(None).await;
                                return Ok(names.into_listing());
                            }
                        },
                    };
                    for request in Topup::requests([key.as_slice()]) {
                        socket.send(WsMessage::text(request)).await?;
                    }
                    last = Some(key);
                }
            }
            Message::Resync { reason } => anyhow::bail!("the relay asked to resync: {reason}"),
            _ => {}
        }
    }
}

/// The keys named so far, each with whether it is a set (named with no window).
#[derive(Default)]
struct Names {
    keys: BTreeMap<Vec<u8>, bool>,
}

impl Names {
    /// Reads a snapshot's commands (`DEL key`, then what rebuilds its window): the keys it names, and how many of
    /// them were not named before.
    fn read(&mut self, commands: &[u8]) -> anyhow::Result<(Vec<Vec<u8>>, usize)> {
        let mut named: Vec<(Vec<u8>, bool)> = Vec::new();
        CommandReader::new(0)
            .push(commands, |command| {
                let key = command.args.get(1).copied().unwrap_or_default();
                if command.is("del") {
                    named.push((key.to_vec(), true));
                } else if let Some(last) = named.last_mut().filter(|(k, _)| k == key) {
                    last.1 = false;
                }
            })
            .map_err(|e| anyhow::anyhow!("a snapshot of the listing could not be read: {e}"))?;
        let mut new = 0;
        for (key, set) in &named {
            if self.keys.insert(key.clone(), *set).is_none() {
                new += 1;
            }
        }
        anyhow::ensure!(
            self.keys.len() <= MAX_LISTED,
            "the relay listed more than {MAX_LISTED} keys"
        );
        Ok((named.into_iter().map(|(key, _)| key).collect(), new))
    }

    fn into_listing(self) -> Listing {
        let mut listing = Listing::default();
        for (key, set) in self.keys {
            if set {
                listing.sets.push(key);
            } else {
                listing.keys.push(key);
            }
        }
        listing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_names_its_keys_and_those_with_no_window_are_sets() {
        let mut names = Names::default();
        let snapshot = b"*2\r\n$3\r\nDEL\r\n$5\r\ncfg:h\r\n*4\r\n$4\r\nHSET\r\n$5\r\ncfg:h\r\n$1\r\na\r\n$1\r\n1\r\n\
*2\r\n$3\r\nDEL\r\n$5\r\ncfg:s\r\n*2\r\n$3\r\nDEL\r\n$5\r\ncfg:v\r\n*3\r\n$3\r\nSET\r\n$5\r\ncfg:v\r\n$1\r\nx\r\n";
        let (named, new) = names.read(snapshot).unwrap();
        assert_eq!(
            named,
            [b"cfg:h".to_vec(), b"cfg:s".to_vec(), b"cfg:v".to_vec()]
        );
        assert_eq!(new, 3);
        let (_, new) = names.read(b"*2\r\n$3\r\nDEL\r\n$5\r\ncfg:v\r\n").unwrap();
        assert_eq!(new, 0, "named before");
        assert!(names.read(b"*2\r\n$3\r\nDEL\r\n$").is_ok(), "a part waits");
        assert!(names.read(b"*x\r\n").is_err());
        assert_eq!(
            names.into_listing(),
            Listing {
                keys: vec![b"cfg:h".to_vec()],
                sets: vec![b"cfg:s".to_vec(), b"cfg:v".to_vec()],
            },
            "the last answer says what a key is"
        );
    }
}
