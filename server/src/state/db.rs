//! The database the relay's state holds, named by the state's module and by its view of each batch.

/// The database the state holds: the one pages watch unless they ask for another.
pub const STATE_DB: u32 = 0;
