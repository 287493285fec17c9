//! Two threads spin in known functions while a CPU profile is taken at 99 Hz for 1.5 s
//! (`CpuProfiler`, which `cpu_profile` runs around a sleep, so that the spinners' CPU time can
//! be read over exactly the sampled span): the profile's top functions are those two, its sample count is about the CPU time they got × 99
//! Hz (2 threads × 1.5 s × 99 Hz on an idle machine; the kernel's own count of their CPU time
//! on a busy one), each sample is worth 1e9/99 ns, its Locations are addresses with mappings
//! (not names), and `go tool pprof -top` reads it and agrees.

mod common;
use common::*;
use mapprof_profile::app::{app_top, AppFilter};
use mapprof_profile::top::{top, TopOptions};
use mapprof_profile::view::ProfileView;
use std::fs::File;
use std::io::{Read, Seek};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::jemalloc();

const HZ: u32 = 99;
const DURATION: Duration = Duration::from_millis(1500);

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

/// CPU time of the thread whose `/proc/thread-self/schedstat` `stat` is, in seconds (its first
/// field: nanoseconds on a CPU).
fn cpu_seconds(stat: &mut File) -> f64 {
    let mut text = String::new();
    stat.rewind().unwrap();
    stat.read_to_string(&mut text).unwrap();
    let ns: f64 = text.split_whitespace().next().unwrap().parse().unwrap();
    ns / 1e9
}

#[test]
fn cpu_profile_names_the_busy_functions() {
    let stop = Arc::new(AtomicBool::new(false));
    let (stat_tx, stat_rx) = mpsc::channel();
    let spinners: Vec<_> = [spin_multiplying as fn(&AtomicBool) -> u64, spin_dividing]
        .into_iter()
        .map(|f| {
            let (stop, stat_tx) = (stop.clone(), stat_tx.clone());
            std::thread::spawn(move || {
                stat_tx
                    .send(File::open("/proc/thread-self/schedstat").unwrap())
                    .unwrap();
                f(&stop)
            })
        })
        .collect();
    let mut stats: Vec<File> = stat_rx.iter().take(2).collect();
    // Let both reach their loops.
    std::thread::sleep(Duration::from_millis(50));
    let t = Instant::now();
    let profiler = mapprof::CpuProfiler::start(HZ).expect("start the CPU profiler");
    // The spinners' CPU time over the sampled span.
    let before: f64 = stats.iter_mut().map(cpu_seconds).sum();
    std::thread::sleep(DURATION);
    let spun = stats.iter_mut().map(cpu_seconds).sum::<f64>() - before;
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

    // About the spinners' CPU time × 99 Hz samples (2 × 1.5 s × 99 Hz when they had a CPU
    // each), each worth 1e9/99 ns.
    let samples: i64 = profile.sample.iter().map(|s| s.value[0]).sum();
    let idle_machine = 2.0 * DURATION.as_secs_f64() * f64::from(HZ);
    let expected = spun * f64::from(HZ);
    eprintln!(
        "samples: {samples}; the spinners ran {spun:.2} CPU-s: expected about {expected:.0} \
         ({:.0}%); on an idle machine {idle_machine:.0}",
        samples as f64 / expected * 100.0
    );
    let cpu = view.sample_index_by_name("cpu").unwrap();
    let table = top(&view, cpu, &TopOptions::default());
    eprintln!(
        "top: {:?}",
        table
            .rows
            .iter()
            .take(8)
            .map(|r| (&r.name, r.flat / period, r.cum / period))
            .collect::<Vec<_>>()
    );
    assert!(
        (0.4 * expected..=1.2 * expected).contains(&(samples as f64)),
        "{samples} samples, expected about {expected:.0}"
    );
    assert!(samples as f64 <= 1.2 * idle_machine);
    for sample in &profile.sample {
        assert_eq!(sample.value[1], sample.value[0] * period);
    }
    let duration = Duration::from_nanos(profile.duration_nanos as u64);
    assert!(DURATION <= duration && duration <= took, "{duration:?}");

    // The busy functions lead, charged with most samples (to the first application frame from
    // the leaf: `black_box`, inlined at the leaf, is core's).
    let app = app_top(&view, cpu, &AppFilter::default());
    let leaders: Vec<&str> = app
        .rows
        .iter()
        .take(2)
        .map(|r| r.function.as_str())
        .collect();
    for busy in ["spin_multiplying", "spin_dividing"] {
        assert!(
            leaders.iter().any(|name| name.ends_with(busy)),
            "{busy} is not among the top two: {leaders:?}"
        );
        let through = total_through(&profile, "samples", busy);
        assert!(through as f64 >= 0.3 * samples as f64, "{busy}: {through}");
    }
    assert!(app.unattributed <= app.total / 10, "{app:?}");

    // One Location per address, each with a mapping; functions named per address, not keyed
    // by name with address 0 as pprof-rs's own report does.
    assert!(!profile.location.is_empty());
    for location in &profile.location {
        assert_ne!(location.address, 0, "{location:?}");
        assert_ne!(location.mapping_id, 0, "{location:?}");
        assert!(!location.line.is_empty(), "symbolized: {location:?}");
    }
    let mut addresses: Vec<u64> = profile.location.iter().map(|l| l.address).collect();
    addresses.sort_unstable();
    addresses.dedup();
    assert_eq!(addresses.len(), profile.location.len());
    // The profiler's own signal handler frames are cut off.
    for f in &profile.function {
        let name = &s[f.name as usize];
        assert!(
            !name.contains("perf_signal_handler") && !name.contains("__restore_rt"),
            "{name}"
        );
    }

    // go tool pprof reads it and names the same functions first.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cpu.pb.gz");
    std::fs::write(&file, &bytes).unwrap();
    let out = go_pprof(&["-top"], &file);
    eprintln!("{out}");
    // Each spinner has about half the samples, through itself (cum%), in pprof's eyes too.
    for busy in ["spin_multiplying", "spin_dividing"] {
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
        assert!(cum_percent >= 30.0, "{row}");
    }
    assert!(out.contains("Type: cpu"), "{out}");
}
