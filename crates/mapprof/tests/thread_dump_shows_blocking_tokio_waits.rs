//! A thread blocked in a `mapprof::tokio` lock's blocking call shows in a thread dump as
//! waiting for it; its holder, a task (or whoever holds the guard), is not named.

use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

#[inline(never)]
fn blocking_here(lock: &mapprof::tokio::Mutex<u32>) {
    *lock.blocking_lock() += 1;
}

#[test]
fn a_thread_in_blocking_lock_waits_for_a_tokio_lock() {
    let lock = Arc::new(mapprof::tokio::Mutex::new(0u32));
    let held = lock.try_lock().expect("free");
    let (tx, rx) = mpsc::channel();
    let blocked = std::thread::Builder::new()
        .name("dump-blocking".into())
        .spawn({
            let lock = lock.clone();
            move || {
                // SAFETY: gettid cannot fail.
                tx.send(unsafe { libc::syscall(libc::SYS_gettid) } as u32)
                    .unwrap();
                blocking_here(&lock);
            }
        })
        .unwrap();
    let tid = rx.recv().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let text = loop {
        let dump = mapprof::thread_dump_within(Duration::from_secs(30)).unwrap();
        let t = dump.threads().iter().find(|t| t.tid == tid);
        if t.is_some_and(|t| t.wait.as_ref().is_some_and(|w| w.kind == "tokio lock")) {
            let t = t.unwrap();
            assert_eq!(t.name, "dump-blocking");
            assert_eq!(t.wait.as_ref().unwrap().holder, None);
            assert!(t.frames.iter().any(|(f, _)| f.contains("blocking_here")));
            break dump.text();
        }
        assert!(Instant::now() < deadline, "{}", dump.text());
        std::thread::sleep(Duration::from_millis(20));
    };
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("thread {tid} ")))
        .unwrap();
    assert!(
        line.contains("waits for tokio lock") && line.contains("held by a task (not named)"),
        "{line}"
    );
    drop(held);
    blocked.join().unwrap();
    assert_eq!(*lock.try_lock().unwrap(), 1);
}
