//! `mapprof top` with what pprof users type: `--cum`, `--focus`/`--ignore`,
//! `--tagfocus`/`--tagignore`, several files merged, and `http://` sources with `seconds`,
//! checked by decoding the table it prints (and `flame`'s filters by its SVG).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::mpsc;

use assert_cmd::Command;
use mapprof_profile::codec;
use mapprof_profile::proto::Profile;
use mapprof_profile::testing::{num_label, str_label, Loc, ProfileBuilder};

fn write(name: &str, profile: &Profile) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let mut bytes = Vec::new();
    codec::encode_gzip(profile, &mut bytes).unwrap();
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A CPU-shaped profile (counts, so the table prints plain numbers).
fn profile(stacks: &[(&[&str], i64)]) -> Profile {
    stacks
        .iter()
        .fold(ProfileBuilder::new(&[("samples", "count")]), |b, (s, v)| {
            b.names(s, &[*v])
        })
        .build()
}

const STACKS: [(&[&str], i64); 4] = [
    (&["hash", "cache::Cache::update", "main"], 40),
    (&["memcpy", "cache::Cache::update", "main"], 30),
    (&["read", "cache::Cache::get", "main"], 20),
    (&["std::thread::sleep", "main"], 10),
];

/// `(flat, cum, function)` of each row `mapprof top ARGS` prints.
fn top(args: &[&str]) -> Vec<(i64, i64, String)> {
    let out = Command::cargo_bin("mapprof")
        .unwrap()
        .arg("top")
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .skip_while(|l| !l.trim_start().starts_with("flat"))
        .skip(1)
        .map(|row| {
            let cols: Vec<&str> = row.split_whitespace().collect();
            let number = |s: &str| s.parse::<i64>().unwrap_or_else(|_| panic!("{row}"));
            (number(cols[0]), number(cols[3]), cols[5..].join(" "))
        })
        .collect()
}

fn failure(args: &[&str]) -> String {
    let out = Command::cargo_bin("mapprof")
        .unwrap()
        .args(args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn cum_orders_rows_by_cumulative_value() {
    let file = write("speaks-cum.pb.gz", &profile(&STACKS));
    let rows = top(&[file.to_str().unwrap(), "--cum"]);
    let names: Vec<&str> = rows.iter().map(|r| r.2.as_str()).collect();
    assert_eq!(
        names,
        [
            "main",
            "cache::Cache::update",
            "hash",
            "memcpy",
            "cache::Cache::get",
            "read",
            "std::thread::sleep"
        ]
    );
    // Each cum is the sum over the stacks the function is in.
    for (_, cum, name) in &rows {
        let expected: i64 = STACKS
            .iter()
            .filter(|(s, _)| s.contains(&name.as_str()))
            .map(|(_, v)| v)
            .sum();
        assert_eq!(*cum, expected, "{name}");
    }
    assert!(rows.windows(2).all(|w| w[0].1 >= w[1].1));
    // Without --cum, flat decides: hash (40) first, main (0) last.
    let flat = top(&[file.to_str().unwrap()]);
    assert_eq!(flat[0].2, "hash");
    assert_eq!(flat.last().unwrap().2, "main");
}

#[test]
fn focus_and_ignore_keep_and_drop_samples_by_frame() {
    let file = write("speaks-focus.pb.gz", &profile(&STACKS));
    let file = file.to_str().unwrap();
    let rows = top(&[file, "--focus", "Cache::", "--cum"]);
    assert_eq!(rows[0], (0, 90, "main".into()), "{rows:?}");
    assert!(!rows.iter().any(|r| r.2.contains("sleep")));
    let rows = top(&[file, "--ignore", "update", "--cum"]);
    assert_eq!(rows[0], (0, 30, "main".into()), "{rows:?}");
    assert!(!rows.iter().any(|r| r.2 == "hash" || r.2 == "memcpy"));
    let rows = top(&[file, "--focus", "^main$", "--ignore", "^(read|hash)$"]);
    let total: i64 = rows.iter().map(|r| r.0).sum();
    assert_eq!(total, 40, "memcpy and sleep: {rows:?}");
    assert!(failure(&["top", file, "--focus", "("]).contains("--focus"));
}

/// [`STACKS`] with labels: the load generator's, the server's by route, and one unlabelled.
fn labelled() -> Profile {
    let labels: [&[(&str, &str)]; 4] = [
        &[("role", "load-generator")],
        &[("role", "server"), ("route", "/item")],
        &[("role", "server"), ("route", "/item/big")],
        &[],
    ];
    STACKS
        .iter()
        .zip(labels)
        .fold(
            ProfileBuilder::new(&[("samples", "count")]),
            |b, ((stack, v), pairs)| {
                let stack: Vec<Loc> = stack.iter().map(|&n| Loc::from(n)).collect();
                let mut labels: Vec<_> = pairs.iter().map(|(k, v)| str_label(k, v)).collect();
                labels.push(num_label("bytes", 64, Some("bytes")));
                b.labelled_sample(&stack, &[*v], &labels)
            },
        )
        .build()
}

/// The total `mapprof top ARGS` prints (the sum of flat).
fn total(args: &[&str]) -> i64 {
    top(args).iter().map(|r| r.0).sum()
}

#[test]
fn tagfocus_and_tagignore_keep_and_drop_samples_as_pprof_does() {
    let file = write("speaks-tags.pb.gz", &labelled());
    let file = file.to_str().unwrap();
    assert_eq!(total(&[file]), 100);
    // key=regex: that key's values, unanchored, any of the comma-separated expressions.
    assert_eq!(total(&[file, "--tagignore=role=load-generator"]), 60);
    let rows = top(&[file, "--tagignore", "role=load-generator"]);
    assert!(!rows.iter().any(|r| r.2 == "hash"), "{rows:?}");
    assert_eq!(total(&[file, "--tagfocus=route=/item"]), 50);
    assert_eq!(total(&[file, "--tagfocus=route=^/item$"]), 30);
    assert_eq!(total(&[file, "--tagfocus=role=^load,^server$"]), 90);
    // A bare regex reads each label as key:value, and every expression must match one.
    assert_eq!(total(&[file, "--tagfocus=generator"]), 40);
    assert_eq!(total(&[file, "--tagfocus=^role:server$,big$"]), 20);
    assert_eq!(total(&[file, "--tagignore=^route:"]), 50);
    // With --focus, both hold; with --cum, main carries what is left.
    let rows = top(&[file, "--tagfocus=role=server", "--focus=Cache::", "--cum"]);
    assert_eq!(rows[0], (0, 50, "main".into()), "{rows:?}");
    // What matches nothing is said, as pprof does, and keeps the profile as it is.
    let out = Command::cargo_bin("mapprof")
        .unwrap()
        .args(["top", file, "--tagignore=role=nobody"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--tagignore matched no samples"),
        "{stderr}"
    );
    // Numeric ranges are refused, naming the option; a bad expression too.
    let err = failure(&["top", file, "--tagfocus=bytes=32:128"]);
    assert!(
        err.contains("--tagfocus") && err.contains("numeric tag ranges"),
        "{err}"
    );
    let err = failure(&["top", file, "--tagignore=role=("]);
    assert!(
        err.contains("--tagignore") && err.contains("regular expression"),
        "{err}"
    );
}

#[test]
fn flame_takes_the_same_tag_filters() {
    let file = write("speaks-tags-flame.pb.gz", &labelled());
    let svg = |args: &[&str]| {
        let out = Command::cargo_bin("mapprof")
            .unwrap()
            .args(["flame", file.to_str().unwrap(), "-o", "-"])
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
    let all = svg(&[]);
    assert!(
        all.contains(">hash") && all.contains(">read"),
        "no frames in the SVG"
    );
    let served = svg(&["--tagignore=role=load-generator", "--tagfocus=route=item"]);
    assert!(!served.contains(">hash") && !served.contains("sleep"));
    assert!(served.contains(">memcpy") && served.contains(">read"));
}

#[test]
fn several_files_of_one_kind_are_merged_and_kinds_are_not_mixed() {
    let a = write("speaks-a.pb.gz", &profile(&STACKS));
    let b = write(
        "speaks-b.pb.gz",
        &profile(&[(&["hash", "cache::Cache::update", "main"], 5)]),
    );
    let rows = top(&[a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(rows[0], (45, 45, "hash".into()));
    let heap = write(
        "speaks-heap.pb.gz",
        &ProfileBuilder::new(&[("alloc_space", "bytes")])
            .names(&["main"], &[1])
            .build(),
    );
    let err = failure(&["top", a.to_str().unwrap(), heap.to_str().unwrap()]);
    assert!(
        err.contains("cannot merge profiles of different kinds")
            && err.contains("speaks-heap.pb.gz has [alloc_space/bytes]"),
        "{err}"
    );
}

/// Serves `answers` one connection each on a loopback port, sending each request line back.
fn serve(answers: Vec<(u16, Vec<u8>)>) -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for (status, body) in answers {
            let (mut stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut header = String::new();
            while reader.read_line(&mut header).unwrap() > 2 {
                header.clear();
            }
            tx.send(request_line.trim_end().to_owned()).unwrap();
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).unwrap();
            stream.write_all(&body).unwrap();
        }
    });
    (base, rx)
}

#[test]
fn top_reads_a_url_and_passes_seconds_as_pprof_does() {
    let mut bytes = Vec::new();
    codec::encode_gzip(&profile(&STACKS), &mut bytes).unwrap();
    let (base, requests) = serve(vec![
        (200, bytes.clone()),
        (200, bytes),
        (404, b"Unknown profile\n".to_vec()),
    ]);

    let rows = top(&[&format!("{base}/debug/pprof/profile?seconds=1")]);
    assert_eq!(rows[0], (40, 40, "hash".into()));
    assert_eq!(
        requests.recv().unwrap(),
        "GET /debug/pprof/profile?seconds=1 HTTP/1.1"
    );

    let rows = top(&[
        &format!("{base}/debug/pprof/heap"),
        "--seconds",
        "2",
        "--cum",
    ]);
    assert_eq!(rows[0].2, "main");
    assert_eq!(
        requests.recv().unwrap(),
        "GET /debug/pprof/heap?seconds=2 HTTP/1.1"
    );

    let err = failure(&["top", &format!("{base}/debug/pprof/goroutine")]);
    assert!(
        err.contains("/debug/pprof/goroutine") && err.contains("404: Unknown profile"),
        "{err}"
    );
}
