//! With sampling on (1 in 10 mutex events; block waits shorter than the rate kept in
//! proportion), `mapprof::tokio::Mutex`'s written values are still unbiased estimates of the
//! true delay: 2,000 holds of 300 µs, each with one task waiting, against the waits measured
//! around each `lock().await`. The holder and the waiter each run on a current-thread runtime
//! of their own thread, so that the waiter queues while the holder holds (on one runtime a
//! holder that never yields would keep the waiter from being polled).

mod common;
use common::*;
use mapprof::tokio::Mutex;
use mapprof::ProfileKind;
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};

const ROUNDS: usize = 2000;
const HOLD: Duration = Duration::from_micros(300);

/// Spins `HOLD` while holding, each round, once the waiter is on its way (std barriers: each
/// task has its thread to itself).
async fn short_holds(lock: &Mutex<()>, start: &Barrier, end: &Barrier) -> Duration {
    let mut held = Duration::ZERO;
    for _ in 0..ROUNDS {
        let guard = lock.lock().await;
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

/// Returns the time it waited, measured around each `lock().await`: the truth both profiles
/// estimate.
async fn short_waits(lock: &Mutex<()>, start: &Barrier, end: &Barrier) -> Duration {
    let mut waited = Duration::ZERO;
    for _ in 0..ROUNDS {
        start.wait();
        let t = Instant::now();
        drop(lock.lock().await);
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
            std::thread::spawn(move || block_on(short_waits(&lock, &start, &end)))
        };
        let held = block_on(short_holds(&lock, &start, &end));
        let waited = waiter.join().unwrap();
        tx.send((held, waited)).unwrap();
    });
    let (held, waited) = rx.recv_timeout(Duration::from_secs(120)).expect("hung");
    assert!(held >= ROUNDS as u32 * HOLD, "the holds happened");

    let truth = waited.as_nanos() as f64;
    let mutex = total_through(&decoded(ProfileKind::Mutex), "delay", "short_holds") as f64;
    let block = total_through(&decoded(ProfileKind::Block), "delay", "short_waits") as f64;
    eprintln!(
        "waited {truth:.0} ns (held {held:?}); mutex estimate {mutex:.0} ({:+.1}%); \
         block estimate {block:.0} ({:+.1}%)",
        (mutex / truth - 1.0) * 100.0,
        (block / truth - 1.0) * 100.0
    );
    // About 200 mutex events and 600 block events kept: standard errors of about 7% and 4%.
    // Unscaled, the mutex figure would be ~10% of the truth and the block one ~30%.
    for (what, estimate) in [("mutex", mutex), ("block", block)] {
        let ratio = estimate / truth;
        assert!(
            (0.75..1.25).contains(&ratio),
            "{what}: estimate/truth = {ratio:.2}"
        );
    }
}
