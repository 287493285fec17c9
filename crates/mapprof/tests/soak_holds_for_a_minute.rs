//! The soak: everything at once for a minute (`MAPPROF_SOAK_SECS` for longer), under a
//! watchdog. Threads allocate, grow, reallocate and free across threads under churning trace
//! ids; every lock kind is contended; threads are born and die; a CPU profile runs in a loop;
//! every `/debug/pprof` endpoint is scraped in turn, 100 ms apart; dumps every 5 s, a trace line every
//! second. What must hold: no stall (any worker without progress for 10 s fails the test,
//! with every thread's stack when gdb is there), no panic, every answer and every dump
//! decodes, and the process's memory stays bounded and stops growing.
#![cfg(feature = "jemalloc")]

mod http_client;

use mapprof::sync::{Condvar, Mutex, RwLock};
use mapprof::ProfileKind;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::jemalloc();

/// A worker that has not moved for this long is stalled.
const STALL: Duration = Duration::from_secs(10);
/// The process's resident memory must stay under this (the workload's own live heap is a few
/// MiB; mapprof's fixed tables and its peaks while building are the rest).
const MAX_RSS_KIB: u64 = 256 << 10;
/// RssAnon may grow this much from the soak's middle to its end (no leak).
const MAX_ANON_GROWTH_KIB: u64 = 16 << 10;

/// One kilobyte-granular field of `/proc/self/status`.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

/// Every thread's stack, from gdb if it is installed.
fn all_stacks() -> String {
    std::process::Command::new("gdb")
        .args(["-p", &std::process::id().to_string(), "-batch"])
        .args(["-ex", "thread apply all bt 30"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_else(|e| format!("(no gdb: {e})"))
}

struct Worker {
    name: &'static str,
    progress: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

fn spawn(
    workers: &mut Vec<Worker>,
    stop: &Arc<AtomicBool>,
    name: &'static str,
    mut step: impl FnMut(u64) + Send + 'static,
) {
    let progress = Arc::new(AtomicU64::new(0));
    let (p, stop) = (progress.clone(), stop.clone());
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let mut i = 0;
            while !stop.load(Relaxed) {
                step(i);
                i += 1;
                p.store(i, Relaxed);
            }
        })
        .unwrap();
    workers.push(Worker {
        name,
        progress,
        thread,
    });
}

#[test]
fn soak_holds_for_a_minute() {
    let seconds: u64 = std::env::var("MAPPROF_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let dumps = tempfile::tempdir().unwrap();
    let profiler = mapprof::Profiler::builder()
        .heap_rate(64 << 10)
        .mutex_fraction(1)
        .block_rate(1)
        .dump_dir(dumps.path())
        .dump_every(Duration::from_secs(5))
        .trace(Duration::from_secs(1))
        .http("127.0.0.1:0")
        .start()
        .expect("start");
    let addr = profiler.http_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();

    // Allocating, growing and freeing on another thread, under churning trace ids.
    let (to_free, freed) = mpsc::sync_channel::<Vec<HashMap<u64, String>>>(64);
    let freed = Arc::new(std::sync::Mutex::new(freed));
    for t in 0..4u64 {
        let to_free = to_free.clone();
        spawn(&mut workers, &stop, "soak-alloc", move |i| {
            let id = format!("trace-{t}-{i}");
            let _labels = mapprof::set_labels(&[("trace_id", &id), ("route", "/soak")]);
            let mut maps = Vec::new();
            for m in 0..4 {
                let mut map = HashMap::new();
                for k in 0..(i % 300 + m * 50) {
                    map.insert(k, k.to_string());
                }
                maps.push(map);
            }
            let mut v: Vec<u8> = Vec::with_capacity(16);
            v.resize((i % 64) as usize * 1024, 1);
            v.shrink_to_fit();
            let _ = to_free.try_send(maps);
        });
    }
    {
        let freed = freed.clone();
        spawn(&mut workers, &stop, "soak-free", move |_| {
            let got = freed
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_millis(50));
            drop(got);
        });
    }

    // Every lock kind, contended.
    let mutex = Arc::new(Mutex::new(0u64));
    let rwlock = Arc::new(RwLock::new(Vec::<u64>::new()));
    let ready = Arc::new((Mutex::new(false), Condvar::new()));
    for t in 0..3u64 {
        let (mutex, rwlock, ready) = (mutex.clone(), rwlock.clone(), ready.clone());
        spawn(&mut workers, &stop, "soak-locks", move |i| {
            *mutex.lock().unwrap() += 1;
            if (i + t) % 3 == 0 {
                let mut w = rwlock.write().unwrap();
                w.push(i);
                if w.len() > 1000 {
                    w.clear();
                }
            } else {
                let r = rwlock.read().unwrap();
                std::hint::black_box(r.len());
            }
            let (flag, cv) = &*ready;
            let mut f = flag.lock().unwrap();
            *f = !*f;
            cv.notify_one();
            let _ = cv.wait_timeout(f, Duration::from_micros(200)).unwrap();
        });
    }

    // Threads born and dying.
    let churned = Arc::new(AtomicU64::new(0));
    {
        let churned = churned.clone();
        spawn(&mut workers, &stop, "soak-churn", move |i| {
            let handles: Vec<_> = (0..8)
                .map(|k| {
                    std::thread::spawn(move || {
                        let _l = mapprof::set_labels(&[("thread", &format!("{i}-{k}"))]);
                        std::hint::black_box(vec![0u8; 4096 * (k + 1) as usize]);
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            churned.fetch_add(8, Relaxed);
        });
    }

    // CPU profiles in a loop; one at a time, so this and the `profile` endpoint take turns.
    spawn(
        &mut workers,
        &stop,
        "soak-cpu",
        |_| match mapprof::cpu_profile(Duration::from_millis(500), 250) {
            Ok(profile) => assert!(!profile.sample_type.is_empty()),
            Err(mapprof::Error::CpuProfileBusy) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("cpu profile: {e}"),
        },
    );

    // Every endpoint, one every 100 ms.
    const ENDPOINTS: u64 = 12;
    let answers = Arc::new(AtomicU64::new(0));
    {
        let answers = answers.clone();
        let paths: [&str; ENDPOINTS as usize] = [
            "/debug/pprof/",
            "/debug/pprof/heap",
            "/debug/pprof/heap?debug=1",
            "/debug/pprof/allocs",
            "/debug/pprof/mutex",
            "/debug/pprof/block",
            "/debug/pprof/resize",
            "/debug/pprof/heap?seconds=1",
            "/debug/pprof/profile?seconds=1",
            "/debug/pprof/flame/heap.svg",
            "/debug/pprof/cmdline",
            "/debug/pprof/symbol",
        ];
        spawn(&mut workers, &stop, "soak-scrape", move |i| {
            let path = paths[i as usize % paths.len()];
            let answer = http_client::get(addr, path);
            let cpu_busy = path.contains("profile")
                && answer.status == 500
                && answer.text().contains("already being taken");
            assert!(
                answer.status == 200 || cpu_busy,
                "{path}: {}",
                answer.status
            );
            if answer.status == 200
                && answer.header("content-type") == Some("application/octet-stream")
            {
                mapprof_profile::codec::decode(&answer.body)
                    .unwrap_or_else(|e| panic!("{path} decodes: {e}"));
            }
            answers.fetch_add(1, Relaxed);
            std::thread::sleep(Duration::from_millis(100));
        });
    }

    // The watchdog, and memory at the middle and the end.
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let mut last: Vec<(u64, Instant)> = workers.iter().map(|_| (0, start)).collect();
    let mut anon_middle = None;
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(500));
        let now = Instant::now();
        for (w, seen) in workers.iter().zip(last.iter_mut()) {
            let p = w.progress.load(Relaxed);
            if p != seen.0 {
                *seen = (p, now);
            } else if w.thread.is_finished() {
                stop.store(true, Relaxed);
                panic!("worker {} ended early (it panicked: see above)", w.name);
            } else if now - seen.1 > STALL {
                let stacks = all_stacks();
                stop.store(true, Relaxed);
                panic!("worker {} made no progress for {STALL:?}\n{stacks}", w.name);
            }
        }
        if anon_middle.is_none() && now - start > Duration::from_secs(seconds / 2) {
            anon_middle = Some(status_kib("RssAnon:"));
        }
    }
    stop.store(true, Relaxed);
    for w in workers {
        let name = w.name;
        w.thread
            .join()
            .unwrap_or_else(|_| panic!("worker {name} panicked"));
    }
    let (anon_end, hwm) = (status_kib("RssAnon:"), status_kib("VmHWM:"));
    drop(profiler);

    let mut dumped = 0;
    for entry in std::fs::read_dir(dumps.path()).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        mapprof_profile::codec::decode(&bytes)
            .unwrap_or_else(|e| panic!("{} decodes: {e}", path.display()));
        dumped += 1;
    }
    let kinds = ProfileKind::ALL.len() as u64;
    let anon_middle = anon_middle.unwrap();
    eprintln!(
        "soak {seconds} s: {} answers, {dumped} dump files, {} threads churned, RssAnon \
         {anon_middle} → {anon_end} KiB, VmHWM {hwm} KiB",
        answers.load(Relaxed),
        churned.load(Relaxed)
    );
    assert!(
        dumped as u64 >= kinds * (seconds / 5).max(1),
        "dumps every 5 s: {dumped}"
    );
    // The watchdog saw every worker make progress throughout; these say there was enough of it
    // to be a soak, by counts a loaded machine still reaches (in a minute each endpoint
    // answered once, a hundred threads made and ended), not by rates.
    assert!(
        answers.load(Relaxed) >= (ENDPOINTS * seconds / 60).max(1),
        "scrapes went on"
    );
    assert!(churned.load(Relaxed) >= 100, "threads churned");
    assert!(hwm < MAX_RSS_KIB, "VmHWM {hwm} KiB");
    assert!(
        anon_end < anon_middle + MAX_ANON_GROWTH_KIB,
        "RssAnon grew from {anon_middle} to {anon_end} KiB in the second half"
    );
}
