//! In-use figures stay right when blocks are freed on another thread than the one that
//! allocated them, and when they are grown or shrunk with realloc.

mod common;
use common::*;
use mapprof::ProfileKind;
use std::sync::mpsc;

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::system();

/// Boxed so that each block is an allocation of its own.
#[allow(clippy::vec_box)]
#[inline(never)]
fn produce_blocks(n: usize) -> Vec<Box<[u8; 1000]>> {
    (0..n).map(|_| Box::new([7u8; 1000])).collect()
}

#[inline(never)]
fn grow_by_realloc(v: &mut Vec<u64>, to: usize) {
    v.reserve_exact(to - v.len());
    std::hint::black_box(v); // no tail call: keep this frame on the stack
}

#[inline(never)]
fn shrink_by_realloc(v: &mut Vec<u64>, to: usize) {
    v.shrink_to(to);
    std::hint::black_box(v);
}

#[test]
fn cross_thread_frees_and_reallocs_keep_inuse_right() {
    // Every allocation sampled: the expected figures are exact.
    let _p = mapprof::Profiler::builder().heap_rate(1).start().unwrap();

    // 1000 blocks allocated on a producer thread, 600 freed by a consumer thread.
    let (tx, rx) = mpsc::channel();
    on_new_thread(move || tx.send(produce_blocks(1000)).unwrap());
    let mut blocks = rx.recv().unwrap();
    let kept = blocks.split_off(600);
    std::thread::spawn(move || drop(blocks)).join().unwrap();

    let heap = decoded(ProfileKind::Heap);
    assert_eq!(
        total_through(&heap, "alloc_objects", "produce_blocks"),
        1000
    );
    assert_eq!(total_through(&heap, "inuse_objects", "produce_blocks"), 400);
    assert_eq!(
        total_through(&heap, "inuse_space", "produce_blocks"),
        400 * 1000
    );

    // Grow a vector by realloc three times, then shrink it by realloc: only the shrunk
    // block is in use, charged to the shrinking call.
    let v = on_new_thread(|| {
        let mut v: Vec<u64> = Vec::with_capacity(16);
        for to in [1_000, 10_000, 100_000] {
            grow_by_realloc(&mut v, to);
        }
        shrink_by_realloc(&mut v, 50_000);
        v
    });
    let heap = decoded(ProfileKind::Heap);
    assert_eq!(total_through(&heap, "alloc_objects", "grow_by_realloc"), 3);
    assert_eq!(
        total_through(&heap, "alloc_space", "grow_by_realloc"),
        (1_000 + 10_000 + 100_000) * 8
    );
    assert_eq!(total_through(&heap, "inuse_space", "grow_by_realloc"), 0);
    assert_eq!(
        total_through(&heap, "inuse_space", "shrink_by_realloc"),
        50_000 * 8
    );

    drop((kept, v));
    let heap = decoded(ProfileKind::Heap);
    assert_eq!(total_through(&heap, "inuse_space", "shrink_by_realloc"), 0);
    assert_eq!(total_through(&heap, "inuse_objects", "produce_blocks"), 0);
}
