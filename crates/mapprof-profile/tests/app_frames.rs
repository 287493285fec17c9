//! Application-frame ranking ([`app_top`]) of the profiles Go wrote (fixtures/go-heap): every
//! byte and every nanosecond lands on a `main.*` function or is counted as unattributed, and
//! the ranking agrees with what the fixture does (see `go_profiles.rs` for the fixture).

mod common;

use mapprof_profile::app::{app_top, AppFilter, AppTop};
use mapprof_profile::codec::read_file;
use mapprof_profile::view::ProfileView;

fn rows(top: &AppTop) -> Vec<(&str, i64, usize, i64)> {
    top.rows
        .iter()
        .map(|r| (r.function.as_str(), r.value, r.samples, r.line))
        .collect()
}

fn assert_adds_up(top: &AppTop) {
    let charged: i64 = top.rows.iter().map(|r| r.value).sum();
    assert_eq!(charged + top.unattributed, top.total, "{top:?}");
    let samples: usize = top.rows.iter().map(|r| r.samples).sum();
    assert_eq!(samples + top.unattributed_samples, top.samples, "{top:?}");
    let shares: f64 = top.rows.iter().map(|r| r.share).sum();
    assert!(
        (shares + top.unattributed_share() - 1.0).abs() < 1e-9,
        "{top:?}"
    );
}

#[test]
fn go_heap_allocations_are_charged_to_main_functions() {
    let profile = read_file(common::data("go-heap.pb.gz")).unwrap();
    // Unpruned: the allocator's frames are in the stacks and must be skipped by the filter.
    let view = ProfileView::unpruned(&profile).unwrap();
    let index = view.sample_index_by_name("alloc_space").unwrap();
    let top = app_top(&view, index, &AppFilter::default());
    assert_adds_up(&top);
    assert_eq!(top.unit, "bytes");
    // The 4 KiB slices and the growth of the slice retaining them (13 samples, main.go:28);
    // the 1 KiB slices and their retaining slice (main.go:35); the lock contention's sudog
    // (sync.(*Mutex).Lock inlined into holdLock at main.go:43) and timer; the goroutines'
    // closures.
    assert_eq!(
        rows(&top),
        [
            ("main.allocLarge", 4_272_104, 13, 28),
            ("main.allocSmall", 1_097_728, 2, 35),
            ("main.holdLock", 704, 2, 43),
            ("main.contend", 80, 2, 52),
        ]
    );
    assert!(
        top.rows[0].file.ends_with("fixtures/go-heap/main.go"),
        "{top:?}"
    );
    assert!((top.rows[0].share - 0.795).abs() < 0.001, "{top:?}");
    // Runtime-only stacks: the timer, allgadd, a GC worker, goroutine stacks (malg).
    assert_eq!((top.unattributed, top.unattributed_samples), (3120, 4));
}

#[test]
fn go_heap_pruned_and_unpruned_views_rank_alike() {
    let profile = read_file(common::data("go-heap.pb.gz")).unwrap();
    let pruned = ProfileView::new(&profile).unwrap();
    let unpruned = ProfileView::unpruned(&profile).unwrap();
    for index in 0..pruned.sample_types().len() {
        let a = app_top(&pruned, index, &AppFilter::default());
        let b = app_top(&unpruned, index, &AppFilter::default());
        assert_adds_up(&a);
        assert_eq!(a, b, "sample type {index}");
        assert!(
            a.top().is_none_or(|r| r.function.starts_with("main.")),
            "{a:?}"
        );
    }
}

#[test]
fn go_mutex_delay_is_charged_to_hold_lock_not_unlock() {
    let profile = read_file(common::data("go-mutex.pb.gz")).unwrap();
    let view = ProfileView::unpruned(&profile).unwrap();
    let top = app_top(&view, view.default_sample_index(), &AppFilter::default());
    assert_adds_up(&top);
    // pprof's top names sync.(*Mutex).Unlock (inlined into holdLock); the application
    // function is holdLock, at the line of that Unlock.
    assert_eq!(rows(&top), [("main.holdLock", 173_653_800, 1, 45)]);
    assert_eq!(top.rows[0].share, 1.0);
    assert_eq!(top.unattributed, 0);
}

#[test]
fn treating_main_as_a_library_leaves_nothing_attributed() {
    let profile = read_file(common::data("go-heap.pb.gz")).unwrap();
    let view = ProfileView::unpruned(&profile).unwrap();
    let top = app_top(&view, 1, &AppFilter::default().with_library("main"));
    assert!(top.rows.is_empty(), "{top:?}");
    assert_eq!(top.unattributed, top.total);
}
