//! Helpers shared by the integration tests.
#![allow(dead_code)] // Each test binary uses a different subset.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A file under `tests/data`.
pub(crate) fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// The output of `go tool pprof -top -sample_index=INDEX PATH`: the independent reader that our
/// encoder and our `top` are checked against. Fails (does not skip) when Go is missing.
pub(crate) fn go_pprof_top(path: &Path, sample_index: &str) -> String {
    let output = Command::new("go")
        .args(["tool", "pprof", "-top"])
        .arg(format!("-sample_index={sample_index}"))
        .arg(path)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `go tool pprof` ({e}); run `make setup` to install Go")
        });
    assert!(
        output.status.success(),
        "go tool pprof failed on {}:\n{}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("go tool pprof printed UTF-8")
}

/// The table part of a `-top` report: from the "Showing nodes" line on (pprof's File/Type/Time
/// header and our Type line differ and are left out).
pub(crate) fn table_part(report: &str) -> String {
    let start = report
        .find("Showing nodes accounting for")
        .unwrap_or_else(|| panic!("no table in report:\n{report}"));
    report[start..].to_owned()
}

/// Compares `actual` with the golden file `tests/golden/NAME`; with `MAPPROF_BLESS=1` writes it
/// instead (inferno's `INFERNO_BLESS_TESTS`), so that a change of output is a reviewed diff.
pub(crate) fn assert_golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("MAPPROF_BLESS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().expect("a golden directory")).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e} (MAPPROF_BLESS=1 writes it)",
            path.display()
        )
    });
    if expected != actual {
        panic!(
            "{} differs from the output (- expected, + actual; after review, MAPPROF_BLESS=1 \
             rewrites it):\n{}",
            path.display(),
            line_diff(&expected, actual)
        );
    }
}

/// The lines that differ, by position, as `-expected` / `+actual` pairs (at most 40 lines).
fn line_diff(expected: &str, actual: &str) -> String {
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let mut out = Vec::new();
    for i in 0..e.len().max(a.len()) {
        let (x, y) = (e.get(i), a.get(i));
        if x == y {
            continue;
        }
        out.push(format!("@@ line {}", i + 1));
        out.extend(x.map(|x| format!("-{x}")));
        out.extend(y.map(|y| format!("+{y}")));
        if out.len() >= 40 {
            out.push("...".to_owned());
            break;
        }
    }
    if out.is_empty() {
        out.push("(only line endings differ)".to_owned());
    }
    out.join("\n")
}
