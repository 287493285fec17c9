//! A profiled program pushing every second to a loopback Pyroscope (tests/receivers): every
//! interval brings every profile with the labels and headers configured; the intervals' heap,
//! mutex and block deltas add up to the cumulative profiles taken at the end, and the CPU
//! intervals to the busy thread's CPU time; secrets appear nowhere.

mod common;
mod receiver;

use base64::Engine as _;
use common::total_through;
use mapprof::sync::Mutex;
use mapprof_profile::proto::Profile;
use receiver::Receiver;
use std::collections::BTreeSet;
use std::hint::black_box;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::system();

const TOKEN: &str = "tok-3f9a-very-secret";
const PASSWORD: &str = "pw-77c1-very-secret";
const WORK: Duration = Duration::from_millis(3500);

#[inline(never)]
fn alloc_work(stop: &AtomicBool) {
    while !stop.load(Relaxed) {
        black_box(vec![1u8; 4096]);
        black_box(String::from("a short-lived string of some length"));
    }
}

#[inline(never)]
fn lock_work(lock: &Mutex<u64>, stop: &AtomicBool) {
    while !stop.load(Relaxed) {
        let mut held = lock.lock().unwrap();
        let until = Instant::now() + Duration::from_micros(200);
        while Instant::now() < until {
            *held = black_box(*held + 1);
        }
    }
}

/// Spins for `WORK`; returns the CPU time this thread used.
#[inline(never)]
fn spin_work() -> u64 {
    let start = Instant::now();
    let mut x = 0u64;
    // The clock is read rarely: a sample taken inside the vDSO's clock_gettime (no frame
    // pointers) may not reach this function's frame.
    while start.elapsed() < WORK {
        for _ in 0..100_000 {
            x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
    thread_cpu_ns()
}

fn thread_cpu_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec to write into.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(status, 0);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// The program the tests run in a child process (one profiler per process), with `MAPPROF`
/// from the test; writes its cumulative profiles, the spinning thread's CPU time and the
/// `/debug/pprof/` index into `OUT`.
#[test]
fn child() {
    let Ok(out) = std::env::var("PUSH_CHILD_OUT") else {
        return;
    };
    let out = Path::new(&out);
    let profiler = mapprof::Profiler::builder().env().unwrap().start().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let lock = Arc::new(Mutex::new(0u64));
    let workers: Vec<_> = (0..3)
        .map(|i| {
            let (stop, lock) = (stop.clone(), lock.clone());
            std::thread::spawn(move || match i {
                0 => alloc_work(&stop),
                _ => lock_work(&lock, &stop),
            })
        })
        .collect();
    let spin_ns = std::thread::spawn(spin_work).join().unwrap();
    stop.store(true, Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    if let Some(addr) = profiler.http_addr() {
        for (path, file) in [
            ("/debug/pprof/", "index.html"),
            ("/debug/pprof/profile?seconds=1", "cpu_answer"),
        ] {
            let mut stream = std::net::TcpStream::connect(addr).unwrap();
            write!(
                stream,
                "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).unwrap();
            std::fs::write(out.join(file), answer).unwrap();
        }
    }
    // The last interval is pushed as the profiler stops.
    drop(profiler);
    for kind in [
        mapprof::ProfileKind::Allocs,
        mapprof::ProfileKind::Mutex,
        mapprof::ProfileKind::Block,
    ] {
        mapprof::write_profile_to_path(kind, out.join(format!("{}.pb.gz", kind.name()))).unwrap();
    }
    std::fs::write(out.join("spin_cpu_ns"), spin_ns.to_string()).unwrap();
}

/// Runs the child with `settings`; returns its stderr.
fn run_child(settings: &str, out: &Path) -> String {
    let run = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env("PUSH_CHILD_OUT", out)
        .env("MAPPROF", settings)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(run.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&run.stdout).contains("1 passed"));
    stderr
}

/// The pprof payloads of the series named `name` in every request, decoded.
fn payloads(requests: &[serde_json::Value], name: &str) -> Vec<Profile> {
    let mut found = Vec::new();
    for r in requests {
        for s in r["series"].as_array().unwrap() {
            if s["labels"]["__name__"] == name {
                for p in s["profiles"].as_array().unwrap() {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(p.as_str().unwrap())
                        .unwrap();
                    found.push(mapprof_profile::codec::decode(&bytes).unwrap());
                }
            }
        }
    }
    found
}

fn read_profile(out: &Path, name: &str) -> Profile {
    mapprof_profile::codec::read_file(out.join(format!("{name}.pb.gz"))).unwrap()
}

/// `pushed` within 1% of `total` (the profiles' rounding), and something.
fn assert_adds_up(what: &str, pushed: i64, total: i64) {
    assert!(total > 0, "{what}: nothing in the cumulative profile");
    let error = (pushed - total).abs() as f64 / total as f64;
    assert!(
        error <= 0.01,
        "{what}: the intervals add up to {pushed}, the cumulative profile says {total}"
    );
}

#[test]
fn every_interval_brings_every_profile_and_the_intervals_add_up() {
    let receiver = Receiver::start();
    let out = tempfile::tempdir().unwrap();
    let settings = format!(
        "push={},push_every=1s,service=push-test,push_labels=env:test;version:1.2,\
         push_token={TOKEN},push_tenant=team-a,mutex_fraction=1,block_rate=1,heap_rate=64k,\
         http=127.0.0.1:0,trace=500ms",
        receiver.url()
    );
    let stderr = run_child(&settings, out.path());
    let requests = receiver.requests();

    // Three intervals or more and the last one (slow ones are skipped, not bunched); each
    // brings every profile, labelled.
    assert!(requests.len() >= 3, "{} requests", requests.len());
    let names: BTreeSet<&str> = ["process_cpu", "memory", "resize", "mutex", "block"].into();
    for r in &requests {
        assert_eq!(r["mode"], "ok");
        assert_eq!(r["path"], "/push.v1.PusherService/Push");
        let headers = &r["headers"];
        assert_eq!(headers["content-type"], "application/proto");
        assert_eq!(headers["authorization"], format!("Bearer {TOKEN}"));
        assert_eq!(headers["x-scope-orgid"], "team-a");
        assert_eq!(headers["connect-protocol-version"], "1");
        let series = r["series"].as_array().unwrap();
        let got: BTreeSet<&str> = series
            .iter()
            .map(|s| s["labels"]["__name__"].as_str().unwrap())
            .collect();
        assert_eq!(got, names, "{r}");
        for s in series {
            let labels = &s["labels"];
            assert_eq!(labels["service_name"], "push-test");
            assert_eq!(labels["env"], "test");
            assert_eq!(labels["version"], "1.2");
            assert_eq!(labels["__delta__"], "false");
        }
    }

    // The deltas add up to the totals: the workload began after the first interval did.
    let memory = payloads(&requests, "memory");
    let allocs = read_profile(out.path(), "allocs");
    for sample_type in ["alloc_space", "alloc_objects"] {
        let pushed: i64 = memory
            .iter()
            .map(|p| total_through(p, sample_type, "alloc_work"))
            .sum();
        let total = total_through(&allocs, sample_type, "alloc_work");
        assert_adds_up(sample_type, pushed, total);
    }
    for kind in ["mutex", "block"] {
        let cumulative = read_profile(out.path(), kind);
        for sample_type in ["contentions", "delay"] {
            let pushed: i64 = payloads(&requests, kind)
                .iter()
                .map(|p| total_through(p, sample_type, "lock_work"))
                .sum();
            let total = total_through(&cumulative, sample_type, "lock_work");
            assert_adds_up(&format!("{kind} {sample_type}"), pushed, total);
        }
    }
    // A heap interval's in-use values are what was live at its end, not a change.
    let live_at_end = memory
        .iter()
        .map(|p| total_through(p, "inuse_space", ""))
        .collect::<Vec<_>>();
    assert!(live_at_end.iter().all(|&v| v >= 0), "{live_at_end:?}");

    // CPU: the spinning thread's CPU time, within sampling error (99 Hz over 3.5 s: about
    // 350 samples).
    let cpu: i64 = payloads(&requests, "process_cpu")
        .iter()
        .map(|p| total_through(p, "cpu", "spin_work"))
        .sum();
    let spun: f64 = std::fs::read_to_string(out.path().join("spin_cpu_ns"))
        .unwrap()
        .parse()
        .unwrap();
    let ratio = cpu as f64 / spun;
    assert!(
        (0.85..=1.15).contains(&ratio),
        "CPU pushed {cpu} ns for a thread that used {spun} ns"
    );

    // Shown, and no secret anywhere.
    let index = std::fs::read_to_string(out.path().join("index.html")).unwrap();
    let target = format!("Pushing to {}/push.v1.PusherService/Push", receiver.url());
    assert!(index.contains(&target), "{index}");
    assert!(index.contains("requests sent"), "{index}");
    // The pusher holds the CPU sampler, and a CPU profile asked for over HTTP says so.
    let cpu_answer = std::fs::read_to_string(out.path().join("cpu_answer")).unwrap();
    assert!(cpu_answer.starts_with("HTTP/1.1 500"), "{cpu_answer}");
    assert!(
        cpu_answer.contains("mapprof pushes CPU profiles to an engine all the time"),
        "{cpu_answer}"
    );
    let trace: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("push_sent="))
        .collect();
    assert!(!trace.is_empty(), "{stderr}");
    for text in [&index, &stderr] {
        assert!(!text.contains(TOKEN), "{text}");
    }
}

#[test]
fn basic_authentication_arrives_as_configured() {
    let receiver = Receiver::start();
    let out = tempfile::tempdir().unwrap();
    let settings = format!(
        "push={}/,push_every=1s,push_profiles=heap;mutex,push_user=ci,push_password={PASSWORD},\
         push_labels=region:eu-west-1,trace=500ms",
        receiver.url()
    );
    let stderr = run_child(&settings, out.path());
    let requests = receiver.requests();
    assert!(!requests.is_empty());
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("ci:{PASSWORD}"))
    );
    for r in &requests {
        // A trailing slash on the URL is not doubled.
        assert_eq!(r["path"], "/push.v1.PusherService/Push");
        assert_eq!(r["headers"]["authorization"], expected);
        assert!(r["headers"].get("x-scope-orgid").is_none());
        let names: BTreeSet<&str> = r["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["labels"]["__name__"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["memory", "mutex"].into());
    }
    assert!(!stderr.contains(PASSWORD), "{stderr}");
}

#[test]
fn bad_push_settings_are_refused_with_what_is_accepted() {
    for (settings, expect) in [
        (
            "push=ftp://engine:21",
            "`push` takes the http:// or https:// base URL",
        ),
        (
            "push=http://user:pw@engine:4040",
            "without a user or password",
        ),
        ("push=http://engine:4040,push_every=100ms", "from 1s"),
        ("push_labels=env", "name:value pairs"),
        ("push_labels=__name__:x", "not starting with __"),
        (
            "push_profiles=cpu;goroutine",
            "among cpu, heap, resize, mutex and block",
        ),
        (
            "push_protocol=zipkin",
            "pyroscope (push.v1, the default) or otlp",
        ),
        ("service=my service", "letters, digits"),
    ] {
        let e = mapprof::Config::default().parse(settings).unwrap_err();
        let message = e.to_string();
        assert!(message.contains(expect), "{settings}: {message}");
        assert!(!message.contains("pw@"), "{message}");
    }
    // Settings that only go wrong together, and a secret never shown in a message.
    let e = mapprof::Profiler::builder()
        .push("http://127.0.0.1:9")
        .push_user("ci")
        .start()
        .unwrap_err()
        .to_string();
    assert!(e.contains("needs both push_user and push_password"), "{e}");
    let e = mapprof::Config::default()
        .parse(&format!("push_token={TOKEN}\u{7}"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("push_token") && !e.contains(TOKEN), "{e}");
}
