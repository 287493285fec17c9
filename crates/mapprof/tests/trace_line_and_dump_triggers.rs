//! The background work of a running profiler:
//! - `trace=100ms` prints one line per interval with every field, and the rates follow the
//!   workload (allocation, container growth, lock delay);
//! - `dump_every` writes a set of dumps per interval and a signal writes one more, with names
//!   that never overwrite each other, all of them readable;
//! - after the profiler is dropped its threads are gone and the signal is harmless.
//!
//! Each case runs this binary again as a child (`child`, which does nothing unless
//! `MAPPROF_CHILD` names a case): the trace line goes to the child's stderr, and every case needs
//! a profiler of its own.
#![cfg(feature = "jemalloc")]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use mapprof::sync::Mutex;

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::jemalloc();

/// Allocates, grows maps and contends on a lock for `duration`.
fn workload(duration: Duration) {
    let lock = Arc::new(Mutex::new(0u64));
    let threads = 2;
    let start = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (lock, start) = (lock.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let end = Instant::now() + duration;
                while Instant::now() < end {
                    let mut map = HashMap::new();
                    for i in 0..2_000u64 {
                        map.insert(i, i.to_string());
                    }
                    let mut guard = lock.lock().unwrap();
                    *guard += map.len() as u64;
                    std::thread::sleep(Duration::from_micros(200));
                    drop(guard);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

/// The child side: runs the case named by `MAPPROF_CHILD` under a profiler configured by
/// `MAPPROF`.
#[test]
fn child() {
    let Some(case) = std::env::var_os("MAPPROF_CHILD") else {
        return;
    };
    let profiler = mapprof::start_from_env().expect("MAPPROF is valid");
    match case.to_str().unwrap() {
        "workload" => workload(Duration::from_millis(2500)),
        "signal" => {
            let dir = PathBuf::from(std::env::var("DUMPS").unwrap());
            workload(Duration::from_millis(100));
            // SAFETY: raising a signal that mapprof handles; its handler only writes to a pipe.
            assert_eq!(unsafe { libc::raise(libc::SIGUSR2) }, 0);
            let deadline = Instant::now() + Duration::from_secs(30);
            while count(&dir, "resize") == 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            assert_eq!(count(&dir, "heap"), 1, "one dump set per signal");
            // And a thread dump beside them, written after the profiles.
            while count(&dir, "threads") == 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let threads = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| {
                    p.file_name()
                        .unwrap()
                        .to_str()
                        .unwrap()
                        .starts_with("threads.")
                })
                .expect("a thread dump");
            let text = std::fs::read_to_string(&threads).unwrap();
            assert!(
                text.starts_with("mapprof thread dump:")
                    && text.contains("[mapprof-dump-si]: (taking this dump)"),
                "{text}"
            );
            drop(profiler); // writes the final set, closes the signal listener
            let threads: Vec<String> = std::fs::read_dir("/proc/self/task")
                .unwrap()
                .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).ok())
                .collect();
            assert!(
                !threads.iter().any(|n| n.starts_with("mapprof-")),
                "threads left: {threads:?}"
            );
            // The process survives the signal now, and it no longer dumps.
            // SAFETY: as above.
            assert_eq!(unsafe { libc::raise(libc::SIGUSR2) }, 0);
            std::thread::sleep(Duration::from_millis(200));
            assert_eq!(
                count(&dir, "heap"),
                2,
                "the signal dumps once, the drop once"
            );
        }
        other => panic!("unknown case {other}"),
    }
}

/// Runs the `case` child with `settings` in `MAPPROF`; returns its stderr.
fn run_child(case: &str, settings: &str, dumps: &Path) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env("MAPPROF_CHILD", case)
        .env("MAPPROF", settings)
        .env("DUMPS", dumps)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{case}: {stderr}");
    // The child ran: a filter matching no test would exit 0 too.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1 passed"), "{case}: {stdout}");
    stderr
}

/// Dump files of `kind` in `dir`.
fn count(dir: &Path, kind: &str) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().starts_with(&format!("{kind}."))
        })
        .count()
}

#[test]
fn the_trace_line_reports_every_interval_with_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = run_child(
        "workload",
        "trace=100ms,heap_rate=64k,mutex_fraction=1",
        dir.path(),
    );
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("mapprof: t="))
        .collect();
    // About 25 intervals; slow ones (the first symbolization takes about a second in a debug
    // build) are skipped, not bunched.
    assert!(
        (6..=27).contains(&lines.len()),
        "{} lines:\n{stderr}",
        lines.len()
    );
    let field = |line: &str, key: &str| -> f64 {
        let value = line
            .split(' ')
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key} in {line}"));
        let number: String = value
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        number
            .parse()
            .unwrap_or_else(|_| panic!("{key}={value} in {line}"))
    };
    let keys = [
        "allocated",
        "active",
        "resident",
        "mapped",
        "retained",
        "alloc",
        "objects",
        "growth",
        "growth_space",
        "lock_delay",
        "contentions",
    ];
    for line in &lines {
        for key in keys {
            field(line, key);
        }
        assert!(field(line, "allocated") > 0.0, "{line}");
        // Two threads, one lock: waiting can never exceed one second per second.
        assert!(field(line, "lock_delay") <= 1100.0, "{line}");
    }
    let sum = |key| lines.iter().map(|l| field(l, key)).sum::<f64>();
    for key in ["alloc", "objects", "growth", "growth_space", "lock_delay"] {
        assert!(sum(key) > 0.0, "no {key} seen:\n{stderr}");
    }
    let t: Vec<f64> = lines.iter().map(|l| field(l, "t")).collect();
    assert!(t.windows(2).all(|w| w[1] >= w[0]), "{t:?}");
}

#[test]
fn dumps_come_every_interval_without_overwriting() {
    let dir = tempfile::tempdir().unwrap();
    let settings = format!("dump_dir={},dump_every=300ms", dir.path().display());
    run_child("workload", &settings, dir.path());
    // 2.5 s of workload: about 8 periodic sets (fewer when a dump is slow), plus the final one.
    let sets = count(dir.path(), "heap");
    assert!((3..=10).contains(&sets), "{sets} dump sets");
    for kind in ["allocs", "mutex", "block", "resize"] {
        assert_eq!(count(dir.path(), kind), sets, "{kind}: one per dump set");
    }
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let profile = mapprof_profile::codec::read_file(entry.unwrap().path()).unwrap();
        mapprof_profile::view::ProfileView::new(&profile).unwrap();
    }
}

#[test]
fn a_signal_dumps_once_and_is_harmless_after_the_profiler_stops() {
    let dir = tempfile::tempdir().unwrap();
    let settings = format!("dump_dir={},dump_signal=SIGUSR2", dir.path().display());
    run_child("signal", &settings, dir.path());
    // Checked here too: the signal's set and the drop's.
    assert_eq!(count(dir.path(), "heap"), 2);
}
