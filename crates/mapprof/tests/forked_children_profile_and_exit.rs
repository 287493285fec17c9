//! `fork()` without `exec` from a process that builds profiles all the time (`crate::fork` in
//! the facade): every child can allocate, lock, take a profile and `exit()` (at-exit handlers
//! run), none hangs; a child writes no at-exit dump (the parent does); a child that drops the
//! parent's profiler returns at once; and a child does not keep the parent's `/debug/pprof`
//! port open.
//!
//! Before the fork handlers, 193 of 200 children of such a parent hung in the symbolizer's lock.
#![cfg(feature = "jemalloc")]

use mapprof::ProfileKind;
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::jemalloc();

const CHILDREN: usize = 200;
/// Children alive at a time.
const AT_ONCE: usize = 4;
/// A child that has not exited by then is hung: a child's whole work takes milliseconds.
const HUNG_AFTER: Duration = Duration::from_secs(30);

/// Allocates in a function of its own, so that the child's profile can be told by name.
#[inline(never)]
fn child_allocates() -> Vec<Vec<u8>> {
    (0..64).map(|i| vec![i as u8; 64 << 10]).collect()
}

/// The child's side: what a worker of a pre-fork server does. Never returns.
fn child(n: usize, dir: &Path, profiler: mapprof::Profiler) -> ! {
    let kept = std::hint::black_box(child_allocates());
    let lock = mapprof::sync::Mutex::new(0);
    *lock.lock().unwrap() += kept.len();
    let path = dir.join(format!("child.{}.pb.gz", std::process::id()));
    let ok = mapprof::write_profile_to_path(ProfileKind::Heap, &path).is_ok();
    if n % 2 == 1 {
        // The parent's profiler, in the child: nothing to join, nothing to dump.
        drop(profiler);
    } else {
        std::mem::forget(profiler);
    }
    // `exit`, not `_exit`: the at-exit dump handler runs.
    std::process::exit(if ok { 0 } else { 3 })
}

#[test]
fn forked_children_profile_and_exit() {
    let dir = tempfile::tempdir().unwrap();
    let dumps = dir.path().join("dumps");
    let mut profiler = Some(
        mapprof::Profiler::builder()
            .heap_rate(64 << 10)
            .mutex_fraction(1)
            .dump_dir(&dumps)
            .http("127.0.0.1:0")
            .start()
            .expect("start"),
    );
    let addr = profiler.as_ref().unwrap().http_addr().expect("served");

    // The parent builds profiles continuously on two threads, and allocates new stacks.
    let stop = Arc::new(AtomicBool::new(false));
    let builders: Vec<_> = (0..2)
        .map(|i| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut built = 0u64;
                while !stop.load(Relaxed) {
                    let kind = [ProfileKind::Heap, ProfileKind::Allocs][i];
                    std::hint::black_box(mapprof::profile(kind));
                    let v: Vec<Vec<u8>> = (0..built % 7 + 1).map(|_| vec![0; 70 << 10]).collect();
                    std::hint::black_box(v);
                    built += 1;
                }
                built
            })
        })
        .collect();

    let mut outcomes = Vec::new();
    let mut running: Vec<(i32, Instant)> = Vec::new();
    let mut next = 0;
    while next < CHILDREN || !running.is_empty() {
        while next < CHILDREN && running.len() < AT_ONCE {
            // SAFETY: the child runs `child`, which ends in `exit`; it uses only the forking
            // thread, which is what a forked child of a multithreaded process may do with
            // fork-safe allocators (jemalloc's and mapprof's handlers).
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0, "fork failed");
            if pid == 0 {
                child(next, dir.path(), profiler.take().unwrap());
            }
            running.push((pid, Instant::now()));
            next += 1;
        }
        std::thread::sleep(Duration::from_millis(2));
        running.retain(|&(pid, since)| {
            let mut status = 0;
            // SAFETY: polls a child of ours; `status` is a valid out-pointer.
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if r == pid {
                outcomes.push((pid, Some(status)));
                return false;
            }
            if since.elapsed() > HUNG_AFTER {
                // SAFETY: kills the hung child of ours, then reaps it.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, &mut status, 0);
                }
                outcomes.push((pid, None));
                return false;
            }
            true
        });
    }
    stop.store(true, Relaxed);
    let built: u64 = builders.into_iter().map(|b| b.join().unwrap()).sum();
    assert!(
        built > CHILDREN as u64 / 10,
        "the parent kept building: {built}"
    );

    let hung = outcomes.iter().filter(|(_, s)| s.is_none()).count();
    assert_eq!(hung, 0, "children hung (killed after {HUNG_AFTER:?})");
    for &(pid, status) in &outcomes {
        let status = status.unwrap();
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "child {pid}: status {status}"
        );
        // Each child's own profile: decodes, and holds what the child allocated.
        let bytes = std::fs::read(dir.path().join(format!("child.{pid}.pb.gz"))).unwrap();
        let profile = mapprof_profile::codec::decode(&bytes).expect("valid profile");
        let view = mapprof_profile::view::ProfileView::new(&profile).unwrap();
        assert!(
            view.samples()
                .any(|s| s.frames().any(|f| f.function.contains("child_allocates"))),
            "child {pid}'s profile has its own allocations"
        );
    }
    assert_eq!(outcomes.len(), CHILDREN);

    // A child does not keep the port: with one child alive, the parent's server stops and
    // the port refuses connections (before, the child's copy of the socket kept accepting).
    assert!(TcpStream::connect(addr).is_ok(), "served before");
    let (read_end, write_end) = pipe();
    // SAFETY: the child waits for the pipe to close and leaves with `_exit`.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let mut byte = 0u8;
        // SAFETY: reads into a byte we own; `_exit` ends the child without destructors.
        unsafe {
            libc::close(write_end);
            libc::read(read_end, (&mut byte as *mut u8).cast(), 1);
            libc::_exit(0);
        }
    }
    // SAFETY: our copy of the pipe's read end, not used here.
    unsafe { libc::close(read_end) };
    drop(profiler.take());
    let refused = TcpStream::connect(addr).is_err();
    // SAFETY: closing the write end ends the child's wait; then it is reaped.
    unsafe {
        libc::close(write_end);
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
    }
    assert!(
        refused,
        "the port was closed with the parent's server, not held by the child"
    );

    // The at-exit dump is the parent's alone (its drop wrote it).
    let names: Vec<String> = std::fs::read_dir(&dumps)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let own = format!(".{}.", std::process::id());
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("heap.") && n.contains(&own)),
        "{names:?}"
    );
    assert!(
        names.iter().all(|n| n.contains(&own)),
        "children dumped: {names:?}"
    );
}

fn pipe() -> (i32, i32) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid out-array of two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    (fds[0], fds[1])
}
