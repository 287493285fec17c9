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
