//! Baseline: `std::sync::{Mutex, RwLock}` and `tokio::sync::Mutex`, no profiler; `labels` only
//! calls its closure.

use std::sync::{Mutex, RwLock};
use tokio::sync::Mutex as AsyncMutex;

fn labels<R>(pairs: &[(&str, &str)], f: impl FnOnce() -> R) -> R {
    // The pairs are made as for mapprof; only setting them is left out.
    std::hint::black_box(pairs);
    f()
}

bench_locks::lock_bench!();

fn main() {
    run("std", || "no profiler".to_owned());
}
