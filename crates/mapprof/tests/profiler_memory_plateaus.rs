//! The profiler's memory is bounded and plateaus: a process with every profile on (heap_rate
//! 64 KiB, every lock contention recorded, labelled work, the HTTP server) takes 20 CPU profiles
//! and 50 scrapes of every endpoint while its workers allocate, free and contend. Its anonymous
//! memory (RssAnon, `/proc/self/status`) and what mapprof says it holds (`self_memory`) stay
//! under fixed bounds, and the last ten iterations add nothing to either.
//!
//! The workers' own memory is bounded (a fixed ring of buffers), so whatever grows is the
//! profiler's: symbol caches, build buffers, tables, memory not handed back.
#![cfg(feature = "jemalloc")]

mod http_client;
use http_client::get;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::jemalloc();

const ITERATIONS: usize = 50;
const CPU_PROFILES: usize = 20;
/// What the profiler may hold above the process before its first scrape, at any time. Twice
/// the footprint target (BENCHMARKS.md measures that); a leak of a few hundred KiB per
/// iteration, memory kept per profile as pprof-rs's collector was (68 MB), or the whole DWARF
/// kept after a scrape (30-40 MiB) crosses it.
const BOUND: u64 = 32 << 20;
/// What the last ten iterations may add: allocator noise, far below one iteration's work.
const PLATEAU_SLACK: u64 = 2 << 20;

const ENDPOINTS: [&str; 10] = [
    "/debug/pprof/",
    "/debug/pprof/heap",
    "/debug/pprof/allocs",
    "/debug/pprof/resize",
    "/debug/pprof/mutex",
    "/debug/pprof/block",
    "/debug/pprof/heap?debug=1",
    "/debug/pprof/mutex?debug=1",
    "/debug/pprof/cmdline",
    "/debug/pprof/symbol",
];

fn rss_anon() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("RssAnon:"))
        .expect("RssAnon in /proc/self/status");
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib << 10
}

/// Workers: one grows and drops maps under labels, one cycles a fixed ring of buffers of varied
/// sizes, two contend on a lock. Their live memory is bounded.
fn start_workers(stop: &Arc<AtomicBool>) -> Vec<std::thread::JoinHandle<()>> {
    let mut workers = Vec::new();
    let s = stop.clone();
    workers.push(std::thread::spawn(move || {
        let mut round = 0u64;
        while !s.load(Relaxed) {
            let id = format!("t{}", round % 64);
            mapprof::labels(&[("trace_id", &id), ("route", "/grow")], grow_map);
            round += 1;
        }
    }));
    let s = stop.clone();
    workers.push(std::thread::spawn(move || {
        let mut ring: Vec<Vec<u8>> = vec![Vec::new(); 256];
        let mut i = 0usize;
        while !s.load(Relaxed) {
            ring[i % 256] = vec![1u8; 64 + (i * 37) % 8192];
            i += 1;
        }
    }));
    let lock = Arc::new(mapprof::sync::Mutex::new(0u64));
    for _ in 0..2 {
        let (s, lock) = (stop.clone(), lock.clone());
        workers.push(std::thread::spawn(move || {
            while !s.load(Relaxed) {
                hold_lock(&lock);
            }
        }));
    }
    workers
}

#[inline(never)]
fn grow_map() {
    let mut map = HashMap::new();
    for i in 0..2_000u64 {
        map.insert(i, i);
    }
    std::hint::black_box(&map);
}

#[inline(never)]
fn hold_lock(lock: &mapprof::sync::Mutex<u64>) {
    let mut guard = lock.lock().unwrap();
    *guard += 1;
    std::thread::sleep(Duration::from_micros(50));
}

fn scrape_everything(addr: SocketAddr) {
    for path in ENDPOINTS {
        let answer = get(addr, path);
        assert_eq!(answer.status, 200, "{path}: {}", answer.text());
        assert!(!answer.body.is_empty(), "{path}");
    }
}

#[test]
fn profiler_memory_is_bounded_and_plateaus() {
    let profiler = mapprof::Profiler::builder()
        .heap_rate(64 * 1024)
        .mutex_fraction(1)
        .block_rate(1)
        .http("127.0.0.1:0")
        .start()
        .expect("start the profiler");
    let addr = profiler.http_addr().expect("serving");
    let stop = Arc::new(AtomicBool::new(false));
    let workers = start_workers(&stop);
    std::thread::sleep(Duration::from_millis(300));
    let baseline = rss_anon();

    let mut after = Vec::with_capacity(ITERATIONS);
    let mut own_after = Vec::with_capacity(ITERATIONS);
    let mut cpu_samples = 0;
    for i in 0..ITERATIONS {
        scrape_everything(addr);
        // 20 CPU profiles spread over the 50 iterations.
        if i * CPU_PROFILES / ITERATIONS != (i + 1) * CPU_PROFILES / ITERATIONS {
            let cpu = mapprof::cpu_profile(Duration::from_millis(200), 250).expect("cpu");
            cpu_samples += cpu.sample.iter().map(|s| s.value[0]).sum::<i64>();
        }
        let now = rss_anon();
        assert!(
            now <= baseline + BOUND,
            "iteration {i}: RssAnon {} MiB, {} MiB above the start",
            now >> 20,
            (now - baseline) >> 20
        );
        let own = mapprof::self_memory();
        assert!(own.total as u64 <= BOUND, "iteration {i}: {own:?}");
        after.push(now);
        own_after.push(own.total as u64);
    }
    stop.store(true, Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    drop(profiler);

    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    eprintln!(
        "RssAnon: {:.1} MiB before; after iterations 1, 10, 40, 50: {:.1}, {:.1}, {:.1}, {:.1} \
         MiB; {cpu_samples} CPU samples",
        mib(baseline),
        mib(after[0]),
        mib(after[9]),
        mib(after[39]),
        mib(after[49])
    );
    eprintln!(
        "mapprof's own memory after iterations 1, 40, 50: {:.1}, {:.1}, {:.1} MiB",
        mib(own_after[0]),
        mib(own_after[39]),
        mib(own_after[49])
    );
    // Positive controls: the CPU profiles sampled the workers; mapprof sees its own tables.
    assert!(cpu_samples > 0, "the CPU profiles took no samples");
    assert!(own_after[0] > 0, "self_memory reports nothing");
    let own_last_ten = own_after[40..].iter().copied().max().unwrap();
    assert!(
        own_last_ten <= own_after[39] + PLATEAU_SLACK,
        "mapprof's own memory grew from {:.1} to {:.1} MiB over the last ten iterations",
        mib(own_after[39]),
        mib(own_last_ten)
    );
    let last_ten_peak = after[40..].iter().copied().max().unwrap();
    assert!(
        last_ten_peak <= after[39] + PLATEAU_SLACK,
        "the last ten iterations grew RssAnon from {:.1} to {:.1} MiB",
        mib(after[39]),
        mib(last_ten_peak)
    );
}
