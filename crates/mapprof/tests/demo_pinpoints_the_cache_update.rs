//! What `make flame` claims: on the demo with the incident's pattern, `cache::Cache::update` is
//! the top function of the allocs profile (alloc_space) and of the mutex profile (delay), and
//! `Cache::get` of the block profile. Runs the demo example (built by `cargo test`) and reads
//! the profiles it writes.

use mapprof_profile::top::{top, TopOptions};
use mapprof_profile::view::ProfileView;
use std::path::PathBuf;
use std::process::Command;

fn demo_binary() -> PathBuf {
    // target/<profile>/deps/<this test> -> target/<profile>/examples/demo
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join("demo")
}

fn top_function(dir: &std::path::Path, profile: &str, sample_type: &str) -> String {
    let file = dir.join(format!("demo-{profile}.pb.gz"));
    let decoded = mapprof_profile::codec::read_file(&file).unwrap();
    let view = ProfileView::new(&decoded).unwrap();
    let index = view.sample_index_by_name(sample_type).unwrap();
    top(&view, index, &TopOptions::default()).rows[0]
        .name
        .clone()
}

#[test]
fn the_demo_profiles_name_the_cache_update() {
    let demo = demo_binary();
    assert!(
        demo.exists(),
        "{} not built (cargo test builds examples)",
        demo.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(&demo).arg(dir.path()).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    assert!(top_function(dir.path(), "allocs", "alloc_space").ends_with("cache::Cache::update"));
    assert!(top_function(dir.path(), "mutex", "delay").ends_with("cache::Cache::update"));
    assert!(top_function(dir.path(), "block", "delay").ends_with("cache::Cache::get"));
}
