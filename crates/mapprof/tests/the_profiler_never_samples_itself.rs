//! What the profiler allocates for itself (starting, building, encoding, writing and dumping
//! profiles, and reporting the dump) runs as its own work, never sampled as the host's
//! (issue 17, point 5: a `push` of the dump code once ran outside it, worth a 512 KiB sample
//! when it was taken). At `heap_rate=1` every host allocation is sampled, so any of the
//! profiler's that escaped would show as a sample carrying the labels of the thread doing it.
#![cfg(feature = "jemalloc")]

use mapprof::ProfileKind;
use mapprof_rt::{table, Kind};

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::jemalloc();

/// Allocations sampled so far under labels (this thread's, below).
fn labelled_samples() -> u64 {
    mapprof_rt::thread::ignore(|| {
        table::snapshot(Kind::Heap)
            .iter()
            .filter(|r| r.labels != 0)
            .map(|r| r.heap().allocated_objects as u64)
            .sum()
    })
}

#[test]
fn starting_profiling_dumping_and_stopping_sample_nothing_of_the_profilers() {
    let dir = tempfile::tempdir().unwrap();
    let dumps = dir.path().join("dumps");
    let path = dir.path().join("heap.pb.gz");
    mapprof_rt::sampler::set_heap_rate(1);
    mapprof::labels(&[("who", "profiler")], || {
        // The host's: its settings.
        let mut builder = mapprof::Profiler::builder()
            .heap_rate(1)
            .dump_dir(&dumps)
            .trace(std::time::Duration::from_secs(3600));
        if cfg!(feature = "http") {
            builder = builder.http("127.0.0.1:0");
        }
        // The control: a host allocation is seen.
        let control = labelled_samples();
        std::hint::black_box(Vec::<u8>::with_capacity(100));
        let before = labelled_samples();
        assert_eq!(before, control + 1, "a host allocation is sampled");
        let started = builder.start().unwrap();
        assert_eq!(labelled_samples(), before, "start");
        for kind in ProfileKind::ALL {
            drop(mapprof::profile(kind));
            let mut out = Vec::new();
            mapprof::write_profile(kind, &mut out).unwrap();
            mapprof_rt::thread::ignore(|| drop(out));
        }
        assert_eq!(labelled_samples(), before, "profile, write_profile");
        mapprof::write_profile_to_path(ProfileKind::Heap, &path).unwrap();
        assert_eq!(labelled_samples(), before, "write_profile_to_path");
        let written = mapprof::dump(&dumps).unwrap();
        assert_eq!(written.len(), ProfileKind::ALL.len());
        assert_eq!(labelled_samples(), before, "dump");
        // Dropping it dumps again and says so on stderr.
        drop(started);
        assert_eq!(
            labelled_samples(),
            before,
            "the dump at stop and its report"
        );
    });
    let dumped = std::fs::read_dir(&dumps).unwrap().count();
    assert_eq!(dumped, 2 * ProfileKind::ALL.len());
}
