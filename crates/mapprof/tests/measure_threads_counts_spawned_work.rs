//! `measure_threads` counts what the threads the closure spawns do in `Threads::run`; an
//! unrelated thread allocating meanwhile is not counted.

use mapprof::testing::measure_threads;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::system();

#[test]
fn spawned_work_is_counted_and_unrelated_threads_are_not() {
    let stop = Arc::new(AtomicBool::new(false));
    let unrelated = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Relaxed) {
                black_box(vec![0u8; 24]);
            }
        })
    };
    let m = measure_threads(|threads| {
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    threads.run(|| {
                        for _ in 0..250 {
                            black_box(vec![0u8; 1000]);
                        }
                    })
                });
            }
        });
    });
    stop.store(true, Relaxed);
    unrelated.join().unwrap();
    // The workers' 4 x 250 allocations of 1000 bytes; spawning them allocates a few small
    // blocks on the measuring thread (thread handles, their packets), and nothing of the
    // unrelated thread's 24-byte blocks.
    let big: u64 = m
        .sites
        .iter()
        .filter(|s| !s.realloc && s.bytes == s.count * 1000)
        .map(|s| s.count)
        .sum();
    assert_eq!(big, 1000, "{:#?}", m.sites);
    assert!(
        m.allocations >= 1000 && m.allocations < 1100,
        "{}",
        m.allocations
    );
    assert!(
        !m.sites
            .iter()
            .any(|s| s.bytes == s.count * 24 && s.count > 50),
        "the unrelated thread leaked in: {:#?}",
        m.sites
    );
    assert!(m.bytes >= 1_000_000 && m.bytes < 1_100_000, "{}", m.bytes);
}
