//! Times a CPU profiler's SIGPROF handler from inside the process (shared by bench/cpu and
//! bench/peers/pprof-cpu through `#[path]`): once the profiler has installed its handler,
//! [`wrap`] puts [`timed`] in its place, which reads the thread's CPU clock
//! (`CLOCK_THREAD_CPUTIME_ID`, async-signal-safe; a system call, whose cost is measured and
//! subtracted) before and after calling the profiler's handler with the same arguments,
//! and keeps each call's duration in a fixed array (no allocation in the handler); [`unwrap`]
//! puts the profiler's handler back before the profile is finished (mapprof refuses to start
//! over a handler that is not its own; pprof-rs sets SIG_IGN when its guard drops).
//!
//! What this measures: the handler's own time, stack walk and recording included, per signal;
//! not the kernel's delivery of the signal and return from it (the same for both profilers:
//! both are SIGPROF handlers on ITIMER_PROF), nor the cache misses it causes the interrupted
//! code afterwards. CPU time, so a handler preempted in the middle does not count its time off
//! the CPU; page faults taken in it (a table's first touch of a page) do count. The two clock
//! reads' own cost is measured by [`clock_overhead_ns`] (median) and subtracted. The mean is the
//! figure to multiply by the samples, the median the typical sample.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

const SLOTS: usize = 1 << 16;
static DURATIONS: [AtomicU32; SLOTS] = [const { AtomicU32::new(0) }; SLOTS];
static CALLS: AtomicUsize = AtomicUsize::new(0);
static HANDLER: AtomicUsize = AtomicUsize::new(0);
static SAVED: Mutex<Option<Saved>> = Mutex::new(None);

struct Saved(libc::sigaction);
// SAFETY: a sigaction is plain data (a handler address, flags and a signal mask).
unsafe impl Send for Saved {}

type Handler = extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void);

fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_THREAD_CPUTIME_ID always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

extern "C" fn timed(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let h = HANDLER.load(Relaxed);
    if h == 0 {
        return;
    }
    // SAFETY: HANDLER holds the address of the profiler's 3-argument (SA_SIGINFO) handler,
    // checked by `wrap`.
    let f: Handler = unsafe { std::mem::transmute::<usize, Handler>(h) };
    let t0 = now_ns();
    f(sig, info, ctx);
    let dt = now_ns().saturating_sub(t0);
    let i = CALLS.fetch_add(1, Relaxed);
    if i < SLOTS {
        DURATIONS[i].store(dt.min(u64::from(u32::MAX)) as u32, Relaxed);
    }
}

/// Puts [`timed`] in front of the SIGPROF handler installed now; resets the counts.
pub fn wrap() {
    // SAFETY: a zeroed sigaction is a valid out-parameter; sigaction reads/writes it only.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: querying the current action, `old` a valid out-pointer.
    assert_eq!(
        unsafe { libc::sigaction(libc::SIGPROF, std::ptr::null(), &mut old) },
        0
    );
    assert!(
        old.sa_sigaction != libc::SIG_DFL
            && old.sa_sigaction != libc::SIG_IGN
            && old.sa_flags & libc::SA_SIGINFO != 0,
        "no SA_SIGINFO SIGPROF handler installed to time"
    );
    CALLS.store(0, Relaxed);
    HANDLER.store(old.sa_sigaction, Relaxed);
    let mut new = old;
    new.sa_sigaction = timed as *const () as usize;
    // SAFETY: installs `timed`, an async-signal-safe handler, with the profiler's flags and mask.
    assert_eq!(
        unsafe { libc::sigaction(libc::SIGPROF, &new, std::ptr::null_mut()) },
        0
    );
    *SAVED.lock().unwrap() = Some(Saved(old));
}

/// Puts the profiler's handler back; returns (calls, mean ns, median ns), the clock reads'
/// cost subtracted.
pub fn unwrap() -> (u64, f64, f64) {
    let saved = SAVED.lock().unwrap().take().expect("wrap() first");
    // SAFETY: restores the action read by `wrap`.
    assert_eq!(
        unsafe { libc::sigaction(libc::SIGPROF, &saved.0, std::ptr::null_mut()) },
        0
    );
    let n = CALLS.load(Relaxed).min(SLOTS);
    let overhead = clock_overhead_ns();
    let mut d: Vec<f64> = DURATIONS[..n]
        .iter()
        .map(|x| (f64::from(x.load(Relaxed)) - overhead).max(0.0))
        .collect();
    if d.is_empty() {
        return (0, 0.0, 0.0);
    }
    d.sort_by(|a, b| a.total_cmp(b));
    let mean = d.iter().sum::<f64>() / d.len() as f64;
    (CALLS.load(Relaxed) as u64, mean, d[d.len() / 2])
}

/// The median cost of two back-to-back clock reads, in ns.
pub fn clock_overhead_ns() -> f64 {
    let mut v: Vec<u64> = (0..2001)
        .map(|_| {
            let t0 = now_ns();
            now_ns().saturating_sub(t0)
        })
        .collect();
    v.sort_unstable();
    v[v.len() / 2] as f64
}
