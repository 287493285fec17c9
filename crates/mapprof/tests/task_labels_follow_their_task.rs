//! Labels on tasks (`WithLabels`): many tasks, each with a unique trace id, allocate between
//! `.await`s on a multi-threaded runtime, so that their polls move between worker threads.
//! With every allocation sampled, each task's allocations carry exactly its own labels (each
//! task allocates a size of its own, so a sample labelled with another task's id would show
//! another size); a nested labelled future overrides the route and keeps the trace id; a task
//! spawned with `with_current_labels`, a `spawn_blocking` closure and a thread under
//! `Labels::scope` carry the spawner's labels; a plain `tokio::spawn` carries none.

mod common;
use common::*;
use mapprof::{Labels, ProfileKind, WithLabels};
use mapprof_profile::view::ProfileView;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::system();

const TASKS: usize = 48;
const ROUNDS: usize = 12;

/// Task `task`'s allocation size: its own, so that its samples tell whose they are.
fn size_of_task(task: usize) -> usize {
    4096 + 64 * task
}

#[inline(never)]
fn task_alloc(size: usize) {
    std::hint::black_box(Vec::<u8>::with_capacity(size));
}

#[inline(never)]
fn nested_alloc(size: usize) {
    std::hint::black_box(Vec::<u8>::with_capacity(size));
}

#[inline(never)]
fn carried_alloc(size: usize) {
    std::hint::black_box(Vec::<u8>::with_capacity(size));
}

#[inline(never)]
fn uncarried_alloc(size: usize) {
    std::hint::black_box(Vec::<u8>::with_capacity(size));
}

type Threads = Arc<Mutex<Vec<HashSet<std::thread::ThreadId>>>>;

async fn task(n: usize, threads: Threads) {
    let size = size_of_task(n);
    for round in 0..ROUNDS {
        threads.lock().unwrap()[n].insert(std::thread::current().id());
        task_alloc(size);
        tokio::time::sleep(Duration::from_micros(
            200 + (n * 37 + round * 11) as u64 % 500,
        ))
        .await;
        async {
            nested_alloc(size);
            tokio::task::yield_now().await;
            nested_alloc(size);
        }
        .with_labels(&[("route", "/inner")])
        .await;
    }
    tokio::spawn(async move { carried_alloc(size) }.with_current_labels())
        .await
        .unwrap();
    let labels = Labels::current();
    tokio::task::spawn_blocking(move || labels.scope(|| carried_alloc(size)))
        .await
        .unwrap();
    let labels = Labels::current();
    std::thread::spawn(move || labels.scope(|| carried_alloc(size)))
        .join()
        .unwrap();
    tokio::spawn(async move { uncarried_alloc(size) })
        .await
        .unwrap();
}

/// Per function and labels: (objects, bytes) of the allocs profile's samples through it.
type Tally = BTreeMap<(String, Vec<(String, String)>), (i64, i64)>;

fn tally(functions: &[&str]) -> Tally {
    let profile = decoded(ProfileKind::Allocs);
    let view = ProfileView::new(&profile).unwrap();
    let objects = view.sample_index_by_name("alloc_objects").unwrap();
    let bytes = view.sample_index_by_name("alloc_space").unwrap();
    let mut tally = Tally::new();
    for sample in view.samples() {
        let Some(function) = functions.iter().find(|f| {
            sample
                .frames()
                .any(|fr| fr.function.ends_with(&format!("::{f}")))
        }) else {
            continue;
        };
        let labels = string_labels(&view, &sample);
        let entry = tally.entry((function.to_string(), labels)).or_default();
        entry.0 += sample.value(objects);
        entry.1 += sample.value(bytes);
    }
    tally
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<_> = p
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    v.sort();
    v
}

#[test]
fn each_tasks_samples_carry_its_labels_whichever_thread_polls_it() {
    let _p = mapprof::Profiler::builder().heap_rate(1).start().unwrap();
    let threads: Threads = Arc::new(Mutex::new(vec![HashSet::new(); TASKS]));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        let handles: Vec<_> = (0..TASKS)
            .map(|n| {
                let trace_id = format!("t{n}");
                let labels = [("trace_id", trace_id.as_str()), ("route", "/item")];
                tokio::spawn(task(n, threads.clone()).with_labels(&labels))
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
    });
    drop(runtime);

    // The premise: tasks were resumed on other threads than they started on.
    let moved = threads
        .lock()
        .unwrap()
        .iter()
        .filter(|t| t.len() > 1)
        .count();
    assert!(moved > 0, "no task changed threads: the test shows nothing");

    let tally = tally(&[
        "task_alloc",
        "nested_alloc",
        "carried_alloc",
        "uncarried_alloc",
    ]);
    let mut expected = Tally::new();
    for n in 0..TASKS {
        let id = format!("t{n}");
        let size = size_of_task(n) as i64;
        let rounds = ROUNDS as i64;
        let own = pairs(&[("trace_id", &id), ("route", "/item")]);
        let inner = pairs(&[("trace_id", &id), ("route", "/inner")]);
        expected.insert(("task_alloc".into(), own.clone()), (rounds, rounds * size));
        expected.insert(
            ("nested_alloc".into(), inner),
            (2 * rounds, 2 * rounds * size),
        );
        expected.insert(("carried_alloc".into(), own), (3, 3 * size));
    }
    let uncarried: i64 = (0..TASKS).map(|n| size_of_task(n) as i64).sum();
    expected.insert(
        ("uncarried_alloc".into(), vec![]),
        (TASKS as i64, uncarried),
    );
    let differ: Vec<_> = expected
        .iter()
        .filter(|(k, v)| tally.get(*k) != Some(v))
        .map(|(k, v)| format!("{k:?}: expected {v:?}, found {:?}", tally.get(k)))
        .chain(
            tally
                .iter()
                .filter(|(k, _)| !expected.contains_key(*k))
                .map(|(k, v)| format!("{k:?}: unexpected {v:?}")),
        )
        .collect();
    assert!(
        differ.is_empty(),
        "{} differences:\n{}",
        differ.len(),
        differ.join("\n")
    );
}
