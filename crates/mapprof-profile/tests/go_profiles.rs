//! Profiles written by Go (fixtures/go-heap) read, tabulated and rendered by mapprof-profile.
//!
//! In the fixture, `allocLarge` makes 1024 slices of 4 KiB and `allocSmall` 1024 slices of 1 KiB
//! (plus the growth of the slice that retains them), with `runtime.MemProfileRate = 1`, so every
//! allocation is in the profile; the mutex profile records every contention on a lock that
//! `holdLock` keeps for 2 ms.

mod common;

use mapprof_profile::codec::read_file;
use mapprof_profile::flame::{self, FlameOptions};
use mapprof_profile::top::{top, Inlining, TopOptions};
use mapprof_profile::view::ProfileView;
use quick_xml::events::Event;

fn render_top(view: &ProfileView<'_>, index: usize) -> String {
    let mut out = Vec::new();
    top(view, index, &TopOptions::default())
        .render(&mut out)
        .unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn go_heap_profile_top_names_the_big_allocator_first() {
    let profile = read_file(common::data("go-heap.pb.gz")).unwrap();
    let view = ProfileView::new(&profile).unwrap();
    let names: Vec<_> = view.sample_types().iter().map(|t| t.name).collect();
    assert_eq!(
        names,
        [
            "alloc_objects",
            "alloc_space",
            "inuse_objects",
            "inuse_space"
        ]
    );
    // Go's heap profile has no default_sample_type: pprof shows the last, inuse_space.
    assert_eq!(view.default_sample_index(), 3);
    assert_eq!(view.kind_name(), "heap");

    let index = view.sample_index_by_name("alloc_space").unwrap();
    let table = top(&view, index, &TopOptions::default());
    assert_eq!(table.unit, "bytes");
    assert_eq!(table.rows[0].name, "main.allocLarge");
    assert_eq!(table.rows[1].name, "main.allocSmall");
    // 1024 x 4 KiB, plus the growth of the retaining slice, which happens in allocLarge.
    assert!(table.rows[0].flat >= 4 << 20, "{:?}", table.rows[0]);
    assert!(table.rows[1].flat >= 1 << 20, "{:?}", table.rows[1]);
    assert!(table.rows[0].flat < 5 << 20, "{:?}", table.rows[0]);
    assert_eq!(table.rows[0].cum, table.rows[0].flat);
    let main = table.rows.iter().find(|r| r.name == "main.main").unwrap();
    assert_eq!(main.flat, 0);
    assert!(main.cum >= table.rows[0].flat + table.rows[1].flat);
}

#[test]
fn go_heap_profile_top_matches_go_tool_pprof() {
    let path = common::data("go-heap.pb.gz");
    let profile = read_file(&path).unwrap();
    let view = ProfileView::new(&profile).unwrap();
    for name in ["alloc_space", "alloc_objects", "inuse_space"] {
        let index = view.sample_index_by_name(name).unwrap();
        let ours = render_top(&view, index);
        let go = common::go_pprof_top(&path, name);
        assert_eq!(
            common::table_part(&ours),
            common::table_part(&go),
            "sample type {name}"
        );
    }
}

#[test]
fn go_mutex_profile_charges_the_unlock_inlined_into_hold_lock() {
    let path = common::data("go-mutex.pb.gz");
    let profile = read_file(&path).unwrap();
    let view = ProfileView::new(&profile).unwrap();
    assert_eq!(view.kind_name(), "contention");
    let index = view.default_sample_index();
    assert_eq!(view.sample_types()[index].name, "delay");
    let table = top(&view, index, &TopOptions::default());
    assert_eq!(table.rows[0].name, "sync.(*Mutex).Unlock");
    assert_eq!(table.rows[0].inlining, Inlining::Always);
    // 4 goroutines x 20 rounds of a 2 ms hold: waiters wait a good part of that.
    assert!(table.rows[0].flat > 10_000_000, "{:?}", table.rows[0]);
    assert!(table.rows.iter().any(|r| r.name == "main.holdLock"));
    assert_eq!(
        common::table_part(&render_top(&view, index)),
        common::table_part(&common::go_pprof_top(&path, "delay"))
    );
}

/// Parses `svg` as XML (failing on malformed XML) and returns the text of `<text id="title">`
/// and of every `<title>` element.
fn svg_titles(svg: &str) -> (String, Vec<String>) {
    let mut reader = quick_xml::Reader::from_str(svg);
    let mut graph_title = String::new();
    let mut titles = Vec::new();
    let (mut in_graph_title, mut in_title) = (false, false);
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                in_title = e.name().as_ref() == b"title";
                in_graph_title = e.name().as_ref() == b"text"
                    && e.attributes()
                        .flatten()
                        .any(|a| a.key.as_ref() == b"id" && a.value.as_ref() == b"title");
            }
            Ok(Event::Text(t)) => {
                let text = t.decode().unwrap().into_owned();
                if in_graph_title {
                    graph_title.push_str(&text);
                }
                if in_title {
                    titles.push(text);
                }
            }
            Ok(Event::End(_)) => (in_title, in_graph_title) = (false, false),
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!(
                "flame graph is not well-formed XML at {}: {e}",
                reader.buffer_position()
            ),
        }
    }
    (graph_title, titles)
}

#[test]
fn go_heap_flame_graph_is_well_formed_svg_titled_with_the_sample_type() {
    let profile = read_file(common::data("go-heap.pb.gz")).unwrap();
    let view = ProfileView::new(&profile).unwrap();
    let index = view.sample_index_by_name("alloc_space").unwrap();

    let folded = flame::folded_stacks(&view, index);
    let large = folded
        .iter()
        .find(|l| l.starts_with("runtime.main;main.main;main.allocLarge "))
        .expect("a stack for allocLarge");
    let value: u64 = large.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(value >= 4 << 20, "{large}");

    let mut svg = Vec::new();
    flame::render_svg(&view, index, &FlameOptions::default(), &mut svg).unwrap();
    let svg = String::from_utf8(svg).unwrap();
    let (graph_title, titles) = svg_titles(&svg);
    assert_eq!(graph_title, "heap profile — alloc_space (bytes)");
    assert!(
        titles
            .iter()
            .any(|t| t.starts_with("main.allocLarge (") && t.contains(" bytes, ")),
        "no frame tooltip for main.allocLarge in {titles:?}"
    );
}

#[test]
fn empty_sample_type_renders_a_no_samples_svg() {
    let mut profile = read_file(common::data("go-heap.pb.gz")).unwrap();
    profile.sample.clear();
    let view = ProfileView::new(&profile).unwrap();
    let mut svg = Vec::new();
    flame::render_svg(&view, 1, &FlameOptions::default(), &mut svg).unwrap();
    let (graph_title, titles) = svg_titles(&String::from_utf8(svg).unwrap());
    assert_eq!(graph_title, "heap profile — alloc_space (bytes)");
    assert_eq!(titles, ["heap profile — alloc_space (bytes)"]);
}
