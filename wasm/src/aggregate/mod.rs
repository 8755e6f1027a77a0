//! Incremental aggregation (WIP).

pub mod order_stats;
pub mod sum;
