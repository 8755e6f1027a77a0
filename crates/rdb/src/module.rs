//! Skipping module data without the module: a module value (`MODULE_2`) or module aux field is a sequence of
//! typed opcodes (`rdb.h`'s `RDB_MODULE_OPCODE_*`) ending with the EOF opcode, so it can be walked blind.

use super::cursor::Cursor;
use super::error::{Halt, RdbError};
use super::Limits;

const MODULE_OP_EOF: u64 = 0;
const MODULE_OP_SINT: u64 = 1;
pub(crate) const MODULE_OP_UINT: u64 = 2;
const MODULE_OP_FLOAT: u64 = 3;
const MODULE_OP_DOUBLE: u64 = 4;
const MODULE_OP_STRING: u64 = 5;

/// Skips one module opcode and its operand; returns whether it was the EOF opcode.
pub(crate) fn skip_module_op(
    cur: &mut Cursor<'_>,
    limits: &Limits,
    scratch: &mut Vec<u8>,
) -> Result<bool, Halt> {
    let at = cur.offset();
    match cur.len("a module opcode")? {
        MODULE_OP_EOF => return Ok(true),
        MODULE_OP_SINT | MODULE_OP_UINT => {
            cur.len("a module integer")?;
        }
        MODULE_OP_FLOAT => {
            cur.take(4)?;
        }
        MODULE_OP_DOUBLE => {
            cur.take(8)?;
        }
        MODULE_OP_STRING => {
            cur.string("a module string", limits, scratch)?;
        }
        other => {
            return Err(RdbError::Unexpected {
                offset: at,
                expected: "a module opcode (0 to 5)",
                found: other.to_string(),
            }
            .into())
        }
    }
    Ok(false)
}
