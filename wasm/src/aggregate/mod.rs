//! Incremental aggregation (WIP).

pub mod json;
pub mod order_stats;
pub mod sum;
