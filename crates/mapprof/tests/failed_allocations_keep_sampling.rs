//! An allocation the inner allocator refuses does not stop sampling on its thread.

mod common;
use common::*;
use mapprof::ProfileKind;
use std::alloc::{GlobalAlloc, Layout, System};

/// The system allocator, except that it refuses blocks of `REFUSED` bytes.
struct Refusing;
const REFUSED: usize = 1 << 40;

// SAFETY: forwards to `System`, or returns null, which `GlobalAlloc` allows.
unsafe impl GlobalAlloc for Refusing {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() == REFUSED {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract is forwarded as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is forwarded as is.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size == REFUSED {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract is forwarded as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

static INNER: Refusing = Refusing;

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::new(&INNER);

#[inline(never)]
fn allocations_after_a_refusal() -> Vec<Vec<u8>> {
    (0..100).map(|_| Vec::with_capacity(64)).collect()
}

/// A refused realloc leaves the old block allocated, and in the live set.
#[inline(never)]
fn block_kept_after_refused_realloc() -> Vec<u8> {
    let mut v: Vec<u8> = Vec::with_capacity(16);
    assert!(v.try_reserve_exact(REFUSED).is_err());
    v.push(1);
    std::hint::black_box(v)
}

#[test]
fn sampling_goes_on_after_refused_alloc_and_realloc() {
    let _p = mapprof::Profiler::builder().heap_rate(1).start().unwrap();
    let kept = on_new_thread(|| {
        let layout = Layout::from_size_align(REFUSED, 8).unwrap();
        // SAFETY: a valid non-zero layout; the null result is checked.
        let refused = std::hint::black_box(unsafe { std::alloc::alloc(layout) });
        assert!(refused.is_null());
        let v = block_kept_after_refused_realloc();
        (allocations_after_a_refusal(), v)
    });
    let heap = decoded(ProfileKind::Heap);
    assert_eq!(
        total_through(&heap, "inuse_objects", "allocations_after_a_refusal"),
        100
    );
    assert_eq!(
        total_through(&heap, "inuse_space", "block_kept_after_refused_realloc"),
        16
    );
    drop(kept);
}
