//! Baseline: `std::sync::{Mutex, RwLock}`, no profiler.

use std::sync::{Mutex, RwLock};

bench_locks::lock_bench!();

fn main() {
    run("std", || "no profiler".to_owned());
}
