//! The keys a command too large to hold may have written, found as its arguments stream by (`StreamedKeys`),
//! against what the relay's table finds in the same command held whole: every command and subcommand of redis-server
//! 7.0.15's own table, generated at random from its argument grammar (`command_grammar`). The streamed command's
//! written keys are the held one's, or, where they cannot be named while it streams by, every window is stale:
//! never fewer.

mod command_grammar;

use std::sync::Arc;

use command_grammar::{catalog, Names, Seeded, COMMAND_REPLY};
use proptest::prelude::*;
use replicast_server::command_table::streamed::{
    StreamedKeys, StreamedKeysFound, MAX_STREAMED_KEYS,
};
use replicast_server::command_table::{CommandKeys, CommandTable};

fn table() -> Arc<CommandTable> {
    let reply = redis::parse_redis_value(COMMAND_REPLY).expect("the recorded COMMAND");
    Arc::new(CommandTable::from_command_reply(&reply))
}

/// What streaming `args` through the finder gives, keeping what it asks for.
fn streamed(table: &Arc<CommandTable>, args: &[Vec<u8>]) -> StreamedKeysFound {
    let mut keys = StreamedKeys::new(table.clone(), args.len() as u64);
    for (index, arg) in args.iter().enumerate() {
        let keep = keys.arg_start(index as u64, arg.len() as u64);
        keys.arg_end(index as u64, keep.then_some(arg.as_slice()));
    }
    keys.finish()
}

/// The keys the table says `args` held whole may have written, in argument order; `None` when they cannot be told.
fn held_written(table: &CommandTable, args: &[Vec<u8>]) -> Option<Vec<Vec<u8>>> {
    let slices: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    let at = |i: usize| args[i].clone();
    match table.keys(&slices) {
        CommandKeys::None => Some(Vec::new()),
        CommandKeys::Known(keys) => Some(
            keys.iter()
                .filter(|k| k.written)
                .map(|k| at(k.index))
                .collect(),
        ),
        CommandKeys::Unresolved { written, .. } => written.map(|w| w.into_iter().map(at).collect()),
    }
}

/// Why a streamed command's written keys may go unnamed where the command held whole names them: each a rule that
/// needs what has not streamed by yet, or more keys than are kept.
const WHY_UNNAMED: [&str; 4] = [
    "its keys follow its own grammar, not a key specification",
    "its keys follow a keyword searched for from its end or its name",
    "its key count comes after its keys",
    "it may write more than",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn a_streamed_command_may_write_the_keys_of_the_same_command_held_whole(seed in any::<u64>()) {
        let table = table();
        let names = Names::standard();
        let mut choices = Seeded(seed | 1);
        for syntax in catalog().iter().filter(|s| s.has_keys) {
            let generated = syntax.generate(&names, &mut choices);
            let args = &generated.args;
            let shown = || String::from_utf8_lossy(&args.join(&b' ')).chars().take(300).collect::<String>();
            let found = streamed(&table, args);
            match (held_written(&table, args), &found) {
                (Some(held), StreamedKeysFound::Written { names, ranges }) => {
                    let streamed: Vec<Vec<u8>> = ranges
                        .iter()
                        .map(|r| names[r.start as usize..r.end as usize].to_vec())
                        .collect();
                    prop_assert_eq!(streamed, held, "{}", shown());
                }
                (Some(held), StreamedKeysFound::NoneWritten(why)) => {
                    prop_assert!(held.is_empty(), "{} ({why}) held whole writes {:?}", shown(), held);
                }
                (Some(held), StreamedKeysFound::Unnamed(why)) => {
                    prop_assert!(
                        WHY_UNNAMED.iter().any(|w| why.starts_with(w)),
                        "{}: unnamed ({why}) where the table names {} keys",
                        shown(),
                        held.len()
                    );
                    if why.starts_with("it may write more than") {
                        prop_assert!(held.len() > MAX_STREAMED_KEYS);
                    }
                }
                (None, found) => prop_assert!(
                    matches!(found, StreamedKeysFound::Unnamed(_)),
                    "{}: the table cannot tell its written keys, streamed: {found:?}",
                    shown()
                ),
            }
        }
    }
}
