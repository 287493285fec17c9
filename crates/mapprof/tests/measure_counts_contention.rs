//! A contended `mapprof::sync::Mutex` acquisition on the measuring thread is counted, with the
//! time waited; `assert_no_contention` fails on it. (Waits of other threads are not counted:
//! a scope is the calling thread's.)

use mapprof::sync::Mutex;
use mapprof::testing::measure;
use std::sync::{Arc, Barrier};
use std::time::Duration;

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::system();

const HOLD: Duration = Duration::from_millis(100);

#[test]
fn a_contended_lock_is_counted_with_its_wait() {
    let mutex = Arc::new(Mutex::new(0u64));
    let held = Arc::new(Barrier::new(2));
    let holder = {
        let (mutex, held) = (mutex.clone(), held.clone());
        std::thread::spawn(move || {
            let mut guard = mutex.lock().unwrap();
            held.wait();
            std::thread::sleep(HOLD);
            *guard += 1;
        })
    };
    held.wait();
    let m = measure(|| *mutex.lock().unwrap() += 1);
    holder.join().unwrap();
    assert_eq!(*mutex.lock().unwrap(), 2);
    assert_eq!(m.contentions, 1, "{m:#?}");
    // The wait starts after the barrier, so a little under the hold; a loaded machine can
    // make it longer, never much shorter.
    assert!(
        m.wait >= HOLD.mul_f64(0.8) && m.wait <= HOLD.mul_f64(2.0),
        "waited {:?} for a hold of {HOLD:?}",
        m.wait
    );
    let message = std::panic::catch_unwind(|| m.assert_no_contention())
        .err()
        .and_then(|p| p.downcast::<String>().ok())
        .expect("the assertion fails");
    assert!(
        message.contains("expected no lock contention, measured 1 contended acquisitions"),
        "{message}"
    );
    measure(|| *mutex.lock().unwrap() += 1).assert_no_contention();
}
