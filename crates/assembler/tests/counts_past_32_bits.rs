//! Counts and offsets from the stream that do not fit 32 bits: in the browser (wasm32, a 32-bit `usize`) they must
//! mean what they mean natively, not their low 32 bits. Runs natively and, with `wasm-pack test`, in wasm in
//! Chromium, where it matters.

mod assembled;

use assembled::Harness;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// 2^32 + 1: 1 once cut to 32 bits.
const PAST_32_BITS: &str = "4294967297";

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn a_pop_count_past_32_bits_pops_every_member() {
    let mut h = Harness::new(&["*"], 10);
    h.run(&[&["ZADD", "z", "1", "a", "2", "b", "3", "c"]]);
    h.run(&[&["ZPOPMIN", "z", PAST_32_BITS]]);
    assert_eq!(h.rows("z"), Vec::<String>::new());
    h.run(&[&["ZADD", "y", "1", "a", "2", "b", "3", "c"]]);
    h.run(&[&["ZPOPMAX", "y", PAST_32_BITS]]);
    assert_eq!(h.rows("y"), Vec::<String>::new());
    assert!(h.topups().is_empty());
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn a_setrange_offset_past_32_bits_is_past_the_limit() {
    let mut h = Harness::new(&["*"], 4);
    h.run(&[&["SET", "s", "hello"]]);
    // Natively past the window's SETRANGE limit: the value is Redis's to compute, and topped up. Cut to 32 bits it
    // would be offset 1, and the window would claim "hxllo".
    h.run(&[&["SETRANGE", "s", PAST_32_BITS, "x"]]);
    assert_eq!(h.topups(), ["s"]);
    assert_ne!(h.rows("s"), ["hxllo"]);
}
