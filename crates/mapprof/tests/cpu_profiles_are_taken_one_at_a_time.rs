//! Only one CPU profile at a time: a second one asked for while the first runs is refused with
//! `CpuProfileBusy` (and the first is unharmed); an idle process gives a valid, possibly empty
//! profile; frequencies outside 1..=1000 Hz are refused naming `cpu_hz`. The tests of this
//! binary share the process's one CPU profiler, so they take turns.
#![cfg(feature = "jemalloc")]

mod common;
use common::*;
use mapprof::Error;
use mapprof_profile::view::ProfileView;
use std::sync::{Barrier, Mutex};
use std::time::Duration;

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::jemalloc();

/// Held by each test for its whole run: they all profile the same process.
static TURN: Mutex<()> = Mutex::new(());

#[test]
fn a_second_concurrent_cpu_profile_is_refused_as_busy() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let started = Barrier::new(2);
    let (first, second) = std::thread::scope(|s| {
        let first = s.spawn(|| {
            let profiler = mapprof::CpuProfiler::start(mapprof::DEFAULT_CPU_HZ);
            started.wait();
            std::thread::sleep(Duration::from_millis(300));
            profiler.and_then(mapprof::CpuProfiler::finish)
        });
        started.wait();
        let second = mapprof::cpu_profile(Duration::from_millis(100), mapprof::DEFAULT_CPU_HZ);
        (first.join().unwrap(), second)
    });
    let first = first.expect("the first CPU profile");
    assert!(ProfileView::new(&first).is_ok());
    match second {
        Err(e @ Error::CpuProfileBusy) => {
            assert_eq!(e.to_string(), "a CPU profile is already being taken")
        }
        other => panic!("expected CpuProfileBusy, got {other:?}"),
    }
    // Once the first is done, the next one may start.
    mapprof::cpu_profile(Duration::from_millis(10), mapprof::DEFAULT_CPU_HZ)
        .expect("a CPU profile after the first one finished");
    // Dropping an unfinished profiler frees the slot too.
    drop(mapprof::CpuProfiler::start(mapprof::DEFAULT_CPU_HZ).unwrap());
    drop(mapprof::CpuProfiler::start(mapprof::DEFAULT_CPU_HZ).unwrap());
}

#[test]
fn an_idle_process_gives_a_valid_possibly_empty_cpu_profile() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let profile = mapprof::cpu_profile(Duration::from_secs(1), mapprof::DEFAULT_CPU_HZ)
        .expect("cpu profile of an idle process");
    let samples: i64 = profile.sample.iter().map(|s| s.value[0]).sum();
    eprintln!("idle process: {samples} samples in 1 s");
    assert!(samples < 20, "{samples} samples while idle");
    let view = ProfileView::new(&profile).expect("valid");
    assert_eq!(view.kind_name(), "cpu");
    assert_eq!(profile.string_table[0], "");
    assert_eq!(
        profile.string_table[profile.comment[0] as usize],
        "mapprof cpu profile"
    );
    assert!(profile.duration_nanos >= 1_000_000_000);
    // go tool pprof reads it too, empty or not.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cpu.pb.gz");
    let mut bytes = Vec::new();
    mapprof_profile::codec::encode_gzip(&profile, &mut bytes).unwrap();
    std::fs::write(&file, bytes).unwrap();
    let out = go_pprof(&["-top"], &file);
    assert!(out.contains("Type: cpu"), "{out}");
}

#[test]
fn frequencies_outside_1_to_1000_hz_are_refused() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    for hz in [0, mapprof::MAX_CPU_HZ + 1] {
        match mapprof::cpu_profile(Duration::from_millis(10), hz) {
            Err(e @ Error::Config(_)) => {
                let msg = e.to_string();
                assert!(msg.contains(&format!("cpu_hz={hz}")), "{msg}");
                assert!(msg.contains("from 1 to 1000"), "{msg}");
            }
            other => panic!("{hz} Hz: expected a Config error, got {other:?}"),
        }
    }
    // A refused frequency does not take the slot.
    mapprof::cpu_profile(Duration::from_millis(10), mapprof::MAX_CPU_HZ).unwrap();
}
