//! The thread dump's signal handler allocates nothing: while dumps are taken again and again,
//! a thread that allocates with every allocation heap-sampled (so the signal lands inside the
//! allocator wrapper, its stack walks and table inserts) makes exactly its own calls to the
//! inner allocator, and so does a thread asleep in a contended `mapprof::sync::Mutex`. The
//! dumps show that the signals did land in the counted code.

mod counting;
use counting::calls_in;
use mapprof::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::new(&counting::INNER);

/// Dumps taken while the threads run.
const DUMPS: usize = 30;

#[inline(never)]
fn allocating_under_dumps(stop: &AtomicBool) -> u64 {
    let mut n = 0;
    while !stop.load(Relaxed) {
        for _ in 0..1_000 {
            let v: Vec<u8> = Vec::with_capacity(1 + (n as usize % 300));
            std::hint::black_box(&v);
            n += 1;
        }
    }
    n
}

#[inline(never)]
fn waiting_under_dumps(lock: &Mutex<u64>) {
    *lock.lock().unwrap() += 1;
}

#[test]
fn the_dumped_threads_make_no_allocation_of_the_dumps() {
    let _p = mapprof::Profiler::builder().heap_rate(1).start().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let allocator_tid = Arc::new(AtomicU64::new(0));
    let allocator = std::thread::spawn({
        let (stop, tid) = (stop.clone(), allocator_tid.clone());
        move || {
            // The thread's first allocation looks up its stack bounds (glibc may malloc there,
            // on libc's heap, not through the Rust allocator); do it before counting.
            std::hint::black_box(Vec::<u8>::with_capacity(8));
            // SAFETY: gettid cannot fail.
            tid.store(unsafe { libc::syscall(libc::SYS_gettid) } as u64, Relaxed);
            let mut made = 0;
            let calls = calls_in(|| made = allocating_under_dumps(&stop));
            (calls, made)
        }
    });
    let lock = Arc::new(Mutex::new(0u64));
    let held = lock.lock().unwrap();
    let (tid_tx, tid_rx) = mpsc::channel();
    let waiter = std::thread::spawn({
        let lock = lock.clone();
        move || {
            // SAFETY: gettid cannot fail.
            tid_tx
                .send(unsafe { libc::syscall(libc::SYS_gettid) } as u32)
                .unwrap();
            calls_in(|| waiting_under_dumps(&lock))
        }
    });
    let waiter_tid = tid_rx.recv().unwrap();
    while allocator_tid.load(Relaxed) == 0 {
        std::thread::yield_now();
    }
    let allocator_tid = allocator_tid.load(Relaxed) as u32;

    let (mut in_loop, mut waiting) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut dumps = 0;
    while (dumps < DUMPS || in_loop == 0 || waiting == 0) && Instant::now() < deadline {
        let dump = mapprof::thread_dump_within(Duration::from_secs(30)).unwrap();
        dumps += 1;
        for t in dump.threads() {
            let runs = |f: &str| t.frames.iter().any(|(name, _)| name.contains(f));
            if t.tid == allocator_tid && runs("allocating_under_dumps") {
                in_loop += 1;
            }
            if t.tid == waiter_tid && t.wait.is_some() && runs("waiting_under_dumps") {
                waiting += 1;
            }
        }
    }
    drop(held);
    stop.store(true, Relaxed);
    let (calls, made) = allocator.join().unwrap();
    let waiter_calls = waiter.join().unwrap();
    eprintln!("{dumps} dumps: the allocating thread in its loop in {in_loop}, the waiter waiting in {waiting}");
    assert_eq!(
        calls, made,
        "the inner allocator saw calls the allocating thread did not make"
    );
    assert_eq!(waiter_calls, 0, "the waiter allocated");
    // Positive controls: the signals landed in the counted code.
    assert!(
        in_loop > 0,
        "no dump found the allocating thread in its loop"
    );
    assert!(waiting > 0, "no dump found the waiter waiting");
}
