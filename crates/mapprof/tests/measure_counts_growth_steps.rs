//! Container growth measured exactly: a `HashMap` filled to 65,536 entries without a capacity
//! grows 16 times (hashbrown: 4 buckets first, doubling up to 131,072), with one none; and a
//! failing assertion names the function and the container.

use mapprof::testing::{measure, Container};
use std::collections::HashMap;
use std::hint::black_box;

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::system();

const ENTRIES: u64 = 65_536;

#[inline(never)]
fn fill_without_capacity() -> usize {
    let mut map = HashMap::new();
    for i in 0..ENTRIES {
        map.insert(i, i);
    }
    black_box(&map).len()
}

#[inline(never)]
fn fill_with_capacity() -> usize {
    let mut map = HashMap::with_capacity(ENTRIES as usize);
    for i in 0..ENTRIES {
        map.insert(i, i);
    }
    black_box(&map).len()
}

#[test]
fn a_hashmap_without_capacity_grows_sixteen_times() {
    let m = measure(fill_without_capacity);
    assert_eq!(m.growths_of(Container::HashMap), 16, "{:#?}", m.growths);
    assert_eq!(m.allocations, 16);
    assert_eq!(m.frees, 16);
    m.assert_nothing_leaked();
}

#[test]
fn a_hashmap_with_capacity_does_not_grow() {
    let m = measure(fill_with_capacity);
    assert_eq!(m.growths_of(Container::HashMap), 0, "{:#?}", m.sites);
    assert_eq!(m.allocations, 1);
    m.assert_no_growth(Container::HashMap);
    m.assert_no_growth_at_all();
    m.assert_allocations_at_most(1);
}

#[test]
fn a_growth_assertion_names_the_function_and_the_container() {
    let m = measure(fill_without_capacity);
    let message = std::panic::catch_unwind(|| m.assert_no_growth(Container::HashMap))
        .err()
        .and_then(|p| p.downcast::<String>().ok())
        .expect("the assertion fails");
    assert!(
        message.contains("expected no HashMap growth, measured 16 HashMap growths"),
        "{message}"
    );
    assert!(message.contains("fill_without_capacity"), "{message}");
    assert!(message.contains("HashMap growth, "), "{message}");
    assert!(
        !message.contains("mapprof_rt::"),
        "profiler frames trimmed: {message}"
    );
    // An allocation count names the same site.
    let message = std::panic::catch_unwind(|| m.assert_allocations_at_most(1))
        .err()
        .and_then(|p| p.downcast::<String>().ok())
        .expect("the assertion fails");
    assert!(
        message.contains("expected at most 1 allocations, measured 16"),
        "{message}"
    );
    assert!(message.contains("fill_without_capacity"), "{message}");
}
