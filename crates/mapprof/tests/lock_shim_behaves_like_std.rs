//! The lock shim is a drop-in for std: poisoning, try_lock, into_inner, get_mut, Condvar
//! wake-ups and timeouts, Default, From, Debug, Send and Sync. Risky steps run on a thread and
//! fail on a timeout instead of hanging.

use mapprof::sync::{Condvar, Mutex, RwLock, TryLockError};
use std::cell::Cell;
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// Runs `f` on a thread; fails the test if it does not finish within 30 s.
fn within_timeout(f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("timed out (or the step panicked): a lost wake-up or a deadlock");
}

fn poison<T: Send + 'static>(lock: &Arc<Mutex<T>>) {
    let lock = lock.clone();
    let result = std::thread::spawn(move || {
        let _guard = lock.lock().unwrap();
        panic!("poisoning the lock on purpose");
    })
    .join();
    assert!(result.is_err());
}

#[test]
fn a_panic_while_holding_poisons_as_in_std() {
    let lock = Arc::new(Mutex::new(vec![1, 2, 3]));
    poison(&lock);
    assert!(lock.is_poisoned());
    // The guard comes with the error and still gives access.
    let err = lock.lock().unwrap_err();
    assert_eq!(err.get_ref().len(), 3);
    drop(err);
    match lock.try_lock() {
        Err(TryLockError::Poisoned(e)) => assert_eq!(e.into_inner()[0], 1),
        other => panic!("expected a poisoned try_lock, got {:?}", other.map(|_| ())),
    }
    lock.clear_poison();
    assert!(!lock.is_poisoned());
    assert_eq!(lock.lock().unwrap().len(), 3);

    // into_inner and get_mut report poisoning.
    poison(&lock);
    let mut lock = Arc::try_unwrap(lock).unwrap();
    assert!(lock.get_mut().is_err());
    assert_eq!(lock.into_inner().unwrap_err().into_inner(), vec![1, 2, 3]);

    // RwLock: a panicking writer poisons readers and writers.
    let rw = Arc::new(RwLock::new(5));
    let writer = rw.clone();
    let _ = std::thread::spawn(move || {
        let _w = writer.write().unwrap();
        panic!("poisoning the rwlock on purpose");
    })
    .join();
    assert!(rw.is_poisoned());
    assert_eq!(*rw.read().unwrap_err().into_inner(), 5);
    assert!(rw.write().is_err());
    assert!(matches!(rw.try_read(), Err(TryLockError::Poisoned(_))));
}

#[test]
fn try_lock_would_block_while_held() {
    let lock = Mutex::new(1);
    let guard = lock.lock().unwrap();
    assert!(matches!(lock.try_lock(), Err(TryLockError::WouldBlock)));
    drop(guard);
    assert!(lock.try_lock().is_ok());
    let rw = RwLock::new(1);
    let r = rw.read().unwrap();
    assert!(rw.try_read().is_ok());
    assert!(matches!(rw.try_write(), Err(TryLockError::WouldBlock)));
    drop(r);
    assert!(rw.try_write().is_ok());
}

#[test]
fn condvar_wake_ups_are_not_lost() {
    within_timeout(|| {
        // Producer/consumer handing over 1000 items one at a time.
        let state = Arc::new((Mutex::new((0u32, false)), Condvar::new()));
        let consumer = {
            let state = state.clone();
            std::thread::spawn(move || {
                let (lock, cv) = &*state;
                let mut seen = 0;
                while seen < 1000 {
                    let mut slot = cv.wait_while(lock.lock().unwrap(), |s| !s.1).unwrap();
                    seen = slot.0;
                    slot.1 = false;
                    cv.notify_all();
                }
                seen
            })
        };
        let (lock, cv) = &*state;
        for i in 1..=1000 {
            let mut slot = cv.wait_while(lock.lock().unwrap(), |s| s.1).unwrap();
            *slot = (i, true);
            cv.notify_all();
        }
        assert_eq!(consumer.join().unwrap(), 1000);
    });
}

#[test]
fn condvar_timeouts_and_notify_all() {
    within_timeout(|| {
        let lock = Mutex::new(0);
        let cv = Condvar::new();
        let (guard, timeout) = cv
            .wait_timeout(lock.lock().unwrap(), Duration::from_millis(20))
            .unwrap();
        assert!(timeout.timed_out());
        let (guard, timeout) = cv
            .wait_timeout_while(guard, Duration::from_millis(20), |v| *v == 0)
            .unwrap();
        assert!(timeout.timed_out() && *guard == 0);
        drop(guard);

        let shared = Arc::new((Mutex::new(false), Condvar::new()));
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let (lock, cv) = &*shared;
                    let mut go = lock.lock().unwrap();
                    while !*go {
                        go = cv.wait(go).unwrap();
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(20));
        *shared.0.lock().unwrap() = true;
        shared.1.notify_all();
        for w in waiters {
            w.join().unwrap();
        }
    });
}

#[test]
fn default_from_debug_send_and_sync_match_std() {
    let m: Mutex<Vec<u8>> = Mutex::default();
    assert!(m.lock().unwrap().is_empty());
    let m = Mutex::from(5);
    assert_eq!(format!("{m:?}"), format!("{:?}", std::sync::Mutex::new(5)));
    assert_eq!(format!("{:?}", m.lock().unwrap()), "5");
    let rw = RwLock::from(String::from("x"));
    assert_eq!(
        format!("{rw:?}"),
        format!("{:?}", std::sync::RwLock::new("x".to_string()))
    );
    assert_eq!(RwLock::<u8>::default().into_inner().unwrap(), 0);

    fn send_sync<T: Send + Sync>() {}
    fn sync<T: Sync>() {}
    fn unwind_safe<T: std::panic::UnwindSafe + std::panic::RefUnwindSafe>() {}
    unwind_safe::<Mutex<Cell<u8>>>(); // as std, so `catch_unwind(|| m.lock())` compiles
    unwind_safe::<RwLock<u8>>();
    unwind_safe::<Condvar>();
    send_sync::<Mutex<Cell<u8>>>(); // as std: Sync needs only T: Send
    send_sync::<RwLock<u8>>();
    send_sync::<Condvar>();
    sync::<mapprof::sync::MutexGuard<'static, u8>>();
    sync::<mapprof::sync::RwLockReadGuard<'static, u8>>();
    let unsized_lock: &Mutex<[u8]> = &Mutex::new([1, 2, 3]);
    assert_eq!(unsized_lock.lock().unwrap().len(), 3);
}

#[test]
fn many_threads_never_lose_an_update_or_a_wake_up() {
    within_timeout(|| {
        const THREADS: usize = 8;
        const EACH: usize = 20_000;
        let counter = Arc::new(Mutex::new(0usize));
        let rw = Arc::new(RwLock::new(0usize));
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (counter, rw) = (counter.clone(), rw.clone());
                std::thread::spawn(move || {
                    for i in 0..EACH {
                        *counter.lock().unwrap() += 1;
                        if (i + t) % 16 == 0 {
                            *rw.write().unwrap() += 1;
                        } else {
                            std::hint::black_box(*rw.read().unwrap());
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(*counter.lock().unwrap(), THREADS * EACH);
        let writes: usize = (0..THREADS)
            .map(|t| (0..EACH).filter(|i| (i + t) % 16 == 0).count())
            .sum();
        assert_eq!(*rw.read().unwrap(), writes);
    });
}
