use super::*;

#[test]
fn nearest_rank_quantiles_of_small_sets() {
    let mut s = OrderStats::new();
    for v in [4.0, 1.0, 3.0, 2.0] {
        s.insert(v).unwrap();
    }
    assert_eq!(s.quantile(500), Some(2.0));
    assert_eq!(s.quantile(950), Some(4.0));
    assert_eq!(s.quantile(0), Some(1.0));
    assert_eq!(s.quantile(1000), Some(4.0));
    assert_eq!(s.quantile(250), Some(1.0));
    assert_eq!(s.quantile(251), Some(2.0));
    assert_eq!(
        (s.min(), s.max(), s.mean()),
        (Some(1.0), Some(4.0), Some(2.5))
    );
    assert_eq!(OrderStats::new().quantile(500), None);
}

#[test]
fn copies_share_a_node_and_leave_one_at_a_time() {
    let mut s = OrderStats::new();
    for _ in 0..3 {
        s.insert(7.0).unwrap();
    }
    s.insert(-0.0).unwrap();
    assert_eq!(s.len(), 4);
    assert_eq!(s.nodes.len(), 2);
    assert!(s.remove(0.0));
    assert_eq!(s.min(), Some(7.0));
    assert!(s.remove(7.0));
    assert!(!s.remove(8.0));
    assert_eq!((s.len(), s.sum()), (2, 14.0));
    assert!(s.remove(7.0) && s.remove(7.0));
    assert!(s.is_empty());
    assert_eq!((s.min(), s.mean(), s.sum()), (None, None, 0.0));
}

#[test]
fn filled_at_once_answers_as_inserted_one_by_one() {
    // Scrambled, with repeats, -0.0 and values that cannot enter.
    let mut values: Vec<f64> = (0..500u32)
        .map(|i| f64::from(i.wrapping_mul(7919) % 211) / 4.0 - 10.0)
        .collect();
    values.extend([-0.0, 0.0, f64::NAN, f64::INFINITY, 3.25, 3.25]);
    let mut inserted = OrderStats::new();
    for &v in &values {
        let _ = inserted.insert(v);
    }
    let mut filled = OrderStats::new();
    filled.insert(1e9).unwrap();
    filled.fill(values.iter().copied());
    assert_eq!(filled.len(), inserted.len());
    assert_eq!(
        filled.nodes.len(),
        inserted.nodes.len(),
        "equal values share a node"
    );
    assert_eq!(
        (filled.min(), filled.max()),
        (inserted.min(), inserted.max())
    );
    assert!((filled.sum() - inserted.sum()).abs() < 1e-9);
    for rank in 0..filled.len() + 1 {
        assert_eq!(filled.nth(rank), inserted.nth(rank), "rank {rank}");
    }
    for x in [-11.0, -10.0, 0.0, 3.25, 42.0, 1e9] {
        assert_eq!(filled.count_above(x), inserted.count_above(x));
        assert_eq!(filled.count_below(x), inserted.count_below(x));
    }
    assert!(
        filled.height() <= 4 * inserted.height(),
        "balanced: {}",
        filled.height()
    );
    // It stays a working tree.
    assert!(filled.remove(3.25) && filled.remove(3.25));
    assert!(inserted.remove(3.25) && inserted.remove(3.25));
    filled.insert(99.5).unwrap();
    inserted.insert(99.5).unwrap();
    for rank in 0..filled.len() {
        assert_eq!(filled.nth(rank), inserted.nth(rank));
    }
    filled.fill([]);
    assert!(filled.is_empty());
    assert_eq!(filled.sum(), 0.0);
}

#[test]
fn rejects_nan_and_infinities() {
    let mut s = OrderStats::new();
    assert_eq!(s.insert(f64::INFINITY), Err(NotFinite(f64::INFINITY)));
    assert!(s.insert(f64::NEG_INFINITY).is_err());
    assert!(s.insert(f64::NAN).is_err());
    assert!(!s.remove(f64::NAN));
    assert!(s.is_empty());
}

#[test]
fn counts_above_and_below_a_threshold() {
    let mut s = OrderStats::new();
    for v in [10.0, 50.0, 50.0, 90.0, 95.0] {
        s.insert(v).unwrap();
    }
    assert_eq!(s.count_above(50.0), 2);
    assert_eq!(s.count_above(49.9), 4);
    assert_eq!(s.count_below(50.0), 1);
    assert_eq!(s.count_at_most(50.0), 3);
    assert_eq!(s.count_above(100.0), 0);
}

#[test]
fn sorted_inserts_keep_the_tree_shallow() {
    // 200,000 ascending then descending values: a plain BST would be a 200,000-deep list.
    let n: usize = 200_000;
    let mut s = OrderStats::new();
    for i in 0..n {
        s.insert(i as f64).unwrap();
    }
    let bound = 4 * (usize::BITS - n.leading_zeros()) as usize;
    assert!(s.height() <= bound, "height {} > {bound}", s.height());
    for i in 0..n / 2 {
        assert!(s.remove(i as f64));
    }
    for i in (0..n).rev() {
        s.insert(-(i as f64)).unwrap();
    }
    assert!(s.height() <= bound + 4, "height {} > {bound}", s.height());
    assert_eq!(s.len(), n + n / 2);
    assert_eq!(s.quantile(500), Some(-((n / 4) as f64)));
}

#[cfg(not(target_arch = "wasm32"))]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// The reference: a sorted vector.
    fn reference_quantile(sorted: &[f64], per_mille: u32) -> Option<f64> {
        nearest_rank(sorted.len(), per_mille).map(|i| sorted[i])
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(f64),
        Remove(f64),
        RemoveExisting(usize),
        Clear,
    }

    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            // Few distinct values: many copies.
            (0..8i32).prop_map(f64::from),
            -1e6..1e6f64,
            // Any float, huge ones scaled down so that 300 of them cannot overflow a sum.
            prop::num::f64::ANY.prop_map(|v| if v.abs() > 1e300 { v * 1e-10 } else { v }),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => value().prop_map(Op::Insert),
            1 => value().prop_map(Op::Remove),
            3 => any::<usize>().prop_map(Op::RemoveExisting),
            1 => Just(Op::Clear),
        ]
    }

    proptest! {
        #[test]
        fn matches_a_sorted_vector(ops in prop::collection::vec(op(), 0..300), probes in prop::collection::vec(value(), 4)) {
            let mut s = OrderStats::new();
            let mut reference: Vec<f64> = Vec::new();
            for op in ops {
                match op {
                    Op::Insert(v) => {
                        let inserted = s.insert(v).is_ok();
                        prop_assert_eq!(inserted, v.is_finite());
                        if inserted {
                            reference.push(v + 0.0);
                        }
                    }
                    Op::Remove(v) => {
                        let at = reference.iter().position(|&r| r == v);
                        prop_assert_eq!(s.remove(v), at.is_some());
                        if let Some(at) = at {
                            reference.swap_remove(at);
                        }
                    }
                    Op::RemoveExisting(i) => {
                        if !reference.is_empty() {
                            let v = reference.swap_remove(i % reference.len());
                            prop_assert!(s.remove(v));
                        }
                    }
                    Op::Clear => {
                        s.clear();
                        reference.clear();
                    }
                }
                let mut sorted = reference.clone();
                sorted.sort_by(f64::total_cmp);
                prop_assert_eq!(s.len(), sorted.len());
                prop_assert_eq!(s.min(), sorted.first().copied());
                prop_assert_eq!(s.max(), sorted.last().copied());
                for pm in [0, 10, 500, 950, 990, 1000] {
                    prop_assert_eq!(s.quantile(pm), reference_quantile(&sorted, pm));
                }
                let exact: f64 = sorted.iter().sum();
                let scale: f64 = sorted.iter().map(|v| v.abs()).sum::<f64>().max(1.0);
                prop_assert!((s.sum() - exact).abs() <= 1e-12 * scale, "sum {} vs {}", s.sum(), exact);
            }
            let mut sorted = reference.clone();
            sorted.sort_by(f64::total_cmp);
            for x in probes {
                if x.is_nan() {
                    continue;
                }
                prop_assert_eq!(s.count_above(x), sorted.iter().filter(|&&v| v > x).count());
                prop_assert_eq!(s.count_below(x), sorted.iter().filter(|&&v| v < x).count());
            }
        }
    }
}
