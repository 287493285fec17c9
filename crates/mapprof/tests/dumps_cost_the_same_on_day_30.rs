//! Dumps into one directory do not get slower as it fills: each profile is written once and
//! linked under the next number of the process's count (before, each dump tried every name
//! already taken, writing the whole profile for each: dump #300 took 2.0 s against 0.07 s).
//! Names taken by an earlier process with the same pid are skipped with one directory read;
//! temporary files left by a process killed mid-write are removed when a profiler starts.
//!
//! The cost compared is the dumping thread's CPU time, not wall time (fsync waits and a busy
//! machine would be noise).
#![cfg(feature = "jemalloc")]

mod common;
use common::thread_cpu_time;
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::jemalloc();

const DUMPS: usize = 1_000;
/// Dumps at each end whose median CPU times are compared.
const ENDS: usize = 100;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

/// A pid no process has: a child's, after it has exited and been reaped.
fn dead_pid() -> i32 {
    // SAFETY: the child leaves at once with `_exit`.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: ends the child without running anything of the parent's.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: reaps our child; `status` is a valid out-pointer.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    pid
}

#[test]
fn dumps_cost_the_same_on_day_30() {
    let dir = tempfile::tempdir().unwrap();
    let pid = std::process::id();

    // Left behind: a killed writer's temporary file, one of a process still running (ours).
    let stale = format!(".heap.1.0.pb.gz.{}.0.tmp", dead_pid());
    let live = format!(".heap.1.0.pb.gz.{pid}.99.tmp");
    for name in [&stale, &live] {
        std::fs::write(dir.path().join(name), b"partial").unwrap();
    }
    // An earlier process with this pid (a restarted container's pid 1) dumped 40 times.
    for n in 0..40 {
        std::fs::write(dir.path().join(format!("heap.{pid}.{n}.pb.gz")), b"old").unwrap();
    }
    let profiler = mapprof::Profiler::builder()
        .dump_dir(dir.path())
        .start()
        .expect("start");
    let left = names(dir.path());
    assert!(!left.contains(&stale), "the dead writer's file is removed");
    assert!(left.contains(&live), "a running process's file is kept");

    let mut cost = Vec::with_capacity(DUMPS);
    let mut written = HashSet::new();
    for _ in 0..DUMPS {
        let before = thread_cpu_time();
        let paths = mapprof::dump(dir.path()).expect("dump");
        cost.push(thread_cpu_time() - before);
        assert_eq!(paths.len(), mapprof::ProfileKind::ALL.len());
        for p in paths {
            assert!(written.insert(p.clone()), "{} written twice", p.display());
        }
    }
    drop(profiler);

    // Nothing overwritten: the old files are as they were, every new one is a profile.
    for n in 0..40 {
        let old = std::fs::read(dir.path().join(format!("heap.{pid}.{n}.pb.gz"))).unwrap();
        assert_eq!(old, b"old");
    }
    for p in written.iter().step_by(97) {
        let bytes = std::fs::read(p).unwrap();
        mapprof_profile::codec::decode(&bytes).expect("a dump decodes");
    }
    let left = names(dir.path());
    let temps: Vec<_> = left.iter().filter(|n| n.ends_with(".tmp")).collect();
    assert_eq!(temps, [&live], "no temporary file of ours is left");

    let first = median(cost[..ENDS].to_vec());
    let last = median(cost[DUMPS - ENDS..].to_vec());
    eprintln!("dump CPU time, median: first {ENDS} {first:?}, last {ENDS} {last:?}");
    assert!(
        last <= first * 3 / 2 + Duration::from_millis(1),
        "dump CPU time, median of the first {ENDS}: {first:?}, of the last {ENDS}: {last:?}"
    );
}
