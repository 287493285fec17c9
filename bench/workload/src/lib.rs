//! The allocator benchmark's two workloads, shared by every configuration's binary. This crate
//! has no global allocator of its own: each binary (bench/bare, bench/mapprof, bench/peers/*)
//! installs one and calls [`main`].
//!
//! Usage of every binary: `<bin> mixed|hashmap <threads> <ops-per-thread> [--no-check]`.
//! It prints one line:
//! `RESULT config=.. workload=.. threads=.. ops=.. secs=.. mops=.. check=..`
//! (`mops` = million operations per second of wall time, all threads together), then, unless
//! `--no-check`, a `CHECK` line with what the binary's `after` hook reports (for instance, the
//! number of heap samples taken, which shows the profiler was really on).
//!
//! Workloads (every thread does the same, with its own deterministic random stream):
//! - `mixed`: one operation = one allocation of a pseudo-random size between 8 B and 4 KiB
//!   (log-uniform: a power-of-two class from 8 B to 2 KiB, then uniform within the class) and
//!   one free. Half of the blocks are freed at once (LIFO); the other half replace a random slot
//!   of 4096 live blocks, whose previous occupant is freed (so frees come in random order and
//!   lifetimes vary).
//! - `hashmap`: the incident's cache update. A `HashMap<u64, String>` of 4096 entries (values
//!   8–55 bytes) is copied entry by entry into a new map created without a capacity (so it grows
//!   and rehashes as it fills), then the old map is dropped; repeat. One operation = one entry
//!   copied (String clone + insert, plus its share of the growth and of dropping the old map).
//!   The hasher is SipHash with fixed keys (`BuildHasherDefault<DefaultHasher>`) so that runs
//!   repeat exactly under callgrind.
//!
//! The timed part of each thread runs inside `bench_measured_mixed` / `bench_measured_hashmap`
//! (unmangled, never inlined), so `valgrind --tool=callgrind --collect-atstart=no
//! --toggle-collect=bench_measured_*` counts the measured operations only: no start-up, no
//! warm-up, no profile output.

use std::alloc::{alloc, dealloc, Layout};
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::Instant;

/// Live blocks kept per thread by the mixed workload.
const SLOTS: usize = 4096;
/// Entries in the hashmap workload's map.
const ENTRIES: usize = 4096;

type Map = HashMap<u64, String, BuildHasherDefault<DefaultHasher>>;

struct Rng(u64);

impl Rng {
    fn new(thread: usize) -> Rng {
        Rng(0x9e37_79b9_7f4a_7c15u64.wrapping_mul(thread as u64 + 1) | 1)
    }
    #[inline(always)]
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

struct Mixed {
    rng: Rng,
    slots: Vec<(*mut u8, usize)>,
    check: u64,
}

impl Mixed {
    fn new(thread: usize) -> Mixed {
        Mixed {
            rng: Rng::new(thread),
            slots: vec![(std::ptr::null_mut(), 0); SLOTS],
            check: 0,
        }
    }

    #[inline(always)]
    fn run(&mut self, ops: u64) {
        for i in 0..ops {
            let r = self.rng.next();
            let class = 8usize << (r % 9); // 8 B .. 2 KiB
            let size = class + ((r >> 8) as usize & (class - 1)); // 8 B .. 4095 B
                                                                  // SAFETY: size > 0 and align 8 is a power of two.
            let layout = unsafe { Layout::from_size_align_unchecked(size, 8) };
            // SAFETY: layout has a non-zero size.
            let p = unsafe { alloc(layout) };
            if p.is_null() {
                std::alloc::handle_alloc_error(layout);
            }
            // SAFETY: p points to at least `size` >= 8 writable bytes.
            unsafe { p.write(i as u8) };
            let p = black_box(p);
            if r & (1 << 20) == 0 {
                // Short-lived: freed at once.
                // SAFETY: p was allocated above with `layout` and is freed once.
                self.check = self.check.wrapping_add(unsafe { p.read() } as u64);
                unsafe { dealloc(p, layout) };
            } else {
                // Long-lived: takes a random slot, freeing the block that was there.
                let idx = (r >> 40) as usize % SLOTS;
                let (old, old_size) = std::mem::replace(&mut self.slots[idx], (p, size));
                if !old.is_null() {
                    // SAFETY: `old` was allocated with (old_size, 8) and left its slot just now.
                    unsafe { dealloc(old, Layout::from_size_align_unchecked(old_size, 8)) };
                }
            }
        }
    }
}

impl Drop for Mixed {
    fn drop(&mut self) {
        for &(p, size) in &self.slots {
            if !p.is_null() {
                // SAFETY: every non-null slot holds a live block of (size, 8).
                unsafe { dealloc(p, Layout::from_size_align_unchecked(size, 8)) };
            }
        }
    }
}

#[no_mangle]
#[inline(never)]
fn bench_measured_mixed(w: &mut Mixed, ops: u64) {
    w.run(ops);
}

struct Rebuild {
    map: Map,
    check: u64,
}

impl Rebuild {
    fn new(thread: usize) -> Rebuild {
        let mut rng = Rng::new(thread);
        let mut map = Map::default();
        while map.len() < ENTRIES {
            let r = rng.next();
            let len = 8 + (r % 48) as usize;
            let value: String = (0..len)
                .map(|j| (b'a' + ((r >> (j % 8 * 8)) as u8 % 26)) as char)
                .collect();
            map.insert(r, value);
        }
        Rebuild { map, check: 0 }
    }

    /// Copies the map `rebuilds` times, the way the incident's cache update did.
    #[inline(always)]
    fn run(&mut self, rebuilds: u64) {
        for _ in 0..rebuilds {
            let mut fresh = Map::default(); // no capacity hint: grows as it fills
            for (k, v) in &self.map {
                fresh.insert(*k, v.clone());
            }
            self.map = black_box(fresh); // drops the old map and its strings
            self.check = self.check.wrapping_add(self.map.len() as u64);
        }
    }
}

#[no_mangle]
#[inline(never)]
fn bench_measured_hashmap(w: &mut Rebuild, rebuilds: u64) {
    w.run(rebuilds);
}

enum Work {
    Mixed(Mixed),
    Rebuild(Rebuild),
}

impl Work {
    fn new(workload: &str, thread: usize) -> Work {
        match workload {
            "mixed" => Work::Mixed(Mixed::new(thread)),
            "hashmap" => Work::Rebuild(Rebuild::new(thread)),
            other => usage(&format!("unknown workload {other:?}")),
        }
    }

    /// Operations are allocations+frees for `mixed`, entries copied for `hashmap`.
    fn units(&self, ops: u64) -> u64 {
        match self {
            Work::Mixed(_) => ops,
            Work::Rebuild(_) => ops.div_ceil(ENTRIES as u64),
        }
    }

    fn warm_up(&mut self, ops: u64) {
        let units = self.units(ops);
        match self {
            Work::Mixed(w) => w.run(units),
            Work::Rebuild(w) => w.run(units),
        }
    }

    fn measured(&mut self, ops: u64) {
        let units = self.units(ops);
        match self {
            Work::Mixed(w) => bench_measured_mixed(w, units),
            Work::Rebuild(w) => bench_measured_hashmap(w, units),
        }
    }

    /// Operations actually done for `ops` requested.
    fn done(&self, ops: u64) -> u64 {
        match self {
            Work::Mixed(_) => ops,
            Work::Rebuild(_) => self.units(ops) * ENTRIES as u64,
        }
    }

    fn check(&self) -> u64 {
        match self {
            Work::Mixed(w) => w.check,
            Work::Rebuild(w) => w.check,
        }
    }
}

fn usage(msg: &str) -> ! {
    eprintln!("{msg}\nusage: <bin> mixed|hashmap <threads> <ops-per-thread> [--no-check]");
    std::process::exit(2)
}

/// Runs the workload named on the command line and prints its `RESULT` line. `after` runs once
/// the measurement is over (not under `--no-check`) and returns a line of sanity checks.
pub fn main(config: &str, after: impl FnOnce() -> String) {
    main_wrapped(config, |measured| measured(), after);
}

/// [`main`], each thread's measured part run by `wrap` (which must call it once): the testing
/// benchmark runs it inside `mapprof::testing::measure`. Only the measured part is timed.
pub fn main_wrapped(
    config: &str,
    wrap: impl Fn(&mut dyn FnMut()) + Clone + Send + 'static,
    after: impl FnOnce() -> String,
) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        usage("missing arguments");
    }
    let workload = args[0].clone();
    let threads: usize = args[1]
        .parse()
        .unwrap_or_else(|_| usage("bad thread count"));
    let ops: u64 = args[2]
        .parse()
        .unwrap_or_else(|_| usage("bad operation count"));
    let no_check = args.iter().any(|a| a == "--no-check");
    if threads == 0 || ops == 0 {
        usage("threads and ops must be positive");
    }
    // Warm-up: a tenth of the run (at most 200k operations), untimed, so that every live slot
    // is filled and the allocator's caches are populated before the clock starts.
    let warm = (ops / 10).clamp(1, 200_000);

    let (secs, done, check) = if threads == 1 {
        // On the main thread: what callgrind runs.
        let mut w = Work::new(&workload, 0);
        w.warm_up(warm);
        let mut secs = 0.0;
        wrap(&mut || {
            let start = Instant::now();
            w.measured(ops);
            secs = start.elapsed().as_secs_f64();
        });
        (secs, w.done(ops), w.check())
    } else {
        let barrier = Arc::new(Barrier::new(threads + 1));
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let barrier = barrier.clone();
                let workload = workload.clone();
                let wrap = wrap.clone();
                std::thread::spawn(move || {
                    let mut w = Work::new(&workload, t);
                    w.warm_up(warm);
                    barrier.wait();
                    let mut secs = 0.0;
                    wrap(&mut || {
                        let start = Instant::now();
                        w.measured(ops);
                        secs = start.elapsed().as_secs_f64();
                    });
                    (secs, w.done(ops), w.check())
                })
            })
            .collect();
        barrier.wait();
        // Wall time of the run: the slowest thread's measured part (each thread times itself
        // from the common start, so its final frees and the joins are not counted).
        let mut secs = 0f64;
        let mut done = 0;
        let mut check = 0u64;
        for h in handles {
            let (s, d, c) = h.join().expect("workload thread panicked");
            secs = secs.max(s);
            done += d;
            check = check.wrapping_add(c);
        }
        (secs, done, check)
    };
    println!(
        "RESULT config={config} workload={workload} threads={threads} ops={done} secs={secs:.6} mops={:.4} check={check}",
        done as f64 / secs / 1e6
    );
    if !no_check {
        println!("CHECK config={config} {}", after());
    }
}

/// What [`run_threads`] measured.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    /// Wall time of the slowest thread's measured part, in seconds.
    pub secs: f64,
    /// Operations done, all threads together.
    pub done: u64,
    /// The workload's checksum (so that the work is not optimised away).
    pub check: u64,
    /// CPU time (user + system, `CLOCK_THREAD_CPUTIME_ID`) of the workload threads over their
    /// whole lives (set-up and warm-up included), summed, in seconds: what a signal handler
    /// running on them adds to. Per-thread clocks are exact to the nanosecond; the process's
    /// clock is not while a CPU timer is armed (the kernel then reads it from the group
    /// timer's sums, updated at ticks: 4 ms steps).
    pub thread_cpu_s: f64,
    /// The same for the measured parts only.
    pub measured_cpu_s: f64,
}

#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

extern "C" {
    fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
}

/// Linux's `CLOCK_PROCESS_CPUTIME_ID` and `CLOCK_THREAD_CPUTIME_ID`.
pub const CLOCK_PROCESS_CPUTIME: i32 = 2;
/// (the calling thread's)
pub const CLOCK_THREAD_CPUTIME: i32 = 3;

/// CPU time of `clock` ([`CLOCK_PROCESS_CPUTIME`] or the calling thread's), in seconds.
pub fn cpu_time(clock: i32) -> f64 {
    let mut ts = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer for the duration of the call; the clock ids are
    // Linux's constants.
    let rc = unsafe { clock_gettime(clock, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime({clock}) failed");
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Runs `workload` (`mixed` or `hashmap`) on `threads` threads of its own (created for this
/// call), `ops` operations each after an untimed warm-up of `ops / 10` (at most 200k), all
/// threads starting the measured part together; for the CPU profiler benchmark (bench/cpu,
/// bench/peers/pprof-cpu), which needs the same fixed work run again and again.
pub fn run_threads(workload: &str, threads: usize, ops: u64) -> Measured {
    let warm = (ops / 10).clamp(1, 200_000);
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let barrier = barrier.clone();
            let workload = workload.to_owned();
            std::thread::spawn(move || {
                let mut w = Work::new(&workload, t);
                w.warm_up(warm);
                barrier.wait();
                let start = Instant::now();
                let cpu0 = cpu_time(CLOCK_THREAD_CPUTIME);
                w.measured(ops);
                let cpu = cpu_time(CLOCK_THREAD_CPUTIME) - cpu0;
                let secs = start.elapsed().as_secs_f64();
                let (done, check) = (w.done(ops), w.check());
                drop(w);
                (secs, done, check, cpu, cpu_time(CLOCK_THREAD_CPUTIME))
            })
        })
        .collect();
    barrier.wait();
    let mut m = Measured {
        secs: 0.0,
        done: 0,
        check: 0,
        thread_cpu_s: 0.0,
        measured_cpu_s: 0.0,
    };
    for h in handles {
        let (s, d, c, cpu, whole) = h.join().expect("workload thread panicked");
        m.secs = m.secs.max(s);
        m.done += d;
        m.check = m.check.wrapping_add(c);
        m.measured_cpu_s += cpu;
        m.thread_cpu_s += whole;
    }
    m
}

/// `VmRSS` and `RssAnon` of this process from /proc/self/status, in bytes.
pub fn rss() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |key: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|r| {
                r.trim_start_matches(':')
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .ok()
            })
            .map_or(0, |kib: u64| kib * 1024)
    };
    (field("VmRSS"), field("RssAnon"))
}

/// A CPU profiler under test (bench/cpu: mapprof's; bench/peers/pprof-cpu: pprof-rs's).
pub trait CpuProfiler {
    /// Starts sampling the process at `hz`.
    fn start(&mut self, hz: u32);
    /// Stops it, builds the profile (as a scrape would) and returns what it holds.
    fn finish(&mut self) -> Finished;
}

/// What a finished CPU profile held, and how long its handler took.
#[derive(Debug, Clone, Copy, Default)]
pub struct Finished {
    /// SIGPROF ticks in the profile (the samples' counts summed, not distinct stacks).
    pub samples: u64,
    /// Distinct stacks.
    pub stacks: u64,
    /// Handler calls timed from inside the process (bench/cpu/src/handler_clock.rs).
    pub handler_calls: u64,
    /// Their mean and median duration, ns.
    pub handler_mean_ns: f64,
    pub handler_median_ns: f64,
}

/// The CPU profiler benchmark's `main`, shared by bench/cpu and bench/peers/pprof-cpu:
/// `<bin> <hz> <profiles> <threads> <ops-per-thread> [mixed|hashmap]`. Runs `profiles` times
/// the same fixed work (a fresh [`run_threads`] of `ops` operations per thread, warm-up
/// included), each under a CPU profile at `hz` (none when `hz` is 0) started just before the
/// threads and finished just after them. Per profile it prints a line `profile i ...` with the
/// workload threads' CPU time over their lives (`thread_cpu_s`, exact: every SIGPROF lands on
/// them, the main thread sleeping in `join`), that of their measured parts, the process's CPU
/// time while sampling (`cpu_s`: in 4 ms steps while the timer is armed), the main thread's
/// CPU time to start and to finish the profile, the samples, and VmRSS / RssAnon after the
/// finish; then `result: {json}`.
pub fn cpu_main(config: &str, profiler: &mut dyn CpuProfiler) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || -> ! {
        eprintln!("usage: <bin> <hz> <profiles> <threads> <ops-per-thread> [mixed|hashmap]");
        std::process::exit(2)
    };
    if args.len() < 4 {
        usage();
    }
    let num = |i: usize| -> u64 { args[i].parse().unwrap_or_else(|_| usage()) };
    let (hz, profiles, threads, ops) = (num(0) as u32, num(1), num(2) as usize, num(3));
    let workload = args.get(4).map_or("hashmap", |s| s.as_str()).to_owned();
    let (rss0, anon0) = rss();
    let mut lines = Vec::new();
    for i in 1..=profiles {
        let t0 = cpu_time(CLOCK_THREAD_CPUTIME);
        if hz > 0 {
            profiler.start(hz);
        }
        let t1 = cpu_time(CLOCK_THREAD_CPUTIME);
        let c1 = cpu_time(CLOCK_PROCESS_CPUTIME);
        let m = run_threads(&workload, threads, ops);
        let c2 = cpu_time(CLOCK_PROCESS_CPUTIME);
        let t2 = cpu_time(CLOCK_THREAD_CPUTIME);
        let f = if hz > 0 {
            profiler.finish()
        } else {
            Finished::default()
        };
        let (samples, stacks) = (f.samples, f.stacks);
        let t3 = cpu_time(CLOCK_THREAD_CPUTIME);
        let (vm, anon) = rss();
        let line = format!(
            "{{\"i\":{i},\"samples\":{samples},\"stacks\":{stacks},\"cpu_s\":{:.6},\
             \"thread_cpu_s\":{:.9},\"measured_cpu_s\":{:.9},\"start_cpu_s\":{:.9},\
             \"finish_cpu_s\":{:.9},\"secs\":{:.6},\
             \"done\":{},\"check\":{},\"rss\":{vm},\"anon\":{anon},\"handler_calls\":{},\
             \"handler_mean_ns\":{:.1},\"handler_median_ns\":{:.1}}}",
            c2 - c1,
            m.thread_cpu_s,
            m.measured_cpu_s,
            t1 - t0,
            t3 - t2,
            m.secs,
            m.done,
            m.check,
            f.handler_calls,
            f.handler_mean_ns,
            f.handler_median_ns
        );
        println!("profile {line}");
        lines.push(line);
    }
    println!(
        "result: {{\"config\":\"{config}\",\"workload\":\"{workload}\",\"hz\":{hz},\
         \"threads\":{threads},\"ops\":{ops},\"rss0\":{rss0},\"anon0\":{anon0},\"profiles\":[{}]}}",
        lines.join(",")
    );
}
