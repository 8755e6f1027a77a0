//! Which keys an export keeps: by name (Redis globs), type and database; no condition given keeps every key.

use replicast_protocol::pattern::Glob;

use crate::{KeyStart, ValueType};

/// Which keys to export: a key passes when it matches one of each list that is not empty.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub keys: Vec<Glob>,
    pub types: Vec<ValueType>,
    pub dbs: Vec<u64>,
}

impl Filter {
    pub fn accepts(&self, key: &KeyStart<'_>) -> bool {
        (self.keys.is_empty() || self.keys.iter().any(|p| p.matches(key.key)))
            && (self.types.is_empty() || self.types.contains(&key.value_type))
            && (self.dbs.is_empty() || self.dbs.contains(&key.db))
    }
}
