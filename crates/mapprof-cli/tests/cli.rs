//! End-to-end tests of the `mapprof` binary: good profiles give the right table and a flame
//! graph; bad input gives exit code 1 and a message that says what is wrong, never a panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use assert_cmd::Command as Cmd;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../mapprof-profile/tests/data")
        .join(name)
}

fn tmp(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

fn mapprof() -> Cmd {
    Cmd::cargo_bin("mapprof").unwrap()
}

/// Runs `mapprof ARGS`, expects exit code 1, returns stderr.
fn failure(args: &[&std::ffi::OsStr]) -> String {
    let out = mapprof().args(args).output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(out.stdout.is_empty());
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn top_of_go_heap_profile_lists_alloc_large_first() {
    let out = mapprof()
        .args(["top", "--sample-index", "alloc_space"])
        .arg(data("go-heap.pb.gz"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("Type: alloc_space"));
    let first_row = lines
        .skip_while(|l| !l.trim_start().starts_with("flat"))
        .nth(1)
        .unwrap();
    assert!(first_row.ends_with("  main.allocLarge"), "{text}");
    assert!(
        first_row.trim_start().starts_with("4.07MB 79.50%"),
        "{text}"
    );
}

#[test]
fn top_limits_rows_and_shows_lines() {
    let out = mapprof()
        .args(["top", "-n", "1", "--lines", "--sample-index", "alloc_space"])
        .arg(data("go-heap.pb.gz"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<_> = text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("flat"))
        .skip(1)
        .collect();
    assert_eq!(rows.len(), 1, "{text}");
    assert!(
        rows[0].contains("main.allocLarge ") && rows[0].contains("main.go:"),
        "{text}"
    );
    assert!(text.contains("Showing top 1 nodes out of "), "{text}");
}

#[test]
fn flame_writes_an_svg_titled_with_profile_and_sample_type() {
    let out_path = tmp("cli-heap.svg");
    let _ = std::fs::remove_file(&out_path);
    mapprof()
        .args(["flame", "--sample-index", "alloc_space", "-o"])
        .arg(&out_path)
        .arg(data("go-heap.pb.gz"))
        .assert()
        .success();
    let svg = std::fs::read_to_string(&out_path).unwrap();
    assert!(svg.starts_with("<?xml"));
    assert!(svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("heap profile — alloc_space (bytes)"));
    assert!(svg.contains("main.allocLarge"));
}

#[test]
fn flame_title_option_overrides_the_default() {
    let out = mapprof()
        .args(["flame", "--title", "lock waits", "-o", "-"])
        .arg(data("go-mutex.pb.gz"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let svg = String::from_utf8(out.stdout).unwrap();
    assert!(svg.contains(">lock waits<"), "{svg}");
    assert!(svg.contains("nanoseconds"));
}

#[test]
fn nonexistent_file_names_the_path() {
    let path = tmp("does-not-exist.pb.gz");
    let stderr = failure(&["top".as_ref(), path.as_os_str()]);
    assert!(
        stderr.starts_with(&format!(
            "mapprof: cannot read profile {}: ",
            path.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("No such file or directory"), "{stderr}");
}

#[test]
fn empty_file_is_not_a_profile() {
    let path = tmp("empty.pb.gz");
    std::fs::write(&path, b"").unwrap();
    let stderr = failure(&["top".as_ref(), path.as_os_str()]);
    assert!(
        stderr.contains("not a pprof profile: the input is empty"),
        "{stderr}"
    );
}

#[test]
fn truncated_file_says_the_gzip_stream_is_truncated() {
    let bytes = std::fs::read(data("go-heap.pb.gz")).unwrap();
    let path = tmp("truncated.pb.gz");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let stderr = failure(&["top".as_ref(), path.as_os_str()]);
    assert!(
        stderr.contains("not a pprof profile: the gzip stream is truncated"),
        "{stderr}"
    );
    let svg = tmp("truncated.svg");
    let stderr = failure(&[
        "flame".as_ref(),
        path.as_os_str(),
        "-o".as_ref(),
        svg.as_os_str(),
    ]);
    assert!(stderr.contains("truncated"), "{stderr}");
    assert!(!svg.exists(), "a failed flame wrote {}", svg.display());
}

#[test]
fn garbage_is_not_a_profile() {
    let path = tmp("garbage.txt");
    std::fs::write(&path, b"<html><body>502 Bad Gateway</body></html>\n").unwrap();
    let stderr = failure(&["top".as_ref(), path.as_os_str()]);
    assert!(
        stderr.contains("not a pprof profile: neither gzip nor a profile.proto message: "),
        "{stderr}"
    );
}

#[test]
fn unknown_sample_type_lists_the_available_ones() {
    let path = data("go-heap.pb.gz");
    let stderr = failure(&[
        "top".as_ref(),
        path.as_os_str(),
        "--sample-index".as_ref(),
        "delay".as_ref(),
    ]);
    assert_eq!(
        stderr.trim_end(),
        "mapprof: no sample type \"delay\" in this profile; it has: \
         alloc_objects, alloc_space, inuse_objects, inuse_space"
    );
}

#[test]
fn closed_stdout_exits_quietly() {
    // The reader closes its end before mapprof writes: the write fails with EPIPE.
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("mapprof"))
        .args(["top", "--sample-index", "alloc_space"])
        .arg(data("go-heap.pb.gz"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}
