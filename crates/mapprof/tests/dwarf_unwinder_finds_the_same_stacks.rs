//! The DWARF fallback unwinder attributes allocations to the same function as frame pointers.

mod common;
use common::*;
use mapprof::{ProfileKind, Unwinder};

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::system();

#[inline(never)]
fn allocate_under_dwarf() -> Vec<Vec<u8>> {
    (0..64).map(|_| Vec::with_capacity(1 << 16)).collect()
}

#[test]
fn dwarf_stacks_reach_the_allocating_function() {
    let _p = mapprof::Profiler::builder()
        .heap_rate(1)
        .unwinder(Unwinder::Dwarf)
        .start()
        .unwrap();
    let kept = on_new_thread(allocate_under_dwarf);
    let heap = decoded(ProfileKind::Heap);
    assert_eq!(
        total_through(&heap, "inuse_objects", "allocate_under_dwarf"),
        64
    );
    assert_eq!(
        total_through(&heap, "inuse_space", "allocate_under_dwarf"),
        64 << 16
    );
    drop(kept);
}
