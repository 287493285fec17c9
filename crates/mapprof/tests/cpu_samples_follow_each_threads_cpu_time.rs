//! At 1000 Hz, four times the kernel's usual scheduler tick, a thread that was running when the
//! CPU profile started and one started during it each get samples equal to their own CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`) times 1000: every thread has a timer on its own CPU clock (the
//! late one gets its timer at its first signal from the process-wide timer), and each signal
//! counts the periods its timer overran since the last tick. A sampler that kept one
//! process-wide timer would charge whichever thread's tick came first; one that counted one
//! sample per signal would read about a quarter of the CPU time. The threads' timers exist
//! while the profile runs and are deleted when it ends (`/proc/self/timers`).
#![cfg(feature = "jemalloc")]

mod common;
use common::*;
use std::os::unix::thread::JoinHandleExt;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::jemalloc();

const HZ: u32 = mapprof::MAX_CPU_HZ;
const DURATION: Duration = Duration::from_millis(1500);

#[inline(never)]
fn spin_started_before(stop: &AtomicBool) -> u64 {
    spin(stop)
}

#[inline(never)]
fn spin_started_during(stop: &AtomicBool) -> u64 {
    spin(stop)
}

#[inline(always)]
fn spin(stop: &AtomicBool) -> u64 {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    while !stop.load(Relaxed) {
        for _ in 0..1000 {
            x = std::hint::black_box(x.rotate_left(5).wrapping_mul(0x2545_f491_4f6c_dd1d));
        }
    }
    x
}

/// POSIX timers of this process that send SIGPROF, or `None` without `/proc/self/timers`
/// (a kernel built without `CONFIG_CHECKPOINT_RESTORE`).
fn sigprof_timers() -> Option<usize> {
    let timers = std::fs::read_to_string("/proc/self/timers").ok()?;
    let sigprof = format!("signal: {}/", libc::SIGPROF);
    Some(timers.lines().filter(|l| l.starts_with(&sigprof)).count())
}

#[test]
fn each_thread_is_charged_its_own_cpu_time_at_any_rate() {
    let stop = Arc::new(AtomicBool::new(false));
    let spawn = |f: fn(&AtomicBool) -> u64| {
        let stop = stop.clone();
        std::thread::spawn(move || f(&stop))
    };
    let before = spawn(spin_started_before);
    std::thread::sleep(Duration::from_millis(50));
    let before_clock = cpu_clock_of(before.as_pthread_t());

    let profiler = mapprof::CpuProfiler::start(HZ).expect("start the CPU profiler");
    let before_start = cpu_time(before_clock);
    let during = spawn(spin_started_during);
    let during_clock = cpu_clock_of(during.as_pthread_t());
    std::thread::sleep(DURATION);
    let timers_while_profiling = sigprof_timers();
    let spun = [
        ("spin_started_before", cpu_time(before_clock) - before_start),
        ("spin_started_during", cpu_time(during_clock)),
    ];
    let profile = profiler.finish().expect("cpu profile");
    let timers_after = sigprof_timers();
    stop.store(true, Relaxed);
    before.join().unwrap();
    during.join().unwrap();

    let mut bytes = Vec::new();
    mapprof_profile::codec::encode_gzip(&profile, &mut bytes).unwrap();
    let profile = mapprof_profile::codec::decode(&bytes).expect("decodes");
    let s = &profile.string_table;
    eprintln!("{}", s[profile.comment[1] as usize]);
    for (name, cpu) in spun {
        let expected = cpu.as_secs_f64() * f64::from(HZ);
        let through = total_through(&profile, "samples", name) as f64;
        // A timer's signals come at the tick, each with the periods it overran: the count is
        // the CPU time to within a tick at each end; 4 Poisson deviations leave room for
        // whatever jitter the kernel adds.
        let tolerance = 4.0 * expected.sqrt() + 10.0;
        eprintln!("{name}: {through} samples; its thread ran {cpu:?}: {expected:.0} expected");
        assert!(expected >= 300.0, "{name} hardly ran: {cpu:?}");
        assert!(
            (through - expected).abs() <= tolerance,
            "{name}: {through} samples, expected {expected:.0} ± {tolerance:.0}"
        );
    }

    match (timers_while_profiling, timers_after) {
        (Some(during), Some(after)) => {
            // The test's threads: the harness's, this one and the two spinners.
            assert!(during >= 3, "{during} SIGPROF timers while profiling");
            assert_eq!(after, 0, "timers left after the profile");
        }
        _ => eprintln!("no /proc/self/timers here: the timers' deletion is not checked"),
    }
}
