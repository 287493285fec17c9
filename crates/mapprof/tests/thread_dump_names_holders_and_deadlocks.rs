//! A thread dump lists every thread with its name and current function, says which lock a
//! waiter waits for and which thread holds it, reports a deadlock as a cycle at the top, and
//! its profile reads back (mapprof's decoder, `go tool pprof -top`, `/debug/pprof/goroutine`).
//!
//! The two deadlocked threads never end: they stay parked until the test process exits.
//! Conditions are waited for with generous timeouts, never timed.

mod common;

use mapprof::sync::{Mutex, RwLock};
use mapprof_profile::view::ProfileView;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};

fn gettid() -> u32 {
    // SAFETY: gettid takes no argument and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as u32 }
}

#[inline(never)]
fn spin_here(stop: &AtomicBool) {
    let mut x = 0u64;
    while !stop.load(Relaxed) {
        x = black_box(x.wrapping_mul(31).wrapping_add(1));
    }
}

#[inline(never)]
fn sleep_here(stop: &AtomicBool) {
    while !stop.load(Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[inline(never)]
fn hold_here(lock: &Mutex<u32>, locked: mpsc::Sender<u32>, release: mpsc::Receiver<()>) {
    let guard = lock.lock().unwrap();
    locked.send(gettid()).unwrap();
    let _ = release.recv();
    drop(black_box(guard));
}

#[inline(never)]
fn wait_here(lock: &Mutex<u32>) {
    let guard = lock.lock().unwrap();
    black_box(&*guard);
}

#[inline(never)]
fn write_and_hold(lock: &RwLock<u32>, locked: mpsc::Sender<()>, release: mpsc::Receiver<()>) {
    let guard = lock.write().unwrap();
    locked.send(()).unwrap();
    let _ = release.recv();
    drop(black_box(guard));
}

#[inline(never)]
fn read_and_hold(lock: &RwLock<u32>, locked: mpsc::Sender<()>, release: mpsc::Receiver<()>) {
    let guard = lock.read().unwrap();
    locked.send(()).unwrap();
    let _ = release.recv();
    drop(black_box(guard));
}

#[inline(never)]
fn read_waits_here(lock: &RwLock<u32>) {
    black_box(*lock.read().unwrap());
}

#[inline(never)]
fn write_waits_here(lock: &RwLock<u32>) {
    *lock.write().unwrap() += 1;
}

#[inline(never)]
fn deadlock_here(first: &Mutex<u32>, second: &Mutex<u32>, both: &Barrier) {
    let _a = first.lock().unwrap();
    both.wait();
    let _b = second.lock().unwrap();
    unreachable!("deadlocked");
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> u32 {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            tx.send(gettid()).unwrap();
            f()
        })
        .unwrap();
    rx.recv().unwrap()
}

/// Takes dumps until `ok` holds for one (at most 120 s: the machine may be busy).
fn dump_until(what: &str, ok: impl Fn(&mapprof::ThreadDump) -> bool) -> mapprof::ThreadDump {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let dump = mapprof::thread_dump_within(Duration::from_secs(30)).expect("thread dump");
        if ok(&dump) {
            return dump;
        }
        assert!(Instant::now() < deadline, "{what}:\n{}", dump.text());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn thread(dump: &mapprof::ThreadDump, tid: u32) -> &mapprof::DumpedThread {
    dump.threads()
        .iter()
        .find(|t| t.tid == tid)
        .unwrap_or_else(|| panic!("thread {tid} not in the dump:\n{}", dump.text()))
}

fn runs(t: &mapprof::DumpedThread, function: &str) -> bool {
    t.frames.iter().any(|(f, _)| f.contains(function))
}

#[test]
fn a_dump_names_threads_functions_holders_and_deadlocks() {
    let stop = Arc::new(AtomicBool::new(false));
    let spinner = spawn("dump-spinner", {
        let stop = stop.clone();
        move || spin_here(&stop)
    });
    let sleeper = spawn("dump-sleeper", {
        let stop = stop.clone();
        move || sleep_here(&stop)
    });
    let held = Arc::new(Mutex::new(0u32));
    let (locked_tx, locked_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    let holder = spawn("dump-holder", {
        let held = held.clone();
        move || hold_here(&held, locked_tx, release_rx)
    });
    assert_eq!(locked_rx.recv().unwrap(), holder);
    let waiter = spawn("dump-waiter", {
        let held = held.clone();
        move || wait_here(&held)
    });
    // A RwLock held by a writer, a reader waiting; another held by a reader, a writer waiting.
    let (written, read) = (Arc::new(RwLock::new(0u32)), Arc::new(RwLock::new(0u32)));
    let (rw_tx, rw_rx) = mpsc::channel();
    let (rw_release_tx, rw_release_rx) = mpsc::channel();
    let (r_release_tx, r_release_rx) = mpsc::channel();
    let writer = spawn("dump-writer", {
        let (written, rw_tx) = (written.clone(), rw_tx.clone());
        move || write_and_hold(&written, rw_tx, rw_release_rx)
    });
    spawn("dump-reader", {
        let read = read.clone();
        move || read_and_hold(&read, rw_tx, r_release_rx)
    });
    rw_rx.recv().unwrap();
    rw_rx.recv().unwrap();
    let read_waiter = spawn("dump-rwaiter", {
        let written = written.clone();
        move || read_waits_here(&written)
    });
    let write_waiter = spawn("dump-wwaiter", {
        let read = read.clone();
        move || write_waits_here(&read)
    });
    let (a, b) = (Arc::new(Mutex::new(1u32)), Arc::new(Mutex::new(2u32)));
    let both = Arc::new(Barrier::new(2));
    let dl_a = spawn("dump-dl-a", {
        let (a, b, both) = (a.clone(), b.clone(), both.clone());
        move || deadlock_here(&a, &b, &both)
    });
    let dl_b = spawn("dump-dl-b", {
        let (a, b, both) = (a.clone(), b.clone(), both.clone());
        move || deadlock_here(&b, &a, &both)
    });

    let dump = dump_until("every thread in place", |d| {
        let waits_on_holder = |tid| {
            d.threads()
                .iter()
                .find(|t| t.tid == tid)
                .and_then(|t| t.wait.as_ref())
                .is_some_and(|w| w.holder.is_some())
        };
        let waits = |tid| {
            d.threads()
                .iter()
                .find(|t| t.tid == tid)
                .is_some_and(|t| t.wait.is_some())
        };
        waits_on_holder(waiter)
            && waits_on_holder(read_waiter)
            && waits(write_waiter)
            && !d.deadlocks().is_empty()
            && d.threads()
                .iter()
                .find(|t| t.tid == spinner)
                .is_some_and(|t| runs(t, "spin_here"))
            && d.threads()
                .iter()
                .find(|t| t.tid == sleeper)
                .is_some_and(|t| runs(t, "sleep_here"))
    });
    let text = dump.text();
    eprintln!("{text}");

    // Every thread, named, in its own function.
    for (tid, name, function) in [
        (spinner, "dump-spinner", "spin_here"),
        (sleeper, "dump-sleeper", "sleep_here"),
        (holder, "dump-holder", "hold_here"),
        (waiter, "dump-waiter", "wait_here"),
        (dl_a, "dump-dl-a", "deadlock_here"),
        (dl_b, "dump-dl-b", "deadlock_here"),
    ] {
        let t = thread(&dump, tid);
        assert_eq!(t.name, name);
        assert!(t.answered, "{name}:\n{text}");
        assert!(runs(t, function), "{name} in {function}:\n{text}");
        assert!(
            text.contains(&format!("thread {tid} [{name}]:")),
            "{name}:\n{text}"
        );
    }
    // The waiter names the lock and its holder.
    let w = thread(&dump, waiter)
        .wait
        .as_ref()
        .expect("the waiter waits");
    assert_eq!((w.kind, w.holder, w.cycle), ("Mutex", Some(holder), None));
    assert!(runs(thread(&dump, waiter), "lock_contended"), "{text}");
    let waiter_line = text
        .lines()
        .find(|l| l.starts_with(&format!("thread {waiter} ")))
        .unwrap();
    assert!(
        waiter_line.contains(&format!("waits for Mutex {:#x}", w.lock))
            && waiter_line.contains(&format!("held by thread {holder} [dump-holder]"))
            && waiter_line.contains("wait_here"),
        "{waiter_line}"
    );
    // RwLocks: a writer is named, readers are not.
    let w = thread(&dump, read_waiter).wait.as_ref().unwrap();
    assert_eq!((w.kind, w.holder), ("RwLock (read)", Some(writer)));
    let w = thread(&dump, write_waiter).wait.as_ref().unwrap();
    assert_eq!((w.kind, w.holder), ("RwLock (write)", None));
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("thread {write_waiter} ")))
        .unwrap();
    assert!(line.contains("held by readers"), "{line}");
    assert!(thread(&dump, spinner).wait.is_none());
    assert!(thread(&dump, holder).wait.is_none());

    // The deadlock is a cycle, at the top of the text.
    let cycle = dump
        .deadlocks()
        .iter()
        .find(|c| c.contains(&dl_a))
        .expect("the deadlock");
    let mut members = cycle.clone();
    members.sort_unstable();
    let mut expected = vec![dl_a, dl_b];
    expected.sort_unstable();
    assert_eq!(members, expected);
    let deadlock_at = text.find("DEADLOCK (cycle").expect("reported");
    assert!(deadlock_at < text.find("\nthread ").unwrap(), "{text}");
    for (tid, other) in [(dl_a, dl_b), (dl_b, dl_a)] {
        let w = thread(&dump, tid).wait.as_ref().unwrap();
        assert_eq!(w.holder, Some(other));
        assert!(w.cycle.is_some());
    }
    assert!(dump_grouped_ok(&dump, spinner));

    // The profile, as a reader decodes it: labels and frames.
    let mut bytes = Vec::new();
    mapprof_profile::codec::encode_gzip(dump.profile(), &mut bytes).unwrap();
    let decoded = mapprof_profile::codec::decode(&bytes).unwrap();
    let view = ProfileView::unpruned(&decoded).unwrap();
    let sample_of = |tid: u32| {
        view.samples()
            .find(|s| {
                s.raw()
                    .label
                    .iter()
                    .any(|l| view.string(l.key) == "tid" && l.num == i64::from(tid))
            })
            .unwrap_or_else(|| panic!("no sample of {tid}"))
    };
    let spin = sample_of(spinner);
    assert!(spin.frames().any(|f| f.function.contains("spin_here")));
    let labels = common::string_labels(&view, &spin);
    assert!(labels.contains(&("thread".into(), "dump-spinner".into())));
    let waiting = common::string_labels(&view, &sample_of(waiter));
    assert!(
        waiting.contains(&("held_by".into(), format!("thread {holder} [dump-holder]"))),
        "{waiting:?}"
    );
    for tid in [dl_a, dl_b] {
        let labels = common::string_labels(&view, &sample_of(tid));
        assert!(
            labels
                .iter()
                .any(|(k, v)| k == "deadlock" && v.starts_with("cycle")),
            "{labels:?}"
        );
    }

    // go tool pprof reads it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("goroutine.pb.gz");
    std::fs::write(&path, &bytes).unwrap();
    let top = common::go_pprof(&["-top"], &path);
    assert!(top.contains("Type: threads"), "{top}");
    assert!(top.contains("spin_here"), "{top}");
    let tagged = common::go_pprof(&["-top", "-tagfocus=thread=dump-waiter"], &path);
    assert!(tagged.contains("wait_here"), "{tagged}");

    // `dump_threads` gives the same text from code.
    let again = mapprof::dump_threads();
    assert!(
        again.contains(&format!("thread {waiter} [dump-waiter]:")),
        "{again}"
    );

    // The holder lets go: the waiter gets the lock and leaves.
    release_tx.send(()).unwrap();
    rw_release_tx.send(()).unwrap();
    r_release_tx.send(()).unwrap();
    stop.store(true, Relaxed);
    dump_until("the waiters gone", |d| {
        d.threads()
            .iter()
            .all(|t| ![waiter, read_waiter, write_waiter].contains(&t.tid))
    });
}

/// `debug=1`: the spinner's stack once, with its thread named.
fn dump_grouped_ok(dump: &mapprof::ThreadDump, spinner: u32) -> bool {
    let grouped = dump.grouped_text();
    let ok = grouped.contains("threads profile: total ")
        && grouped.contains(&format!("thread {spinner} [dump-spinner]"))
        && grouped.contains("spin_here")
        && grouped.find("DEADLOCK").unwrap_or(usize::MAX) < grouped.find(" @ ").unwrap_or(0);
    if !ok {
        eprintln!("{grouped}");
    }
    ok
}
