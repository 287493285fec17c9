//! A thread that reads the clock in a loop spends its time in the kernel's vDSO
//! (`clock_gettime`): its CPU samples land there, in a mapping named `[vdso]` that claims
//! function names and nothing more, under the vDSO's own function name, and `go tool pprof
//! -top` shows that name, not `<unknown>`.

mod common;
use common::go_pprof;
use mapprof_profile::codec;
use mapprof_profile::view::ProfileView;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::system();

#[inline(never)]
fn read_the_clock(stop: &AtomicBool) -> Duration {
    let start = Instant::now();
    let mut last = start;
    while !stop.load(Relaxed) {
        last = std::hint::black_box(Instant::now());
    }
    last - start
}

#[test]
fn cpu_samples_in_the_vdso_are_named() {
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        std::thread::spawn(move || read_the_clock(&stop))
    };
    std::thread::sleep(Duration::from_millis(20));
    let profiler = mapprof::CpuProfiler::start(mapprof::MAX_CPU_HZ).expect("start");
    std::thread::sleep(Duration::from_millis(800));
    let built = profiler.finish().expect("finish");
    stop.store(true, Relaxed);
    reader.join().unwrap();

    let mut bytes = Vec::new();
    codec::encode_gzip(&built, &mut bytes).unwrap();
    let profile = codec::decode(&bytes).unwrap();
    let name = |i: i64| profile.string_table[i as usize].as_str();
    let vdso = profile
        .mapping
        .iter()
        .find(|m| name(m.filename) == "[vdso]")
        .unwrap_or_else(|| panic!("no [vdso] mapping: {:?}", profile.mapping));
    assert!(
        vdso.has_functions && !vdso.has_filenames && !vdso.has_line_numbers,
        "{vdso:?}"
    );
    // The samples whose leaf is in the vDSO's range carry its function's name.
    let view = ProfileView::new(&profile).unwrap();
    let in_vdso = |address: u64| (vdso.memory_start..vdso.memory_limit).contains(&address);
    let (mut named, mut total) = (0, 0);
    let mut names = std::collections::BTreeSet::new();
    for sample in &profile.sample {
        let Some(leaf) = sample
            .location_id
            .first()
            .and_then(|id| profile.location.iter().find(|l| l.id == *id))
        else {
            continue;
        };
        if !in_vdso(leaf.address) {
            continue;
        }
        total += 1;
        if let Some(line) = leaf.line.first() {
            let f = &profile.function[line.function_id as usize - 1];
            names.insert(name(f.name).to_owned());
            named += 1;
        }
    }
    assert!(
        total > 0,
        "no sample in the vDSO: {:?}",
        view.sample_types()
    );
    assert_eq!(named, total, "every vDSO leaf is named: {names:?}");
    assert!(
        names.iter().any(|n| n.contains("clock_gettime")),
        "{names:?}"
    );

    let path = std::env::temp_dir().join(format!("mapprof-vdso-{}.pb.gz", std::process::id()));
    std::fs::write(&path, &bytes).unwrap();
    let top = go_pprof(&["-top"], &path);
    let _ = std::fs::remove_file(&path);
    assert!(top.contains("clock_gettime"), "{top}");
}
