//! `mapprof::tokio` locks in a measurement: tasks polled by the measuring thread (a
//! current-thread runtime run inside the closure) that contend are counted, with the time they
//! waited, and `assert_no_contention` names the waiting and the holding async functions.

use mapprof::testing::try_measure;
use mapprof::tokio::{Mutex, MutexGuard};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::system();

const TASKS: usize = 4;
const HOLD: Duration = Duration::from_millis(20);

/// Takes the lock; how long it waited, by the task's own clock.
#[inline(never)]
async fn wait_for_the_lock(mutex: &Mutex<u64>) -> (MutexGuard<'_, u64>, Duration) {
    let start = Instant::now();
    let guard = mutex.lock().await;
    (guard, start.elapsed())
}

#[inline(never)]
async fn hold_the_lock(mut guard: MutexGuard<'_, u64>) {
    tokio::time::sleep(HOLD).await;
    *guard += 1;
    drop(guard);
}

#[test]
fn tasks_that_contend_in_a_measurement_are_counted() {
    let (waited, m) = try_measure(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mutex = Arc::new(Mutex::new(0u64));
            let tasks: Vec<_> = (0..TASKS)
                .map(|_| {
                    let mutex = mutex.clone();
                    tokio::spawn(async move {
                        let (guard, waited) = wait_for_the_lock(&mutex).await;
                        hold_the_lock(guard).await;
                        waited
                    })
                })
                .collect();
            let mut waited = Duration::ZERO;
            for task in tasks {
                waited += task.await.unwrap();
            }
            assert_eq!(*mutex.lock().await, TASKS as u64);
            waited
        })
    })
    .unwrap();
    // The first task takes the lock at once; each of the others waits for it, on one thread.
    assert_eq!(m.contentions, TASKS as u64 - 1, "{m:#?}");
    let (measured, own) = (m.wait.as_secs_f64(), waited.as_secs_f64());
    assert!(
        (measured - own).abs() <= 0.1 * own,
        "measured {:?} waited, the tasks' own clocks {waited:?}",
        m.wait
    );
    let message = *std::panic::catch_unwind(|| m.assert_no_contention())
        .err()
        .and_then(|p| p.downcast::<String>().ok())
        .expect("the assertion fails");
    let (waiters, holders) = message
        .split_once("holders (charged at unlock with their waiters' time):")
        .expect("holders listed");
    assert!(waiters.contains("wait_for_the_lock"), "{message}");
    assert!(holders.contains("hold_the_lock"), "{message}");
}
