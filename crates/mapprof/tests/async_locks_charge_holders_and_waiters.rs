//! `mapprof::tokio` locks with injected contention and a known answer (every event recorded:
//! mutex_fraction 1, block_rate 1), on a 2-worker multi-threaded runtime:
//! - a holder that awaits a 100 ms sleep while holding a `Mutex`, three waiting tasks: the
//!   mutex profile charges the holder's function 3 × its hold, the block profile each
//!   waiter's function its own wait, all within ±10% of the hold;
//! - a waiter that gives up (its `lock()` future dropped by a timeout) records no wait and is
//!   not charged to the holder; the lock stays usable and later waits are charged right;
//! - an owned guard dropped on another thread charges the function that dropped it there;
//! - an `RwLock` writer awaiting a sleep charges its two waiting readers' wait.
//!
//! Each figure is found by the function name on the recorded stacks: the waiters' async
//! functions that awaited the lock, the holders' that released it.

mod common;
use common::*;
use mapprof::tokio::{Mutex, RwLock};
use mapprof::ProfileKind;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use tokio::sync::Barrier;

const HOLD: Duration = Duration::from_millis(100);
const ROUNDS: usize = 3;

/// Holds the lock `HOLD` (a sleep) per round while the three waiters queue; returns how long
/// it held after they started.
async fn hold_the_lock(lock: Arc<Mutex<u64>>, start: Arc<Barrier>, end: Arc<Barrier>) -> Duration {
    let mut held = Duration::ZERO;
    for _ in 0..ROUNDS {
        let mut guard = lock.lock().await;
        start.wait().await; // the waiters now queue on the lock
        let t = Instant::now();
        tokio::time::sleep(HOLD).await;
        *guard += 1;
        held += t.elapsed();
        drop(guard);
        end.wait().await;
    }
    held
}

async fn first_waiter(lock: Arc<Mutex<u64>>, start: Arc<Barrier>, end: Arc<Barrier>) {
    for _ in 0..ROUNDS {
        start.wait().await;
        drop(lock.lock().await);
        end.wait().await;
    }
}

async fn second_waiter(lock: Arc<Mutex<u64>>, start: Arc<Barrier>, end: Arc<Barrier>) {
    for _ in 0..ROUNDS {
        start.wait().await;
        drop(lock.lock().await);
        end.wait().await;
    }
}

async fn third_waiter(lock: Arc<Mutex<u64>>, start: Arc<Barrier>, end: Arc<Barrier>) {
    for _ in 0..ROUNDS {
        start.wait().await;
        drop(lock.lock().await);
        end.wait().await;
    }
}

/// Holds the lock `HOLD` while one task gives up waiting and another waits it out.
async fn hold_during_a_give_up(lock: &Mutex<u64>) -> Duration {
    let guard = lock.lock().await;
    let t = Instant::now();
    let (gave_up, (), ()) = tokio::join!(gives_up_waiting(lock), waits_it_out(lock), async {
        tokio::time::sleep(HOLD).await;
        drop(guard);
    });
    assert!(gave_up, "the timeout ended the wait");
    t.elapsed()
}

/// Waits 30 ms for the lock, then gives up (the `lock()` future dropped while it waits).
async fn gives_up_waiting(lock: &Mutex<u64>) -> bool {
    tokio::time::timeout(HOLD / 3, lock.lock()).await.is_err()
}

async fn waits_it_out(lock: &Mutex<u64>) {
    *lock.lock().await += 1;
}

/// A hold after the give-up, with one waiter: charged as if nobody had ever given up.
async fn hold_after_a_give_up(lock: &Mutex<u64>) -> Duration {
    let guard = lock.lock().await;
    let t = Instant::now();
    tokio::join!(waits_after_a_give_up(lock), async {
        tokio::time::sleep(HOLD).await;
        drop(guard);
    });
    t.elapsed()
}

async fn waits_after_a_give_up(lock: &Mutex<u64>) {
    *lock.lock().await += 1;
}

/// Locks through the `Arc` and hands the guard to a thread that drops it after `HOLD`; a task
/// waits meanwhile. Returns the hold as the other thread saw it.
async fn hand_the_guard_over(lock: Arc<Mutex<u64>>) -> Duration {
    let guard = lock.clone().lock_owned().await;
    let t = Instant::now();
    let thread = std::thread::spawn(move || {
        std::thread::sleep(HOLD);
        drop_on_another_thread(guard);
        t.elapsed()
    });
    waits_for_the_handed_over(&lock).await;
    thread.join().unwrap()
}

#[inline(never)]
fn drop_on_another_thread(guard: mapprof::tokio::OwnedMutexGuard<u64>) {
    drop(guard);
    // Work after the drop keeps it from being a tail call, which would leave this function
    // out of the stack (seen in one build of the workspace).
    std::hint::black_box(());
}

async fn waits_for_the_handed_over(lock: &Mutex<u64>) {
    *lock.lock().await += 1;
}

/// Holds the write lock `HOLD` while two readers wait.
async fn write_and_hold(lock: &RwLock<u64>) -> Duration {
    let guard = lock.write().await;
    let t = Instant::now();
    tokio::join!(
        reads_while_written(lock),
        reads_too_while_written(lock),
        async {
            tokio::time::sleep(HOLD).await;
            drop(guard);
        }
    );
    t.elapsed()
}

async fn reads_while_written(lock: &RwLock<u64>) {
    std::hint::black_box(*lock.read().await);
}

async fn reads_too_while_written(lock: &RwLock<u64>) {
    std::hint::black_box(*lock.read().await);
}

/// Within 10% of `expected`.
fn about(what: &str, value: i64, expected: Duration) {
    assert_about(what, value, expected, 0.10);
}

/// The holds each part measured.
struct Held {
    queued: Duration,
    give_up: Duration,
    after_give_up: Duration,
    handed_over: Duration,
    written: Duration,
}

async fn contend() -> Held {
    let lock = Arc::new(Mutex::new(0));
    let (start, end) = (Arc::new(Barrier::new(4)), Arc::new(Barrier::new(4)));
    let (l, s, e) = (&lock, &start, &end);
    let waiters = [
        tokio::spawn(first_waiter(l.clone(), s.clone(), e.clone())),
        tokio::spawn(second_waiter(l.clone(), s.clone(), e.clone())),
        tokio::spawn(third_waiter(l.clone(), s.clone(), e.clone())),
    ];
    let queued = tokio::spawn(hold_the_lock(lock.clone(), start, end));
    for w in waiters {
        w.await.unwrap();
    }
    let queued = queued.await.unwrap();
    assert_eq!(*lock.lock().await, ROUNDS as u64);

    let give_up = hold_during_a_give_up(&lock).await;
    assert!(lock.try_lock().is_ok(), "the lock is free after a give-up");
    let after_give_up = hold_after_a_give_up(&lock).await;
    let handed_over = hand_the_guard_over(lock.clone()).await;
    assert_eq!(*lock.lock().await, ROUNDS as u64 + 3);

    let written = write_and_hold(&RwLock::new(0)).await;
    Held {
        queued,
        give_up,
        after_give_up,
        handed_over,
        written,
    }
}

#[test]
fn holders_are_charged_their_waiters_wait_and_waiters_their_own() {
    let _p = mapprof::Profiler::builder()
        .mutex_fraction(1)
        .block_rate(1)
        .start()
        .unwrap();
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .unwrap();
        done_tx.send(runtime.block_on(contend())).unwrap();
    });
    let held = done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the contention test hung");
    assert!(held.queued >= ROUNDS as u32 * HOLD);

    let mutex = decoded(ProfileKind::Mutex);
    let block = decoded(ProfileKind::Block);
    let charged = |function| total_through(&mutex, "delay", function);
    let waited = |function| total_through(&block, "delay", function);

    about(
        "hold_the_lock's charge",
        charged("hold_the_lock"),
        3 * held.queued,
    );
    assert!(total_through(&mutex, "contentions", "hold_the_lock") >= ROUNDS as i64);
    for waiter in ["first_waiter", "second_waiter", "third_waiter"] {
        about(&format!("{waiter}'s wait"), waited(waiter), held.queued);
    }
    assert_eq!(waited("hold_the_lock"), 0, "the holder never waited");

    assert_eq!(
        waited("gives_up_waiting"),
        0,
        "a wait given up is not recorded"
    );
    about("waits_it_out's wait", waited("waits_it_out"), held.give_up);
    about(
        "hold_during_a_give_up's charge (the wait that got the lock only)",
        charged("hold_during_a_give_up"),
        held.give_up,
    );
    about(
        "hold_after_a_give_up's charge",
        charged("hold_after_a_give_up"),
        held.after_give_up,
    );
    about(
        "waits_after_a_give_up's wait",
        waited("waits_after_a_give_up"),
        held.after_give_up,
    );

    about(
        "drop_on_another_thread's charge",
        charged("drop_on_another_thread"),
        held.handed_over,
    );
    // The thread's closure is named after `hand_the_guard_over`: every charge under it is the
    // dropping thread's.
    assert_eq!(
        charged("hand_the_guard_over"),
        charged("drop_on_another_thread"),
        "the dropper is charged, not the task that locked"
    );
    about(
        "waits_for_the_handed_over's wait",
        waited("waits_for_the_handed_over"),
        held.handed_over,
    );

    about(
        "write_and_hold's charge",
        charged("write_and_hold"),
        2 * held.written,
    );
    for reader in ["reads_while_written", "reads_too_while_written"] {
        about(&format!("{reader}'s wait"), waited(reader), held.written);
    }
}
