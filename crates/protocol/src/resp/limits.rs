//! The limits every RESP parser here enforces, with Redis's own defaults where Redis has one.
//!
//! Each length read from the input is compared with its limit before it is used to index, skip or allocate, so a
//! hostile or corrupt stream costs at most these bounds.

/// Longest bulk string accepted: Redis's default `proto-max-bulk-len`.
pub const MAX_BULK_LEN: usize = 512 * 1024 * 1024;
/// Most arguments in one command, by default: a command this wide is already a frame of several megabytes. Redis
/// itself accepts up to [`REDIS_MAX_ARGS`]; the relay reads those on its replication link, but forwards to browsers
/// only commands within these defaults.
pub const MAX_ARGS: usize = 1024 * 1024;
/// Most arguments Redis accepts in one command from an authenticated client (`INT_MAX`), so the most a primary can
/// propagate.
pub const REDIS_MAX_ARGS: usize = i32::MAX as usize;
/// Longest inline command line, and longest simple string, error or number line of a reply: Redis's
/// `PROTO_INLINE_MAX_SIZE`.
pub const MAX_INLINE_LEN: usize = 64 * 1024;
/// Largest frame held while it is incomplete: Redis's default `client-query-buffer-limit`.
pub const MAX_COMMAND_LEN: usize = 1024 * 1024 * 1024;
/// Most elements in one reply aggregate (array, set, push; a map or attribute counts its keys and values).
pub const MAX_AGGREGATE_LEN: usize = 16 * 1024 * 1024;
/// Deepest nesting of reply aggregates. Redis itself never nests deeper than a few levels in a reply.
pub const MAX_DEPTH: usize = 128;

/// Longest decimal length in a `*<n>` or `$<n>` header: 18 digits always fit an `i64` and exceed every limit.
pub(crate) const MAX_LENGTH_DIGITS: usize = 18;

/// The limits a parser enforces; [`Limits::default`] gives the named defaults above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest bulk string (`$<len>`), in commands and replies.
    pub max_bulk_len: usize,
    /// Most arguments of one command (`*<n>`).
    pub max_args: usize,
    /// Longest inline command or simple reply line, without its line ending.
    pub max_inline_len: usize,
    /// Most bytes a reader holds for one incomplete command or reply.
    pub max_command_len: usize,
    /// Most elements of one reply aggregate.
    pub max_aggregate_len: usize,
    /// Deepest nesting of reply aggregates; a top-level array is depth 1. Parsing never recurses, but a
    /// [`super::Value`] is dropped recursively, so keep this in the hundreds, not the millions.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: MAX_BULK_LEN,
            max_args: MAX_ARGS,
            max_inline_len: MAX_INLINE_LEN,
            max_command_len: MAX_COMMAND_LEN,
            max_aggregate_len: MAX_AGGREGATE_LEN,
            max_depth: MAX_DEPTH,
        }
    }
}
