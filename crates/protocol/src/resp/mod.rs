//! RESP, the Redis protocol: the replication stream's commands and the replies of RESP2 and RESP3.
//!
//! After the RDB payload, a primary sends its replicas a plain sequence of commands: RESP arrays of bulk strings,
//! exceptionally inline commands, and Redis counts its replication offset in bytes of that sequence.
//! [`parse_command`] reads one command from the front of a buffer, with its arguments borrowed from the buffer and
//! its start and end offsets; "not enough bytes yet" is `Ok(None)`, a normal state. [`CommandReader`] keeps the
//! incomplete tail between chunks, so any split of the input gives the same commands and offsets as the whole.
//! [`parse_value`] and [`ValueReader`] do the same for replies, every RESP2 and RESP3 type.
//!
//! Every length is checked against a [`Limits`] before it is used, so bad input gets an error naming the stream
//! offset and what was expected, never a panic or an allocation sized by the input.
//!
//! - `limits`: the named limits and their defaults.
//! - `error`: [`RespError`].
//! - `line`: length headers, integer and text lines.
//! - `command`: [`Command`] and the frame reader for commands; [`CommandCheck`] resumes checking one that arrives in
//!   pieces.
//! - `streamed`: [`StreamedCommand`], a command read piece by piece and never held whole, for commands too large to
//!   keep.
//! - `value`: [`Value`], the reply parser and its resumable check.
//! - `reader`: [`CommandReader`] and [`ValueReader`], for input in chunks.

mod command;
mod error;
mod limits;
mod line;
mod reader;
mod streamed;
mod value;

pub use command::{parse_command, parse_command_into, Checked, Command, CommandCheck};
pub use error::RespError;
pub use limits::{
    Limits, MAX_AGGREGATE_LEN, MAX_ARGS, MAX_BULK_LEN, MAX_COMMAND_LEN, MAX_DEPTH, MAX_INLINE_LEN,
    REDIS_MAX_ARGS,
};
pub use reader::{CommandReader, ValueReader};
pub use streamed::{Piece, StreamedCommand};
pub use value::{parse_value, Value};
