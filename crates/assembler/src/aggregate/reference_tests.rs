//! The aggregator against a reference that recomputes everything from scratch after every step.

use super::*;
use crate::aggregate::order_stats::nearest_rank;
use crate::aggregate::rate::increase;
use proptest::prelude::*;

const KEYS: [&[u8]; 3] = [b"k0", b"k1", b"k2"];
const BUCKETS: [f64; 2] = [100.0, 1_000.0];

#[derive(Debug, Clone)]
enum Op {
    Add {
        key: usize,
        time: Option<f64>,
        gauge: Option<f64>,
        counter: Option<f64>,
        group: Option<&'static str>,
        t: Option<f64>,
        broken: bool,
    },
    Remove(usize),
    Clear(usize),
    Now(f64),
}

fn op() -> impl Strategy<Value = Op> {
    let add = (
        0..KEYS.len(),
        prop::option::weighted(0.8, (0..3_000u32).prop_map(f64::from)),
        prop::option::weighted(
            0.9,
            prop_oneof![(0..5i32).prop_map(f64::from), -1e3..1e3f64],
        ),
        prop::option::weighted(0.9, (0..50u32).prop_map(f64::from)),
        prop::option::weighted(0.9, prop_oneof![Just("x"), Just("y")]),
        prop::option::weighted(0.5, (0..3_000u32).prop_map(f64::from)),
        prop::bool::weighted(0.05),
    )
        .prop_map(|(key, time, gauge, counter, group, t, broken)| Op::Add {
            key,
            time,
            gauge,
            counter,
            group,
            t,
            broken,
        });
    prop_oneof![
        8 => add,
        4 => any::<usize>().prop_map(Op::Remove),
        1 => (0..KEYS.len()).prop_map(Op::Clear),
        1 => (0..3_500u32).prop_map(|t| Op::Now(f64::from(t))),
    ]
}

fn grouping() -> impl Strategy<Value = Grouping> {
    prop_oneof![
        Just(Grouping::ByKey),
        Just(Grouping::ByField("g".into())),
        Just(Grouping::AcrossKeys(Across::AllItems)),
        Just(Grouping::AcrossKeys(Across::LatestPerKey)),
    ]
}

#[derive(Debug, Clone)]
struct RefItem {
    id: ItemId,
    key: usize,
    time: f64,
    values: [Option<f64>; 2],
    group: Vec<u8>,
}

struct Reference {
    grouping: Grouping,
    items: Vec<RefItem>,
    clock: f64,
    now: Option<f64>,
}

impl Reference {
    fn members(&self) -> Vec<&RefItem> {
        if self.grouping != Grouping::AcrossKeys(Across::LatestPerKey) {
            return self.items.iter().collect();
        }
        (0..KEYS.len())
            .filter_map(|k| {
                self.items
                    .iter()
                    .filter(|i| i.key == k)
                    .max_by(|a, b| (a.time, a.id).partial_cmp(&(b.time, b.id)).unwrap())
            })
            .collect()
    }

    fn stats(&self, members: &[&RefItem], f: usize, counter: bool) -> Stats {
        let mut values: Vec<f64> = members.iter().filter_map(|i| i.values[f]).collect();
        values.sort_by(f64::total_cmp);
        let q = |pm| nearest_rank(values.len(), pm).map(|i| values[i]);
        let rate = counter.then(|| self.rate(members, f)).flatten();
        Stats {
            count: values.len(),
            min: values.first().copied(),
            max: values.last().copied(),
            mean: (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64),
            p50: q(500),
            p95: q(950),
            p99: q(990),
            rate,
        }
    }

    fn rate(&self, members: &[&RefItem], f: usize) -> Option<f64> {
        let (mut total, mut pairs) = (0.0, 0);
        for k in 0..KEYS.len() {
            let mut chain: Vec<&&RefItem> = members
                .iter()
                .filter(|i| i.key == k && i.values[f].is_some())
                .collect();
            chain.sort_by(|a, b| (a.time, a.id).partial_cmp(&(b.time, b.id)).unwrap());
            for pair in chain.windows(2) {
                total += increase(pair[0].values[f]?, pair[1].values[f]?);
                pairs += 1;
            }
        }
        let first = members.iter().map(|i| i.time).fold(f64::INFINITY, f64::min);
        let last = members
            .iter()
            .map(|i| i.time)
            .fold(f64::NEG_INFINITY, f64::max);
        (pairs > 0 && last > first).then(|| total * 1000.0 / (last - first))
    }

    fn summaries(&self) -> Vec<GroupSummary> {
        let members = self.members();
        let mut names: Vec<Vec<u8>> = members.iter().map(|i| i.group.clone()).collect();
        names.sort();
        names.dedup();
        let latest_only = self.grouping == Grouping::AcrossKeys(Across::LatestPerKey);
        names
            .into_iter()
            .map(|name| {
                let mut in_group: Vec<&RefItem> = members
                    .iter()
                    .copied()
                    .filter(|i| i.group == name)
                    .collect();
                in_group.sort_by(|a, b| (a.time, a.id).partial_cmp(&(b.time, b.id)).unwrap());
                let fields = (0..2)
                    .map(|f| {
                        let counter = f == 1 && !latest_only;
                        FieldSummary {
                            window: self.stats(&in_group, f, counter),
                            buckets: BUCKETS
                                .iter()
                                .map(|len| {
                                    let inside: Vec<&RefItem> = in_group
                                        .iter()
                                        .copied()
                                        .filter(|i| i.time > self.clock - len)
                                        .collect();
                                    self.stats(&inside, f, counter)
                                })
                                .collect(),
                            latest: in_group.iter().rev().find_map(|i| {
                                Some(Latest {
                                    value: i.values[f]?,
                                    time_ms: i.time,
                                })
                            }),
                        }
                    })
                    .collect();
                GroupSummary {
                    group: name,
                    items: in_group.len(),
                    fields,
                }
            })
            .collect()
    }
}

fn close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0),
        _ => false,
    }
}

fn assert_same(got: &[GroupSummary], want: &[GroupSummary]) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len(), "groups: {:?} vs {:?}", got, want);
    for (g, w) in got.iter().zip(want) {
        prop_assert_eq!(&g.group, &w.group);
        prop_assert_eq!(g.items, w.items);
        for (gf, wf) in g.fields.iter().zip(&w.fields) {
            prop_assert_eq!(gf.latest, wf.latest);
            for (gs, ws) in
                std::iter::once((&gf.window, &wf.window)).chain(gf.buckets.iter().zip(&wf.buckets))
            {
                let exact = |s: &Stats| (s.count, s.min, s.max, s.p50, s.p95, s.p99);
                prop_assert_eq!(exact(gs), exact(ws), "{:?} vs {:?}", gs, ws);
                prop_assert!(
                    close(gs.mean, ws.mean),
                    "mean {:?} vs {:?}",
                    gs.mean,
                    ws.mean
                );
                prop_assert!(
                    close(gs.rate, ws.rate),
                    "rate {:?} vs {:?}",
                    gs.rate,
                    ws.rate
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn matches_a_reference_recomputed_from_scratch(
        grouping in grouping(),
        time_field in any::<bool>(),
        ops in prop::collection::vec(op(), 1..120),
    ) {
        let mut spec = AggregateSpec::new(vec![FieldSpec::gauge("a"), FieldSpec::counter("c")], grouping.clone())
            .with_buckets_ms(BUCKETS.to_vec());
        if time_field {
            spec = spec.with_time_field("t");
        }
        let mut agg = Aggregator::new(spec).unwrap();
        let mut reference = Reference { grouping: grouping.clone(), items: Vec::new(), clock: f64::NEG_INFINITY, now: None };
        let mut next_id = 0;
        for op in ops {
            match op {
                Op::Add { key, time, gauge, counter, group, t, broken } => {
                    let mut members = Vec::new();
                    if let Some(v) = gauge { members.push(format!(r#""a":{v:?}"#)); }
                    if let Some(v) = counter { members.push(format!(r#""c":{v:?}"#)); }
                    if let Some(g) = group { members.push(format!(r#""g":"{g}""#)); }
                    if let Some(t) = t { members.push(format!(r#""t":{t:?}"#)); }
                    let mut json = format!("{{{}}}", members.join(","));
                    if broken { json.pop(); }
                    next_id += 1;
                    agg.added(KEYS[key], Item { id: next_id, time_ms: time, payload: Payload::Value(json.as_bytes()) });
                    let group = match &grouping {
                        Grouping::ByKey => Some(KEYS[key].to_vec()),
                        Grouping::ByField(_) => group.map(|g| g.as_bytes().to_vec()),
                        Grouping::AcrossKeys(_) => Some(Vec::new()),
                    };
                    if let (false, Some(group)) = (broken, group) {
                        let stamp = reference.now.or(reference.clock.is_finite().then_some(reference.clock)).unwrap_or(0.0);
                        let time = time.or(t.filter(|_| time_field)).unwrap_or(stamp);
                        reference.clock = reference.clock.max(time);
                        reference.items.push(RefItem { id: next_id, key, time, values: [gauge, counter], group });
                    }
                }
                Op::Remove(i) => {
                    if !reference.items.is_empty() {
                        let item = reference.items.remove(i % reference.items.len());
                        agg.removed(KEYS[item.key], item.id);
                    }
                }
                Op::Clear(key) => {
                    agg.key_cleared(KEYS[key]);
                    reference.items.retain(|i| i.key != key);
                }
                Op::Now(t) => {
                    agg.set_now(t);
                    reference.now = Some(t);
                    reference.clock = reference.clock.max(t);
                }
            }
            assert_same(&agg.summaries(), &reference.summaries())?;
        }
        let fleet_field = 0;
        if let Some(s) = reference.summaries().first() {
            let values: Vec<f64> = reference.members().iter().filter(|i| i.group == s.group).filter_map(|i| i.values[fleet_field]).collect();
            for x in [0.0, 2.0, 100.0] {
                prop_assert_eq!(
                    agg.count_above(&s.group, fleet_field, Scope::Window, x),
                    Some(values.iter().filter(|&&v| v > x).count())
                );
            }
        }
    }
}
