//! Two threads spin in known functions while a CPU profile is taken at 99 Hz for 2 s
//! (`CpuProfiler`, which `cpu_profile` runs around a sleep, so that the spinners' CPU time can
//! be read over exactly the sampled span): the profile's top functions are those two, and each
//! one's samples match its own thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`) times 99 Hz within
//! sampling error, whatever share of the machine each got; each sample is worth 1e9/99 ns, its
//! Locations are addresses with mappings and lines, and `go tool pprof -top` reads it and
//! agrees.
#![cfg(feature = "jemalloc")]

mod common;
use common::*;
use mapprof_profile::app::{app_top, AppFilter};
use mapprof_profile::top::{top, TopOptions};
use mapprof_profile::view::ProfileView;
use std::os::unix::thread::JoinHandleExt;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::jemalloc();

const HZ: u32 = 99;
const DURATION: Duration = Duration::from_millis(2000);

/// Arithmetic the optimiser cannot fold away: a xorshift walk.
#[inline(never)]
fn spin_multiplying(stop: &AtomicBool) -> u64 {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    while !stop.load(Relaxed) {
        for _ in 0..1000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x = std::hint::black_box(x.wrapping_mul(0x2545_f491_4f6c_dd1d));
        }
    }
    x
}

#[inline(never)]
fn spin_dividing(stop: &AtomicBool) -> u64 {
    let mut x = 1u64;
    let mut d = 3u64;
    while !stop.load(Relaxed) {
        for _ in 0..1000 {
            x = std::hint::black_box(x.wrapping_add(u64::MAX / d));
            d = d % 1_000_003 + 3;
        }
    }
    x
}

#[test]
fn cpu_profile_names_the_busy_functions() {
    let stop = Arc::new(AtomicBool::new(false));
    let busy = [
        (
            "spin_multiplying",
            spin_multiplying as fn(&AtomicBool) -> u64,
        ),
        ("spin_dividing", spin_dividing),
    ];
    let spinners: Vec<_> = busy
        .iter()
        .map(|&(_, f)| {
            let stop = stop.clone();
            std::thread::spawn(move || f(&stop))
        })
        .collect();
    let clocks: Vec<_> = spinners
        .iter()
        .map(|t| cpu_clock_of(t.as_pthread_t()))
        .collect();
    // Let both reach their loops.
    std::thread::sleep(Duration::from_millis(50));
    let t = Instant::now();
    let profiler = mapprof::CpuProfiler::start(HZ).expect("start the CPU profiler");
    // Each spinner's CPU time over the sampled span.
    let before: Vec<f64> = clocks.iter().map(|&c| cpu_time(c).as_secs_f64()).collect();
    std::thread::sleep(DURATION);
    let spun: Vec<f64> = clocks
        .iter()
        .zip(&before)
        .map(|(&c, b)| cpu_time(c).as_secs_f64() - b)
        .collect();
    let profile = profiler.finish().expect("cpu profile");
    let took = t.elapsed();
    stop.store(true, Relaxed);
    for s in spinners {
        s.join().unwrap();
    }

    // Decode what we would write, as a reader sees it.
    let mut bytes = Vec::new();
    mapprof_profile::codec::encode_gzip(&profile, &mut bytes).unwrap();
    let profile = mapprof_profile::codec::decode(&bytes).expect("decodes");
    let view = ProfileView::new(&profile).expect("valid profile");
    assert_eq!(view.kind_name(), "cpu");
    let s = &profile.string_table;
    assert_eq!(s[profile.comment[0] as usize], "mapprof cpu profile");
    let period = 1_000_000_000 / i64::from(HZ);
    assert_eq!(profile.period, period);
    let period_type = profile.period_type.as_ref().unwrap();
    assert_eq!(
        (
            s[period_type.r#type as usize].as_str(),
            s[period_type.unit as usize].as_str()
        ),
        ("cpu", "nanoseconds")
    );
    let types: Vec<_> = view
        .sample_types()
        .iter()
        .map(|t| (t.name, t.unit))
        .collect();
    assert_eq!(types, [("samples", "count"), ("cpu", "nanoseconds")]);

    let samples: i64 = profile.sample.iter().map(|s| s.value[0]).sum();
    let cpu = view.sample_index_by_name("cpu").unwrap();
    let table = top(&view, cpu, &TopOptions::default());
    eprintln!(
        "samples: {samples}; top: {:?}",
        table
            .rows
            .iter()
            .take(8)
            .map(|r| (&r.name, r.flat / period, r.cum / period))
            .collect::<Vec<_>>()
    );
    for sample in &profile.sample {
        assert_eq!(sample.value[1], sample.value[0] * period);
    }
    let duration = Duration::from_nanos(profile.duration_nanos as u64);
    assert!(DURATION <= duration && duration <= took, "{duration:?}");

    // Each spinner's samples are its thread's CPU time times 99 Hz, within sampling error:
    // each thread's timer fires every 1/99 s of its own CPU time (4 standard deviations of a
    // Poisson count of that mean, plus a few for the window's edges). A sampler that charged
    // one thread's time to another (as a process-wide `ITIMER_PROF` does on a loaded
    // machine), lost frames or dropped samples would miss.
    for ((name, _), cpu_s) in busy.iter().zip(&spun) {
        let expected = cpu_s * f64::from(HZ);
        let through = total_through(&profile, "samples", name) as f64;
        let tolerance = 4.0 * expected.sqrt() + 3.0;
        eprintln!("{name}: {through} samples; its thread ran {cpu_s:.3} CPU-s: {expected:.1}");
        assert!(expected >= 20.0, "{name} hardly ran: {cpu_s} s");
        assert!(
            (through - expected).abs() <= tolerance,
            "{name}: {through} samples, expected {expected:.1} ± {tolerance:.1}"
        );
    }

    // The busy functions lead (charged to the first application frame from the leaf:
    // `black_box`, inlined at the leaf, is core's).
    let app = app_top(&view, cpu, &AppFilter::default());
    let leaders: Vec<&str> = app
        .rows
        .iter()
        .take(2)
        .map(|r| r.function.as_str())
        .collect();
    for (name, _) in busy {
        assert!(
            leaders.iter().any(|leader| leader.ends_with(name)),
            "{name} is not among the top two: {leaders:?}"
        );
    }
    assert!(app.unattributed <= app.total / 10, "{app:?}");

    // One Location per address, symbolized (so without a mapping: pprof reads the Lines);
    // functions named per address, not keyed by name with address 0.
    assert!(!profile.location.is_empty());
    for location in &profile.location {
        assert_ne!(location.address, 0, "{location:?}");
        assert_eq!(location.mapping_id, 0, "{location:?}");
        assert!(!location.line.is_empty(), "symbolized: {location:?}");
    }
    let mut addresses: Vec<u64> = profile.location.iter().map(|l| l.address).collect();
    addresses.sort_unstable();
    addresses.dedup();
    assert_eq!(addresses.len(), profile.location.len());
    // The stacks start at the interrupted code: no signal handler or trampoline frames.
    for f in &profile.function {
        let name = &s[f.name as usize];
        assert!(
            !name.contains("on_sigprof") && !name.contains("__restore_rt"),
            "{name}"
        );
    }

    // go tool pprof reads it and names the same functions first.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cpu.pb.gz");
    std::fs::write(&file, &bytes).unwrap();
    let out = go_pprof(&["-top"], &file);
    eprintln!("{out}");
    // pprof sees each spinner's share (cum%) of the samples as its share of the CPU time.
    let total_spun: f64 = spun.iter().sum();
    for ((busy, _), cpu_s) in busy.iter().zip(&spun) {
        let row = top_rows(&out)
            .into_iter()
            .find(|r| r.ends_with(busy))
            .unwrap_or_else(|| panic!("{busy} not listed: {out}"));
        let cum_percent: f64 = row
            .split_whitespace()
            .nth(4)
            .unwrap()
            .trim_end_matches('%')
            .parse()
            .unwrap();
        let share = 100.0 * cpu_s / total_spun;
        assert!(
            (cum_percent - share).abs() <= 15.0,
            "{row}: expected {share:.0}%"
        );
    }
    assert!(out.contains("Type: cpu"), "{out}");
}
