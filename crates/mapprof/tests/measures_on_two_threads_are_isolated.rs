//! Two threads measuring at once each see only their own allocations; a third thread that
//! allocates meanwhile is in neither, and keeps being sampled.

use mapprof::testing::measure;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Barrier};

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::system();

fn allocate(n: usize, size: usize, barrier: &Barrier) {
    for i in 0..n {
        black_box(vec![0u8; size]);
        if i == n / 2 {
            barrier.wait(); // both threads are halfway, inside their scopes
        }
    }
}

#[test]
fn each_thread_sees_only_its_own_counts() {
    let barrier = Arc::new(Barrier::new(2));
    let stop = Arc::new(AtomicBool::new(false));
    let noise = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Relaxed) {
                black_box(vec![0u8; 24]);
                n += 1;
            }
            n
        })
    };
    let spawn = |n: usize, size: usize| {
        let barrier = barrier.clone();
        std::thread::spawn(move || measure(|| allocate(n, size, &barrier)))
    };
    let a = spawn(1000, 16);
    let b = spawn(3000, 40);
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    stop.store(true, Relaxed);
    assert!(noise.join().unwrap() > 0);
    assert_eq!((a.allocations, a.bytes, a.frees), (1000, 16_000, 1000));
    assert_eq!((b.allocations, b.bytes, b.frees), (3000, 120_000, 3000));
    assert_eq!((a.reallocs, b.reallocs), (0, 0));
    assert_eq!((a.peak_live_bytes, b.peak_live_bytes), (16, 40));
    a.assert_nothing_leaked();
    b.assert_nothing_leaked();
}
