//! Labels set on one thread never appear on another thread's samples: three threads allocate
//! through the same function at the same time, one labelled trace_id=abc, one trace_id=xyz,
//! one not at all; with every allocation sampled, each label carries exactly its thread's
//! allocations, in mapprof's decoding and in `go tool pprof -tagfocus`, and `-tags` lists the
//! keys; the resize profile keeps them. Nested guards merge with the outer labels and restore
//! them.

mod common;
use common::*;
use mapprof::ProfileKind;
use std::sync::{Arc, Barrier};

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::system();

const N: usize = 5_000;

#[inline(never)]
fn allocate_some(start: &Barrier) {
    start.wait();
    for i in 0..N {
        let v: Vec<u8> = Vec::with_capacity(16 + i % 64);
        std::hint::black_box(&v);
        if i % 500 == 0 {
            std::thread::yield_now(); // interleave the threads
        }
    }
}

/// Container growth, which the resize profile derives from the allocs profile.
#[inline(never)]
fn grow_a_vec() {
    let mut v = Vec::new();
    for i in 0..4096u32 {
        v.push(i);
    }
    std::hint::black_box(&v);
}

#[test]
fn labels_set_on_one_thread_never_appear_on_another() {
    // Nested guards merge, inner values winning, and restore on drop.
    assert!(mapprof::current_labels().is_empty());
    {
        let _outer = mapprof::set_labels(&[("trace_id", "t1"), ("route", "/item GET")]);
        let inner = mapprof::labels(&[("trace_id", "t2"), ("tenant", "x")], || {
            mapprof::current_labels()
        });
        let pairs = |p: &[(&str, &str)]| -> Vec<(String, String)> {
            p.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            inner,
            pairs(&[("route", "/item GET"), ("tenant", "x"), ("trace_id", "t2")])
        );
        assert_eq!(
            mapprof::current_labels(),
            pairs(&[("route", "/item GET"), ("trace_id", "t1")])
        );
    }
    assert!(mapprof::current_labels().is_empty());

    let _p = mapprof::Profiler::builder().heap_rate(1).start().unwrap();
    let start = Arc::new(Barrier::new(3));
    let threads: Vec<_> = [Some("abc"), Some("xyz"), None]
        .into_iter()
        .map(|trace_id| {
            let start = start.clone();
            std::thread::spawn(move || {
                // The thread's first sample looks up its stack bounds; then the workload.
                std::hint::black_box(Vec::<u8>::with_capacity(8));
                match trace_id {
                    Some(id) => {
                        mapprof::labels(&[("trace_id", id), ("route", "/item GET")], || {
                            allocate_some(&start);
                            if id == "abc" {
                                grow_a_vec();
                            }
                        })
                    }
                    None => allocate_some(&start),
                }
                assert!(mapprof::current_labels().is_empty());
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }

    let allocs = decoded(ProfileKind::Allocs);
    let objects = |want: Option<&str>| {
        total_labelled(&allocs, "alloc_objects", "allocate_some", |l| {
            label(l, "trace_id") == want && label(l, "route").is_some() == want.is_some()
        })
    };
    assert_eq!(objects(Some("abc")), N as i64);
    assert_eq!(objects(Some("xyz")), N as i64);
    assert_eq!(objects(None), N as i64);
    assert_eq!(
        total_through(&allocs, "alloc_objects", "allocate_some"),
        3 * N as i64
    );

    // The resize profile keeps the labels of the samples it is derived from.
    let resize = decoded(ProfileKind::Resize);
    let grown = total_through(&resize, "resizes", "grow_a_vec");
    assert!(grown > 0, "no growth found in grow_a_vec");
    assert_eq!(
        total_labelled(&resize, "resizes", "grow_a_vec", |l| {
            label(l, "trace_id") == Some("abc") && label(l, "container") == Some("Vec")
        }),
        grown
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("allocs.pb.gz");
    mapprof::write_profile_to_path(ProfileKind::Allocs, &file).unwrap();
    let top = go_pprof(
        &[
            "-top",
            "-sample_index=alloc_objects",
            "-tagfocus=trace_id=abc",
            "-focus=allocate_some",
        ],
        &file,
    );
    let header = top
        .lines()
        .find(|l| l.starts_with("Showing nodes accounting for"))
        .unwrap_or_else(|| panic!("{top}"));
    assert!(
        header.starts_with(&format!("Showing nodes accounting for {N},")),
        "-tagfocus=trace_id=abc should keep exactly thread A's {N} allocations:\n{top}"
    );
    let tags = go_pprof(&["-tags"], &file);
    for key in ["trace_id:", "route:", "bytes:"] {
        assert!(tags.contains(key), "{key} missing from -tags:\n{tags}");
    }
    for value in ["abc", "xyz", "/item GET"] {
        assert!(tags.contains(value), "{value} missing from -tags:\n{tags}");
    }
}
