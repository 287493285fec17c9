//! A hand-built profile survives encode → decode unchanged, and `go tool pprof` (an independent
//! reader) reads our encoding and agrees with our `top`.

mod common;

use mapprof_profile::codec::{decode, encode_gzip};
use mapprof_profile::proto::Profile;
use mapprof_profile::testing::{Frame, Loc, ProfileBuilder};
use mapprof_profile::top::{top, Inlining, TopOptions};
use mapprof_profile::view::ProfileView;

/// A map-growth heap profile as mapprof writes one: `RawTable::reserve` inlined into
/// `cache::update` at one address, called from `main`; a second sample allocates in `main`.
fn hand_built() -> Profile {
    let function = |name: &str, system_name: &str, file: &str, line| Frame {
        name: name.into(),
        system_name: system_name.into(),
        file: file.into(),
        line,
    };
    let reserve = function(
        "hashbrown::raw::RawTable<T,A>::reserve",
        "_ZN9hashbrown3raw17RawTable$LT$T$C$A$GT$7reserve17h0123456789abcdefE",
        "/rustc/library/hashbrown/src/raw/mod.rs",
        1043,
    );
    let update = function(
        "demo::cache::update",
        "_ZN4demo5cache6update17h0123456789abcdefE",
        "src/cache.rs",
        88,
    );
    let main = function(
        "demo::main",
        "_ZN4demo4main17h0123456789abcdefE",
        "src/main.rs",
        12,
    );
    // Innermost first: reserve was inlined into update.
    let growth = Loc::inlined([reserve, update]).at_address(0x1234);
    let main = Loc::from(main).at_address(0x2345);
    ProfileBuilder::new(&[("alloc_objects", "count"), ("alloc_space", "bytes")])
        .period("space", "bytes", 524288)
        .default_sample_type("alloc_space")
        .time_nanos(1_700_000_000_000_000_000)
        .mapping(0x1000, 0x9000, "/usr/bin/demo", true)
        .sample(&[growth, main.clone()], &[2, 6144])
        .sample(&[main], &[5, 160])
        .build()
}

#[test]
fn hand_built_profile_round_trips_unchanged() {
    let profile = hand_built();
    let mut bytes = Vec::new();
    encode_gzip(&profile, &mut bytes).unwrap();
    assert_eq!(decode(&bytes).unwrap(), profile);
}

#[test]
fn hand_built_profile_top_is_the_inlined_reserve() {
    let profile = hand_built();
    let view = ProfileView::new(&profile).unwrap();
    assert_eq!(view.kind_name(), "allocs");
    let index = view.default_sample_index();
    assert_eq!(index, 1);
    let table = top(&view, index, &TopOptions::default());
    let rows: Vec<_> = table
        .rows
        .iter()
        .map(|r| (r.name.as_str(), r.flat, r.cum, r.inlining))
        .collect();
    assert_eq!(
        rows,
        [
            (
                "hashbrown::raw::RawTable<T,A>::reserve",
                6144,
                6144,
                Inlining::Always
            ),
            ("demo::main", 160, 6304, Inlining::No),
            ("demo::cache::update", 0, 6144, Inlining::No),
        ]
    );
}

#[test]
fn go_tool_pprof_reads_our_encoding_and_agrees_with_our_top() {
    let profile = hand_built();
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("roundtrip-hand-built.pb.gz");
    let mut file = std::fs::File::create(&path).unwrap();
    encode_gzip(&profile, &mut file).unwrap();
    drop(file);

    let view = ProfileView::new(&profile).unwrap();
    // By bytes the inlined reserve leads; by objects, main's five small allocations do.
    for (name, expected_first) in [
        (
            "alloc_space",
            "hashbrown::raw::RawTable<T,A>::reserve (inline)",
        ),
        ("alloc_objects", "demo::main"),
    ] {
        let go = common::go_pprof_top(&path, name);
        let table = common::table_part(&go);
        let first_row = table
            .lines()
            .skip_while(|l| !l.trim_start().starts_with("flat"))
            .nth(1)
            .unwrap_or_else(|| panic!("no rows in:\n{go}"));
        assert!(
            first_row.ends_with(&format!("  {expected_first}")),
            "first row of go tool pprof -top -sample_index={name}: {first_row:?}\n{go}"
        );

        let mut ours = Vec::new();
        let index = view.sample_index_by_name(name).unwrap();
        top(&view, index, &TopOptions::default())
            .render(&mut ours)
            .unwrap();
        assert_eq!(
            common::table_part(&String::from_utf8(ours).unwrap()),
            table,
            "sample type {name}"
        );
    }
}
