//! Known workloads with known answers for `mapprof report`, every allocation sampled
//! (heap_rate=1) and every contention recorded:
//! - a `HashMap<u64, u64>` filled without a capacity from 0 to 2^16 entries grows 16 times at
//!   its insert site (hashbrown doubles from 4 buckets to 131,072: 4, 8, ..., 2^17 is 16
//!   tables), and the report says so, with the capacity that reaches;
//! - the same fill into `HashMap::with_capacity(1 << 16)` grows nothing;
//! - a function that holds a lock while allocating, with another thread waiting, is reported as
//!   a lock holder that allocates.
#![cfg(feature = "jemalloc")]

use std::collections::HashMap;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use mapprof::sync::Mutex;
use mapprof::ProfileKind;
use mapprof_profile::report::{report, Finding, ReportOptions};

mod common;
use common::*;

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::jemalloc();

const ENTRIES: u64 = 1 << 16;

#[inline(never)]
fn fill_without_capacity() -> usize {
    let mut map = HashMap::new();
    for i in 0..ENTRIES {
        map.insert(i, i);
    }
    std::hint::black_box(&map).len()
}

#[inline(never)]
fn fill_with_capacity() -> usize {
    let mut map = HashMap::with_capacity(ENTRIES as usize);
    for i in 0..ENTRIES {
        map.insert(i, i);
    }
    std::hint::black_box(&map).len()
}

/// Holds `lock` for 20 ms, allocating 64 KiB blocks meanwhile, while `waiter` waits.
#[inline(never)]
fn allocate_under_the_lock(lock: &Mutex<Vec<Vec<u8>>>, waiting: &Barrier) {
    let mut guard = lock.lock().unwrap();
    waiting.wait();
    std::thread::sleep(Duration::from_millis(5)); // the waiter is now blocked
    for _ in 0..64 {
        guard.push(vec![1u8; 64 << 10]);
    }
    std::thread::sleep(Duration::from_millis(15));
}

#[inline(never)]
fn wait_for_the_lock(lock: &Mutex<Vec<Vec<u8>>>, waiting: &Barrier) {
    waiting.wait();
    drop(lock.lock().unwrap());
}

fn finding<'r>(findings: &'r [Finding], function: &str) -> Option<&'r Finding> {
    findings.iter().find(|f| f.function.ends_with(function))
}

#[test]
fn growth_capacity_and_locks_held_while_allocating_are_reported() {
    let _profiler = mapprof::Profiler::builder()
        .heap_rate(1)
        .mutex_fraction(1)
        .block_rate(1)
        .start()
        .unwrap();
    let (a, b) = on_new_thread(|| (fill_without_capacity(), fill_with_capacity()));
    assert_eq!((a, b), (ENTRIES as usize, ENTRIES as usize));
    let lock = Arc::new(Mutex::new(Vec::new()));
    let waiting = Arc::new(Barrier::new(2));
    let waiter = {
        let (lock, waiting) = (lock.clone(), waiting.clone());
        std::thread::spawn(move || wait_for_the_lock(&lock, &waiting))
    };
    allocate_under_the_lock(&lock, &waiting);
    waiter.join().unwrap();

    let profiles = [
        ("allocs", decoded(ProfileKind::Allocs)),
        ("mutex", decoded(ProfileKind::Mutex)),
        ("block", decoded(ProfileKind::Block)),
    ];
    let inputs: Vec<_> = profiles.iter().map(|(n, p)| (*n, p)).collect();
    let mut opts = ReportOptions::default();
    opts.max_findings = 50;
    opts.min_share = 0.0;
    let report = report(&inputs, &opts).unwrap();
    let text = report.to_text();

    let grown = finding(&report.findings, "::fill_without_capacity").expect(&text);
    let growth = &grown.growth[0];
    assert_eq!(growth.container, "HashMap", "{text}");
    let per_call = growth.per_call.expect(&text);
    assert!((per_call - 16.0).abs() <= 2.0, "{growth:?}\n{text}");
    assert_eq!(growth.capacity, Some(114_688), "{growth:?}");
    assert!(
        grown.statements[0].contains("grows a HashMap about 16 times per call"),
        "{text}"
    );
    assert!(
        grown
            .advice
            .iter()
            .any(|a| a.contains("HashMap::with_capacity")),
        "{text}"
    );

    let sized = finding(&report.findings, "::fill_with_capacity").expect(&text);
    assert!(sized.growth.is_empty(), "{sized:?}");
    assert!(
        !sized.advice.iter().any(|a| a.contains("with_capacity")),
        "{text}"
    );

    let holder = finding(&report.findings, "::allocate_under_the_lock").expect(&text);
    let held = holder.lock_holding.as_ref().expect(&text);
    assert!(
        held.value >= 10_000_000,
        "{held:?}: the waiter waited about 20 ms"
    );
    assert!(
        holder
            .statements
            .iter()
            .any(|s| s.contains("holds a lock others wait for while it allocates")),
        "{text}"
    );
    assert!(
        holder
            .advice
            .iter()
            .any(|a| a.contains("out of the critical section")),
        "{text}"
    );
    let waiter = finding(&report.findings, "::wait_for_the_lock").expect(&text);
    assert!(waiter.lock_waiting.is_some(), "{text}");
}
