//! CPU samples carry the labels their thread had when the signal landed, and no other
//! thread's. Three threads spin in distinct functions for 1.5 s under a 250 Hz CPU profile:
//! one under a fixed `trace_id=steady`, one that changes its labels every few hundred
//! microseconds (64 trace ids in turn, so that signals land in the middle of `labels` guards
//! being made and dropped, and most sets are first interned by the signal handler), one with
//! none. Every sample through each spinner must carry exactly its thread's labels (the
//! changing thread's may read `mapprof_labels=overflow` when the signal caught a guard being
//! made or dropped, but no other thread's labels, and never none), the signal handler's frames
//! must not show, and `go tool pprof -tagfocus` must select by them.
#![cfg(feature = "jemalloc")]

mod common;
use common::*;
use mapprof_profile::proto::Profile;
use mapprof_profile::view::ProfileView;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::jemalloc();

const HZ: u32 = 250;

#[inline(never)]
fn spin_steady(stop: &AtomicBool) -> u64 {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    while !stop.load(Relaxed) {
        for _ in 0..1000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x = std::hint::black_box(x);
        }
    }
    x
}

/// Spins a little: about 100 µs.
#[inline(never)]
fn spin_changing(rounds: u64) -> u64 {
    let mut x = 1u64;
    for i in 0..rounds {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
    }
    x
}

#[inline(never)]
fn spin_unlabelled(stop: &AtomicBool) -> u64 {
    let mut x = 7u64;
    let mut d = 3u64;
    while !stop.load(Relaxed) {
        for _ in 0..1000 {
            x = std::hint::black_box(x.wrapping_add(u64::MAX / d));
            d = d % 1_000_003 + 3;
        }
    }
    x
}

/// (samples, labels) of each sample through `function`.
fn samples_through(profile: &Profile, function: &str) -> Vec<(i64, Vec<(String, String)>)> {
    let view = ProfileView::new(profile).unwrap();
    view.samples()
        .filter(|s| s.frames().any(|f| f.function.contains(function)))
        .map(|s| {
            let labels = s
                .raw()
                .label
                .iter()
                .map(|l| (view.string(l.key).to_owned(), view.string(l.str).to_owned()))
                .collect();
            (s.value(0), labels)
        })
        .collect()
}

#[test]
fn cpu_samples_carry_their_threads_labels() {
    let trace_ids: Vec<String> = (0..64).map(|i| format!("changing-{i}")).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let steady = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            mapprof::labels(&[("trace_id", "steady"), ("route", "/spin")], || {
                spin_steady(&stop)
            })
        })
    };
    let changing = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut x = 0;
            for id in trace_ids.iter().cycle() {
                if stop.load(Relaxed) {
                    break;
                }
                x ^= mapprof::labels(&[("trace_id", id)], || spin_changing(50_000));
            }
            x
        })
    };
    let unlabelled = {
        let stop = stop.clone();
        std::thread::spawn(move || spin_unlabelled(&stop))
    };
    let profile = mapprof::cpu_profile(Duration::from_millis(1500), HZ).expect("cpu profile");
    stop.store(true, Relaxed);
    for t in [steady, changing, unlabelled] {
        t.join().unwrap();
    }
    let mut bytes = Vec::new();
    mapprof_profile::codec::encode_gzip(&profile, &mut bytes).unwrap();
    let profile = mapprof_profile::codec::decode(&bytes).expect("decodes");

    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let steady = samples_through(&profile, "spin_steady");
    let total = |s: &[(i64, Vec<(String, String)>)]| s.iter().map(|(n, _)| n).sum::<i64>();
    assert!(total(&steady) >= 20, "too few samples: {steady:?}");
    let mut unlabelled_labelled_threads = 0;
    for (n, labels) in &steady {
        if labels.is_empty() {
            unlabelled_labelled_threads += n;
            continue;
        }
        assert_eq!(
            labels,
            &pairs(&[("route", "/spin"), ("trace_id", "steady")])
        );
    }

    let unlabelled = samples_through(&profile, "spin_unlabelled");
    assert!(total(&unlabelled) >= 20, "too few samples: {unlabelled:?}");
    for (_, labels) in &unlabelled {
        assert!(labels.is_empty(), "{labels:?}");
    }

    let changing = samples_through(&profile, "spin_changing");
    assert!(total(&changing) >= 20, "too few samples: {changing:?}");
    let overflow = pairs(&[("mapprof_labels", "overflow")]);
    let mut ids = std::collections::BTreeSet::new();
    let mut overflowed = 0;
    for (n, labels) in &changing {
        if labels.is_empty() {
            unlabelled_labelled_threads += n;
            continue;
        }
        if labels == &overflow {
            overflowed += n;
            continue;
        }
        assert_eq!(labels.len(), 1, "{labels:?}");
        assert_eq!(labels[0].0, "trace_id");
        assert!(labels[0].1.starts_with("changing-"), "{labels:?}");
        ids.insert(labels[0].1.clone());
    }
    eprintln!(
        "samples: steady {}, unlabelled {}, changing {} ({} trace ids, {overflowed} overflowed)",
        total(&steady),
        total(&unlabelled),
        total(&changing),
        ids.len()
    );
    assert_eq!(
        unlabelled_labelled_threads, 0,
        "samples of labelled threads without labels"
    );
    assert!(
        ids.len() >= 5,
        "the changing thread's samples name too few ids: {ids:?}"
    );
    assert!(
        overflowed * 10 <= total(&changing),
        "{overflowed} overflowed"
    );

    // Stacks start at the interrupted code, not in the signal handler.
    for f in &profile.function {
        let name = &profile.string_table[f.name as usize];
        assert!(!name.contains("on_sigprof"), "{name}");
    }

    // go tool pprof selects by them.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cpu.pb.gz");
    std::fs::write(&file, &bytes).unwrap();
    let out = go_pprof(&["-top", "-tagfocus=trace_id=steady"], &file);
    let rows = top_rows(&out);
    assert!(rows.iter().any(|r| r.ends_with("spin_steady")), "{out}");
    assert!(
        !rows
            .iter()
            .any(|r| r.ends_with("spin_unlabelled") || r.ends_with("spin_changing")),
        "{out}"
    );
    let tags = go_pprof(&["-tags"], &file);
    assert!(
        tags.contains("trace_id:") && tags.contains("steady"),
        "{tags}"
    );
}
