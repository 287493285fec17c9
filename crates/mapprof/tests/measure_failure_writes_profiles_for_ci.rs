//! With `MAPPROF_TEST_ARTIFACTS=dir`, a failing assertion writes the measurement's profiles
//! (gzipped pprof and SVG flame graph, named after the test) before it panics, and its message
//! names them; a directory that cannot be written is said so, after the assertion's own
//! message. One test: it sets the environment variable.

use mapprof::testing::{measure, Container, ARTIFACTS_ENV};
use mapprof_profile::codec;
use mapprof_profile::view::ProfileView;
use std::collections::HashMap;
use std::hint::black_box;

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::system();

const TEST: &str = "a_failing_assertion_writes_the_profiles_it_names";

#[inline(never)]
fn allocate_boxes(n: u64) {
    for i in 0..n {
        black_box(Box::new(i));
    }
}

#[inline(never)]
fn fill_a_map(n: u64) -> usize {
    let mut map = HashMap::new();
    for i in 0..n {
        map.insert(i, i);
    }
    black_box(map).len()
}

fn panic_message(f: impl FnOnce() + std::panic::UnwindSafe) -> String {
    *std::panic::catch_unwind(f)
        .err()
        .and_then(|p| p.downcast::<String>().ok())
        .expect("the assertion fails")
}

/// The profile's samples whose stack names `function`: (first value, second value) summed.
fn values_under(view: &ProfileView<'_>, function: &str) -> (i64, i64) {
    view.samples()
        .filter(|s| s.frames().any(|f| f.function.ends_with(function)))
        .fold((0, 0), |(a, b), s| (a + s.value(0), b + s.value(1)))
}

#[test]
fn a_failing_assertion_writes_the_profiles_it_names() {
    let dir = tempfile::tempdir().unwrap();
    // The only test of this binary: nothing else reads the environment meanwhile.
    std::env::set_var(ARTIFACTS_ENV, dir.path());
    let m = measure(|| {
        allocate_boxes(100);
        fill_a_map(1000)
    });
    assert_eq!(m.unattributed, 0);
    let message = panic_message(|| m.assert_allocations_at_most(10));
    assert!(
        message.starts_with("expected at most 10 allocations"),
        "{message}"
    );

    let allocs = dir.path().join(format!("{TEST}.allocs.pb.gz"));
    let svg = dir.path().join(format!("{TEST}.allocs.svg"));
    let resize = dir.path().join(format!("{TEST}.resize.pb.gz"));
    for path in [&allocs, &svg, &resize] {
        assert!(message.contains(&path.display().to_string()), "{message}");
    }

    let profile = codec::read_file(&allocs).unwrap();
    let view = ProfileView::unpruned(&profile).unwrap();
    assert_eq!(view.sample_types()[0].name, "alloc_objects");
    assert_eq!(view.total(0) as u64, m.allocations + m.reallocs);
    assert_eq!(view.total(1) as u64, m.bytes + m.realloc_bytes);
    assert_eq!(values_under(&view, "allocate_boxes"), (100, 800));

    let resize = codec::read_file(&resize).unwrap();
    let view = ProfileView::unpruned(&resize).unwrap();
    let growths = m.growths_of(Container::HashMap);
    assert!(growths >= 6, "{m:#?}");
    assert_eq!(values_under(&view, "fill_a_map").0 as u64, growths);

    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(
        svg.starts_with("<?xml") && svg.contains("<svg"),
        "{svg:.200}"
    );
    assert!(svg.contains("allocate_boxes"));
    assert!(svg.contains(TEST));

    // A directory that cannot be made: said so, and the assertion's message still comes first.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    std::env::set_var(ARTIFACTS_ENV, file.join("artifacts"));
    let message = panic_message(|| m.assert_allocations_at_most(10));
    assert!(
        message.starts_with("expected at most 10 allocations"),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "profiles not written ({ARTIFACTS_ENV}): cannot write {}: ",
            file.join("artifacts").display()
        )),
        "{message}"
    );
}
