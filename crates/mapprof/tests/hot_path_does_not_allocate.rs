//! The hot path allocates nothing: with every allocation sampled (stack captured, bucket looked
//! up or inserted, block entered in the live set), the inner allocator sees exactly the
//! program's own calls.

mod common;
mod counting;
use common::*;
use counting::calls_in;
use mapprof::ProfileKind;
#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::new(&counting::INNER);

const N: u64 = 20_000;

#[inline(never)]
fn counted_allocations() {
    for i in 0..N {
        // Sizes vary so that new buckets are inserted, not only found.
        let v: Vec<u8> = Vec::with_capacity(1 + (i as usize % 500));
        std::hint::black_box(&v);
    }
}

#[test]
fn sampling_every_allocation_makes_no_allocation_of_its_own() {
    let _p = mapprof::Profiler::builder().heap_rate(1).start().unwrap();
    let calls = on_new_thread(|| {
        // The thread's first sample looks up its stack bounds (glibc may malloc there, which
        // is libc's heap, not the Rust allocator); do it before counting.
        std::hint::black_box(Vec::<u8>::with_capacity(8));
        calls_in(counted_allocations)
    });
    assert_eq!(
        calls, N,
        "the inner allocator saw calls the program did not make"
    );
    // And every one of those allocations was in fact sampled.
    let heap = decoded(ProfileKind::Allocs);
    assert_eq!(
        total_through(&heap, "alloc_objects", "counted_allocations"),
        N as i64
    );
}
