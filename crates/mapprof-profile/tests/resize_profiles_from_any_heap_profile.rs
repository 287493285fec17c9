//! `resize_profile` takes any heap profile: a Go heap profile or an unsymbolized one gives an
//! empty but valid resize profile that `go tool pprof` reads; a symbolized one keeps its growth;
//! and whatever `decode` accepts, the derived profile is valid and nothing panics.

mod common;

use mapprof_profile::builder::{self, BuildOptions};
use mapprof_profile::codec::{decode, encode_gzip, read_file};
use mapprof_profile::heap::{self, HeapRecord, HeapView};
use mapprof_profile::proto::Profile;
use mapprof_profile::resize::resize_profile;
use mapprof_profile::symbolize::Symbolizer;
use mapprof_profile::testing::{frame, str_label, Frame, Loc, ProfileBuilder};
use mapprof_profile::view::ProfileView;
use prost::Message;

fn assert_empty_resize_profile(resize: &Profile, period: i64) {
    let view = ProfileView::new(resize).expect("a valid profile");
    assert_eq!(view.kind_name(), "resize");
    let types: Vec<_> = view
        .sample_types()
        .iter()
        .map(|t| (t.name, t.unit))
        .collect();
    assert_eq!(types, [("resizes", "count"), ("resize_space", "bytes")]);
    assert_eq!(resize.period, period);
    assert!(resize.sample.is_empty(), "{:?}", resize.sample);
    assert!(resize.location.is_empty() && resize.function.is_empty());
    assert!(resize.mapping.is_empty());
}

#[test]
fn a_go_heap_profile_gives_an_empty_resize_profile_go_reads() {
    // Go's slices grow in runtime.growslice; the rules are Rust's, so nothing is classified.
    let go = read_file(common::data("go-heap.pb.gz")).unwrap();
    assert!(!go.sample.is_empty());
    let resize = resize_profile(&go);
    assert_empty_resize_profile(&resize, go.period);
    let dir = tempfile_dir();
    let path = dir.join("go-resize.pb.gz");
    encode_gzip(&resize, &mut std::fs::File::create(&path).unwrap()).unwrap();
    let report = common::go_pprof_top(&path, "resizes");
    assert!(report.contains("Type: resizes"), "{report}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_unsymbolized_heap_profile_gives_an_empty_resize_profile() {
    // What mapprof writes with symbolize=false: addresses and mappings, no names; one of the
    // samples was taken in realloc, which alone says nothing about a container.
    let records: Vec<HeapRecord> = [0x1000u64, 0x2000]
        .iter()
        .enumerate()
        .map(|(i, &pc)| HeapRecord {
            stack: vec![pc, 0x3000],
            alloc_objects: 16.0,
            alloc_bytes: 4096.0,
            free_objects: 0.0,
            free_bytes: 0.0,
            lost: false,
            realloc: i == 1,
        })
        .collect();
    let profile = builder::build(
        &heap::header(524288, HeapView::Allocs),
        heap::samples(&records),
        BuildOptions { symbolize: false },
        &mut Symbolizer::new(),
    );
    assert_eq!(profile.sample.len(), 2);
    let labels: Vec<&str> = profile.sample[1]
        .label
        .iter()
        .map(|l| profile.string_table[l.key as usize].as_str())
        .collect();
    assert!(labels.contains(&"alloc"), "{labels:?}");
    assert_empty_resize_profile(&resize_profile(&profile), 524288);
}

/// A symbolized allocs profile: `reserve_rehash` inlined into `HashMap::insert` inlined into
/// `demo::fill`; a realloc in `demo::raw`; a plain allocation in `demo::fill`.
fn symbolized() -> Profile {
    let loc = |address, names: &[&str]| {
        Loc::inlined(names.iter().map(|&name| Frame {
            system_name: name.into(),
            line: 7,
            ..frame(name)
        }))
        .at_address(address)
    };
    let growth = loc(
        0x1000,
        &[
            "hashbrown::raw::RawTable<T,A>::reserve_rehash",
            "std::collections::hash::map::HashMap<K,V,S>::insert",
            "demo::fill",
        ],
    );
    let realloc = loc(0x2000, &["alloc::alloc::realloc", "demo::raw"]);
    let alloc = loc(0x3000, &["alloc::alloc::alloc", "demo::fill"]);
    ProfileBuilder::new(&[("alloc_objects", "count"), ("alloc_space", "bytes")])
        .period("space", "bytes", 1)
        .sample(&[growth], &[16, 1 << 20])
        .labelled_sample(&[realloc], &[1, 4096], &[str_label("alloc", "realloc")])
        .sample(&[alloc], &[5, 500])
        .build()
}

#[test]
fn a_symbolized_profile_keeps_its_growth_and_any_decodable_input_gives_a_valid_profile() {
    let profile = symbolized();
    let resize = resize_profile(&profile);
    let view = ProfileView::new(&resize).unwrap();
    let containers: Vec<(&str, i64)> = view
        .samples()
        .map(|s| {
            let label = s
                .raw()
                .label
                .iter()
                .find(|l| view.string(l.key) == "container");
            (label.map_or("", |l| view.string(l.str)), s.value(0))
        })
        .collect();
    assert_eq!(containers, [("HashMap", 16), ("realloc", 1)]);

    // Corrupt the encoding: whatever still decodes derives a valid resize profile.
    let raw = profile.encode_to_vec();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let mut decoded = 0;
    for _ in 0..3000 {
        let mut bytes = raw.clone();
        for _ in 0..1 + next() % 3 {
            let at = (next() % bytes.len() as u64) as usize;
            bytes[at] = next() as u8;
        }
        if let Ok(p) = decode(&bytes) {
            decoded += 1;
            let resize = resize_profile(&p);
            ProfileView::new(&resize).expect("the derived profile is valid");
        }
    }
    assert!(decoded > 0);
}

/// A directory of this test process's own under the system's temp directory.
fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mapprof-resize-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
