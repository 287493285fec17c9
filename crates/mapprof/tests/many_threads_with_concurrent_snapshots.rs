//! Stress: many threads allocate, reallocate and free (across threads too) at a high sampling
//! rate while profiles are taken concurrently and threads exit with destructors that allocate.
//! Nothing crashes or hangs, and once everything is freed nothing shows as in use.
#![cfg(feature = "jemalloc")]

mod common;
use common::*;
use mapprof::ProfileKind;
use std::sync::mpsc;
use std::time::Duration;

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::jemalloc();

const THREADS: u64 = 6;
const OPS: u64 = 150_000;

/// Allocates and frees in its destructor, which runs while the thread exits.
struct AllocatesAtExit;
impl Drop for AllocatesAtExit {
    fn drop(&mut self) {
        let v: Vec<u64> = (0..1000).collect();
        std::hint::black_box(v);
    }
}
thread_local! {
    static AT_EXIT: AllocatesAtExit = const { AllocatesAtExit };
}

#[inline(never)]
fn churn(seed: u64, to_other_thread: mpsc::Sender<Vec<u8>>) {
    AT_EXIT.with(|_| {});
    let mut rng = seed | 1;
    let mut ring: Vec<Vec<u8>> = (0..64).map(|_| Vec::new()).collect();
    for i in 0..OPS {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let size = 8 + (rng % 4096) as usize;
        let slot = (rng >> 20) as usize % ring.len();
        match i % 8 {
            0 => ring[slot].reserve(size * 4),   // realloc (grow)
            1 => ring[slot].shrink_to(size / 2), // realloc (shrink)
            2 => {
                let block = std::mem::replace(&mut ring[slot], vec![0; size]);
                let _ = to_other_thread.send(block); // freed on the consumer thread
            }
            _ => ring[slot] = vec![1; size],
        }
    }
}

#[test]
fn stress_with_concurrent_snapshots_neither_crashes_nor_leaks_inuse() {
    let _p = mapprof::Profiler::builder().heap_rate(512).start().unwrap();
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        let consumer = std::thread::spawn(move || rx.into_iter().count());
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let tx = tx.clone();
                std::thread::spawn(move || churn(0x9e37_79b9 * (t + 1), tx))
            })
            .collect();
        drop(tx);
        // Profiles taken while the workers run.
        let mut snapshots = 0;
        while workers.iter().any(|w| !w.is_finished()) {
            let heap = decoded(ProfileKind::Heap);
            assert!(!heap.sample_type.is_empty());
            snapshots += 1;
        }
        for w in workers {
            w.join().unwrap();
        }
        let sent = consumer.join().unwrap();
        done_tx.send((snapshots, sent)).unwrap();
    });
    let (snapshots, sent) = done_rx
        .recv_timeout(Duration::from_secs(300))
        .expect("the stress run hung");
    assert!(snapshots > 0 && sent as u64 == THREADS * OPS / 8);

    let heap = decoded(ProfileKind::Heap);
    assert!(total_through(&heap, "alloc_objects", "churn") > 10_000);
    assert_eq!(total_through(&heap, "inuse_space", "churn"), 0);
    assert_eq!(total_through(&heap, "inuse_space", "AllocatesAtExit"), 0);
    assert!(
        total_through(&heap, "alloc_space", "AllocatesAtExit") > 0,
        "exit-time allocations are sampled"
    );
}
