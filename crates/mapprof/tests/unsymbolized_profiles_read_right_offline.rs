//! A heap profile taken with `symbolize=false` reads right offline: `go tool pprof` (its own
//! symbolization from the binary) charges the application functions, not mapprof's hooks or
//! Rust's allocation plumbing, and `mapprof symbolize` gives the `top` and report of the same
//! profile symbolized in process.
#![cfg(feature = "jemalloc")]

mod common;
use common::*;
use mapprof::ProfileKind;
use mapprof_profile::proto::Profile;
use mapprof_profile::view::ProfileView;
use std::collections::HashMap;
use std::path::Path;

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::jemalloc();

#[inline(never)]
fn fills_a_vector_with_capacity() -> Vec<u64> {
    let mut v = Vec::with_capacity(1 << 14);
    v.extend(0..1 << 14);
    v
}

#[inline(never)]
fn grows_a_vector_by_pushing() -> Vec<u64> {
    let mut v = Vec::new();
    for i in 0..1 << 14 {
        v.push(i);
    }
    v
}

#[inline(never)]
fn grows_a_map_by_inserting() -> HashMap<u64, u64> {
    let mut m = HashMap::new();
    for i in 0..1 << 12 {
        m.insert(i, i);
    }
    m
}

#[inline(never)]
fn boxes_and_clones() -> Vec<Box<[u8]>> {
    let template = vec![7u8; 4096];
    (0..64)
        .map(|_| template.clone().into_boxed_slice())
        .collect()
}

/// What the workload keeps, so that it is in use when the profiles are taken.
type Kept = (Vec<u64>, Vec<u64>, HashMap<u64, u64>, Vec<Box<[u8]>>);

fn workload() -> Vec<Kept> {
    (0..8)
        .map(|_| {
            (
                fills_a_vector_with_capacity(),
                grows_a_vector_by_pushing(),
                grows_a_map_by_inserting(),
                boxes_and_clones(),
            )
        })
        .collect()
}

const APPLICATION: [&str; 4] = [
    "fills_a_vector_with_capacity",
    "grows_a_vector_by_pushing",
    "grows_a_map_by_inserting",
    "boxes_and_clones",
];

/// Frames of mapprof's hooks and the allocator shims, as any symbolizer names them.
fn is_mapprofs(name: &str) -> bool {
    [
        "mapprof",
        "sample_alloc",
        "alloc_sampled",
        "__rg_",
        "__rust_alloc",
        "__rust_realloc",
    ]
    .iter()
    .any(|p| name.contains(p))
}

/// The profile's `top` and report as `mapprof top` and `mapprof report` print them.
fn top_and_report(profile: &Profile) -> (String, String) {
    let view = ProfileView::new(profile).unwrap();
    let index = view.sample_index_by_name("alloc_space").unwrap();
    let mut top = Vec::new();
    mapprof_profile::top::top(&view, index, &Default::default())
        .render(&mut top)
        .unwrap();
    let report = mapprof_profile::report::report(&[("heap", profile)], &Default::default())
        .unwrap()
        .to_text();
    (String::from_utf8(top).unwrap(), report)
}

fn write(profile: &Profile, path: &Path) {
    let mut bytes = Vec::new();
    mapprof_profile::codec::encode_gzip(profile, &mut bytes).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn unsymbolized_heap_profiles_name_the_application_offline() {
    let profiler = mapprof::Profiler::builder()
        .heap_rate(1024)
        .symbolize(false)
        .start()
        .unwrap();
    let kept = on_new_thread(workload);
    // Both profiles of the same samples: nothing is sampled in between.
    let (unsymbolized, in_process) = mapprof::ignore(|| {
        let unsymbolized = decoded(ProfileKind::Heap);
        drop(profiler);
        let _profiler = mapprof::Profiler::builder()
            .heap_rate(1024)
            .symbolize(true)
            .start()
            .unwrap();
        (unsymbolized, decoded(ProfileKind::Heap))
    });
    assert!(unsymbolized.function.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("heap.pb.gz");
    write(&unsymbolized, &file);

    // go tool pprof symbolizes from the binary (cmd/pprof's own symbolizer: DWARF names of
    // the functions addresses are in, no inlined frames): the hooks are gone from the leaves,
    // and `drop_frames` drops the allocation plumbing it names, so that flat values land on
    // the functions that called it.
    let top = go_pprof(&["-top", "-sample_index=alloc_space"], &file);
    let rows = top_rows(&top);
    assert!(!rows.is_empty(), "{top}");
    for row in &rows {
        assert!(!is_mapprofs(row), "mapprof's frame in {row:?}:\n{top}");
    }
    let flat = |function: &str| -> Option<&str> {
        let row = rows
            .iter()
            .find(|r| r.ends_with(&format!("  {function}")))?;
        row.split_whitespace().next()
    };
    for function in APPLICATION {
        assert!(flat(function).is_some(), "{function} has a row:\n{top}");
    }
    for function in ["grows_a_vector_by_pushing", "fills_a_vector_with_capacity"] {
        assert_ne!(
            flat(function),
            Some("0"),
            "{function} is charged flat:\n{top}"
        );
    }
    for plumbing in [
        "finish_grow",
        "grow_one",
        "try_allocate_in",
        "reserve_rehash",
    ] {
        assert!(
            matches!(flat(plumbing), None | Some("0")),
            "{plumbing} dropped:\n{top}"
        );
    }
    let traces = go_pprof(&["-traces", "-sample_index=alloc_space"], &file);
    // The frames, after the header (whose comments name mapprof).
    let mut frames = traces
        .lines()
        .skip_while(|l| !l.starts_with("-----------+"));
    assert!(!frames.any(is_mapprofs), "{traces}");

    // `mapprof symbolize`'s code gives what the process would have written.
    let offline =
        mapprof_profile::offline::symbolize(&unsymbolized, &std::env::current_exe().unwrap())
            .unwrap();
    let (top, report) = top_and_report(&offline);
    assert_eq!(
        (&top, &report),
        (
            &top_and_report(&in_process).0,
            &top_and_report(&in_process).1
        )
    );
    for function in APPLICATION {
        assert!(top.contains(function), "{function}:\n{top}");
    }
    drop(kept);
}
