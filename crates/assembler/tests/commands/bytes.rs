use crate::assembled::{walked_payload_bytes, Harness};
use replicast_assembler::windows::{FIELD_HISTORY, STRING_HISTORY};

/// Runs `commands` one at a time (the harness compares each window's count of its bytes with a walk of it after
/// each), then returns the count of `key`'s window.
fn bytes_after(h: &mut Harness, key: &str, commands: &[Vec<String>]) -> usize {
    for command in commands {
        let words: Vec<&str> = command.iter().map(String::as_str).collect();
        h.run(&[&words]);
    }
    let window = h.a.window(key.as_bytes()).expect("a window");
    assert_eq!(window.payload_bytes(), walked_payload_bytes(window));
    window.payload_bytes()
}

fn words(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

#[test]
fn a_hash_field_counts_its_recent_values_up_to_its_history() {
    let mut h = Harness::new(&["*"], 3);
    // Values of growing length, past the history's limit, so the count follows what the history lets go.
    let sets: Vec<Vec<String>> = (1..=FIELD_HISTORY + 4)
        .map(|n| words(&["HSET", "h", "f", &"v".repeat(n)]))
        .collect();
    // The name, the newest value, and the FIELD_HISTORY values before it (4 to FIELD_HISTORY + 3 bytes).
    let history: usize = (4..FIELD_HISTORY + 4).sum();
    assert_eq!(
        bytes_after(&mut h, "h", &sets),
        1 + (FIELD_HISTORY + 4) + history
    );
    let more = [
        words(&["HSET", "h", "a", "1", "b", "22", "c", "333"]),
        words(&["HINCRBY", "h", "a", "99"]),
        words(&["HDEL", "h", "b"]),
    ];
    // `f` was the least recently changed of four fields in a window of three: it left with its history. Left: `a`
    // (its name, "100", "1") and `c` (its name, "333").
    assert_eq!(bytes_after(&mut h, "h", &more), (1 + 3 + 1) + (1 + 3));
}

#[test]
fn a_string_counts_its_recent_values_up_to_its_history() {
    let mut h = Harness::new(&["*"], STRING_HISTORY + 1);
    let mut commands = vec![words(&["SET", "s", "x"])];
    commands.extend((0..STRING_HISTORY + 3).map(|_| words(&["APPEND", "s", "y"])));
    // Values of 1 to STRING_HISTORY + 4 bytes, of which the newest STRING_HISTORY + 1 are held.
    let held: usize = (4..=STRING_HISTORY + 4).sum();
    assert_eq!(bytes_after(&mut h, "s", &commands), held);
    let mut small = Harness::new(&["*"], 1);
    assert_eq!(
        bytes_after(
            &mut small,
            "s",
            &[words(&["SET", "s", "abc"]), words(&["SET", "s", "de"])]
        ),
        2
    );
}

#[test]
fn a_list_counts_what_every_command_lets_in_and_out() {
    let mut h = Harness::new(&["*"], 5);
    // The whole list, so that the commands at its head are exact too.
    h.snapshot(&[&["DEL", "l"], &["RPUSH", "l", "a", "bb"]]);
    let commands = [
        words(&["RPUSH", "l", "ccc", "dddd"]),
        words(&["LPUSH", "l", "z"]),
        words(&["LSET", "l", "1", "AAA"]),
        words(&["LREM", "l", "1", "bb"]),
        words(&["LINSERT", "l", "BEFORE", "ccc", "ii"]),
        // Past the window's 5 items: `z` leaves.
        words(&["RPUSH", "l", "eeeee"]),
        words(&["RPOP", "l", "1"]),
        words(&["LTRIM", "l", "-3", "-1"]),
        words(&["LPOP", "l", "1"]),
    ];
    assert_eq!(
        bytes_after(&mut h, "l", &commands),
        "ccc".len() + "dddd".len()
    );
    assert_eq!(h.rows("l"), ["dddd", "ccc"]);
}

#[test]
fn a_stream_and_a_sorted_set_count_their_entries_and_members() {
    let mut h = Harness::new(&["*"], 2);
    let commands = [
        words(&["XADD", "x", "1-1", "f", "v"]),
        words(&["XADD", "x", "2-1", "ff", "vv"]),
        words(&["XADD", "x", "3-1", "fff", "vvv"]),
        words(&["XDEL", "x", "2-1"]),
    ];
    assert_eq!(bytes_after(&mut h, "x", &commands), 6);
    let commands = [
        words(&["ZADD", "z", "1", "a", "2", "bb", "3", "ccc"]),
        words(&["ZINCRBY", "z", "5", "bb"]),
        // Below the floor of a window that lacks the members under it: it leaves.
        words(&["ZADD", "z", "0", "ccc"]),
    ];
    assert_eq!(bytes_after(&mut h, "z", &commands), "bb".len());
}
