//! One sort for the assembler and the wasm client. Core's sort is generic over the element and the comparator, so
//! every call site with its own element type compiles its own copy of the whole algorithm (2–3 KB of wasm each: the
//! client had six). Here the algorithm is compiled once, over indices with a `dyn` comparator; what stays generic
//! per element type is only the moving of elements into the order found, a few instructions.
//!
//! The sorts are stable (equal elements keep their order), which every caller may rely on. None of them is on the
//! path that applies commands: they order keys for a snapshot, a saved view, a digest or a page's read.

use std::cmp::Ordering;

/// Sorts `items` by `compare`, stably.
pub fn sort_by<T>(items: &mut [T], compare: impl Fn(&T, &T) -> Ordering) {
    let order = sorted_order(items.len(), &|a, b| compare(&items[a], &items[b]));
    permute(items, order);
}

/// Sorts `items` by the bytes `key` gives for each, stably.
pub fn sort_by_bytes<T>(items: &mut [T], key: impl Fn(&T) -> &[u8]) {
    sort_by(items, |a, b| key(a).cmp(key(b)));
}

/// Sorts `items` in their own order, stably.
pub fn sort<T: Ord>(items: &mut [T]) {
    sort_by(items, T::cmp);
}

/// The indices `0..len` in the order `compare` gives them; equal ones by index, which makes the order stable. The
/// only instantiation of core's sort that this module makes.
fn sorted_order(len: usize, compare: &dyn Fn(usize, usize) -> Ordering) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    order.sort_unstable_by(|&a, &b| compare(a, b).then(a.cmp(&b)));
    order
}

/// Moves `items` so that the element at `i` is the one that was at `order[i]`, following each cycle of the
/// permutation with swaps (no element is cloned, nothing but `order` is allocated).
fn permute<T>(items: &mut [T], mut order: Vec<usize>) {
    for start in 0..items.len() {
        let mut at = start;
        loop {
            let from = order[at];
            // Marks `at` placed, so that a later start inside this cycle stops at once.
            order[at] = at;
            if from == start || from == at {
                break;
            }
            items.swap(at, from);
            at = from;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_like_core_stable_sort() {
        let words: Vec<&[u8]> = vec![b"b", b"a", b"", b"ab", b"a", b"zz", b"b", b"aa", b"c"];
        let mut sorted = words.clone();
        sort(&mut sorted);
        let mut expected = words.clone();
        expected.sort();
        assert_eq!(sorted, expected);
    }

    #[test]
    fn equal_elements_keep_their_order() {
        let mut pairs = vec![(2, 'a'), (1, 'b'), (2, 'c'), (1, 'd'), (0, 'e'), (2, 'f')];
        sort_by(&mut pairs, |a, b| a.0.cmp(&b.0));
        assert_eq!(
            pairs,
            vec![(0, 'e'), (1, 'b'), (1, 'd'), (2, 'a'), (2, 'c'), (2, 'f')]
        );
    }

    #[test]
    fn every_permutation_of_five_is_sorted() {
        // All 120 orders of five distinct elements: every cycle structure `permute` can meet.
        let mut seen = 0;
        let mut items = [0u8, 1, 2, 3, 4];
        permutations(&mut items, 0, &mut |p| {
            let mut owned: Vec<Vec<u8>> = p.iter().map(|&b| vec![b]).collect();
            sort_by_bytes(&mut owned, |v| v);
            assert_eq!(
                owned,
                vec![vec![0], vec![1], vec![2], vec![3], vec![4]],
                "from {p:?}"
            );
            seen += 1;
        });
        assert_eq!(seen, 120);
    }

    fn permutations(items: &mut [u8; 5], from: usize, visit: &mut dyn FnMut(&[u8; 5])) {
        if from == items.len() {
            visit(items);
            return;
        }
        for i in from..items.len() {
            items.swap(from, i);
            permutations(items, from + 1, visit);
            items.swap(from, i);
        }
    }

    #[test]
    fn empty_and_single() {
        let mut none: Vec<u32> = Vec::new();
        sort(&mut none);
        assert!(none.is_empty());
        let mut one = vec![7];
        sort(&mut one);
        assert_eq!(one, vec![7]);
    }
}
