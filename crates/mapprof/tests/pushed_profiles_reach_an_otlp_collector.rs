//! A profiled program pushing OTLP profiles every second to a loopback collector
//! (tests/receivers, which decodes with PyPI's `opentelemetry-proto`): every interval brings
//! every profile under the OTLP/HTTP path with the service as a resource attribute, and the
//! heap intervals' allocations add up to the cumulative profile taken at the end.

mod common;
mod receiver;

use common::total_through;
use receiver::Receiver;
use std::collections::BTreeSet;
use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::system();

#[inline(never)]
fn alloc_work(stop: &AtomicBool) {
    while !stop.load(Relaxed) {
        black_box(vec![1u8; 4096]);
    }
}

/// The program the test runs in a child process, with `MAPPROF` from the test; writes its
/// cumulative allocs profile into `OUT`.
#[test]
fn child() {
    let Ok(out) = std::env::var("PUSH_CHILD_OUT") else {
        return;
    };
    let profiler = mapprof::start_from_env().expect("the test's MAPPROF is valid");
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let stop = stop.clone();
        std::thread::spawn(move || alloc_work(&stop))
    };
    std::thread::sleep(Duration::from_millis(2500));
    stop.store(true, Relaxed);
    worker.join().unwrap();
    drop(profiler);
    let path = Path::new(&out).join("allocs.pb.gz");
    mapprof::write_profile_to_path(mapprof::ProfileKind::Allocs, path).unwrap();
}

#[test]
fn otlp_intervals_reach_the_collector_and_add_up() {
    let receiver = Receiver::start();
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env("PUSH_CHILD_OUT", out.path())
        .env(
            "MAPPROF",
            format!(
                "push={},push_protocol=otlp,push_every=1s,service=otlp-test,\
                 push_labels=env:test,heap_rate=64k,mutex_fraction=1,block_rate=1",
                receiver.url()
            ),
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");

    let requests = receiver.requests();
    assert!(requests.len() >= 2, "{} requests", requests.len());
    let names: BTreeSet<&str> = ["process_cpu", "memory", "resize", "mutex", "block"].into();
    let mut pushed = 0;
    for r in &requests {
        assert_eq!(r["mode"], "ok", "{r}");
        assert_eq!(r["path"], "/v1development/profiles");
        assert_eq!(r["headers"]["content-type"], "application/x-protobuf");
        let otlp = &r["otlp"];
        assert_eq!(otlp["resource"]["service.name"], "otlp-test");
        assert_eq!(otlp["resource"]["env"], "test");
        let profiles = otlp["profiles"].as_array().unwrap();
        let got: BTreeSet<&str> = profiles
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(got, names, "{r}");
        for p in profiles {
            if p["name"] == "memory" && p["sample_type"] == "alloc_space" {
                for s in p["samples"].as_array().unwrap() {
                    let frames = s["frames"].to_string();
                    if frames.contains("alloc_work") {
                        pushed += s["value"].as_i64().unwrap();
                    }
                }
            }
        }
    }
    let allocs = mapprof_profile::codec::read_file(out.path().join("allocs.pb.gz")).unwrap();
    let total = total_through(&allocs, "alloc_space", "alloc_work");
    assert!(total > 0);
    let error = (pushed - total).abs() as f64 / total as f64;
    assert!(
        error <= 0.01,
        "the OTLP intervals add up to {pushed} bytes, the cumulative profile says {total}"
    );
}
