//! Baseline: `std::sync::{Mutex, RwLock}` and `tokio::sync::Mutex`, no profiler; `labels` only
//! calls its closure, `with_task_labels` returns the future, spans run under a plain registry.

use std::sync::{Mutex, RwLock};
use tokio::sync::Mutex as AsyncMutex;

fn labels<R>(pairs: &[(&str, &str)], f: impl FnOnce() -> R) -> R {
    // The pairs are made as for mapprof; only setting them is left out.
    std::hint::black_box(pairs);
    f()
}

/// The future itself: the baseline of a labelled one.
fn with_task_labels<F: std::future::Future>(fut: F, pairs: &[(&str, &str)]) -> F {
    std::hint::black_box(pairs);
    fut
}

/// A plain registry, the subscriber `MapprofLayer` is added to in the mapprof binary.
fn install_subscriber() {
    tracing::subscriber::set_global_default(tracing_subscriber::registry())
        .expect("no subscriber installed before");
}

bench_locks::lock_bench!();

fn main() {
    run("std", || "no profiler".to_owned());
}
