//! Helpers shared by the integration tests: decode what mapprof wrote and sum it by function.
#![allow(dead_code)] // Each test binary uses a different subset.

use mapprof_profile::proto::Profile;
use mapprof_profile::view::{ProfileView, SampleRef};
use std::path::Path;
use std::process::Command;

/// Builds, encodes and decodes the current profile of `kind`, as a reader would see it.
pub(crate) fn decoded(kind: mapprof::ProfileKind) -> Profile {
    let mut bytes = Vec::new();
    mapprof::write_profile(kind, &mut bytes).expect("write profile");
    mapprof_profile::codec::decode(&bytes).expect("decode what we wrote")
}

/// Sum of the values of `sample_type` over samples whose stack has a function whose name
/// contains `function`.
pub(crate) fn total_through(profile: &Profile, sample_type: &str, function: &str) -> i64 {
    let view = ProfileView::new(profile).expect("valid profile");
    let index = view.sample_index_by_name(sample_type).expect("sample type");
    view.samples()
        .filter(|s| s.frames().any(|f| f.function.contains(function)))
        .map(|s| s.value(index))
        .sum()
}

/// Sum of the values of `sample_type` over samples through `function` whose string labels
/// satisfy `labels` (given the sample's string labels as `(key, value)` pairs).
pub(crate) fn total_labelled(
    profile: &Profile,
    sample_type: &str,
    function: &str,
    labels: impl Fn(&[(&str, &str)]) -> bool,
) -> i64 {
    let view = ProfileView::new(profile).expect("valid profile");
    let index = view.sample_index_by_name(sample_type).expect("sample type");
    view.samples()
        .filter(|s| s.frames().any(|f| f.function.contains(function)))
        .filter(|s| {
            let owned = string_labels(&view, s);
            let pairs: Vec<(&str, &str)> = owned
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            labels(&pairs)
        })
        .map(|s| s.value(index))
        .sum()
}

/// A sample's string labels as `(key, value)` pairs, sorted.
pub(crate) fn string_labels(view: &ProfileView, sample: &SampleRef) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = sample
        .raw()
        .label
        .iter()
        .filter(|l| l.str != 0)
        .map(|l| (view.string(l.key).to_owned(), view.string(l.str).to_owned()))
        .collect();
    pairs.sort();
    pairs
}

/// The value of string label `key` among `pairs`.
pub(crate) fn label<'a>(pairs: &[(&'a str, &'a str)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// Asserts that `value` (ns) is within `tolerance` (a fraction) of `expected`, and says by how
/// much it is off.
pub(crate) fn assert_about(what: &str, value: i64, expected: std::time::Duration, tolerance: f64) {
    let expected = expected.as_nanos() as f64;
    let error = value as f64 / expected - 1.0;
    eprintln!(
        "{what}: {value} ns, expected {expected:.0}, error {:+.1}%",
        error * 100.0
    );
    assert!(
        error.abs() <= tolerance,
        "{what}: {value} ns vs {expected:.0} ns"
    );
}

/// Runs `task` to completion on a tokio current-thread runtime of the calling thread.
pub(crate) fn block_on<R>(task: impl std::future::Future<Output = R>) -> R {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime")
        .block_on(task)
}

/// Runs `go tool pprof` with `args` and returns its standard output.
pub(crate) fn go_pprof(args: &[&str], file: &Path) -> String {
    let out = Command::new("go")
        .arg("tool")
        .arg("pprof")
        .args(args)
        .arg(file)
        .output()
        .expect("`go` not found: run `make setup` to install Go");
    assert!(
        out.status.success(),
        "go tool pprof {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// The data rows of `go tool pprof -top` output (after the `flat  flat%` header).
pub(crate) fn top_rows(output: &str) -> Vec<&str> {
    output
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("flat"))
        .skip(1)
        .collect()
}

/// Runs `f` on a new thread: a thread's first allocation reads the current sampling rate.
pub(crate) fn on_new_thread<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    std::thread::spawn(f).join().expect("workload thread")
}

/// The CPU clock of a running thread (`pthread_getcpuclockid`), to read it from another.
pub(crate) fn cpu_clock_of(thread: libc::pthread_t) -> libc::clockid_t {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: the caller passes a live thread (and reads the clock only while it lives);
    // `clock` is a valid out-pointer.
    let r = unsafe { libc::pthread_getcpuclockid(thread, &mut clock) };
    assert_eq!(r, 0, "pthread_getcpuclockid");
    clock
}

/// The time on `clock` (`CLOCK_THREAD_CPUTIME_ID` for the calling thread's CPU time; read
/// through the vDSO: no allocation).
pub(crate) fn cpu_time(clock: libc::clockid_t) -> std::time::Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid out-pointer.
    assert_eq!(unsafe { libc::clock_gettime(clock, &mut t) }, 0);
    std::time::Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// The calling thread's CPU time.
pub(crate) fn thread_cpu_time() -> std::time::Duration {
    cpu_time(libc::CLOCK_THREAD_CPUTIME_ID)
}
