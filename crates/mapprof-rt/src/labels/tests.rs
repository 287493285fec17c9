//! The label tests: the thread's labels, the table and the cap together.

use super::stack::PENDING;
use super::*;
use crate::thread::STATE;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering::Relaxed;

type Set = Vec<(String, String)>;

fn merge(outer: &Set, pairs: &[(&str, &str)]) -> Set {
    let mut map: BTreeMap<String, String> = outer.iter().cloned().collect();
    for (k, v) in pairs {
        map.insert(k.to_string(), v.to_string());
    }
    map.into_iter().collect()
}

/// The table and its counters are the process's: the label tests take turns, so that one's
/// inserts and overflows do not show in another's counts.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The id a sample taken now would carry, once a sample got through: one that found the
/// insert lock held by another thread (preempted, with the test's threads outnumbering the
/// CPUs) overflows and leaves the id uncached, and the next sample tries again.
fn sample_id() -> u32 {
    for _ in 0..1000 {
        let id = STATE.with(current_id);
        let busy = id == OVERFLOW && STATE.with(|s| s.labels.load(Relaxed)) == PENDING;
        if !busy {
            return id;
        }
        std::thread::yield_now();
    }
    STATE.with(current_id)
}

/// Random nested enters and leaves on several threads at once, with a "sample" after
/// each, checked against a reference: a thread's labels are the merge of what it entered;
/// a `HashMap` from contents to ids, shared by the threads, says that equal sets get one
/// id and distinct sets distinct ids; the id of a set decodes to it.
#[test]
fn sets_agree_with_a_hashmap_reference() {
    let _serial = serial();
    let reference: std::sync::Mutex<HashMap<Set, u32>> = Default::default();
    let keys = ["trace_id", "route", "tenant", "k3"];
    let values = ["a", "b", "/item", "ccc"];
    std::thread::scope(|s| {
        for t in 0..3u64 {
            let reference = &reference;
            s.spawn(move || {
                let mut rng = 0x1234_5678 + t;
                let mut stack: Vec<(Saved, Set)> = Vec::new();
                for _ in 0..20_000 {
                    let r = crate::sampler::next_u64(&mut rng);
                    if r.is_multiple_of(3) && !stack.is_empty() || stack.len() == 6 {
                        leave(stack.pop().unwrap().0);
                    } else {
                        let new: Vec<(&str, &str)> = (0..(r >> 8) as usize % 3)
                            .map(|i| {
                                let x = (r >> (16 + 4 * i)) as usize;
                                (keys[x % keys.len()], values[(x / 4) % values.len()])
                            })
                            .collect();
                        let outer = stack.last().map(|e| e.1.clone()).unwrap_or_default();
                        let expected = merge(&outer, &new);
                        stack.push((enter(&new), expected));
                    }
                    let expected = stack.last().map(|e| e.1.clone()).unwrap_or_default();
                    assert_eq!(current_pairs(), expected);
                    if r.is_multiple_of(5) {
                        continue; // not every state is sampled
                    }
                    let id = sample_id();
                    assert_eq!(id == NONE, expected.is_empty());
                    assert_eq!(sample_id(), id, "cached");
                    assert_eq!(pairs(id), expected);
                    if !expected.is_empty() {
                        let mut reference = reference.lock().unwrap();
                        let known = *reference.entry(expected.clone()).or_insert(id);
                        assert_eq!(known, id, "one set, two ids: {expected:?}");
                    }
                }
                while let Some((saved, _)) = stack.pop() {
                    leave(saved);
                }
                assert_eq!(sample_id(), NONE);
            });
        }
    });
    let reference = reference.into_inner().unwrap();
    let ids: std::collections::HashSet<u32> = reference.values().copied().collect();
    assert_eq!(ids.len(), reference.len(), "two sets, one id");
    let interned = (2..usage().0 as u32)
        .filter(|&id| reference.contains_key(&pairs(id)))
        .count();
    assert_eq!(interned, reference.len(), "a set interned twice");
}

#[test]
fn what_does_not_fit_overflows_until_its_guard_is_gone() {
    let _serial = serial();
    std::thread::spawn(|| {
        let before = overflow();
        let outer = enter(&[("route", "/r")]);
        // More bytes than the thread's buffer holds.
        let long = "x".repeat(MAX_STACK_BYTES);
        let inner = enter(&[("trace_id", &long)]);
        assert_eq!(sample_id(), OVERFLOW);
        assert_eq!(current_pairs(), overflow_pairs());
        let nested = enter(&[("tenant", "t")]);
        assert_eq!(sample_id(), OVERFLOW);
        leave(nested);
        leave(inner);
        assert_eq!(pairs(sample_id()), [("route".into(), "/r".into())]);
        // More distinct keys than a set holds: overflows when sampled.
        let keys: Vec<String> = (0..=MAX_PAIRS).map(|k| format!("k{k}")).collect();
        let many: Vec<(&str, &str)> = keys.iter().map(|k| (k.as_str(), "v")).collect();
        let inner = enter(&many[1..]);
        assert_eq!(sample_id(), OVERFLOW);
        leave(inner);
        leave(outer);
        assert_eq!(sample_id(), NONE);
        assert_eq!(overflow() - before, 3);
    })
    .join()
    .unwrap();
}

/// A key unique per sample keeps its first [`MAX_VALUES_PER_KEY`] values; later ones read
/// `overflow`, the set's other key kept, and sets seen before the cap keep their ids.
#[test]
fn a_key_keeps_a_bounded_number_of_values() {
    let _serial = serial();
    std::thread::spawn(|| {
        let before = capped();
        let mut ids = Vec::new();
        for i in 0..MAX_VALUES_PER_KEY + 20 {
            let value = format!("v{i}");
            let saved = enter(&[("cap_test", &value), ("route", "/r")]);
            ids.push(sample_id());
            leave(saved);
        }
        let value = |id: u32| {
            let pairs = pairs(id);
            assert_eq!(pairs[1], ("route".to_owned(), "/r".to_owned()), "{pairs:?}");
            pairs[0].1.clone()
        };
        for (i, &id) in ids.iter().enumerate().take(MAX_VALUES_PER_KEY) {
            assert_eq!(value(id), format!("v{i}"));
        }
        let late = &ids[MAX_VALUES_PER_KEY..];
        assert!(late
            .iter()
            .all(|&id| id == late[0] && value(id) == OVERFLOW_VALUE));
        assert_eq!(capped() - before, late.len() as u64);
        // A value seen before the cap still finds its own set.
        let saved = enter(&[("route", "/r"), ("cap_test", "v3")]);
        assert_eq!(sample_id(), ids[3]);
        leave(saved);
    })
    .join()
    .unwrap();
}

/// A prepared set labels like the same pairs entered: on its own, nested in a thread's
/// labels and holding a guard of its own, and after a sample has cached its id in it.
#[test]
fn a_prepared_set_labels_as_its_pairs_entered() {
    let _serial = serial();
    std::thread::spawn(|| {
        let task = Prepared::new(&[("trace_id", "t1"), ("route", "/p"), ("trace_id", "t2")]);
        let plain = enter(&[("trace_id", "t1"), ("route", "/p"), ("trace_id", "t2")]);
        let expected = sample_id();
        leave(plain);
        assert_eq!(
            pairs(expected),
            [
                ("route".into(), "/p".into()),
                ("trace_id".into(), "t2".into())
            ]
        );
        for poll in 0..3 {
            let saved = enter_prepared(&task);
            let cached = STATE.with(|s| s.labels.load(Relaxed));
            assert_eq!(
                cached == PENDING,
                poll == 0,
                "poll {poll}: id kept in the set"
            );
            assert_eq!(sample_id(), expected);
            let inner = enter(&[("tenant", "x")]);
            assert_eq!(
                pairs(sample_id()),
                merge(&pairs(expected), &[("tenant", "x")])
            );
            leave(inner);
            leave_prepared(saved, &task);
            assert_eq!(sample_id(), NONE);
        }
        // Under the thread's own labels: the merge, and the set's id untouched by it.
        let outer = enter(&[("route", "/outer"), ("tenant", "y")]);
        let saved = enter_prepared(&task);
        let merged = merge(
            &vec![("tenant".into(), "y".into())],
            &[("route", "/p"), ("trace_id", "t2")],
        );
        assert_eq!(pairs(sample_id()), merged);
        leave_prepared(saved, &task);
        assert_eq!(
            pairs(sample_id()),
            [
                ("route".into(), "/outer".into()),
                ("tenant".into(), "y".into())
            ]
        );
        leave(outer);
        let saved = enter_prepared(&task);
        assert_eq!(sample_id(), expected, "the set's own id, not the merge's");
        leave_prepared(saved, &task);
        assert_eq!(
            task.pairs().collect::<Vec<_>>(),
            [("trace_id", "t1"), ("route", "/p"), ("trace_id", "t2")]
        );
    })
    .join()
    .unwrap();
}
