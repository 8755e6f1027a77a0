//! The **ended** message (tag 12, docs/PROTOCOL.md): a shard's stream ended because the shard left the Redis Cluster
//! (its node removed, its slots gone with it or given to another), so nothing more of that stream will come, nor the
//! answer of a top-up asked of it. Sent only to a client that asked for it when it opened the session (`ended=1`,
//! the history sink): a browser's client never gets it, so, like the past message, it is compiled only with the
//! crate's feature `past`, and [`super::decode`] refuses its tag. Its error texts are plain literals, not `text!`.

use super::{WireError, MAX_SHARDS, TAG_ENDED, TAG_SHARD};

/// The ended message of a shard's stream, with why it ended (`reason`, UTF-8, for the client's log): wrap it in the
/// shard's envelope ([`super::encode_shard`]) to say which stream.
pub fn encode_ended(reason: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + reason.len());
    out.push(TAG_ENDED);
    out.extend_from_slice(reason.as_bytes());
    out
}

/// Whether `message` is an ended message (alone or in a shard's envelope), without decoding it.
pub fn is_ended(message: &[u8]) -> bool {
    matches!(message, [TAG_ENDED, ..] | [TAG_SHARD, _, _, TAG_ENDED, ..])
}

/// An ended message (`12`, then the reason: UTF-8, the rest of the frame), alone (shard 0) or in a shard's
/// envelope: the shard whose stream ended, and why.
pub fn decode_ended(message: &[u8]) -> Result<(u16, &str), WireError> {
    let (shard, at) = match message {
        [TAG_ENDED, ..] => (0, 1),
        [TAG_SHARD, lo, hi, TAG_ENDED, ..] => {
            let index = u16::from_le_bytes([*lo, *hi]);
            if usize::from(index) >= MAX_SHARDS {
                return Err(WireError {
                    at: 1,
                    expected: "a shard index below 1024",
                });
            }
            (index, 4)
        }
        _ => {
            return Err(WireError {
                at: 0,
                expected: "an ended message (tag 12), alone or in a shard envelope",
            })
        }
    };
    let reason = std::str::from_utf8(&message[at..]).map_err(|err| WireError {
        at: at + err.valid_up_to(),
        expected: "a UTF-8 reason",
    })?;
    Ok((shard, reason))
}

#[cfg(test)]
mod tests {
    use super::super::{decode, encode_hello, encode_shard, is_shard_stream};
    use super::*;

    #[test]
    fn an_ended_message_names_its_shard_and_why() {
        let message = encode_ended("left");
        assert_eq!(message, b"\x0cleft");
        assert!(is_shard_stream(&message), "it goes in its shard's envelope");
        let wrapped = encode_shard(3, &message);
        assert_eq!(wrapped, b"\x07\x03\x00\x0cleft");
        assert!(is_ended(&wrapped) && is_ended(&message));
        assert_eq!(decode_ended(&wrapped), Ok((3, "left")));
        assert_eq!(decode_ended(&message), Ok((0, "left")));
        assert_eq!(decode_ended(b"\x07\x01\x00\x0c"), Ok((1, "")));
    }

    #[test]
    fn a_bad_ended_message_is_refused_where_it_is_bad() {
        let not_ended = encode_shard(1, &encode_hello("e", 1));
        assert!(!is_ended(&not_ended));
        assert_eq!(decode_ended(&not_ended).unwrap_err().at, 0);
        assert_eq!(decode_ended(b"").unwrap_err().at, 0);
        assert_eq!(decode_ended(b"\x07\x01").unwrap_err().at, 0);
        assert_eq!(
            decode_ended(b"\x07\x00\x04\x0c").unwrap_err(),
            WireError {
                at: 1,
                expected: "a shard index below 1024"
            }
        );
        assert_eq!(
            decode_ended(b"\x07\x01\x00\x0cab\xff").unwrap_err(),
            WireError {
                at: 6,
                expected: "a UTF-8 reason"
            }
        );
        // A browser's decoder does not take it: its client never asks for it.
        assert_eq!(decode(&encode_ended("left")).unwrap_err().at, 0);
        assert_eq!(
            decode(&encode_shard(2, &encode_ended("left")))
                .unwrap_err()
                .at,
            3
        );
    }
}
