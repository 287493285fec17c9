//! Lock samples carry the labels of the thread they are charged to, as in Go: a mutex sample
//! (the holder, charged with the delay it caused) the holder's labels, a block sample (the
//! waiter, charged with its own wait) the waiter's. One labelled thread holds a lock while
//! another labelled thread waits for it.

mod common;
use common::*;
use mapprof::sync::Mutex;
use mapprof::ProfileKind;
use std::sync::{mpsc, Arc, Barrier};
use std::time::Duration;

const HOLD: Duration = Duration::from_millis(10);
const ROUNDS: usize = 5;

#[inline(never)]
fn hold_the_lock(lock: &Mutex<u64>, start: &Barrier, end: &Barrier) {
    for _ in 0..ROUNDS {
        let mut guard = lock.lock().unwrap();
        start.wait(); // the waiter now blocks on the lock
        std::thread::sleep(HOLD);
        *guard += 1;
        drop(guard);
        end.wait();
    }
}

#[inline(never)]
fn wait_for_the_lock(lock: &Mutex<u64>, start: &Barrier, end: &Barrier) {
    for _ in 0..ROUNDS {
        start.wait();
        drop(lock.lock().unwrap());
        end.wait();
    }
}

#[test]
fn mutex_samples_carry_the_holders_labels_and_block_samples_the_waiters() {
    let _p = mapprof::Profiler::builder()
        .mutex_fraction(1)
        .block_rate(1)
        .start()
        .unwrap();
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let lock = Arc::new(Mutex::new(0));
        let start = Arc::new(Barrier::new(2));
        let end = Arc::new(Barrier::new(2));
        let waiter = {
            let (lock, start, end) = (lock.clone(), start.clone(), end.clone());
            std::thread::spawn(move || {
                mapprof::labels(&[("role", "waiter"), ("trace_id", "w1")], || {
                    wait_for_the_lock(&lock, &start, &end)
                })
            })
        };
        mapprof::labels(&[("role", "holder"), ("trace_id", "h1")], || {
            hold_the_lock(&lock, &start, &end)
        });
        waiter.join().unwrap();
        done_tx.send(()).unwrap();
    });
    done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the contention test hung");

    let role = |want: &'static str| move |l: &[(&str, &str)]| label(l, "role") == Some(want);
    let mutex = decoded(ProfileKind::Mutex);
    let held = total_through(&mutex, "delay", "hold_the_lock");
    assert!(held > 0, "no mutex delay charged to the holder");
    assert_eq!(
        total_labelled(&mutex, "delay", "hold_the_lock", |l| {
            role("holder")(l) && label(l, "trace_id") == Some("h1")
        }),
        held,
        "every mutex sample of the holder carries the holder's labels"
    );
    assert_eq!(total_labelled(&mutex, "delay", "", role("waiter")), 0);

    let block = decoded(ProfileKind::Block);
    let waited = total_through(&block, "delay", "wait_for_the_lock");
    assert!(waited > 0, "no block delay charged to the waiter");
    assert_eq!(
        total_labelled(&block, "delay", "wait_for_the_lock", |l| {
            role("waiter")(l) && label(l, "trace_id") == Some("w1")
        }),
        waited,
        "every block sample of the waiter carries the waiter's labels"
    );
    assert_eq!(total_labelled(&block, "delay", "", role("holder")), 0);
}
