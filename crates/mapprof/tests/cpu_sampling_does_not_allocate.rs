//! The SIGPROF handler allocates nothing: while a 1000 Hz CPU profile samples a thread that
//! allocates with every allocation heap-sampled too (so signals land inside the allocator
//! wrapper, its stack walks and table inserts), the inner allocator sees exactly the program's
//! own calls, and the profile shows that the signals did land there.

mod common;
mod counting;
use common::*;
use counting::calls_in;
use std::time::Duration;

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::new(&counting::INNER);

/// CPU time the allocating thread spends under the profile: about 250 signals.
const CPU_TIME: Duration = Duration::from_millis(1000);

/// Allocates one vector at a time until the thread has used [`CPU_TIME`]; returns how many.
#[inline(never)]
fn allocating_under_cpu_samples() -> u64 {
    let mut n = 0;
    while thread_cpu_time() < CPU_TIME {
        for _ in 0..10_000 {
            let v: Vec<u8> = Vec::with_capacity(1 + (n as usize % 300));
            std::hint::black_box(&v);
            n += 1;
        }
    }
    n
}

#[test]
fn cpu_samples_make_no_allocation_of_their_own() {
    let _p = mapprof::Profiler::builder().heap_rate(1).start().unwrap();
    let cpu = mapprof::CpuProfiler::start(mapprof::MAX_CPU_HZ).unwrap();
    let (calls, made) = on_new_thread(|| {
        // The thread's first allocation looks up its stack bounds (glibc may malloc there, on
        // libc's heap, not through the Rust allocator); do it before counting.
        std::hint::black_box(Vec::<u8>::with_capacity(8));
        let mut made = 0;
        let calls = calls_in(|| made = allocating_under_cpu_samples());
        (calls, made)
    });
    let profile = cpu.finish().unwrap();
    assert_eq!(
        calls, made,
        "the inner allocator saw calls the program did not make"
    );
    // Positive control: signals landed in the counted loop, and inside the profiler's hooks.
    let inside = total_through(&profile, "samples", "allocating_under_cpu_samples");
    let in_hooks = total_through(&profile, "samples", "mapprof_rt::");
    eprintln!("{inside} samples in the loop, {in_hooks} in mapprof_rt");
    assert!(inside >= 20, "{inside} samples in the counted loop");
    assert!(in_hooks > 0, "no sample inside the hooks");
}
