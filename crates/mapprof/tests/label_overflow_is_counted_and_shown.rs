//! A full label table does not fail: once every id is taken by a sampled set, new sets (and
//! labels of too many keys or bytes) get the overflow set, whose samples carry
//! `mapprof_labels=overflow`; the overflow is counted and the profile's comments say so.

mod common;
use common::*;
use mapprof::ProfileKind;

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::system();

const EXTRA: usize = 100;

#[inline(never)]
fn allocate_one() {
    std::hint::black_box(Vec::<u8>::with_capacity(24));
}

#[test]
fn sets_past_capacity_are_counted_and_labelled_overflow() {
    let _p = mapprof::Profiler::builder().heap_rate(1).start().unwrap();
    let (overflowed, named) = on_new_thread(|| {
        std::hint::black_box(Vec::<u8>::with_capacity(8));
        // Every set is sampled, so none is freed: the table fills (two ids are reserved).
        let total = mapprof::MAX_LABEL_SETS - 2 + EXTRA;
        for i in 0..total {
            let id = format!("t{i}");
            mapprof::labels(&[("trace_id", &id)], allocate_one);
        }
        let mut overflowed = EXTRA;
        // The thread still knows its labels; only its samples cannot name them.
        mapprof::labels(&[("trace_id", "late")], || {
            assert_eq!(
                mapprof::current_labels(),
                [("trace_id".to_owned(), "late".to_owned())]
            );
            mapprof::labels(&[("route", "/x")], allocate_one);
        });
        // Once for the outer labels (the allocations of `current_labels` were sampled under
        // them), once for the nested ones.
        overflowed += 2;
        assert!(mapprof::current_labels().is_empty());
        // Too many keys, too many bytes: overflow whatever the room left.
        let keys: Vec<String> = (0..=mapprof::MAX_LABEL_KEYS)
            .map(|k| format!("k{k}"))
            .collect();
        let pairs: Vec<(&str, &str)> = keys.iter().map(|k| (k.as_str(), "v")).collect();
        mapprof::labels(&pairs, allocate_one);
        let long = "x".repeat(mapprof::MAX_LABEL_BYTES);
        mapprof::labels(&[("trace_id", &long)], || {
            assert_eq!(
                mapprof::current_labels(),
                [("mapprof_labels".to_owned(), "overflow".to_owned())]
            );
            allocate_one();
        });
        overflowed += 2;
        // A set interned earlier is still found.
        let named = mapprof::labels(&[("trace_id", "t7")], || {
            allocate_one();
            mapprof::current_labels()
        });
        (overflowed, named)
    });
    assert_eq!(mapprof::label_overflow(), overflowed as u64);
    assert_eq!(named, [("trace_id".to_owned(), "t7".to_owned())]);

    let allocs = decoded(ProfileKind::Allocs);
    let overflow_samples = total_labelled(&allocs, "alloc_objects", "allocate_one", |l| {
        label(l, "mapprof_labels") == Some("overflow")
    });
    // EXTRA from the full table, one nested, one of too many pairs, one too long.
    assert_eq!(overflow_samples, EXTRA as i64 + 3);
    let named_samples = total_labelled(&allocs, "alloc_objects", "allocate_one", |l| {
        label(l, "trace_id").is_some_and(|v| v.starts_with('t'))
    });
    assert_eq!(named_samples, (mapprof::MAX_LABEL_SETS - 2) as i64 + 1);
    let t7 = total_labelled(&allocs, "alloc_objects", "allocate_one", |l| {
        label(l, "trace_id") == Some("t7")
    });
    assert_eq!(t7, 2);
    let comments: Vec<&str> = allocs
        .comment
        .iter()
        .map(|&i| allocs.string_table[i as usize].as_str())
        .collect();
    assert!(
        comments
            .iter()
            .any(|c| c.contains(&format!("labels overflowed {overflowed} times"))),
        "{comments:?}"
    );
}
