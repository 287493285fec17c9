//! Labels never fail. A key unique per request (a trace id) keeps its first
//! `MAX_LABEL_VALUES` values; later ones are recorded as `overflow` with the set's other pairs
//! kept, and counted. Once every id of the table is taken by a sampled set, new sets (and labels
//! of too many keys or bytes) get the overflow set, whose samples carry
//! `mapprof_labels=overflow`; that is counted too, and the profile's comments say both.

mod common;
use common::*;
use mapprof::ProfileKind;

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::system();

/// Trace ids past the per-key cap.
const CAPPED: usize = 50;
/// Values of each of two keys whose combinations fill the table.
const SIDE: usize = 64;

#[inline(never)]
fn allocate_one() {
    std::hint::black_box(Vec::<u8>::with_capacity(24));
}

#[test]
fn sets_past_capacity_are_counted_and_labelled_overflow() {
    let _p = mapprof::Profiler::builder().heap_rate(1).start().unwrap();
    let (overflowed, capped, named) = on_new_thread(|| {
        std::hint::black_box(Vec::<u8>::with_capacity(8));
        // A trace id per request: the first MAX_LABEL_VALUES take a set each, the others
        // share one set with `trace_id=overflow`.
        for i in 0..mapprof::MAX_LABEL_VALUES + CAPPED {
            let id = format!("t{i}");
            mapprof::labels(&[("trace_id", &id), ("route", "/item")], allocate_one);
        }
        let mut capped = CAPPED;
        // Two keys of a few values each, not capped, whose combinations fill the table (two
        // ids are reserved). Every set is sampled, so none is freed.
        let free = mapprof::MAX_LABEL_SETS - 2 - (mapprof::MAX_LABEL_VALUES + 1);
        let values: Vec<String> = (0..SIDE).map(|v| v.to_string()).collect();
        for a in &values {
            for b in &values {
                mapprof::labels(&[("a", a), ("b", b)], allocate_one);
            }
        }
        let mut overflowed = SIDE * SIDE - free;
        // The thread still knows its labels; only its samples cannot name them.
        mapprof::labels(&[("trace_id", "late")], || {
            assert_eq!(
                mapprof::current_labels(),
                [("trace_id".to_owned(), "late".to_owned())]
            );
            mapprof::labels(&[("route", "/x")], allocate_one);
        });
        // Once for the outer labels (the allocations of `current_labels` were sampled under
        // them), once for the nested ones: each first capped, then found no room.
        overflowed += 2;
        capped += 2;
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
        let named = mapprof::labels(&[("route", "/item"), ("trace_id", "t7")], || {
            allocate_one();
            mapprof::current_labels()
        });
        (overflowed, capped, named)
    });
    assert_eq!(mapprof::label_overflow(), overflowed as u64);
    assert_eq!(mapprof::label_values_capped(), capped as u64);
    assert_eq!(
        named,
        [
            ("route".to_owned(), "/item".to_owned()),
            ("trace_id".to_owned(), "t7".to_owned())
        ]
    );

    let allocs = decoded(ProfileKind::Allocs);
    let overflow_samples = total_labelled(&allocs, "alloc_objects", "allocate_one", |l| {
        label(l, "mapprof_labels") == Some("overflow")
    });
    // Those of the full table, one nested, one of too many pairs, one too long.
    let full = SIDE * SIDE - (mapprof::MAX_LABEL_SETS - 2 - (mapprof::MAX_LABEL_VALUES + 1));
    assert_eq!(overflow_samples, full as i64 + 3);
    let named_samples = total_labelled(&allocs, "alloc_objects", "allocate_one", |l| {
        label(l, "trace_id").is_some_and(|v| v.starts_with('t'))
    });
    assert_eq!(named_samples, mapprof::MAX_LABEL_VALUES as i64 + 1);
    let capped_samples = total_labelled(&allocs, "alloc_objects", "allocate_one", |l| {
        label(l, "trace_id") == Some("overflow") && label(l, "route") == Some("/item")
    });
    assert_eq!(capped_samples, CAPPED as i64);
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
        comments.iter().any(
            |c| c.contains(&format!("labels overflowed {overflowed} times"))
                && c.contains(&format!("recorded as overflow {capped} times"))
        ),
        "{comments:?}"
    );
}
