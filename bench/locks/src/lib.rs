//! The lock benchmark's workloads, shared by `bench-locks-std` (std::sync) and
//! `bench-locks-mapprof` (mapprof::sync with the profiler running). Each binary brings
//! `Mutex`, `RwLock`, `AsyncMutex` (tokio's or `mapprof::tokio`'s) and `labels` into scope and
//! invokes [`lock_bench!`], which defines the measured functions for those and a `run`
//! function, so both binaries compile the very same source against their own lock types (and
//! `mapprof::labels` against a `labels` that only calls its closure).
//!
//! Usage of both binaries:
//! `<bin> mutex|rwread|rwwrite|labels|labels-trace|contended|async-mutex|async-contended|
//! task-labels|span-enter|span-request <threads> <ops-per-thread> [--no-check]`.
//! It prints one line:
//! `RESULT config=.. workload=.. threads=.. ops=.. secs=.. ns=.. mops=.. check=..`
//! (`ns` = nanoseconds of wall time per operation of one thread, `mops` = million operations per
//! second, all threads together), then, unless `--no-check`, a `CHECK` line with what the
//! binary's `after` hook reports (for mapprof: what its mutex and block profiles hold).
//!
//! Workloads:
//! - `mutex` (1 thread): one operation = `*m.lock().unwrap() += 1` on a `Mutex<u64>` nobody
//!   else touches: one uncontended lock + unlock pair.
//! - `rwread` (1 thread): one operation = `sum += *l.read().unwrap()` on an `RwLock<u64>`: one
//!   uncontended read lock + unlock pair.
//! - `rwwrite` (1 thread): one operation = `*l.write().unwrap() += 1` on an `RwLock<u64>`: one
//!   uncontended write lock + unlock pair (mapprof's notes and clears its writer's tid, for
//!   thread dumps).
//! - `labels` (1 thread): one operation = `labels(&[("route", "/item PUT")], || ..)` around a
//!   trivial body: making and dropping one label guard, the same set every time.
//! - `labels-trace` (1 thread): the same with a trace id first, a different one each time
//!   (rotating through 4096 distinct ids made beforehand): `labels(&[("trace_id", id),
//!   ("route", "/item PUT")], || ..)`, a request handler's labels.
//! - `contended` (N threads, one `Mutex` shared by all): one operation = lock, increment a
//!   counter and add it into one of 8 slots of a small array, unlock. Nothing happens between
//!   two locks of a thread: the worst case for contention.
//! - `async-mutex` (1 thread): one operation = `*m.lock().await += 1` on an `AsyncMutex<u64>`
//!   nobody else touches: the `lock()` future made, polled once (ready at once) with a no-op
//!   waker, the guard dropped. No runtime: what an uncontended `.lock().await` itself costs.
//! - `async-contended` (N tasks on one current-thread runtime, one `AsyncMutex` shared by
//!   all): one operation = `m.lock().await`, `yield_now().await` while holding, the
//!   `contended` critical section, unlock. Every other task's `lock()` in between finds the
//!   lock taken and parks until tokio wakes it: every acquisition but the first is contended,
//!   the worst case, on one thread (a multi-threaded runtime's runs spread 30× here, as tasks
//!   land on one worker or on both).
//! - `task-labels` (1 thread): one operation = one poll (returning `Pending`) of a long-lived
//!   future carrying a trace id and a route as task labels (`fut.with_labels(..)`; std's
//!   binary polls the unwrapped future): what task labels add to each poll.
//! - `span-enter` (1 thread): one operation = entering and leaving one `tracing` span with a
//!   `trace_id` and a `route` field, under a plain `tracing_subscriber` registry (std) or the
//!   registry with `MapprofLayer` choosing both fields (mapprof).
//! - `span-request` (1 thread): one operation = a request's span: made with a trace id (4096
//!   distinct ones in turn) and a route, entered, left and dropped.
//!
//! Each thread warms up (a tenth of its work, at most 1M operations, untimed), then times its
//! measured loop, which runs inside `bench_measured_mutex` / `bench_measured_rwread` /
//! `bench_measured_contended` (unmangled, never inlined), so `valgrind --tool=callgrind
//! --collect-atstart=no --toggle-collect=bench_measured_*` counts the measured operations only.
//! With several threads, the run's time is the slowest thread's measured part (all start
//! together at a barrier).

/// A cache line of its own for the lock under test, so that its placement does not differ from
/// run to run or between the two binaries.
#[repr(align(128))]
pub struct Aligned<T>(pub T);

/// The data behind the contended lock: a counter and a small array.
#[derive(Default)]
pub struct Shared {
    pub counter: u64,
    pub slots: [u64; 8],
}

impl Shared {
    /// The contended workloads' critical section.
    #[inline(always)]
    pub fn update(&mut self) {
        self.counter += 1;
        let c = self.counter;
        self.slots[(c % 8) as usize] += c;
    }
}

/// Parsed command line.
pub struct Args {
    pub workload: String,
    pub threads: usize,
    pub ops: u64,
    pub no_check: bool,
}

fn usage(msg: &str) -> ! {
    eprintln!(
        "{msg}\nusage: <bin> mutex|rwread|rwwrite|labels|labels-trace|contended|async-mutex|\
         async-contended|task-labels|span-enter|span-request <threads> <ops-per-thread> \
         [--no-check]"
    );
    std::process::exit(2)
}

pub fn args() -> Args {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        usage("missing arguments");
    }
    let workload = args[0].clone();
    let threads: usize = args[1]
        .parse()
        .unwrap_or_else(|_| usage("bad thread count"));
    let ops: u64 = args[2]
        .parse()
        .unwrap_or_else(|_| usage("bad operation count"));
    if threads == 0 || ops == 0 {
        usage("threads and ops must be positive");
    }
    match workload.as_str() {
        "contended" | "async-contended" => {}
        "mutex" | "rwread" | "rwwrite" | "labels" | "labels-trace" | "async-mutex"
        | "task-labels" | "span-enter" | "span-request"
            if threads != 1 =>
        {
            usage("every workload but the contended ones runs on 1 thread")
        }
        "mutex" | "rwread" | "rwwrite" | "labels" | "labels-trace" | "async-mutex"
        | "task-labels" | "span-enter" | "span-request" => {}
        other => usage(&format!("unknown workload {other:?}")),
    }
    // 1-thread runs are timed in BLOCKS equal parts.
    let ops = if threads == 1 {
        ops.div_ceil(BLOCKS) * BLOCKS
    } else {
        ops
    };
    Args {
        workload,
        threads,
        ops,
        no_check: std::env::args().any(|a| a == "--no-check"),
    }
}

/// A future that is never ready and counts its polls: the task the `task-labels` workload
/// polls.
pub struct Pending<'a>(pub &'a std::cell::Cell<u64>);

impl std::future::Future for Pending<'_> {
    type Output = ();
    fn poll(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        self.0.set(self.0.get() + 1);
        std::task::Poll::Pending
    }
}

/// The 4096 trace ids the label and span workloads take in turn.
pub fn trace_ids() -> Vec<String> {
    (0..4096).map(|n| format!("load-1-{n}")).collect()
}

/// Untimed operations before the clock starts.
pub fn warm(ops: u64) -> u64 {
    (ops / 10).clamp(1, 1_000_000)
}

/// The measured loop of a 1-thread run is timed in this many equal blocks; the fastest block
/// is reported too, next to the whole (it filters out preemptions on a shared machine).
pub const BLOCKS: u64 = 10;

/// Times of the timed blocks of a run.
#[derive(Default)]
pub struct Blocks {
    total: f64,
    best: f64,
    n: u64,
}

impl Blocks {
    pub fn one(secs: f64) -> Blocks {
        let mut b = Blocks::default();
        b.add(secs);
        b
    }

    /// Times `run(ops / BLOCKS)`, [`BLOCKS`] times.
    pub fn time(ops: u64, mut run: impl FnMut(u64)) -> Blocks {
        let mut t = Blocks::default();
        for _ in 0..BLOCKS {
            let start = std::time::Instant::now();
            run(ops / BLOCKS);
            t.add(start.elapsed().as_secs_f64());
        }
        t
    }

    pub fn add(&mut self, secs: f64) {
        self.best = if self.n == 0 {
            secs
        } else {
            self.best.min(secs)
        };
        self.total += secs;
        self.n += 1;
    }
}

/// Prints the `RESULT` line. `ops` is the measured operations of the run (all threads);
/// `inside` is every operation done inside the `bench_measured_*` functions on the main thread
/// (warm-up included), which is what callgrind counts.
pub fn result(config: &str, a: &Args, warm: u64, t: &Blocks, check: u64) {
    let per_thread = a.ops;
    let done = per_thread * a.threads as u64;
    let inside = if a.threads == 1 { warm + per_thread } else { 0 };
    println!(
        "RESULT config={config} workload={} threads={} ops={done} inside={inside} secs={:.6} \
         ns={:.4} ns_best={:.4} mops={:.4} check={check}",
        a.workload,
        a.threads,
        t.total,
        t.total * 1e9 / per_thread as f64,
        t.best * 1e9 / (per_thread / t.n) as f64,
        done as f64 / t.total / 1e6
    );
}

/// Defines, for the `Mutex` and `RwLock` in scope at the call site, the measured functions and
/// `fn run(config: &str, after: impl FnOnce() -> String)`.
#[macro_export]
macro_rules! lock_bench {
    () => {
        #[no_mangle]
        #[inline(never)]
        fn bench_measured_mutex(m: &Mutex<u64>, ops: u64) {
            for _ in 0..ops {
                *m.lock().unwrap() += 1;
            }
        }

        #[no_mangle]
        #[inline(never)]
        fn bench_measured_rwread(l: &RwLock<u64>, ops: u64) -> u64 {
            let mut sum = 0u64;
            for _ in 0..ops {
                sum = sum.wrapping_add(*l.read().unwrap());
            }
            sum
        }

        #[no_mangle]
        #[inline(never)]
        fn bench_measured_rwwrite(l: &RwLock<u64>, ops: u64) {
            for _ in 0..ops {
                *l.write().unwrap() += 1;
            }
        }

        #[no_mangle]
        #[inline(never)]
        fn bench_measured_labels(ops: u64) -> u64 {
            let mut sum = 0u64;
            for i in 0..ops {
                sum += labels(&[("route", "/item PUT")], || std::hint::black_box(i) & 1);
            }
            sum
        }

        #[no_mangle]
        #[inline(never)]
        fn bench_measured_labels_trace(ids: &[String], ops: u64) -> u64 {
            let mut sum = 0u64;
            for i in 0..ops {
                let id = ids[i as usize % ids.len()].as_str();
                sum += labels(&[("trace_id", id), ("route", "/item PUT")], || {
                    std::hint::black_box(i) & 1
                });
            }
            sum
        }

        #[no_mangle]
        #[inline(never)]
        fn bench_measured_contended(m: &Mutex<$crate::Shared>, ops: u64) {
            for _ in 0..ops {
                m.lock().unwrap().update();
            }
        }

        #[no_mangle]
        #[inline(never)]
        fn bench_measured_async_mutex(m: &AsyncMutex<u64>, ops: u64) {
            use std::task::{Context, Poll, Waker};
            let mut cx = Context::from_waker(Waker::noop());
            for _ in 0..ops {
                let lock = std::pin::pin!(m.lock());
                match std::future::Future::poll(lock, &mut cx) {
                    Poll::Ready(mut guard) => *guard += 1,
                    Poll::Pending => unreachable!("nobody else holds the lock"),
                }
            }
        }

        #[no_mangle]
        #[inline(never)]
        fn bench_measured_task_labels(
            mut fut: std::pin::Pin<&mut dyn std::future::Future<Output = ()>>,
            ops: u64,
        ) {
            use std::task::{Context, Waker};
            let mut cx = Context::from_waker(Waker::noop());
            for _ in 0..ops {
                assert!(fut.as_mut().poll(&mut cx).is_pending());
            }
        }

        #[no_mangle]
        #[inline(never)]
        fn bench_measured_span_enter(span: &tracing::Span, ops: u64) {
            for _ in 0..ops {
                let _entered = span.enter();
                std::hint::black_box(&_entered);
            }
        }

        #[no_mangle]
        #[inline(never)]
        fn bench_measured_span_request(ids: &[String], ops: u64) {
            for i in 0..ops {
                let id = ids[i as usize % ids.len()].as_str();
                let span = tracing::info_span!("request", trace_id = id, route = "/item PUT");
                let _entered = span.enter();
                std::hint::black_box(&_entered);
            }
        }

        async fn async_contended(m: &AsyncMutex<$crate::Shared>, ops: u64) {
            for _ in 0..ops {
                let mut g = m.lock().await;
                tokio::task::yield_now().await;
                g.update();
            }
        }

        fn run(config: &str, after: impl FnOnce() -> String) {
            use std::hint::black_box;
            use std::time::Instant;
            let a = $crate::args();
            let warm = $crate::warm(a.ops);
            let (times, check) = match a.workload.as_str() {
                "mutex" => {
                    let m = Box::new($crate::Aligned(Mutex::new(0u64)));
                    let m = black_box(&m.0);
                    bench_measured_mutex(m, warm);
                    let t = $crate::Blocks::time(a.ops, |n| bench_measured_mutex(m, n));
                    let n = *m.lock().unwrap();
                    assert_eq!(n, warm + a.ops);
                    (t, n)
                }
                "rwread" => {
                    let l = Box::new($crate::Aligned(RwLock::new(1u64)));
                    let l = black_box(&l.0);
                    black_box(bench_measured_rwread(l, warm));
                    let mut sum = 0;
                    let t = $crate::Blocks::time(a.ops, |n| sum += bench_measured_rwread(l, n));
                    assert_eq!(sum, a.ops);
                    (t, sum)
                }
                "rwwrite" => {
                    let l = Box::new($crate::Aligned(RwLock::new(0u64)));
                    let l = black_box(&l.0);
                    bench_measured_rwwrite(l, warm);
                    let t = $crate::Blocks::time(a.ops, |n| bench_measured_rwwrite(l, n));
                    let n = *l.read().unwrap();
                    assert_eq!(n, warm + a.ops);
                    (t, n)
                }
                "labels" | "labels-trace" => {
                    let ids = $crate::trace_ids();
                    let measured = |ops| match a.workload.as_str() {
                        "labels" => bench_measured_labels(ops),
                        _ => bench_measured_labels_trace(black_box(&ids), ops),
                    };
                    let mut sum = measured(warm);
                    let t = $crate::Blocks::time(a.ops, |n| sum += measured(n));
                    // Every body ran: each call counts the odd indices of 0..ops.
                    assert_eq!(
                        sum,
                        warm / 2 + $crate::BLOCKS * (a.ops / $crate::BLOCKS / 2)
                    );
                    (t, sum)
                }
                "async-mutex" => {
                    let m = Box::new($crate::Aligned(AsyncMutex::new(0u64)));
                    let m = black_box(&m.0);
                    bench_measured_async_mutex(m, warm);
                    let t = $crate::Blocks::time(a.ops, |n| bench_measured_async_mutex(m, n));
                    let n = *m.try_lock().unwrap();
                    assert_eq!(n, warm + a.ops);
                    (t, n)
                }
                "task-labels" => {
                    let polls = std::cell::Cell::new(0);
                    let pairs = [("trace_id", "load-1-7"), ("route", "/item PUT")];
                    let mut fut = std::pin::pin!(with_task_labels($crate::Pending(&polls), &pairs));
                    bench_measured_task_labels(fut.as_mut(), warm);
                    let t = $crate::Blocks::time(a.ops, |n| {
                        bench_measured_task_labels(fut.as_mut(), n)
                    });
                    assert_eq!(polls.get(), warm + a.ops);
                    (t, polls.get())
                }
                "span-enter" | "span-request" => {
                    install_subscriber();
                    let ids = $crate::trace_ids();
                    let span =
                        tracing::info_span!("request", trace_id = "load-1-7", route = "/item PUT");
                    let measured = |ops| match a.workload.as_str() {
                        "span-enter" => bench_measured_span_enter(&span, ops),
                        _ => bench_measured_span_request(black_box(&ids), ops),
                    };
                    measured(warm);
                    let t = $crate::Blocks::time(a.ops, measured);
                    (t, warm + a.ops)
                }
                "async-contended" => {
                    use std::sync::Arc;
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .expect("tokio runtime");
                    let m = Arc::new($crate::Aligned(AsyncMutex::new($crate::Shared::default())));
                    let all_tasks = |ops: u64| {
                        runtime.block_on(async {
                            let tasks: Vec<_> = (0..a.threads)
                                .map(|_| {
                                    let m = m.clone();
                                    tokio::spawn(async move { async_contended(&m.0, ops).await })
                                })
                                .collect();
                            for task in tasks {
                                task.await.expect("workload task panicked");
                            }
                        })
                    };
                    all_tasks(warm);
                    let start = Instant::now();
                    all_tasks(a.ops);
                    let secs = start.elapsed().as_secs_f64();
                    let n = m.0.try_lock().unwrap().counter;
                    assert_eq!(n, (warm + a.ops) * a.threads as u64);
                    ($crate::Blocks::one(secs), n)
                }
                _ => {
                    use std::sync::{Arc, Barrier};
                    let m = Arc::new($crate::Aligned(Mutex::new($crate::Shared::default())));
                    let barrier = Arc::new(Barrier::new(a.threads + 1));
                    let handles: Vec<_> = (0..a.threads)
                        .map(|_| {
                            let (m, barrier, ops) = (m.clone(), barrier.clone(), a.ops);
                            std::thread::spawn(move || {
                                bench_measured_contended(&m.0, warm);
                                barrier.wait();
                                let start = Instant::now();
                                bench_measured_contended(&m.0, ops);
                                start.elapsed().as_secs_f64()
                            })
                        })
                        .collect();
                    barrier.wait();
                    let secs = handles
                        .into_iter()
                        .map(|h| h.join().expect("workload thread panicked"))
                        .fold(0f64, f64::max);
                    let n = m.0.lock().unwrap().counter;
                    assert_eq!(n, (warm + a.ops) * a.threads as u64);
                    ($crate::Blocks::one(secs), n)
                }
            };
            $crate::result(config, &a, warm, &times, check);
            if !a.no_check {
                println!("CHECK config={config} {}", after());
            }
        }
    };
}
