//! `mapprof::sync::{Mutex, RwLock}` and `mapprof::tokio::Mutex` with the profiler running at
//! its default lock sampling (`Profiler::builder().start()`: mutex_fraction 10, block_rate
//! 10000 ns).

use mapprof::labels;
use mapprof::sync::{Mutex, RwLock};
use mapprof::tokio::Mutex as AsyncMutex;

/// The future with `pairs` as its task labels.
fn with_task_labels<F: std::future::Future>(
    fut: F,
    pairs: &[(&str, &str)],
) -> mapprof::Labelled<F> {
    use mapprof::WithLabels;
    fut.with_labels(pairs)
}

/// The registry with `MapprofLayer` making both span fields labels; checked once.
fn install_subscriber() {
    use tracing_subscriber::layer::SubscriberExt;
    let layer = mapprof::MapprofLayer::new()
        .label_field("trace_id")
        .label_field("route");
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
        .expect("no subscriber installed before");
    let span = tracing::info_span!("request", trace_id = "check", route = "/item PUT");
    let pairs = span.in_scope(|| mapprof::Labels::current().pairs());
    assert!(
        pairs.contains(&("trace_id".to_owned(), "check".to_owned())),
        "the layer labels a span's samples: {pairs:?}"
    );
}

bench_locks::lock_bench!();

fn main() {
    let profiler = mapprof::Profiler::builder()
        .start()
        .expect("mapprof failed to start");
    run("mapprof", || {
        // What the contention profiles hold: 0 samples after an uncontended run shows the slow
        // path was never taken; after a contended one, the estimated events show it was.
        let sum = |kind| {
            let p = mapprof::profile(kind);
            let (mut n, mut d) = (0i64, 0i64);
            for s in &p.sample {
                n += s.value.first().copied().unwrap_or(0);
                d += s.value.get(1).copied().unwrap_or(0);
            }
            (p.sample.len(), n, d)
        };
        let (ms, mn, md) = sum(mapprof::ProfileKind::Mutex);
        let (bs, bn, bd) = sum(mapprof::ProfileKind::Block);
        let c = profiler.config();
        format!(
            "mutex_fraction={} block_rate={} mutex_samples={ms} mutex_contentions={mn} \
             mutex_delay_ms={:.1} block_samples={bs} block_contentions={bn} block_delay_ms={:.1} \
             label_overflow={}",
            c.mutex_fraction,
            c.block_rate,
            md as f64 / 1e6,
            bd as f64 / 1e6,
            mapprof::label_overflow()
        )
    });
    drop(profiler);
}
