//! `MapprofLayer`: the chosen fields of an entered span label its samples, and nothing else
//! does. Every allocation is sampled, so each function's samples are counted exactly: in a
//! span, in a nested span (inner route wins), outside any span, with a field recorded after
//! the span's creation, with spans exited out of order, and in `#[instrument]`ed async fns
//! polled by the workers of a multi-threaded runtime.

mod common;
use common::*;
use mapprof::ProfileKind;
use mapprof_profile::view::ProfileView;
use std::collections::BTreeMap;
use tracing::info_span;
use tracing_subscriber::prelude::*;

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::system();

const N: i64 = 50;

macro_rules! allocator {
    ($($name:ident),*) => {$(
        #[inline(never)]
        fn $name() {
            for _ in 0..N {
                std::hint::black_box(Vec::<u8>::with_capacity(1000));
            }
        }
    )*};
}
allocator!(
    in_span,
    in_nested,
    outside,
    after_record,
    after_early_exit,
    in_task
);

/// Label sets and the objects of the samples that carry them.
type Sets = BTreeMap<Vec<(String, String)>, i64>;

/// Per function: the label sets of its samples and their object counts.
fn tally() -> BTreeMap<&'static str, Sets> {
    let profile = decoded(ProfileKind::Allocs);
    let view = ProfileView::new(&profile).unwrap();
    let objects = view.sample_index_by_name("alloc_objects").unwrap();
    let names = [
        "in_span",
        "in_nested",
        "outside",
        "after_record",
        "after_early_exit",
        "in_task",
    ];
    let mut tally: BTreeMap<_, Sets> = BTreeMap::new();
    for sample in view.samples() {
        let Some(name) = names.iter().find(|n| {
            let suffix = format!("::{n}");
            sample.frames().any(|f| f.function.ends_with(&suffix))
        }) else {
            continue;
        };
        let labels = string_labels(&view, &sample);
        *tally.entry(*name).or_default().entry(labels).or_default() += sample.value(objects);
    }
    tally
}

fn only(pairs: &[(&str, &str)], count: i64) -> Sets {
    let mut set: Vec<_> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    set.sort();
    BTreeMap::from([(set, count)])
}

#[tracing::instrument(fields(route = "/item GET", tenant = "ignored"))]
async fn handler(trace_id: String) {
    for _ in 0..4 {
        tokio::time::sleep(std::time::Duration::from_micros(300)).await;
        in_task();
    }
}

#[test]
fn entered_spans_label_their_samples_with_the_chosen_fields() {
    tracing_subscriber::registry()
        .with(
            mapprof::MapprofLayer::new()
                .label_field("trace_id")
                .label_field("route")
                .label_span_name("span"),
        )
        .init();
    let _p = mapprof::Profiler::builder().heap_rate(1).start().unwrap();

    let request = info_span!(
        "request",
        trace_id = "r1",
        route = "/a",
        user = "not-a-label"
    );
    request.in_scope(|| {
        in_span();
        info_span!("inner", route = "/b").in_scope(in_nested);
    });
    outside();

    let late = info_span!("late", trace_id = tracing::field::Empty);
    late.record("trace_id", "r2");
    late.in_scope(after_record);

    // `a` exits while `b`, entered after it, is still entered: `b`'s labels stay, alone.
    let (a, b) = (
        info_span!("a", route = "/a"),
        info_span!("b", trace_id = "r3"),
    );
    let entered_a = a.enter();
    let entered_b = b.enter();
    drop(entered_a);
    after_early_exit();
    drop(entered_b);
    outside();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(3)
        .enable_time()
        .build()
        .unwrap();
    const TASKS: usize = 24;
    runtime.block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|n| tokio::spawn(handler(format!("task-{n}"))))
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    drop(runtime);

    let tally = tally();
    let span = |name: &'static str| ("span", name);
    assert_eq!(
        tally["in_span"],
        only(&[("trace_id", "r1"), ("route", "/a"), span("request")], N)
    );
    assert_eq!(
        tally["in_nested"],
        only(&[("trace_id", "r1"), ("route", "/b"), span("inner")], N)
    );
    assert_eq!(tally["outside"], only(&[], 2 * N));
    assert_eq!(
        tally["after_record"],
        only(&[("trace_id", "r2"), span("late")], N)
    );
    assert_eq!(
        tally["after_early_exit"],
        only(&[("trace_id", "r3"), span("b")], N)
    );
    let mut tasks = BTreeMap::new();
    for n in 0..TASKS {
        let id = format!("task-{n}");
        let mut set = vec![
            ("route".to_owned(), "/item GET".to_owned()),
            ("span".to_owned(), "handler".to_owned()),
            ("trace_id".to_owned(), id),
        ];
        set.sort();
        tasks.insert(set, 4 * N);
    }
    assert_eq!(tally["in_task"], tasks);
}
