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

/// Returns the time it waited, measured around each `lock`: the truth both profiles estimate
/// (on a busy machine a waiter is woken late, so its waits are longer than the holds).
#[inline(never)]
fn short_waits(lock: &Mutex<()>, start: &Barrier, end: &Barrier) -> Duration {
    let mut waited = Duration::ZERO;
    for _ in 0..ROUNDS {
        start.wait();
        let t = Instant::now();
        drop(lock.lock().unwrap());
        waited += t.elapsed();
        end.wait();
    }
    waited
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
        let waited = waiter.join().unwrap();
        tx.send((held, waited)).unwrap();
    });
    let (held, waited) = rx.recv_timeout(Duration::from_secs(120)).expect("hung");
    assert!(held >= ROUNDS as u32 * HOLD, "the holds happened");

    let truth = waited.as_nanos() as f64;
    let mutex = total_through(&decoded(ProfileKind::Mutex), "delay", "short_holds") as f64;
    let block = total_through(&decoded(ProfileKind::Block), "delay", "short_waits") as f64;
    eprintln!("waited {truth:.0} ns (held {held:?}); mutex estimate {mutex:.0}; block estimate {block:.0}");
    // Unscaled, the mutex figure would be ~10% of the truth and the block one ~30%.
    for (what, estimate) in [("mutex", mutex), ("block", block)] {
        let ratio = estimate / truth;
        assert!(
            (0.6..1.3).contains(&ratio),
            "{what}: estimate/truth = {ratio:.2}"
        );
    }
}
