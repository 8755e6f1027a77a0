//! What a page watches: which keys, in which database, how many items each. The keyspace decides with it which
//! keys get windows, and the assembler sends it to the relay as the page's subscription.

/// What to watch: keys matching any of `patterns` (Redis globs) in database `db`, `window` items each.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchConfig {
    pub patterns: Vec<Vec<u8>>,
    pub db: u32,
    pub window: usize,
}
