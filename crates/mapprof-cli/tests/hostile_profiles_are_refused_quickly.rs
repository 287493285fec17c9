//! Small crafted files that would expand to gigabytes or millions of frames (issue 18, point 4):
//! the CLI refuses each within a second of CPU time and bounded memory, with an error that names
//! the limit (`mapprof_profile::limits`), the value seen and what is accepted. Each has a
//! positive control just inside the limit that works.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use flate2::write::GzEncoder;
use mapprof_profile::codec::encode_gzip;
use mapprof_profile::limits::{MAX_DECODED_BYTES, MAX_FRAMES_PER_SAMPLE};
use mapprof_profile::proto::{Function, Line, Location, Profile, Sample, ValueType};

fn tmp(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

struct Run {
    code: Option<i32>,
    stderr: String,
    stdout_len: usize,
    cpu: Duration,
    max_rss_kib: i64,
}

/// Address space the CLI runs with (RLIMIT_AS): an allocation past it fails, and the CLI
/// aborts, which the tests see as a wrong exit code.
const ADDRESS_SPACE: u64 = 1 << 30;

/// Runs the CLI under [`ADDRESS_SPACE`] and measures the child's own CPU time (user + system)
/// with `wait4`, so that a busy machine does not make a fast refusal look slow. (`ru_maxrss`
/// is printed, not asserted: Linux carries the test process's RSS at fork into it.)
#[allow(clippy::zombie_processes)] // reaped by `wait4`, which also gives its rusage
fn run(args: &[&str], file: &Path) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mapprof"));
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: ADDRESS_SPACE,
                rlim_max: ADDRESS_SPACE,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let mut child = command
        .args(args)
        .arg(file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::copy(&mut stdout, &mut v).unwrap();
        v.len()
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).unwrap();
        s
    });
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the child is ours and not yet waited for; the pointers are valid.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32);
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Run {
        code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        stderr: err.join().unwrap(),
        stdout_len: out.join().unwrap(),
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        max_rss_kib: usage.ru_maxrss,
    }
}

/// Expects the refusal naming `limit`, in under a second of CPU, within [`ADDRESS_SPACE`].
fn refused(args: &[&str], file: &Path, limit: &str) -> Run {
    let r = run(args, file);
    eprintln!(
        "{} {args:?}: exit {:?}, {:?} CPU, {} KiB peak RSS: {}",
        file.file_name().unwrap().to_string_lossy(),
        r.code,
        r.cpu,
        r.max_rss_kib,
        r.stderr.trim()
    );
    assert_eq!(r.code, Some(1), "{args:?}: {}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("(limit {limit})")) && r.stderr.contains("accepted"),
        "{args:?}: {}",
        r.stderr
    );
    assert!(r.cpu < Duration::from_secs(1), "{args:?}: {:?}", r.cpu);
    assert_eq!(
        r.stderr.matches("profile refused").count(),
        1,
        "said once: {}",
        r.stderr
    );
    r
}

fn worked(args: &[&str], file: &Path) -> Run {
    let r = run(args, file);
    eprintln!(
        "{} {args:?}: exit {:?}, {:?} CPU, {} KiB peak RSS, {} bytes out",
        file.file_name().unwrap().to_string_lossy(),
        r.code,
        r.cpu,
        r.max_rss_kib,
        r.stdout_len
    );
    assert_eq!(r.code, Some(0), "{args:?}: {}", r.stderr);
    assert!(r.cpu < Duration::from_secs(2), "{args:?}: {:?}", r.cpu);
    r
}

/// One sample type (`samples`/`count`), functions `f0..fN`, and the given locations and samples.
fn profile(functions: u64, location: Vec<Location>, sample: Vec<Sample>) -> Profile {
    let mut strings = vec!["".to_owned(), "samples".into(), "count".into()];
    let function = (0..functions)
        .map(|i| {
            strings.push(format!("f{i}"));
            Function {
                id: i + 1,
                name: strings.len() as i64 - 1,
                ..Default::default()
            }
        })
        .collect();
    Profile {
        sample_type: vec![ValueType { r#type: 1, unit: 2 }],
        sample,
        location,
        function,
        string_table: strings,
        ..Default::default()
    }
}

fn write(name: &str, p: &Profile) -> PathBuf {
    let path = tmp(name);
    let mut f = std::fs::File::create(&path).unwrap();
    encode_gzip(p, &mut f).unwrap();
    path
}

fn sample(ids: Vec<u64>, value: i64) -> Sample {
    Sample {
        location_id: ids,
        value: vec![value],
        label: vec![],
    }
}

fn inlined(id: u64, lines: u64) -> Location {
    Location {
        id,
        line: (0..lines)
            .map(|i| Line {
                function_id: i % 8 + 1,
                line: i as i64,
                column: 0,
            })
            .collect(),
        ..Default::default()
    }
}

const COMMANDS: [&[&str]; 3] = [&["top"], &["flame", "-o", "/dev/null"], &["report"]];

#[test]
fn repeated_empty_entries_are_refused_before_they_are_decoded() {
    // A valid header, then millions of empty samples: 2 bytes each on the wire, ~72 decoded.
    let head = profile(1, vec![], vec![]);
    let mut raw = prost::Message::encode_to_vec(&head);
    let n = (MAX_DECODED_BYTES / 64) as usize;
    raw.extend([0x12u8, 0x00].repeat(n));
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&raw).unwrap();
    let gz = gz.finish().unwrap();
    assert!(gz.len() < 100 << 10, "{} bytes", gz.len());
    let path = tmp("empty-entries.pb.gz");
    std::fs::write(&path, &gz).unwrap();
    for args in COMMANDS {
        let r = refused(args, &path, "MAX_DECODED_BYTES");
        assert!(
            r.stderr.contains("536,870,912 bytes accepted"),
            "{}",
            r.stderr
        );
    }
    // Positive control: a hundredth as many empty samples is a valid, if odd, profile (an
    // empty sample has no value for the sample type, which validation then refuses).
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&raw[..raw.len() / 100]).unwrap();
    std::fs::write(&path, gz.finish().unwrap()).unwrap();
    let r = run(&["top"], &path);
    assert!(!r.stderr.contains("(limit"), "{}", r.stderr);
    assert!(r.stderr.contains("sample 0 has 0 values"), "{}", r.stderr);
}

#[test]
fn one_location_with_thousands_of_inlined_lines_is_refused() {
    let p = profile(8, vec![inlined(1, 20_000)], vec![sample(vec![1], 1)]);
    let path = write("many-inlined-lines.pb.gz", &p);
    for args in COMMANDS {
        let r = refused(args, &path, "MAX_FRAMES_PER_SAMPLE");
        assert!(
            r.stderr.contains("location 1 has 20,000 inlined lines"),
            "{}",
            r.stderr
        );
    }
    // Repeated in a sample: 100 lines × 1,000 is 100,000 frames.
    let p = profile(8, vec![inlined(1, 100)], vec![sample(vec![1; 1000], 1)]);
    let path = write("inlined-location-repeated.pb.gz", &p);
    for args in COMMANDS {
        let r = refused(args, &path, "MAX_FRAMES_PER_SAMPLE");
        assert!(
            r.stderr
                .contains("sample 0 expands to at least 4,100 frames"),
            "{}",
            r.stderr
        );
    }
    // Positive control: exactly at the limit works, and the flame graph stays small.
    let p = profile(
        8,
        vec![inlined(1, MAX_FRAMES_PER_SAMPLE)],
        vec![sample(vec![1], 1)],
    );
    let path = write("inlined-at-the-limit.pb.gz", &p);
    worked(&["top"], &path);
    let r = worked(&["flame", "-o", "-"], &path);
    assert!(r.stdout_len < 8 << 20, "{} bytes of SVG", r.stdout_len);
}

#[test]
fn a_deep_repeated_stack_is_refused() {
    let p = profile(1, vec![inlined(1, 1)], vec![sample(vec![1; 50_000], 1)]);
    let path = write("deep-stack.pb.gz", &p);
    for args in COMMANDS {
        let r = refused(args, &path, "MAX_FRAMES_PER_SAMPLE");
        assert!(
            r.stderr
                .contains("sample 0 expands to at least 50,000 frames"),
            "{}",
            r.stderr
        );
    }
}

#[test]
fn many_samples_at_the_frame_limit_are_refused_in_total() {
    // 4,100 samples of one Location of 4,096 inlined lines: 16.8 M frames, past
    // MAX_TOTAL_FRAMES (16 Mi), from a file of a few KB.
    let samples = (0..4100).map(|i| sample(vec![1 + i % 2], 1)).collect();
    let p = profile(
        8,
        vec![
            inlined(1, MAX_FRAMES_PER_SAMPLE),
            inlined(2, MAX_FRAMES_PER_SAMPLE),
        ],
        samples,
    );
    let path = write("total-frames.pb.gz", &p);
    for args in COMMANDS {
        refused(args, &path, "MAX_TOTAL_FRAMES");
    }
}

#[test]
fn a_large_real_shaped_profile_still_works() {
    // 10,000 distinct stacks of 32 frames over 2,000 functions.
    let locations = (1..=2000).map(|id| inlined(id, 1)).collect();
    let mut p = profile(8, locations, vec![]);
    for i in 0..10_000u64 {
        let ids = (0..32).map(|d| (i * 31 + d * 7) % 2000 + 1).collect();
        p.sample.push(sample(ids, (i % 100 + 1) as i64));
    }
    let path = write("large-valid.pb.gz", &p);
    let r = worked(&["top"], &path);
    assert!(r.stderr.is_empty());
    worked(&["flame", "-o", "/dev/null"], &path);
}

#[test]
fn totals_that_would_overflow_are_refused_and_extremes_are_exact() {
    let p = profile(
        2,
        vec![inlined(1, 1), inlined(2, 1)],
        vec![sample(vec![1], i64::MAX), sample(vec![2], i64::MAX)],
    );
    let path = write("overflowing-total.pb.gz", &p);
    for args in COMMANDS {
        let r = refused(args, &path, "MAX_TOTAL_VALUE");
        assert!(r.stderr.contains("\"samples\" sum to"), "{}", r.stderr);
    }
    let p = profile(2, vec![inlined(1, 1)], vec![sample(vec![1], i64::MIN)]);
    let path = write("min-value.pb.gz", &p);
    refused(&["top"], &path, "MAX_TOTAL_VALUE");
    // Positive control: one sample of i64::MAX is its own 100%, not "0% of ... total".
    let p = profile(
        2,
        vec![inlined(1, 1), inlined(2, 1)],
        vec![sample(vec![1], i64::MAX - 1), sample(vec![2], 1)],
    );
    let path = write("max-value.pb.gz", &p);
    let out = Command::new(env!("CARGO_BIN_EXE_mapprof"))
        .arg("top")
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    assert!(text.contains(", 100% of "), "{text}");
    assert!(!text.contains(" 0% of"), "{text}");
}
