//! mapprof over jemalloc at its default heap rate, built with the `testing` feature, the
//! workload run as `BENCH_SCOPE` says:
//! - `bare` (default): no scope anywhere, the baseline of the two others;
//! - `inside`: each workload thread's measured loop inside `mapprof::testing::measure`, so every
//!   allocation and free is counted exactly, with its stack;
//! - `other`: one more thread sits inside `measure` (blocked on a channel) for the whole run, the
//!   workload threads outside any scope: their allocations keep the sampled fast path, their
//!   frees see a scope active (`scope::any_active`) and take the cold path.

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::jemalloc();

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc;

/// Allocations the `inside` scopes counted, summed over the workload threads.
static COUNTED: AtomicU64 = AtomicU64::new(0);

fn main() {
    let mode = std::env::var("BENCH_SCOPE").unwrap_or_else(|_| "bare".into());
    let profiler = mapprof::Profiler::builder()
        .start()
        .expect("mapprof failed to start");
    let config = format!("mapprof-testing-{mode}");
    let after = || {
        let p = mapprof::profile(mapprof::ProfileKind::Allocs);
        format!(
            "scope={mode} counted={} samples={} (allocations the scopes counted; distinct \
             stacks in the allocs profile)",
            COUNTED.load(Relaxed),
            p.sample.len()
        )
    };
    match mode.as_str() {
        "bare" => bench_workload::main(&config, after),
        "inside" => bench_workload::main_wrapped(
            &config,
            |measured| {
                let m = mapprof::testing::measure(measured);
                COUNTED.fetch_add(m.allocations, Relaxed);
            },
            after,
        ),
        "other" => {
            let (entered, in_scope) = mpsc::channel();
            let (stop, stopped) = mpsc::channel::<()>();
            let measuring = std::thread::spawn(move || {
                mapprof::testing::measure(|| {
                    entered.send(()).unwrap();
                    let _ = stopped.recv();
                })
            });
            in_scope.recv().unwrap();
            bench_workload::main(&config, after);
            drop(stop);
            let m = measuring.join().unwrap();
            COUNTED.fetch_add(m.allocations, Relaxed);
        }
        other => panic!("BENCH_SCOPE={other:?}: expected bare, inside or other"),
    }
    drop(profiler);
}
