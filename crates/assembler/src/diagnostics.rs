//! What the assembler could not use, counted by kind: bad input never stops it, but it is never silent either, and
//! never leaves a window that claims to be exact: every problem here also made the windows it may have touched
//! stale, with a top-up requested (or, when it cannot say which, all of them, until a full snapshot).

/// Counters of input the assembler skipped or could not follow, and the last such problem.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics {
    /// Relay messages that could not be decoded (bad tag, truncated segment header, …).
    pub bad_messages: u64,
    /// Commands segments with a RESP error: the rest of the segment was skipped, the next one applies, and the
    /// shard's windows wait for a full snapshot.
    pub bad_segments: u64,
    /// Segments that straddled what was already applied.
    pub overlaps: u64,
    /// Snapshots with a RESP error: the shard's windows wait for a full snapshot.
    pub bad_snapshots: u64,
    /// Commands the assembler does not know (the watched keys they name were topped up).
    pub unknown_commands: u64,
    /// Known commands with arguments Redis would not have propagated (bad numbers, odd pairs, bad ids); their
    /// keys were topped up.
    pub bad_arguments: u64,
    /// Commands of one type on a key whose window is of another (Redis would have refused them): the window was
    /// topped up.
    pub wrong_type: u64,
    /// `MULTI` blocks larger than the buffer, applied as they came instead of at `EXEC`.
    pub long_transactions: u64,
    /// Windows that could not follow a command exactly and asked for a top-up.
    pub topups_requested: u64,
    /// The last problem, with the stream offset of the command or segment it was found in.
    pub last_error: Option<LastError>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastError {
    pub offset: u64,
    pub message: String,
}

/// The kind of a problem, to pick its counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Problem {
    BadMessage,
    BadSegment,
    Overlap,
    BadSnapshot,
    UnknownCommand,
    BadArguments,
    WrongType,
    LongTransaction,
}

impl Diagnostics {
    pub(crate) fn record(&mut self, problem: Problem, offset: u64, message: String) {
        let counter = match problem {
            Problem::BadMessage => &mut self.bad_messages,
            Problem::BadSegment => &mut self.bad_segments,
            Problem::Overlap => &mut self.overlaps,
            Problem::BadSnapshot => &mut self.bad_snapshots,
            Problem::UnknownCommand => &mut self.unknown_commands,
            Problem::BadArguments => &mut self.bad_arguments,
            Problem::WrongType => &mut self.wrong_type,
            Problem::LongTransaction => &mut self.long_transactions,
        };
        *counter += 1;
        self.last_error = Some(LastError { offset, message });
    }
}
