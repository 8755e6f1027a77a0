//! The relay's filter over commands of every kind Redis 7.0.15 knows, generated from its own argument grammar
//! (`COMMAND DOCS`, recorded in server/tests/data) with choices from the input: keys the session may see or not,
//! wants or not, at every key position, now and then past 4,096 of them, `SORT` patterns and shard channels, alone,
//! after other frames or inside a `MULTI` block. Half the inputs then mangle the arguments (dropped, repeated,
//! replaced by raw bytes or keywords from the input), so that malformed commands reach the key specifications.
//!
//! Besides never panicking or hanging: nothing outside `--allow` leaves (no byte of a secret name, where the
//! grammar was followed), a withheld command's written keys that the session may see reach it as stale, and no
//! stale key is one it may not see or does not want. The same checks as `server/tests/filter.rs`'s property test.
//!
//! Run: `cargo +nightly fuzz run filter -- -max_total_time=600` from the repository root.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

#[path = "../../server/tests/command_grammar/mod.rs"]
mod command_grammar;

use command_grammar::{catalog, Choices, Filter, FromBytes, Names, Placing, Syntax};

struct Setup {
    commands: Vec<Syntax>,
    filter: Filter,
    names: Names,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| Setup {
        commands: catalog().into_iter().filter(|s| s.has_keys).collect(),
        filter: Filter::standard(),
        names: Names::standard(),
    })
}

fuzz_target!(|data: &[u8]| {
    let setup = setup();
    let mut choices = FromBytes(data);
    let syntax = &setup.commands[choices.below(setup.commands.len())];
    let placing = [Placing::Alone, Placing::AfterOthers, Placing::InBlock][choices.below(3)];
    let mut generated = syntax.generate(&setup.names, &mut choices);
    if choices.one_in(2) {
        setup.filter.check(&generated, placing);
        return;
    }
    // Mangled: a few edits anywhere after the name.
    for _ in 0..1 + choices.below(4) {
        let len = generated.args.len();
        let at = 1 + choices.below(len.max(2) - 1);
        match choices.below(4) {
            0 if at < len => {
                generated.args.remove(at);
            }
            1 if at < len => {
                let copy = generated.args[at].clone();
                generated.args.insert(at, copy);
            }
            2 => {
                let word = setup.names.values[choices.below(setup.names.values.len())].clone();
                generated.args.insert(at.min(len), word);
            }
            _ => {
                let raw: Vec<u8> = (0..choices.below(6)).map(|_| choices.below(256) as u8).collect();
                generated.args.insert(at.min(len), raw);
            }
        }
    }
    setup.filter.check_any(&generated.args, placing);
});
