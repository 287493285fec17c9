//! A full stack table counts samples as lost and shows them as a frame of their own.
#![cfg(feature = "jemalloc")]

mod common;
use common::*;
use mapprof::ProfileKind;
use mapprof_profile::builder::LOST_FRAME;

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::jemalloc();

/// 2^17 distinct stacks, twice the table's buckets: a binary tree of calls through two
/// functions, one allocation at each leaf.
const DEPTH: u32 = 17;
const _: () = assert!(1 << DEPTH >= 2 * mapprof_rt::table::MAX_BUCKETS);

#[inline(never)]
fn left(path: u32, depth: u32) {
    descend(path, depth);
    std::hint::black_box(()); // no tail call: keep this frame
}

#[inline(never)]
fn right(path: u32, depth: u32) {
    descend(path, depth);
    std::hint::black_box(());
}

#[inline(never)]
fn descend(path: u32, depth: u32) {
    if depth == 0 {
        let v: Vec<u8> = Vec::with_capacity(64);
        std::hint::black_box(&v);
    } else if path & 1 == 0 {
        left(path >> 1, depth - 1);
    } else {
        right(path >> 1, depth - 1);
    }
}

#[inline(never)]
fn one_stack_each() {
    for path in 0..1u32 << DEPTH {
        descend(path, DEPTH);
    }
}

#[test]
fn samples_beyond_capacity_are_counted_under_the_lost_frame() {
    let _p = mapprof::Profiler::builder().heap_rate(1).start().unwrap();
    on_new_thread(one_stack_each);
    // The host keeps working with a full table.
    let after: Vec<Vec<u8>> = (0..1000).map(|i| vec![1; i]).collect();
    assert_eq!(after[999].len(), 999);

    let heap = decoded(ProfileKind::Allocs);
    let filed = total_through(&heap, "alloc_objects", "one_stack_each");
    let lost = total_through(&heap, "alloc_objects", LOST_FRAME);
    let total = 1i64 << DEPTH;
    assert!(filed > 0 && filed < total, "filed {filed}");
    assert!(lost >= total - filed, "lost {lost}, filed {filed}");
    // Lost samples are still in the live set until freed.
    assert_eq!(total_through(&heap, "inuse_objects", "one_stack_each"), 0);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("allocs.pb.gz");
    mapprof::write_profile_to_path(ProfileKind::Allocs, &file).unwrap();
    let top = go_pprof(&["-top", "-sample_index=alloc_objects"], &file);
    assert!(top.contains(LOST_FRAME), "{top}");
}
