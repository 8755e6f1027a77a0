//! What `replicast rdb` makes of a reader's events, streaming: JSON Lines, one object per key written element by
//! element ([`JsonLines`]), or a summary of keys and bytes per database and type with the biggest keys
//! ([`Stats`], also the inspector page's figures, with the key prefixes of [`PrefixTree`]); both keep only the
//! keys a [`Filter`] passes. The output format is documented in docs/RDB.md.

mod filter;
mod json_lines;
mod json_output;
mod json_scalar;
mod prefix_tree;
mod stats;

pub use filter::Filter;
pub use json_lines::JsonLines;
pub use json_output::{JsonOutput, MIN_JSON_BUFFER};
pub use prefix_tree::{
    PrefixTree, MAX_PREFIX_CHILDREN, MAX_PREFIX_DEPTH, MAX_PREFIX_NODES, MAX_PREFIX_PART,
};
pub use stats::{Stats, MAX_LISTED_NAMES};
