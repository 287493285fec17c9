//! An engine that refuses (503), resets connections, answers 400 garbage, stalls, and is
//! absent for a while before it returns: the host's allocations and locks go on all along,
//! the queue stays within its bound, failures, refusals and drops are counted, stderr gets
//! at most a message a minute, and pushing resumes when the engine does.

mod receiver;

use mapprof::sync::Mutex;
use receiver::Receiver;
use std::hint::black_box;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::system();

const TOKEN: &str = "tok-51be-very-secret";

/// The host: allocations and lock acquisitions on two threads, counted, until `OUT/stop`
/// appears. Every 100 ms it writes `ops queued` into `OUT/progress`; at the end, the push
/// statistics into `OUT/stats`.
#[test]
fn child() {
    let Ok(out) = std::env::var("PUSH_CHILD_OUT") else {
        return;
    };
    let out = Path::new(&out);
    let profiler = mapprof::start_from_env().expect("the test's MAPPROF is valid");
    let ops = Arc::new(AtomicU64::new(0));
    let lock = Arc::new(Mutex::new(0u64));
    for _ in 0..2 {
        let (ops, lock) = (ops.clone(), lock.clone());
        std::thread::spawn(move || loop {
            black_box(vec![0u8; 512]);
            *lock.lock().unwrap() += 1;
            ops.fetch_add(1, Relaxed);
        });
    }
    let mut progress = String::new();
    while !out.join("stop").exists() {
        std::thread::sleep(Duration::from_millis(100));
        let stats = mapprof::push::push_stats().unwrap();
        progress.push_str(&format!("{} {}\n", ops.load(Relaxed), stats.queued));
        std::fs::write(out.join("progress"), &progress).unwrap();
    }
    let stats = mapprof::push::push_stats().unwrap();
    std::fs::write(
        out.join("stats"),
        format!(
            "{} {} {} {} {}",
            stats.sent, stats.failed, stats.refused, stats.dropped, stats.queued
        ),
    )
    .unwrap();
    drop(profiler);
}

/// The host's operation count now, and the largest queue seen.
fn progress(out: &Path) -> (u64, u64) {
    let text = std::fs::read_to_string(out.join("progress")).unwrap_or_default();
    let rows: Vec<(u64, u64)> = text
        .lines()
        .map(|l| {
            let (ops, queued) = l.split_once(' ').unwrap();
            (ops.parse().unwrap(), queued.parse().unwrap())
        })
        .collect();
    let ops = rows.last().map_or(0, |r| r.0);
    (ops, rows.iter().map(|r| r.1).max().unwrap_or(0))
}

/// Waits (up to `limit`) until `done` holds.
fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ok_requests(receiver: &Receiver) -> usize {
    receiver
        .requests()
        .iter()
        .filter(|r| r["mode"] == "ok")
        .count()
}

#[test]
fn the_host_goes_on_and_pushing_resumes_whatever_the_engine_does() {
    let mut receiver = Receiver::start();
    let out = tempfile::tempdir().unwrap();
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env("PUSH_CHILD_OUT", out.path())
        .env(
            "MAPPROF",
            format!(
                "push={},push_every=1s,push_token={TOKEN},mutex_fraction=1",
                receiver.url()
            ),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("two accepted pushes", Duration::from_secs(60), || {
        ok_requests(&receiver) >= 2
    });

    // Each fault in turn; the host must make progress through every one.
    let mut phases = Vec::new();
    for (mode, until) in [
        ("503", "three refusals"),
        ("reset", "three reset connections"),
        ("garbage400", "a 400 answer"),
        ("stall", "a full queue"),
    ] {
        receiver.set_mode(mode);
        let before = progress(out.path()).0;
        let seen = |r: &Receiver| r.requests().iter().filter(|x| x["mode"] == mode).count();
        match mode {
            "stall" => wait_for(until, Duration::from_secs(60), || {
                // The sender waits on one stalled request meanwhile.
                progress(out.path()).1 >= mapprof::push::MAX_QUEUED_REQUESTS as u64
            }),
            "garbage400" => wait_for(until, Duration::from_secs(60), || seen(&receiver) >= 1),
            _ => wait_for(until, Duration::from_secs(60), || seen(&receiver) >= 3),
        }
        // Two more intervals of the fault, then the host's count must have moved.
        std::thread::sleep(Duration::from_secs(2));
        phases.push((mode, progress(out.path()).0 - before));
    }
    // Absent, then back: a new receiver on the same port.
    receiver.kill();
    let before = progress(out.path()).0;
    std::thread::sleep(Duration::from_secs(5));
    phases.push(("absent", progress(out.path()).0 - before));
    let accepted = ok_requests(&receiver);
    receiver.restart();
    wait_for(
        "pushes after the engine returns",
        Duration::from_secs(90),
        || ok_requests(&receiver) > accepted,
    );
    for (mode, ops) in &phases {
        assert!(
            *ops > 1000,
            "the host was held up while the engine was {mode}: {ops} operations"
        );
    }

    std::fs::write(out.path().join("stop"), "").unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let stats: Vec<u64> = std::fs::read_to_string(out.path().join("stats"))
        .unwrap()
        .split(' ')
        .map(|n| n.parse().unwrap())
        .collect();
    let [sent, failed, refused, dropped, _queued] = stats[..] else {
        panic!("{stats:?}")
    };
    assert!(sent >= 3, "sent {sent}");
    assert!(failed >= 6, "failed {failed}: the 503s and the resets");
    assert!(refused >= 1, "refused {refused}: the 400");
    assert!(
        dropped >= 1,
        "dropped {dropped}: the queue filled while the engine stalled"
    );
    let (_, max_queued) = progress(out.path());
    assert!(max_queued <= mapprof::push::MAX_QUEUED_REQUESTS as u64);

    // What the requests were: the accepted ones decode as Pyroscope's.
    let last = receiver.requests().into_iter().last().unwrap();
    assert_eq!(last["mode"], "ok");
    assert!(!last["series"].as_array().unwrap().is_empty());

    // Logged, at most once a minute (the faults took less than two), and no secret.
    let failures = stderr
        .lines()
        .filter(|l| l.starts_with("mapprof: push to") && !l.ends_with("works again"))
        .count();
    assert!(
        (1..=2).contains(&failures),
        "{failures} messages:\n{stderr}"
    );
    assert!(!stderr.contains(TOKEN), "{stderr}");
}
