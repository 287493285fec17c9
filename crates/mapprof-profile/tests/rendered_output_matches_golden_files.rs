//! `top`, `report` (text and JSON), folded stacks and a flame graph of fixed hand-built profiles,
//! compared with the files under `tests/golden/`: a change to any of them shows as a diff to
//! review. `MAPPROF_BLESS=1 cargo test -p mapprof-profile --test
//! rendered_output_matches_golden_files` rewrites them.

mod common;

use common::assert_golden;
use mapprof_profile::flame::{folded_stacks, render_svg, FlameOptions};
use mapprof_profile::proto::Profile;
use mapprof_profile::report::{report, ReportOptions};
use mapprof_profile::testing::{at, num_label, Loc, ProfileBuilder};
use mapprof_profile::top::{top, TopOptions};
use mapprof_profile::view::ProfileView;

const MAIN: (&str, &str, i64) = ("cache_service::main", "src/main.rs", 10);

/// A heap profile at `heap_rate=1`: a map grown from empty on every update (one sample per size
/// class, as mapprof keeps them), strings cloned by `get`, a vector grown while parsing, and a
/// little allocated by the runtime alone.
fn heap() -> Profile {
    let main = at(MAIN.0, MAIN.1, MAIN.2);
    let update = at("cache_service::cache::Cache::update", "src/cache.rs", 42);
    let insert = [
        Loc::from("hashbrown::raw::RawTableInner::resize_inner"),
        "hashbrown::raw::RawTable<T,A>::reserve_rehash".into(),
        "hashbrown::map::HashMap<K,V,S,A>::insert".into(),
        "std::collections::hash::map::HashMap<K,V,S,A>::insert".into(),
        update,
        main.clone(),
    ];
    let push = [
        Loc::from("alloc::raw_vec::RawVecInner<A>::finish_grow"),
        "alloc::raw_vec::RawVec<T,A>::grow_one".into(),
        "alloc::vec::Vec<T,A>::push".into(),
        at("cache_service::parse::parse_line", "src/parse.rs", 7),
        main.clone(),
    ];
    let clone = [
        Loc::from("alloc::alloc::alloc"),
        "<alloc::string::String as core::clone::Clone>::clone".into(),
        at("cache_service::cache::Cache::get", "src/cache.rs", 20),
        main,
    ];
    let mut b = ProfileBuilder::new(&[
        ("alloc_objects", "count"),
        ("alloc_space", "bytes"),
        ("inuse_objects", "count"),
        ("inuse_space", "bytes"),
    ])
    .period("space", "bytes", 1)
    .default_sample_type("inuse_space");
    // 100 maps, each grown through every class from 64 B to 8 KiB; the last table stays.
    for class in 6..=13 {
        let bytes = 1i64 << class;
        let inuse = if class == 13 { 100 } else { 0 };
        let labels = [num_label("bytes", bytes, None)];
        b = b.labelled_sample(&insert, &[100, 100 * bytes, inuse, inuse * bytes], &labels);
    }
    for bytes in [16i64, 32, 64] {
        let labels = [num_label("bytes", bytes, None)];
        b = b.labelled_sample(&push, &[300, 300 * bytes, 0, 0], &labels);
    }
    b.labelled_sample(
        &clone,
        &[5000, 160_000, 2000, 64_000],
        &[num_label("bytes", 32, None)],
    )
    .names(
        &["alloc::alloc::alloc", "std::rt::lang_start"],
        &[10, 1000, 10, 1000],
    )
    .build()
}

/// A mutex profile: `update` holds the lock most of the delay, `get` a little.
fn mutex() -> Profile {
    let main = at(MAIN.0, MAIN.1, MAIN.2);
    ProfileBuilder::new(&[("contentions", "count"), ("delay", "nanoseconds")])
        .period("contentions", "count", 1)
        .comment("mapprof mutex profile")
        .sample(
            &[
                at("cache_service::cache::Cache::update", "src/cache.rs", 45),
                main.clone(),
            ],
            &[200, 500_000_000],
        )
        .sample(
            &[
                at("cache_service::cache::Cache::get", "src/cache.rs", 21),
                main,
            ],
            &[20, 10_000_000],
        )
        .build()
}

fn alloc_space(view: &ProfileView<'_>) -> usize {
    view.sample_index_by_name("alloc_space").unwrap()
}

#[test]
fn top_table() {
    let heap = heap();
    let view = ProfileView::new(&heap).unwrap();
    let mut out = Vec::new();
    top(&view, alloc_space(&view), &TopOptions::default())
        .render(&mut out)
        .unwrap();
    assert_golden("top.txt", &String::from_utf8(out).unwrap());
}

#[test]
fn report_text_and_json() {
    let (heap, mutex) = (heap(), mutex());
    let inputs = [("heap.pb.gz", &heap), ("mutex.pb.gz", &mutex)];
    let r = report(&inputs, &ReportOptions::default()).unwrap();
    assert_golden("report.txt", &r.to_text());
    assert_golden(
        "report.json",
        &(serde_json::to_string_pretty(&r).unwrap() + "\n"),
    );
}

#[test]
fn folded_stacks_and_flame_graph() {
    let heap = heap();
    let view = ProfileView::new(&heap).unwrap();
    let index = alloc_space(&view);
    assert_golden(
        "folded.txt",
        &(folded_stacks(&view, index).join("\n") + "\n"),
    );
    let mut svg = Vec::new();
    render_svg(&view, index, &FlameOptions::default(), &mut svg).unwrap();
    assert_golden("flame.svg", &String::from_utf8(svg).unwrap());
}
