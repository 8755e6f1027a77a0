//! `replicast collect`: the collector of the monitoring showcase (in progress).

#![allow(dead_code)]

mod local;
pub mod proc;
pub mod sample;
pub mod simulate;
mod sink;
