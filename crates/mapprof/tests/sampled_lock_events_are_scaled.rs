//! With sampling on (1 in 10 mutex events; block waits shorter than the rate kept in
//! proportion), the written values are still unbiased estimates of the true delay.

mod common;
use common::*;
use mapprof::sync::Mutex;
use mapprof::ProfileKind;
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};

const ROUNDS: usize = 1000;
const HOLD: Duration = Duration::from_micros(300);

#[inline(never)]
fn short_holds(lock: &Mutex<()>, start: &Barrier, end: &Barrier) -> Duration {
    let mut held = Duration::ZERO;
    for _ in 0..ROUNDS {
        let guard = lock.lock().unwrap();
        start.wait();
        let t = Instant::now();
        while t.elapsed() < HOLD {
            std::hint::spin_loop();
        }
        held += t.elapsed();
        drop(guard);
        end.wait();
    }
    held
}

#[inline(never)]
fn short_waits(lock: &Mutex<()>, start: &Barrier, end: &Barrier) {
    for _ in 0..ROUNDS {
        start.wait();
        drop(lock.lock().unwrap());
        end.wait();
    }
}

#[test]
fn sampled_mutex_and_block_events_estimate_the_true_delay() {
    let _p = mapprof::Profiler::builder()
        .mutex_fraction(10)
        .block_rate(1_000_000) // 1 ms: every 300 µs wait is kept with probability ~0.3
        .start()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let lock = Arc::new(Mutex::new(()));
        let (start, end) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
        let waiter = {
            let (lock, start, end) = (lock.clone(), start.clone(), end.clone());
            std::thread::spawn(move || short_waits(&lock, &start, &end))
        };
        let held = short_holds(&lock, &start, &end);
        waiter.join().unwrap();
        tx.send(held).unwrap();
    });
    let held = rx.recv_timeout(Duration::from_secs(120)).expect("hung");

    // The waiter waits at most the hold; allow for the time it takes to start waiting.
    let truth = held.as_nanos() as f64;
    let mutex = total_through(&decoded(ProfileKind::Mutex), "delay", "short_holds") as f64;
    let block = total_through(&decoded(ProfileKind::Block), "delay", "short_waits") as f64;
    eprintln!("truth ≤ {truth:.0} ns; mutex estimate {mutex:.0}; block estimate {block:.0}");
    // Unscaled, the mutex figure would be ~10% of the truth and the block one ~30%.
    for (what, estimate) in [("mutex", mutex), ("block", block)] {
        let ratio = estimate / truth;
        assert!(
            (0.6..1.3).contains(&ratio),
            "{what}: estimate/truth = {ratio:.2}"
        );
    }
}
