//! A full stack table counts samples as lost and shows them as a frame of their own.

mod common;
use common::*;
use mapprof::ProfileKind;
use mapprof_profile::builder::LOST_FRAME;

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::jemalloc();

/// More distinct (stack, size) pairs than the table has buckets.
const SIZES: usize = mapprof_rt::table::MAX_BUCKETS + 5_000;

#[inline(never)]
fn one_size_each() {
    for size in 1..=SIZES {
        let v: Vec<u8> = Vec::with_capacity(size);
        std::hint::black_box(&v);
    }
}

#[test]
fn samples_beyond_capacity_are_counted_under_the_lost_frame() {
    let _p = mapprof::Profiler::builder().heap_rate(1).start().unwrap();
    on_new_thread(one_size_each);
    // The host keeps working with a full table.
    let after: Vec<Vec<u8>> = (0..1000).map(|i| vec![1; i]).collect();
    assert_eq!(after[999].len(), 999);

    let heap = decoded(ProfileKind::Allocs);
    let filed = total_through(&heap, "alloc_objects", "one_size_each");
    let lost = total_through(&heap, "alloc_objects", LOST_FRAME);
    assert!(filed > 0 && filed < SIZES as i64, "filed {filed}");
    assert!(lost >= SIZES as i64 - filed, "lost {lost}, filed {filed}");
    // Lost samples are still tracked until freed.
    assert_eq!(total_through(&heap, "inuse_objects", "one_size_each"), 0);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("allocs.pb.gz");
    std::fs::write(&file, {
        let mut b = Vec::new();
        mapprof::write_profile(ProfileKind::Allocs, &mut b).unwrap();
        b
    })
    .unwrap();
    let top = go_pprof(&["-top", "-sample_index=alloc_objects"], &file);
    assert!(top.contains(LOST_FRAME), "{top}");
}
