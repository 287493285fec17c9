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

/// `flame --from-app`: the runtime's root frames (Go's `runtime.main`) are hidden, the
/// application's (`main.main` and up) drawn; the total stays.
#[test]
fn flame_from_app_hides_the_runtimes_root_frames() {
    let svg = |args: &[&str]| {
        let out = mapprof()
            .args(["flame", "--sample-index", "alloc_space", "-o", "-"])
            .arg(data("go-heap.pb.gz"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let whole = svg(&[]);
    let from_app = svg(&["--from-app=0"]);
    assert!(
        whole.contains("<title>runtime.main ("),
        "runtime.main in the whole graph"
    );
    assert!(
        !from_app.contains("<title>runtime.main ("),
        "hidden with --from-app=0"
    );
    assert!(from_app.contains("<title>main.main (") && from_app.contains("main.allocLarge"));
    assert!(from_app.contains("stacks start 0 frames below"));
    let total = |svg: &str| svg_subtitle_total(svg);
    assert_eq!(total(&whole), total(&from_app));
    // One runtime frame kept: runtime.main is back, under main.main.
    assert!(svg(&["--from-app=1"]).contains("<title>runtime.main ("));
}

/// The `total ...` of a flame graph's subtitle.
fn svg_subtitle_total(svg: &str) -> String {
    let at = svg.find("total ").expect("a total in the subtitle");
    svg[at..].split([';', '<']).next().unwrap().to_owned()
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
    // A pipe whose reader is gone before mapprof starts: every write fails with EPIPE (a pipe
    // read only later could take the whole output into its buffer and test nothing).
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut probe = writer.try_clone().unwrap();
    let refused = std::io::Write::write(&mut probe, b"x").unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::BrokenPipe);
    let child = Command::new(assert_cmd::cargo::cargo_bin("mapprof"))
        .args(["top", "--sample-index", "alloc_space"])
        .arg(data("go-heap.pb.gz"))
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

/// Parses `svg` as XML, failing on malformed XML, and returns the text of `<text id="title">`.
fn svg_title(svg: &str) -> String {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(svg);
    let (mut title, mut in_title) = (String::new(), false);
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                in_title = e.name().as_ref() == b"text"
                    && e.attributes()
                        .flatten()
                        .any(|a| a.key.as_ref() == b"id" && a.value.as_ref() == b"title");
            }
            Ok(Event::Text(t)) if in_title => title.push_str(&t.decode().unwrap()),
            Ok(Event::End(_)) => in_title = false,
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!("not well-formed XML at {}: {e}", reader.buffer_position()),
        }
    }
    title
}

/// go-heap.pb.gz without main.allocSmall's samples, written to a temporary file: a "before"
/// in which allocSmall did not exist yet.
fn heap_without_alloc_small() -> PathBuf {
    use mapprof_profile::codec;
    let mut profile = codec::read_file(data("go-heap.pb.gz")).unwrap();
    let small: Vec<u64> = profile
        .function
        .iter()
        .filter(|f| profile.string_table[f.name as usize] == "main.allocSmall")
        .map(|f| f.id)
        .collect();
    let locations: Vec<u64> = profile
        .location
        .iter()
        .filter(|l| l.line.iter().any(|line| small.contains(&line.function_id)))
        .map(|l| l.id)
        .collect();
    assert!(!locations.is_empty());
    profile
        .sample
        .retain(|s| !s.location_id.iter().any(|id| locations.contains(id)));
    let path = tmp("heap-without-alloc-small.pb.gz");
    let mut bytes = Vec::new();
    codec::encode_gzip(&profile, &mut bytes).unwrap();
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn diff_writes_a_well_formed_svg_with_new_frames_in_red() {
    let base = heap_without_alloc_small();
    let out_path = tmp("cli-diff.svg");
    let _ = std::fs::remove_file(&out_path);
    mapprof()
        .args(["diff", "--sample-index", "alloc_space", "-o"])
        .arg(&out_path)
        .arg(&base)
        .arg(data("go-heap.pb.gz"))
        .assert()
        .success();
    let svg = std::fs::read_to_string(&out_path).unwrap();
    assert_eq!(
        svg_title(&svg),
        "heap profile — alloc_space (bytes): new vs base"
    );
    assert!(svg.contains("base normalized to new"), "{svg}");
    // allocSmall is only in the new profile: the largest growth, full red.
    let small = svg
        .split("<g>")
        .find(|g| g.contains("<title>main.allocSmall ("))
        .expect("a frame for main.allocSmall");
    assert!(small.contains(r#"fill="rgb(255,100,100)""#), "{small}");
}

#[test]
fn diff_options_set_title_labels_and_normalization() {
    let out = mapprof()
        .args([
            "diff",
            "--no-normalize",
            "--base-label",
            "before",
            "--new-label",
            "after",
            "-o",
            "-",
        ])
        .arg(data("go-heap.pb.gz"))
        .arg(data("go-heap.pb.gz"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let svg = String::from_utf8(out.stdout).unwrap();
    // The new profile's default sample type: inuse_space.
    assert_eq!(
        svg_title(&svg),
        "heap profile — inuse_space (bytes): after vs before"
    );
    assert!(svg.contains("red: larger in after, blue: smaller; values as recorded"));

    let out = mapprof()
        .args(["diff", "--title", "same twice", "-o", "-"])
        .arg(data("go-mutex.pb.gz"))
        .arg(data("go-mutex.pb.gz"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let svg = String::from_utf8(out.stdout).unwrap();
    assert_eq!(svg_title(&svg), "same twice");
    // Nothing changed: no frame is red or blue, every one is inferno's neutral.
    assert!(
        !svg.contains("fill=\"rgb(255,") && !svg.contains(",255)\""),
        "{svg}"
    );
    assert!(svg.contains("fill=\"rgb(250,250,250)\""), "{svg}");
}

#[test]
fn diff_of_different_sample_types_names_the_base_and_writes_nothing() {
    let svg = tmp("cli-diff-mismatch.svg");
    let _ = std::fs::remove_file(&svg);
    let base = data("go-mutex.pb.gz");
    let stderr = failure(&[
        "diff".as_ref(),
        base.as_os_str(),
        data("go-heap.pb.gz").as_os_str(),
        "-o".as_ref(),
        svg.as_os_str(),
    ]);
    assert_eq!(
        stderr.trim_end(),
        format!(
            "mapprof: base profile {}: no sample type \"inuse_space\" in this profile; \
             it has: contentions, delay",
            base.display()
        )
    );
    assert!(!svg.exists(), "a failed diff wrote {}", svg.display());
}

#[test]
fn top_app_ranks_application_functions() {
    let out = mapprof()
        .args(["top", "--app", "--sample-index", "alloc_space"])
        .arg(data("go-heap.pb.gz"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines[0], "Type: alloc_space", "{text}");
    assert_eq!(
        lines[1],
        "Total 5.12MB in 23 samples; in no application function: 3.05kB (0.06%) in 4 samples"
    );
    assert_eq!(lines[2], "     value   share  samples  function  file:line");
    assert!(
        lines[3].starts_with("    4.07MB  79.50%       13  main.allocLarge  ")
            && lines[3].ends_with("fixtures/go-heap/main.go:28"),
        "{text}"
    );
    let functions: Vec<_> = lines[3..]
        .iter()
        .map(|l| l.split_whitespace().nth(3).unwrap())
        .collect();
    assert_eq!(
        functions,
        [
            "main.allocLarge",
            "main.allocSmall",
            "main.holdLock",
            "main.contend"
        ]
    );
}

#[test]
fn top_app_takes_a_row_limit_and_extra_libraries() {
    let out = mapprof()
        .args(["top", "--app", "-n", "1", "--library", "main"])
        .arg(data("go-mutex.pb.gz"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    // With `main` a library nothing is application code: all of it is unattributed.
    assert_eq!(
        text,
        "Type: delay\n\
         Total 173.65ms in 1 samples; in no application function: 173.65ms (100.00%) in 1 \
         samples\n     value   share  samples  function  file:line\n"
    );

    let out = mapprof()
        .args(["top", "--app", "-n", "1", "--sample-index", "alloc_space"])
        .arg(data("go-heap.pb.gz"))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("Showing top 1 application functions out of 4\n"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 5, "{text}");
}

#[test]
fn report_of_go_profiles_ranks_main_functions_and_finds_no_growth() {
    let out = mapprof()
        .args(["report", "--json"])
        .arg(data("go-heap.pb.gz"))
        .arg(data("go-mutex.pb.gz"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kinds: Vec<&str> = report["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    // A resize profile is derived from the heap profile; Go stacks classify as no growth.
    assert_eq!(kinds, ["heap", "mutex", "resize"], "{report:#}");
    assert_eq!(report["profiles"][2]["total"], 0);
    let findings = report["findings"].as_array().unwrap();
    // holdLock caused all of the lock delay; allocLarge did 80% of the allocation.
    assert_eq!(findings[0]["function"], "main.holdLock", "{report:#}");
    assert_eq!(findings[1]["function"], "main.allocLarge", "{report:#}");
    assert!(findings
        .iter()
        .all(|f| f["growth"].as_array().unwrap().is_empty()));
    let holder = findings
        .iter()
        .find(|f| f["function"] == "main.holdLock")
        .expect("the mutex holder is a finding");
    assert!(
        holder["lock_holding"]["share"].as_f64().unwrap() > 0.9,
        "{holder:#}"
    );

    let text = mapprof()
        .args(["report", "-n", "1"])
        .arg(data("go-heap.pb.gz"))
        .output()
        .unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("\n1. main.allocLarge"), "{text}");
    assert!(!text.contains("\n2. "), "{text}");
}

#[test]
fn report_names_the_profile_it_cannot_read() {
    let garbage = tmp("report-garbage.pb.gz");
    std::fs::write(&garbage, b"not a profile").unwrap();
    let stderr = failure(&[
        "report".as_ref(),
        data("go-heap.pb.gz").as_os_str(),
        garbage.as_os_str(),
    ]);
    assert!(stderr.contains("report-garbage.pb.gz"), "{stderr}");
}

/// The return addresses of the calling stack, innermost first (`backtrace`'s own frames, which
/// count as the profiler's, at the leaf).
#[inline(never)]
fn stack_here() -> Vec<u64> {
    let mut stack = Vec::new();
    backtrace::trace(|frame| {
        stack.push(frame.ip() as u64);
        true
    });
    stack
}

#[inline(never)]
fn allocates_through_a_deep_stack(depth: u32) -> Vec<u64> {
    if depth == 0 {
        return stack_here();
    }
    let stack = allocates_through_a_deep_stack(depth - 1);
    std::hint::black_box(stack)
}

#[inline(never)]
fn allocates_at_the_top() -> Vec<u64> {
    std::hint::black_box(stack_here())
}

/// A heap profile of this test binary's own stacks, built in process with and without
/// symbolization: (symbolized, unsymbolized).
fn heap_profiles_of_this_process() -> (
    mapprof_profile::proto::Profile,
    mapprof_profile::proto::Profile,
) {
    let samples = heap_samples_of_this_process();
    (
        build_heap(samples.clone(), true),
        build_heap(samples, false),
    )
}

/// Twenty samples through a deep stack of this process, then one at the top.
fn heap_samples_of_this_process() -> Vec<mapprof_profile::builder::RawSample> {
    use mapprof_profile::heap::{self, HeapRecord};
    let record = |stack: Vec<u64>, n: f64| HeapRecord {
        stack,
        alloc_objects: n,
        alloc_bytes: n * 4096.0,
        free_objects: n / 2.0,
        free_bytes: n * 2048.0,
        lost: false,
        realloc: false,
    };
    let mut records: Vec<HeapRecord> = (0..20)
        .map(|depth| record(allocates_through_a_deep_stack(depth), f64::from(depth + 1)))
        .collect();
    records.push(record(allocates_at_the_top(), 100.0));
    heap::samples(&records)
}

fn build_heap(
    samples: Vec<mapprof_profile::builder::RawSample>,
    symbolize: bool,
) -> mapprof_profile::proto::Profile {
    use mapprof_profile::builder::{build, BuildOptions};
    use mapprof_profile::heap::{self, HeapView};
    use mapprof_profile::symbolize::Symbolizer;
    build(
        &heap::header(4096, HeapView::Heap),
        samples,
        BuildOptions { symbolize },
        &mut Symbolizer::new(),
    )
}

fn write_profile(profile: &mapprof_profile::proto::Profile, path: &Path) {
    let mut bytes = Vec::new();
    mapprof_profile::codec::encode_gzip(profile, &mut bytes).unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// stdout of `mapprof ARGS` run in `dir`, which must succeed.
fn output_in(dir: &Path, args: &[&str]) -> String {
    let out = mapprof().current_dir(dir).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "mapprof {args:?}: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

/// A profile of this process built without symbolization and symbolized by `mapprof
/// symbolize` from this binary is the one built with symbolization in process: same
/// Locations with Lines, Functions, mapping flags and samples, so the same `top` and `report`.
#[test]
fn symbolize_gives_the_profile_the_process_would_have_written() {
    let (in_process, unsymbolized) = heap_profiles_of_this_process();
    assert!(unsymbolized.function.is_empty() && !unsymbolized.mapping[0].has_functions);
    let dir = tmp("symbolize-same");
    let (a, b) = (dir.join("in-process"), dir.join("offline"));
    std::fs::create_dir_all(&b).unwrap();
    write_profile(&in_process, &a.join("heap.pb.gz"));
    write_profile(&unsymbolized, &dir.join("unsymbolized.pb.gz"));
    let binary = std::env::current_exe().unwrap();
    output_in(
        &dir,
        &[
            "symbolize",
            "unsymbolized.pb.gz",
            "offline/heap.pb.gz",
            "--binary",
            binary.to_str().unwrap(),
        ],
    );

    let offline = mapprof_profile::codec::read_file(b.join("heap.pb.gz")).unwrap();
    assert!(offline.mapping[0].has_functions && offline.mapping[0].has_line_numbers);
    assert!(offline.mapping[0].has_filenames && offline.mapping[0].has_inline_frames);
    // Everything but the comments, which end with the cache's hits and misses.
    let without_comments = |p: &mapprof_profile::proto::Profile| {
        let mut p = p.clone();
        p.comment.clear();
        p.string_table.clear();
        p
    };
    assert_eq!(without_comments(&offline), without_comments(&in_process));
    let names = |p: &mapprof_profile::proto::Profile| {
        let mut names: Vec<String> = p
            .function
            .iter()
            .map(|f| {
                let s = |i: i64| p.string_table[i as usize].clone();
                format!("{} {} {}", s(f.name), s(f.system_name), s(f.filename))
            })
            .collect();
        names.sort();
        names
    };
    assert_eq!(names(&offline), names(&in_process));
    assert!(
        names(&offline)
            .iter()
            .any(|n| n.contains("allocates_through_a_deep_stack") && n.contains("cli.rs")),
        "{:?}",
        names(&offline)
    );

    for args in [
        &["top", "heap.pb.gz"][..],
        &[
            "top",
            "--lines",
            "--sample-index",
            "alloc_space",
            "heap.pb.gz",
        ],
        &["report", "heap.pb.gz"],
        &["report", "--json", "heap.pb.gz"],
    ] {
        let (want, got) = (output_in(&a, args), output_in(&b, args));
        assert_eq!(got, want, "mapprof {args:?}");
    }
    // `backtrace`'s frames (the profiler's, by the rule) are trimmed from the leaf: flat lands
    // on the function that captured the stack.
    let top = output_in(&b, &["top", "heap.pb.gz"]);
    let first_row = top
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("flat"))
        .nth(1)
        .unwrap();
    assert!(first_row.ends_with("  cli::stack_here"), "{top}");
    assert!(top.contains("  cli::allocates_at_the_top"), "{top}");
}

#[test]
fn symbolize_refuses_a_binary_with_another_build_id() {
    let (_, unsymbolized) = heap_profiles_of_this_process();
    let input = tmp("symbolize-other/unsymbolized.pb.gz");
    write_profile(&unsymbolized, &input);
    let output = tmp("symbolize-other/out.pb.gz");
    let _ = std::fs::remove_file(&output);
    let other = env!("CARGO_BIN_EXE_mapprof");
    let stderr = failure(&[
        "symbolize".as_ref(),
        input.as_os_str(),
        output.as_os_str(),
        "--binary".as_ref(),
        other.as_ref(),
    ]);
    assert!(
        stderr.contains("build id") && stderr.contains(other),
        "{stderr}"
    );
    assert!(!output.exists());
}

#[test]
fn symbolize_says_what_is_wrong_with_its_inputs() {
    let (in_process, unsymbolized) = heap_profiles_of_this_process();
    let dir = tmp("symbolize-bad");
    let input = dir.join("unsymbolized.pb.gz");
    write_profile(&unsymbolized, &input);
    let symbolized = dir.join("symbolized.pb.gz");
    write_profile(&in_process, &symbolized);
    let not_elf = dir.join("not-an-elf");
    std::fs::write(&not_elf, b"#!/bin/sh\necho not a binary\n").unwrap();
    let out = dir.join("out.pb.gz");
    let binary = std::env::current_exe().unwrap();
    let run = |input: &Path, binary: &Path| {
        failure(&[
            "symbolize".as_ref(),
            input.as_os_str(),
            out.as_os_str(),
            "--binary".as_ref(),
            binary.as_os_str(),
        ])
    };
    let missing = dir.join("no-such-binary");
    let stderr = run(&input, &missing);
    assert!(
        stderr.contains("cannot open") && stderr.contains("no-such-binary"),
        "{stderr}"
    );
    let stderr = run(&input, &not_elf);
    assert!(stderr.contains("not an ELF file"), "{stderr}");
    let stderr = run(&symbolized, &binary);
    assert!(stderr.contains("already symbolized"), "{stderr}");
    let stderr = run(&data("go-heap.pb.gz"), &binary);
    assert!(stderr.contains("cannot symbolize"), "{stderr}");
}

/// `--tagfocus` and `--tagignore` keep and drop samples by label, in `top` and `report` (the
/// command that reproduces `make flame`'s report drops the load generator this way); the
/// rules in full are `top_speaks_pprof.rs`'s.
#[test]
fn tags_focus_and_ignore_samples_by_label() {
    // The deep stacks are the load generator's.
    let mut samples = heap_samples_of_this_process();
    for deep in &mut samples[..20] {
        deep.labels.push(mapprof_profile::testing::str_label(
            "role",
            "load-generator",
        ));
    }
    let profile = build_heap(samples, true);
    let dir = tmp("tags");
    write_profile(&profile, &dir.join("heap.pb.gz"));
    let top = |extra: &[&str]| {
        let mut args = vec!["top", "heap.pb.gz", "-n", "100"];
        args.extend_from_slice(extra);
        output_in(&dir, &args)
    };
    let (all, ignored, focused) = (
        top(&[]),
        top(&["--tagignore", "role=load-generator"]),
        top(&["--tagfocus", "role=load-generator"]),
    );
    assert!(all.contains("allocates_at_the_top") && all.contains("allocates_through_a_deep_stack"));
    assert!(ignored.contains("allocates_at_the_top"), "{ignored}");
    assert!(
        !ignored.contains("allocates_through_a_deep_stack"),
        "{ignored}"
    );
    assert!(!focused.contains("allocates_at_the_top"), "{focused}");
    assert!(
        focused.contains("allocates_through_a_deep_stack"),
        "{focused}"
    );

    let report = output_in(
        &dir,
        &["report", "heap.pb.gz", "--tagignore", "role=load-generator"],
    );
    assert!(
        !report.contains("allocates_through_a_deep_stack"),
        "{report}"
    );
    // A bare expression is pprof's too: it matches a label read as key:value.
    assert_eq!(top(&["--tagfocus", "role"]), focused);
    let bad = failure(&[
        "top".as_ref(),
        dir.join("heap.pb.gz").as_os_str(),
        "--tagfocus".as_ref(),
        "role=(".as_ref(),
    ]);
    assert!(
        bad.contains("--tagfocus `role=(`: bad regular expression")
            && bad.contains("a tag filter is key=regex or regex"),
        "{bad}"
    );
}

/// `report` reads one run: two profiles of a kind (or heap and allocs, the same samples) are
/// refused, naming both, rather than added up or one silently dropped.
#[test]
fn report_refuses_two_profiles_of_one_kind() {
    let (profile, _) = heap_profiles_of_this_process();
    let dir = tmp("report-two");
    write_profile(&profile, &dir.join("a-heap.pb.gz"));
    write_profile(&profile, &dir.join("b-heap.pb.gz"));
    let e = failure(&[
        "report".as_ref(),
        dir.join("a-heap.pb.gz").as_os_str(),
        dir.join("b-heap.pb.gz").as_os_str(),
    ]);
    assert!(e.contains("b-heap.pb.gz: a heap profile, and"), "{e}");
    assert!(e.contains("a-heap.pb.gz is a heap profile"), "{e}");
    assert!(e.contains("one of each kind"), "{e}");
    // One of them alone is read.
    output_in(&dir, &["report", "a-heap.pb.gz"]);
}
