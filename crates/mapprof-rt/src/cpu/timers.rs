//! The timers that pace CPU samples: one per thread, on that thread's own CPU clock.
//!
//! A process-wide `ITIMER_PROF` charges its signal to whichever thread's scheduler tick first
//! sees the process's CPU time pass the next period. CPUs tick together, so one CPU's thread
//! wins more often than its share: two spinners of 2.0 CPU-s each were charged 265 and 129
//! samples at 99 Hz (198 each expected) on a loaded 2-core machine. So, as Go does since 1.18,
//! every thread gets a POSIX timer on its own CPU clock that signals that thread
//! (`timer_create` with `SIGEV_THREAD_ID`): a sample then stands for CPU time the interrupted
//! thread used.
//!
//! - [`arm_threads`] gives one to each thread alive when a profile starts (`/proc/self/task`).
//! - A thread started later is found by the process-wide timer, which still runs at the same
//!   rate: its first SIGPROF on such a thread arms that thread's own ([`arm_this_thread`], two
//!   system calls, async-signal-safe) and counts as a sample; on a thread that has its own
//!   timer, the process timer's signals are ignored ([`this_thread`]).
//! - At most [`MAX_THREAD_TIMERS`] threads get one per profile (each holds a kernel timer and
//!   a preallocated signal counted against `RLIMIT_SIGPENDING`); past that, or when the kernel
//!   refuses, a thread is sampled by the process timer alone (its samples are counted apart).
//! - [`disarm`] deletes them all when the profile ends. A forked child has none (POSIX timers
//!   are not inherited) and none survive `execve`.
//!
//! The timers' signals carry the profile's id (`sigev_value`), so that a SIGPROF from someone
//! else's timer, or a late one from an earlier profile, is not taken for a sample.

use std::io;
use std::sync::atomic::{
    AtomicI32, AtomicUsize,
    Ordering::{AcqRel, Acquire, Relaxed, Release},
};

/// Threads given a timer of their own in one profile (a tokio runtime's blocking pool tops out
/// at 512 threads). Slots are not reused within a profile: a thread that exits keeps its slot.
pub const MAX_THREAD_TIMERS: usize = 2048;

/// A thread's timer: the thread's id (0 while the slot is being filled) and the kernel's timer
/// id, or [`REFUSED`].
struct Slot {
    tid: AtomicI32,
    timer: AtomicI32,
}

#[allow(clippy::declare_interior_mutable_const)] // Only used to initialise `SLOTS`.
const EMPTY: Slot = Slot {
    tid: AtomicI32::new(0),
    timer: AtomicI32::new(0),
};

/// 16 KiB, paged in only as threads are given timers.
static SLOTS: [Slot; MAX_THREAD_TIMERS] = [EMPTY; MAX_THREAD_TIMERS];
/// Slots handed out in this profile (may pass [`MAX_THREAD_TIMERS`]: the excess got none).
static CLAIMED: AtomicUsize = AtomicUsize::new(0);
/// The timer id of a thread the kernel refused one.
const REFUSED: libc::c_int = -1;

/// What the calling thread has in this profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Timer {
    /// A timer of its own.
    Own,
    /// None: the kernel refused one.
    Refused,
    /// None asked for yet, or no slot was left.
    Unknown,
}

/// `MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED)` from the kernel's `posix-timers.h`: the clock
/// id of another thread's CPU time (`pthread_getcpuclockid` needs a `pthread_t`, which
/// `/proc` does not give).
fn thread_cpu_clock(tid: libc::pid_t) -> libc::clockid_t {
    const CPUCLOCK_PERTHREAD: libc::clockid_t = 4;
    const CPUCLOCK_SCHED: libc::clockid_t = 2;
    (!tid << 3) | CPUCLOCK_PERTHREAD | CPUCLOCK_SCHED
}

/// Gives every thread of the process a timer firing each `period_ns` of its CPU time, its
/// signals tagged `profile`. Threads that exit meanwhile are skipped.
pub(super) fn arm_threads(period_ns: u64, profile: u64) -> io::Result<()> {
    for entry in std::fs::read_dir("/proc/self/task")? {
        let Some(tid) = entry?
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        arm(tid, thread_cpu_clock(tid), period_ns, profile);
    }
    Ok(())
}

/// From the SIGPROF handler, on a thread without a timer: gives it one (async-signal-safe:
/// atomics and system calls only).
pub(super) fn arm_this_thread(period_ns: u64, profile: u64) {
    arm(gettid(), libc::CLOCK_THREAD_CPUTIME_ID, period_ns, profile);
}

/// The calling thread's timer in this profile. Async-signal-safe.
pub(super) fn this_thread() -> Timer {
    let tid = gettid();
    let claimed = CLAIMED.load(Acquire).min(MAX_THREAD_TIMERS);
    match SLOTS[..claimed].iter().find(|s| s.tid.load(Acquire) == tid) {
        Some(slot) if slot.timer.load(Relaxed) == REFUSED => Timer::Refused,
        Some(_) => Timer::Own,
        None => Timer::Unknown,
    }
}

/// Deletes every thread's timer. Called once no handler can be arming one.
pub(super) fn disarm() {
    let claimed = CLAIMED.load(Acquire).min(MAX_THREAD_TIMERS);
    for slot in &SLOTS[..claimed] {
        if slot.tid.swap(0, AcqRel) != 0 && slot.timer.load(Relaxed) != REFUSED {
            // SAFETY: deletes a timer this module created and has not deleted; failure (it
            // cannot fail for a valid id) would leave a timer whose signals carry an old
            // profile's id, ignored.
            unsafe { libc::syscall(libc::SYS_timer_delete, slot.timer.load(Relaxed)) };
        }
    }
    CLAIMED.store(0, Release);
}

/// In a child process just forked: the parent's timers are not the child's.
pub(super) fn forget_in_child() {
    for slot in &SLOTS {
        slot.tid.store(0, Relaxed);
    }
    CLAIMED.store(0, Release);
}

/// Creates and starts a timer on `clock` that sends SIGPROF to thread `tid`, and records it.
/// Async-signal-safe.
fn arm(tid: libc::pid_t, clock: libc::clockid_t, period_ns: u64, profile: u64) {
    let index = CLAIMED.fetch_add(1, AcqRel);
    let Some(slot) = SLOTS.get(index) else {
        return;
    };
    // SAFETY: a zeroed `sigevent` is valid; the fields the kernel reads are set below.
    let mut event: libc::sigevent = unsafe { std::mem::zeroed() };
    event.sigev_notify = libc::SIGEV_THREAD_ID;
    event.sigev_signo = libc::SIGPROF;
    event.sigev_notify_thread_id = tid;
    event.sigev_value = libc::sigval {
        sival_ptr: profile as usize as *mut libc::c_void,
    };
    let mut timer: libc::c_int = 0;
    // SAFETY: the raw system call (glibc's wrapper is not async-signal-safe): `event` is a
    // valid `sigevent`, `timer` a valid out-pointer for the kernel's `int` timer id.
    let created = unsafe {
        libc::syscall(
            libc::SYS_timer_create,
            clock,
            &event as *const libc::sigevent,
            &mut timer as *mut libc::c_int,
        )
    };
    if created != 0 {
        // The thread exited (EINVAL) or the kernel refused (EAGAIN): the process timer
        // samples it, if it lives.
        refused(slot, tid);
        return;
    }
    let period = libc::timespec {
        tv_sec: (period_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (period_ns % 1_000_000_000) as libc::c_long,
    };
    let every = libc::itimerspec {
        it_interval: period,
        it_value: period,
    };
    // SAFETY: starts the timer just created; `every` is a valid `itimerspec`, the old value is
    // not asked for.
    let started = unsafe {
        libc::syscall(
            libc::SYS_timer_settime,
            timer,
            0,
            &every as *const libc::itimerspec,
            std::ptr::null_mut::<libc::itimerspec>(),
        )
    };
    if started != 0 {
        // SAFETY: deletes the timer just created, which never ran.
        unsafe { libc::syscall(libc::SYS_timer_delete, timer) };
        refused(slot, tid);
        return;
    }
    slot.timer.store(timer, Relaxed);
    slot.tid.store(tid, Release);
}

/// Records that `tid` has no timer, so that it is not asked for again in this profile.
fn refused(slot: &Slot, tid: libc::pid_t) {
    slot.timer.store(REFUSED, Relaxed);
    slot.tid.store(tid, Release);
}

fn gettid() -> libc::pid_t {
    crate::thread::gettid() as libc::pid_t
}
