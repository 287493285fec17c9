//! `mapprof::testing::measure` counts every allocation, realloc and free of the closure, with
//! their sizes, what it left live and its peak.

use mapprof::testing::{measure, try_measure, Container, MeasureError};
use std::hint::black_box;

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::system();

#[test]
fn known_allocations_reallocs_and_frees_are_counted_exactly() {
    let m = measure(|| {
        // 10 allocations of 100 bytes, each freed before the next.
        for _ in 0..10 {
            black_box(Vec::<u8>::with_capacity(100));
        }
        // One of 8 bytes, reallocated to 16 then 32, freed at the end.
        let mut v = black_box(Vec::<u8>::with_capacity(8));
        v.reserve_exact(16);
        black_box(&mut v);
        v.reserve_exact(32);
        black_box(&mut v);
        // 48 bytes left allocated.
        let kept: &'static mut [u8; 48] = Box::leak(black_box(Box::new([7u8; 48])));
        black_box(kept);
        drop(v);
    });
    assert_eq!(m.allocations, 12, "{m:#?}");
    assert_eq!(m.bytes, 10 * 100 + 8 + 48);
    assert_eq!(m.reallocs, 2);
    assert_eq!(m.realloc_bytes, 16 + 32);
    assert_eq!(m.frees, 11);
    assert_eq!(m.freed_bytes, 10 * 100 + 8 + 16 + 32);
    assert_eq!(m.live_blocks, 1);
    assert_eq!(m.live_bytes, 48);
    assert_eq!(m.peak_live_bytes, 100);
    assert_eq!(m.untracked_blocks, 0);
    // `reserve_exact` resizing an existing buffer is growth, as in the resize profile.
    assert_eq!(m.growths_of(Container::Vec), 2, "{:#?}", m.growths);
    assert_eq!(m.growths_of(Container::HashMap), 0);
    m.assert_allocations_at_most(12);
    m.assert_reallocs_at_most(2);
    m.assert_no_growth(Container::HashMap);
    m.assert_no_contention();
}

#[test]
fn an_empty_closure_measures_nothing() {
    let m = measure(|| ());
    assert_eq!((m.allocations, m.reallocs, m.frees), (0, 0, 0));
    m.assert_nothing_leaked();
    m.assert_no_growth_at_all();
}

#[test]
fn nested_measure_is_refused_clearly() {
    let m = measure(|| {
        let inner = try_measure(|| black_box(Box::new(1u8)));
        assert_eq!(inner.unwrap_err(), MeasureError::Nested);
        black_box(Box::new(2u8));
    });
    // The outer one still counts its own allocation.
    assert_eq!(m.allocations, 1);
    let message = std::panic::catch_unwind(|| measure(|| measure(|| ())))
        .err()
        .and_then(|p| p.downcast::<String>().ok())
        .expect("a nested measure panics");
    assert!(message.contains("do not nest"), "{message}");
}

#[test]
fn a_leak_fails_with_the_leaking_function() {
    let m = measure(leak_a_block);
    let message = std::panic::catch_unwind(|| m.assert_nothing_leaked())
        .err()
        .and_then(|p| p.downcast::<String>().ok())
        .expect("the assertion fails");
    assert!(message.contains("1 blocks, 64 bytes"), "{message}");
    assert!(message.contains("leak_a_block"), "{message}");
}

#[inline(never)]
fn leak_a_block() {
    black_box(Box::leak(Box::new([1u8; 64])));
}

#[test]
fn fewer_allocations_compare_with_a_fraction() {
    let few = measure(|| allocate(2));
    let many = measure(|| allocate(40));
    few.assert_allocations_at_most_fraction_of(&many, 1, 10);
    assert!(
        std::panic::catch_unwind(|| many.assert_allocations_at_most_fraction_of(&few, 1, 10))
            .is_err()
    );
    let min = mapprof::testing::measure_min(5, || allocate(3));
    assert_eq!(min.allocations, 3);
}

#[inline(never)]
fn allocate(n: usize) {
    for i in 0..n {
        black_box(Box::new(i));
    }
}
