//! Accuracy: a deterministic workload allocates known byte totals from three call sites of
//! small, medium and large sizes; at heap_rate=65536 the unbiased estimates are within ±5%.
#![cfg(feature = "jemalloc")]

mod common;
use common::*;
use mapprof::ProfileKind;

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::jemalloc();

const TOTAL: usize = 256 << 20; // bytes per site
const SMALL: usize = 48;
const MEDIUM: usize = 4000;
const LARGE: usize = 1 << 20;

#[inline(never)]
fn small_site() -> Vec<u8> {
    Vec::with_capacity(SMALL)
}

#[inline(never)]
fn medium_site() -> Vec<u8> {
    Vec::with_capacity(MEDIUM)
}

#[inline(never)]
fn large_site() -> Vec<u8> {
    Vec::with_capacity(LARGE)
}

fn assert_within(what: &str, estimate: i64, truth: usize, tolerance: f64) {
    let error = estimate as f64 / truth as f64 - 1.0;
    assert!(
        error.abs() <= tolerance,
        "{what}: estimated {estimate}, truth {truth}, error {:+.2}%",
        error * 100.0
    );
    eprintln!(
        "{what}: estimated {estimate}, truth {truth}, error {:+.2}%",
        error * 100.0
    );
}

#[test]
fn alloc_and_inuse_estimates_are_within_five_percent() {
    let _p = mapprof::Profiler::builder()
        .heap_rate(65536)
        .start()
        .unwrap();
    let medium = on_new_thread(|| {
        let small: Vec<Vec<u8>> = (0..TOTAL / SMALL).map(|_| small_site()).collect();
        let medium: Vec<Vec<u8>> = (0..TOTAL / MEDIUM).map(|_| medium_site()).collect();
        let large: Vec<Vec<u8>> = (0..TOTAL / LARGE).map(|_| large_site()).collect();
        drop((small, large));
        medium
    });
    let profile = decoded(ProfileKind::Heap);
    for (site, size) in [
        ("small_site", SMALL),
        ("medium_site", MEDIUM),
        ("large_site", LARGE),
    ] {
        let truth = TOTAL / size * size;
        let alloc = total_through(&profile, "alloc_space", site);
        assert_within(&format!("{site} alloc_space"), alloc, truth, 0.05);
        let objects = total_through(&profile, "alloc_objects", site);
        assert_within(
            &format!("{site} alloc_objects"),
            objects,
            TOTAL / size,
            0.05,
        );
    }
    let truth = TOTAL / MEDIUM * MEDIUM;
    assert_within(
        "medium_site inuse_space",
        total_through(&profile, "inuse_space", "medium_site"),
        truth,
        0.05,
    );
    assert_eq!(total_through(&profile, "inuse_space", "small_site"), 0);
    assert_eq!(total_through(&profile, "inuse_space", "large_site"), 0);
    drop(medium);
}
