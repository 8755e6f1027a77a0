//! What can go wrong on the replica link, each with the words an operator needs: the link logs it, backs off and
//! attaches again. Shared by the link's socket (`link_io`), the sync payload's reader and the link itself.

use std::time::Duration;

use replicast_protocol::resp::RespError;
use thiserror::Error;

use crate::sentinel::SentinelError;

#[derive(Debug, Error)]
pub enum LinkError {
    #[error("Redis refused {command}: {error} — {hint}")]
    Explained {
        command: String,
        error: String,
        hint: &'static str,
    },
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("Redis closed the connection")]
    Closed,
    #[error(
        "nothing from Redis for {0:?} (it pings a replica every 10 s): the link is taken as dead"
    )]
    Silent(Duration),
    #[error("Redis refused {command}: {error}")]
    Refused { command: String, error: String },
    #[error("unexpected reply: {0}")]
    Protocol(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error(transparent)]
    Stream(#[from] RespError),
    #[error("Sentinel: {0}")]
    Sentinel(#[from] SentinelError),
    #[error("the primary moved to {0}: re-attaching there")]
    Switched(String),
    #[error("no node to follow: Sentinel has not named the primary yet")]
    Unnamed,
}
