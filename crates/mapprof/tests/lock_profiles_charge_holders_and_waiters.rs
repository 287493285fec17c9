//! Injected contention with a known answer: one thread holds a lock for 20 ms, ten times, while
//! two other threads wait on it. The mutex profile charges about 2 × 10 × 20 ms to the holder's
//! function, the block profile each waiter's function its own wait (±15%), and
//! `go tool pprof -top -sample_index=delay` lists the holder first.

mod common;
use common::*;
use mapprof::sync::{Mutex, RwLock};
use mapprof::ProfileKind;
use std::sync::{mpsc, Arc, Barrier};
use std::time::Duration;

const HOLD: Duration = Duration::from_millis(20);
const ROUNDS: usize = 10;

/// Returns how long it really held the lock after the waiters started (sleep overshoots).
#[inline(never)]
fn hold_the_lock(lock: &Mutex<u64>, start: &Barrier, end: &Barrier) -> Duration {
    let mut held = Duration::ZERO;
    for _ in 0..ROUNDS {
        let mut guard = lock.lock().unwrap();
        start.wait(); // the waiters now block on the lock
        let t = std::time::Instant::now();
        std::thread::sleep(HOLD);
        *guard += 1;
        held += t.elapsed();
        drop(guard);
        end.wait();
    }
    held
}

#[inline(never)]
fn first_waiter(lock: &Mutex<u64>, start: &Barrier, end: &Barrier) {
    for _ in 0..ROUNDS {
        start.wait();
        drop(lock.lock().unwrap());
        end.wait();
    }
}

#[inline(never)]
fn second_waiter(lock: &Mutex<u64>, start: &Barrier, end: &Barrier) {
    for _ in 0..ROUNDS {
        start.wait();
        drop(lock.lock().unwrap());
        end.wait();
    }
}

#[inline(never)]
fn read_while_writer_holds(lock: &RwLock<u64>, go: &Barrier) {
    go.wait();
    drop(lock.read().unwrap());
}

#[inline(never)]
fn write_while_readers_hold(lock: &RwLock<u64>, go: &Barrier) {
    go.wait();
    *lock.write().unwrap() += 1;
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
        let lock = Arc::new(Mutex::new(0));
        let start = Arc::new(Barrier::new(3));
        let end = Arc::new(Barrier::new(3));
        let spawn = |f: fn(&Mutex<u64>, &Barrier, &Barrier)| {
            let (lock, start, end) = (lock.clone(), start.clone(), end.clone());
            std::thread::spawn(move || f(&lock, &start, &end))
        };
        let waiters = [spawn(first_waiter), spawn(second_waiter)];
        // The holder runs here, on a thread of its own too; it reports how long it held.
        let held = hold_the_lock(&lock, &start, &end);
        for t in waiters {
            t.join().unwrap();
        }
        done_tx.send((*lock.lock().unwrap(), held)).unwrap();
    });
    let (rounds, held) = done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the contention test hung");
    assert_eq!(rounds, ROUNDS as u64);
    assert!(held >= ROUNDS as u32 * HOLD);

    let mutex = decoded(ProfileKind::Mutex);
    let holder = total_through(&mutex, "delay", "hold_the_lock");
    assert_about("holder's mutex delay", holder, 2 * held, 0.15);
    assert!(total_through(&mutex, "contentions", "hold_the_lock") >= ROUNDS as i64);

    let block = decoded(ProfileKind::Block);
    for waiter in ["first_waiter", "second_waiter"] {
        let waited = total_through(&block, "delay", waiter);
        assert_about(&format!("{waiter}'s block delay"), waited, held, 0.15);
    }
    assert_eq!(total_through(&block, "delay", "hold_the_lock"), 0);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mutex.pb.gz");
    mapprof::write_profile_to_path(ProfileKind::Mutex, &file).unwrap();
    let top = go_pprof(&["-top", "-sample_index=delay"], &file);
    assert!(top_rows(&top)[0].contains("hold_the_lock"), "{top}");
    // Viewers show delay by default and can tell the two profiles apart.
    for (profile, name) in [(&mutex, "mutex"), (&block, "block")] {
        let view = mapprof_profile::view::ProfileView::new(profile).unwrap();
        assert_eq!(
            view.sample_types()[view.default_sample_index()].name,
            "delay"
        );
        assert_eq!(view.kind_name(), name);
    }

    // RwLock: readers waiting on a writer, and a writer waiting on a reader.
    let lock = Arc::new(RwLock::new(0));
    let go = Arc::new(Barrier::new(2));
    let reader = {
        let (lock, go) = (lock.clone(), go.clone());
        std::thread::spawn(move || read_while_writer_holds(&lock, &go))
    };
    let writing = lock.write().unwrap();
    go.wait();
    std::thread::sleep(HOLD);
    drop(writing);
    reader.join().unwrap();
    let writer = {
        let (lock, go) = (lock.clone(), go.clone());
        std::thread::spawn(move || write_while_readers_hold(&lock, &go))
    };
    let reading = lock.read().unwrap();
    go.wait();
    std::thread::sleep(HOLD);
    drop(reading);
    writer.join().unwrap();
    let block = decoded(ProfileKind::Block);
    for waiter in ["read_while_writer_holds", "write_while_readers_hold"] {
        let waited = total_through(&block, "delay", waiter);
        assert_about(&format!("{waiter}'s block delay"), waited, HOLD, 0.5);
    }
}
