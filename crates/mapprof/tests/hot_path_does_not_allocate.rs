//! The hot path allocates nothing: with every allocation sampled (stack captured, bucket looked
//! up or inserted, block tracked), the inner allocator sees exactly the program's own calls.

mod common;
use common::*;
use mapprof::ProfileKind;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Counts the calls made to it on threads that turned counting on.
struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static CALLS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    if COUNTING.with(Cell::get) {
        CALLS.with(|c| c.set(c.get() + 1));
    }
}

// SAFETY: forwards to `System` unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract is forwarded as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is forwarded as is.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: the caller's contract is forwarded as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

static INNER: Counting = Counting;

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::new(&INNER);

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
        COUNTING.with(|c| c.set(true));
        counted_allocations();
        COUNTING.with(|c| c.set(false));
        CALLS.with(Cell::get)
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
