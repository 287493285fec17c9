//! Bad configuration and unwritable paths give clear errors; the host keeps running. Dumps at
//! exit land in the dump directory without overwriting each other.
#![cfg(feature = "jemalloc")]

mod common;
use common::*;
use mapprof::{Error, ProfileKind, Profiler};
use std::process::Command;

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::jemalloc();

const CHILD: &str = "MAPPROF_TEST_CHILD";

#[inline(never)]
fn child_work() -> Vec<Vec<u8>> {
    (0..100).map(|_| vec![0u8; 100_000]).collect()
}

#[test]
fn bad_input_is_reported_and_dumps_are_written_at_exit() {
    if std::env::var_os(CHILD).is_some() {
        // Child: configured by MAPPROF alone, leaves through process::exit.
        let _p = mapprof::start_from_env().expect("MAPPROF is valid in the child");
        std::hint::black_box(child_work());
        std::process::exit(0);
    }

    // An unknown key and a bad value are named, with what is accepted.
    std::env::set_var("MAPPROF", "heap_rate=64k,dumpdir=/tmp");
    let e = Profiler::builder().env().unwrap_err().to_string();
    assert!(
        e.contains("unknown key `dumpdir`") && e.contains("dump_dir"),
        "{e}"
    );
    std::env::set_var("MAPPROF", "heap_rate=often");
    let e = Profiler::builder().env().unwrap_err().to_string();
    assert!(
        e.contains("heap_rate=often") && e.contains("byte count"),
        "{e}"
    );
    // start_from_env reports it and starts nothing; the program goes on allocating.
    assert!(mapprof::start_from_env().is_none());
    std::env::remove_var("MAPPROF");
    assert_eq!(vec![3u8; 1000].iter().map(|&b| b as u32).sum::<u32>(), 3000);

    // Unwritable paths are errors that name the path.
    let file = tempfile::NamedTempFile::new().unwrap();
    let not_a_dir = file.path().join("sub");
    match Profiler::builder().dump_dir(&not_a_dir).start() {
        Err(Error::DumpDir { path, .. }) => assert_eq!(path, not_a_dir),
        other => panic!("expected a dump directory error, got {other:?}"),
    }
    let target = not_a_dir.join("heap.pb.gz");
    let e = mapprof::write_profile_to_path(ProfileKind::Heap, &target).unwrap_err();
    assert!(
        matches!(&e, Error::Write { path, .. } if *path == target),
        "{e}"
    );
    assert!(e.to_string().contains(&target.display().to_string()), "{e}");

    // A signal the program owns is refused by name, and the refused start leaves none running.
    let e = Profiler::builder()
        .dump_dir(std::env::temp_dir())
        .dump_signal(libc::SIGTERM)
        .start()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("dump_signal={}", libc::SIGTERM)) && e.contains("SIGUSR1 or SIGUSR2"),
        "{e}"
    );

    // One profiler at a time.
    let running = Profiler::builder().start().unwrap();
    assert!(matches!(
        Profiler::builder().start(),
        Err(Error::AlreadyStarted)
    ));
    drop(running);

    // Dumps never overwrite: two dumps into one directory make two files of each kind.
    let dir = tempfile::tempdir().unwrap();
    let first = mapprof::dump(dir.path()).unwrap();
    let second = mapprof::dump(dir.path()).unwrap();
    let kinds = ProfileKind::ALL.len();
    assert_eq!(first.len(), kinds);
    assert!(
        first.iter().all(|p| !second.contains(p)),
        "{first:?} {second:?}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2 * kinds);

    // A child configured by MAPPROF dumps at exit, even through process::exit.
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "bad_input_is_reported_and_dumps_are_written_at_exit",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .env(
            "MAPPROF",
            format!(
                "heap_rate=4096,dump_dir={}",
                dir.path().join("child").display()
            ),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = std::fs::read_dir(dir.path().join("child"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let kinds: Vec<&str> = names.iter().map(|n| n.split('.').next().unwrap()).collect();
    assert_eq!(
        kinds,
        ["allocs", "block", "heap", "mutex", "resize"],
        "{names:?}"
    );
    let heap = mapprof_profile::codec::read_file(dir.path().join("child").join(&names[2])).unwrap();
    assert!(total_through(&heap, "alloc_space", "child_work") > 5_000_000);
}
