//! `mapprof = { default-features = false }` builds without jemalloc, hyper, tokio or pprof-rs:
//! what `cargo tree` lists for the build, against the default one as the positive control.

use std::process::Command;

/// Crates a build without default features must not contain.
const HEAVY: [&str; 6] = [
    "tikv-jemalloc-sys",
    "tikv-jemallocator",
    "tikv-jemalloc-ctl",
    "hyper",
    "tokio",
    "pprof",
];

/// The names of the crates `cargo tree` lists for mapprof's normal dependencies.
fn crates(features: &[&str]) -> Vec<String> {
    let out = Command::new(env!("CARGO"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "tree",
            "-p",
            "mapprof",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
        ])
        .args(features)
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn no_default_features_build_no_jemalloc_hyper_tokio_or_pprof() {
    let minimal = crates(&["--no-default-features"]);
    assert!(minimal.iter().any(|c| c == "mapprof-rt"), "{minimal:?}");
    for heavy in HEAVY {
        assert!(
            !minimal.iter().any(|c| c == heavy),
            "{heavy} in {minimal:?}"
        );
    }
    // The default build has them (but pprof-rs, which nothing uses), so the check can fail.
    let default = crates(&[]);
    for heavy in ["tikv-jemalloc-sys", "tikv-jemallocator", "hyper", "tokio"] {
        assert!(
            default.iter().any(|c| c == heavy),
            "{heavy} not in {default:?}"
        );
    }
    assert!(!default.iter().any(|c| c == "pprof"), "{default:?}");
    assert!(minimal.len() < default.len());
}
