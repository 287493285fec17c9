//! CPU samples: a SIGPROF handler that records the interrupted stack into a fixed table, the
//! way heap and lock samples are recorded.
//!
//! # How a sample is taken
//!
//! [`start`] gives each thread a timer on its own CPU clock ([`timers`]): the kernel then sends
//! SIGPROF to a thread each 1/hz s of CPU time it uses. The handler
//! 1. returns at once unless a profile is being taken, and ignores SIGPROFs that are not its
//!    timers' (see [`Source`]);
//! 2. captures the interrupted stack. Interrupted in the executable (built with frame
//!    pointers): the instruction and the frame-pointer chain saved in the signal's
//!    `ucontext_t`, read only inside the thread's known stack bounds
//!    ([`crate::stack::capture_interrupted`]). Interrupted in a shared library (glibc and
//!    most system libraries are built without frame pointers, so the chain would skip or
//!    invent callers): libgcc's unwinder from the handler through the signal frame, cut at the
//!    signal trampoline, where it is async-signal-safe (below). [`Unwinder::Dwarf`] unwinds
//!    every sample that way, [`Unwinder::FramePointer`] none;
//! 3. reads the thread's label set id ([`crate::labels::signal_id`]);
//! 4. adds the sample to the bucket of (stack, labels, period) in [`CPU_TABLE`], a stack table
//!    of its own, fixed size, emptied after each profile: one sample, plus one for each period
//!    the timer overran before its signal was delivered (`si_overrun`).
//!
//! # Invariants: the handler is async-signal-safe
//!
//! A SIGPROF lands anywhere: inside jemalloc, inside the allocator hooks (which may hold the
//! main table's or the label table's insert lock), inside a stack walk, the lock shim, or this
//! handler's own tables on another thread. So the handler
//! - never allocates, and calls no function that may (no `pthread_getattr_np`: a thread whose
//!   stack bounds are not known yet gets a one-frame sample);
//! - takes locks only with a bounded spin and never waits for them ([`Caller::SignalHandler`]):
//!   a sample that finds an insert lock taken (perhaps by the code it interrupted) is charged
//!   to the table's lost bucket, or its labels to the overflow set, and counted;
//! - reads only atomics, its own signal context and the interrupted thread's stack, inside the
//!   bounds of that stack; has no panic path and only bounded loops;
//! - keeps `errno` as it found it;
//! - unwinds with DWARF only where libgcc finds unwind tables with `_dl_find_object` (glibc >=
//!   2.35 with GCC >= 12's libgcc: lock-free, documented async-signal-safe) instead of
//!   `dl_iterate_phdr` (the loader's lock); its one-time set-up runs in [`start`]. On an older
//!   glibc, `Unwinder::Auto` walks frame pointers only.
//!
//! The handler is installed at the first [`start`] and never removed: a SIGPROF still pending
//! after the timer stops then finds the profile off and returns, where the default action
//! would end the process. It runs on the interrupted stack (no `SA_ONSTACK`): about 2 KiB
//! with frame pointers, more with DWARF, which a thread's own stack has and an 8 KiB alternate
//! signal stack may not.
//!
//! # Limits
//!
//! - The kernel checks CPU timers at its scheduler tick and sends at most one signal per tick
//!   per thread: above `CONFIG_HZ` (250 on Debian's kernels) samples per CPU-second, the
//!   overrun periods are charged to the stack the tick interrupted, so CPU time adds up but
//!   stacks are taken at the tick's rate.
//! - The process-wide interval timer survives `execve`: a process that replaces itself while a
//!   profile runs receives SIGPROF without a handler and dies (a child created by `fork` has
//!   no timer).

mod timers;

pub use timers::MAX_THREAD_TIMERS;

use crate::labels;
use crate::spin::Caller;
use crate::stack::{self, Frames, Unwinder, MAX_DEPTH};
use crate::table::{Add, Key, Kind, Record, Table};
use crate::thread::STATE;
use std::io;
use std::mem::MaybeUninit;
use std::sync::atomic::{
    AtomicBool, AtomicU32, AtomicU64, AtomicUsize,
    Ordering::{AcqRel, Acquire, Relaxed, Release},
};
use timers::Timer;

/// Distinct (stack, labels) buckets in one CPU profile. 30 s at 99 Hz on 8 busy CPUs is about
/// 24,000 samples, most sharing their stack with others; past this they are lost, counted.
pub const MAX_CPU_BUCKETS: usize = 1 << 14;
/// Frames shared by the CPU buckets' stacks: 32 per bucket on average (4 MiB).
const CPU_FRAMES: usize = 1 << 19;

/// The CPU samples of the profile being taken: 1 MiB of buckets, 128 KiB of index and 4 MiB of
/// frames, paged in only as samples arrive and handed back to the kernel after each profile.
static CPU_TABLE: Table<MAX_CPU_BUCKETS, { 2 * MAX_CPU_BUCKETS }, CPU_FRAMES> = Table::new();

/// The id of the [`Sampling`] that owns the timer and the table (one profile at a time), or 0.
static OWNER: AtomicU64 = AtomicU64::new(0);
/// Ids for [`Sampling`]s: a child process forked during a profile frees the sampler (it has no
/// timer), and the parent's `Sampling` copied into it, should it be dropped there, finds
/// itself no longer the owner and leaves the child's own profile alone.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// Whether the handler records: set while the timer runs.
static RECORDING: AtomicBool = AtomicBool::new(false);
/// Handlers between their check of [`RECORDING`] and their last write to the table.
static IN_HANDLER: AtomicU32 = AtomicU32::new(0);
/// The sampling period in ns, each sample's weight.
static PERIOD_NS: AtomicU64 = AtomicU64::new(0);
/// SIGPROF's trampoline (`sa_restorer`), where a DWARF unwind from the handler leaves the
/// handler's frames; 0 when unknown.
static TRAMPOLINE: AtomicUsize = AtomicUsize::new(0);
/// Signals handled while recording.
static SIGNALS: AtomicU64 = AtomicU64::new(0);
/// The executable's code, `[lo, hi)`: samples interrupted there walk frame pointers.
static EXECUTABLE_LO: AtomicUsize = AtomicUsize::new(0);
static EXECUTABLE_HI: AtomicUsize = AtomicUsize::new(0);
/// Whether DWARF unwinding is async-signal-safe here (see the module's invariants).
static DWARF_SAFE: AtomicBool = AtomicBool::new(false);
/// Samples whose stack could not be captured at all (no context, or a DWARF unwind that did
/// not reach the signal frame).
static NOT_UNWOUND: AtomicU64 = AtomicU64::new(0);
/// SIGPROFs not sent by the profile's timers, ignored (see [`Source`]).
static NOT_FROM_THE_TIMER: AtomicU64 = AtomicU64::new(0);
/// Samples taken by the process-wide timer, on threads without a timer of their own
/// ([`Samples::by_process_timer`]).
static BY_PROCESS_TIMER: AtomicU64 = AtomicU64::new(0);

/// Why [`start`] did not start.
#[derive(Debug)]
pub enum StartError {
    /// Another CPU profile is being taken, by mapprof or by someone else in the process
    /// (`ITIMER_PROF` armed, or another SIGPROF handler installed).
    Busy,
    /// A system call failed.
    Io(io::Error),
}

/// A CPU profile being taken: samples are recorded from [`start`] until [`Sampling::finish`],
/// which returns them. Dropping it stops the timer and discards the samples.
#[derive(Debug)]
#[must_use = "dropping it stops the sampling"]
pub struct Sampling {
    id: u64,
}

/// What a finished profile recorded.
#[derive(Debug)]
pub struct Samples {
    /// One record per (stack, labels, period) bucket ([`Record::cpu_samples`] samples),
    /// `rate` its period in ns. A `lost` record counts samples that found the table full or
    /// its insert lock taken.
    pub records: Vec<Record>,
    /// Signals the handler took while recording.
    pub signals: u64,
    /// Samples without any frame (see [`NOT_UNWOUND`]); they are counted in the lost record,
    /// never dropped.
    pub not_unwound: u64,
    /// SIGPROFs sent by a process (`kill`, `tgkill`, `sigqueue`, someone else's timer) rather
    /// than the profile's timers while recording: not CPU time, so not samples.
    pub not_from_the_timer: u64,
    /// Samples taken by the process-wide timer: the first of each thread started during the
    /// profile (the one that arms the thread's own), and every one of threads that got none
    /// (more than [`MAX_THREAD_TIMERS`], or refused by the kernel). That timer charges a
    /// thread's tick with time other threads may have used.
    pub by_process_timer: u64,
}

/// Starts sampling the whole process's CPU time at `hz` samples per CPU-second (1 to 1000;
/// the caller checks the range). Fails with [`StartError::Busy`] while another profile runs.
pub fn start(hz: u32) -> Result<Sampling, StartError> {
    let id = NEXT_ID.fetch_add(1, Relaxed);
    if OWNER.compare_exchange(0, id, AcqRel, Relaxed).is_err() {
        return Err(StartError::Busy);
    }
    // From here on, dropping `sampling` undoes what was done.
    let sampling = Sampling { id };
    // A child forked during a profile inherited its samples.
    CPU_TABLE.clear();
    if timer_armed().map_err(StartError::Io)? {
        return Err(StartError::Busy);
    }
    install_handler()?;
    prepare_unwinding();
    let hz = hz.clamp(1, 1000);
    PERIOD_NS.store(1_000_000_000 / u64::from(hz), Relaxed);
    SIGNALS.store(0, Relaxed);
    NOT_UNWOUND.store(0, Relaxed);
    NOT_FROM_THE_TIMER.store(0, Relaxed);
    BY_PROCESS_TIMER.store(0, Relaxed);
    RECORDING.store(true, Release);
    // Without `/proc`, each thread gets its timer at its first SIGPROF from the process's.
    let _ = timers::arm_threads(PERIOD_NS.load(Relaxed), id);
    // The process-wide timer finds threads started from here on. At 1 Hz the period is a
    // whole second, which `tv_usec` may not hold (EINVAL).
    let period_us = 1_000_000 / hz;
    let interval = libc::timeval {
        tv_sec: (period_us / 1_000_000) as libc::time_t,
        tv_usec: (period_us % 1_000_000) as libc::suseconds_t,
    };
    set_timer(interval).map_err(StartError::Io)?;
    Ok(sampling)
}

impl Sampling {
    /// Stops sampling and returns what was recorded; the table is emptied and its memory
    /// handed back. (Nothing, in a child process forked while it ran.)
    pub fn finish(self) -> Samples {
        if OWNER.load(Acquire) != self.id {
            return Samples {
                records: Vec::new(),
                signals: 0,
                not_unwound: 0,
                not_from_the_timer: 0,
                by_process_timer: 0,
            };
        }
        stop();
        let samples = Samples {
            records: CPU_TABLE.snapshot_with(Kind::Cpu, |_| true),
            signals: SIGNALS.load(Relaxed),
            not_unwound: NOT_UNWOUND.load(Relaxed),
            not_from_the_timer: NOT_FROM_THE_TIMER.load(Relaxed),
            by_process_timer: BY_PROCESS_TIMER.load(Relaxed),
        };
        drop(self);
        samples
    }
}

impl Drop for Sampling {
    fn drop(&mut self) {
        if OWNER.load(Acquire) == self.id {
            stop();
            CPU_TABLE.clear();
            OWNER.store(0, Release);
        }
    }
}

/// In a child process just forked (see `crate::fork`): no timer runs there (interval timers
/// are not inherited) and no other thread exists, so the sampler and its table are free.
pub(crate) fn after_fork_in_child() {
    RECORDING.store(false, Relaxed);
    IN_HANDLER.store(0, Relaxed);
    OWNER.store(0, Release);
    timers::forget_in_child();
    CPU_TABLE.after_fork_in_child();
}

/// Disarms the timers and waits for handlers still writing to the table (their work is
/// bounded: a stack walk and a bounded spin, so is the wait), then deletes the threads'
/// timers, which no handler can be arming any more.
/// The process timer is disarmed only if this profile armed it (a refused start leaves another
/// profiler's alone).
fn stop() {
    if RECORDING.swap(false, AcqRel) {
        let _ = set_timer(libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        });
    }
    while IN_HANDLER.load(Acquire) != 0 {
        std::thread::yield_now();
    }
    timers::disarm();
}

/// What a handler needs to unwind, looked up before the first signal (it cannot be from a
/// handler): the calling thread's stack bounds, whether DWARF unwinding is lock-free here, the
/// executable's code, and libgcc's one-time set-up. Also for [`crate::threads`]' dumps.
pub(crate) fn prepare_unwinding() {
    STATE.with(stack::stack_bounds);
    DWARF_SAFE.store(lock_free_unwinder(glibc_version()), Relaxed);
    if let Some((lo, hi)) = executable_code() {
        EXECUTABLE_LO.store(lo, Relaxed);
        EXECUTABLE_HI.store(hi, Relaxed);
    }
    stack::walk_dwarf(&mut [0; MAX_DEPTH]);
}

/// The interrupted stack of a signal handler's thread, into `frames`; its depth (0: none).
/// DWARF when asked for ([`Unwinder::Dwarf`]), or under [`Unwinder::Auto`] when it is
/// lock-free here and the walk would go wrong: interrupted in a shared library (no frame
/// pointers), or, with `dwarf_without_bounds`, on a thread whose stack bounds are not known
/// (a frame-pointer walk would stop at the interrupted instruction). Frame pointers otherwise,
/// and when the DWARF unwind did not reach the signal frame at `trampoline`, or when this
/// call interrupted another on the same thread (`ThreadState::unwinding`).
/// Async-signal-safe under the module's invariants.
pub(crate) fn unwind_interrupted(
    context: *const libc::c_void,
    frames: &mut Frames,
    trampoline: usize,
    dwarf_without_bounds: bool,
) -> usize {
    STATE
        .try_with(|state| {
            let nested = state.unwinding.replace(true);
            let by_dwarf = !nested
                && match stack::unwinder() {
                    Unwinder::Dwarf => true,
                    Unwinder::FramePointer => false,
                    Unwinder::Auto => {
                        DWARF_SAFE.load(Relaxed)
                            && ((dwarf_without_bounds && state.stack_hi.get() <= 1)
                                || stack::interrupted_pc(context).is_some_and(|pc| {
                                    !(EXECUTABLE_LO.load(Relaxed)..EXECUTABLE_HI.load(Relaxed))
                                        .contains(&pc)
                                }))
                    }
                };
            let depth = match by_dwarf.then(|| capture_dwarf(frames, trampoline)) {
                Some(n) if n > 0 => n,
                _ => stack::capture_interrupted(state, context, frames),
            };
            state.unwinding.set(nested);
            depth
        })
        .unwrap_or(0)
}

/// The CPU table's memory, for [`crate::footprint`].
pub(crate) fn table_region() -> crate::footprint::Region {
    crate::footprint::region(&CPU_TABLE)
}

fn timer_armed() -> io::Result<bool> {
    let mut current = MaybeUninit::<libc::itimerval>::zeroed();
    // SAFETY: `getitimer` writes the current timer into `current`, a valid out-pointer.
    if unsafe { libc::getitimer(libc::ITIMER_PROF, current.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: zero-initialised, then written by the kernel.
    let current = unsafe { current.assume_init() };
    let value = current.it_value;
    Ok(value.tv_sec != 0 || value.tv_usec != 0)
}

fn set_timer(interval: libc::timeval) -> io::Result<()> {
    let timer = libc::itimerval {
        it_interval: interval,
        it_value: interval,
    };
    // SAFETY: `timer` is a valid `itimerval`; the old value is not asked for.
    if unsafe { libc::setitimer(libc::ITIMER_PROF, &timer, std::ptr::null_mut()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A `SA_SIGINFO` signal handler.
pub(crate) type Handler = extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void);

/// Installs [`on_sigprof`] unless it is installed; refuses to replace someone else's handler.
fn install_handler() -> Result<(), StartError> {
    let current = sigprof_action().map_err(StartError::Io)?;
    let ours = on_sigprof as Handler as usize;
    if current.sa_sigaction == ours {
        return Ok(());
    }
    if current.sa_sigaction != libc::SIG_DFL && current.sa_sigaction != libc::SIG_IGN {
        return Err(StartError::Busy);
    }
    // SAFETY: a zeroed `sigaction` is a valid value (empty mask, no flags), filled in below.
    let mut action: libc::sigaction = unsafe { MaybeUninit::zeroed().assume_init() };
    action.sa_sigaction = ours;
    action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
    // SAFETY: `action` is valid, its handler an `extern "C"` function of the `SA_SIGINFO`
    // signature that lives as long as the process; the old action is not asked for.
    if unsafe { libc::sigaction(libc::SIGPROF, &action, std::ptr::null_mut()) } != 0 {
        return Err(StartError::Io(io::Error::last_os_error()));
    }
    // libc fills in its trampoline: read it back for DWARF unwinds.
    if let Ok(installed) = sigprof_action() {
        TRAMPOLINE.store(trampoline_of(&installed), Relaxed);
    }
    Ok(())
}

fn sigprof_action() -> io::Result<libc::sigaction> {
    let mut action = MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: with a null new action, `sigaction` only writes the current one into `action`,
    // a valid, zeroed `struct sigaction`.
    if unsafe { libc::sigaction(libc::SIGPROF, std::ptr::null(), action.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: zero-initialised, then filled in by the kernel: every field is valid.
    Ok(unsafe { action.assume_init() })
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn trampoline_of(action: &libc::sigaction) -> usize {
    action.sa_restorer.map_or(0, |f| f as usize)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn trampoline_of(_action: &libc::sigaction) -> usize {
    0
}

/// The SIGPROF handler (see the module's invariants).
extern "C" fn on_sigprof(
    _sig: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    IN_HANDLER.fetch_add(1, AcqRel);
    if RECORDING.load(Acquire) {
        let errno = Errno::save();
        match Source::of(info) {
            Source::ThreadTimer { overrun } => record(context, 1 + overrun),
            Source::ProcessTimer => match timers::this_thread() {
                Timer::Own => {}
                unknown_or_refused => {
                    if unknown_or_refused == Timer::Unknown {
                        timers::arm_this_thread(PERIOD_NS.load(Relaxed), OWNER.load(Relaxed));
                    }
                    BY_PROCESS_TIMER.fetch_add(1, Relaxed);
                    record(context, 1);
                }
            },
            Source::Other => {
                NOT_FROM_THE_TIMER.fetch_add(1, Relaxed);
            }
        }
        errno.restore();
    }
    IN_HANDLER.fetch_sub(1, Release);
}

/// Who sent a SIGPROF.
enum Source {
    /// The thread's own timer, tagged with this profile's id: the thread used a period of CPU
    /// time, plus `overrun` more before the signal was delivered.
    ThreadTimer { overrun: u64 },
    /// The process-wide interval timer (`SI_KERNEL`).
    ProcessTimer,
    /// A process (`kill`, `tgkill`, `sigqueue`), someone else's timer, or an earlier
    /// profile's: no CPU time of this profile's, and would be counted as such.
    Other,
}

/// The head of a `siginfo_t` sent by a POSIX timer: the kernel's `_timer` member of its
/// union, which is pointer-aligned.
#[repr(C)]
struct TimerSiginfo {
    signo: libc::c_int,
    errno: libc::c_int,
    code: libc::c_int,
    #[cfg(target_pointer_width = "64")]
    _align: libc::c_int,
    timer_id: libc::c_int,
    overrun: libc::c_int,
    value: libc::sigval,
}

impl Source {
    fn of(info: *const libc::siginfo_t) -> Source {
        if info.is_null() {
            return Source::Other;
        }
        // SAFETY: with `SA_SIGINFO` the kernel passes a valid `siginfo_t`, at least as large
        // as `TimerSiginfo`; its timer fields are read only when `si_code` says a timer sent
        // it.
        let info = unsafe { &*info.cast::<TimerSiginfo>() };
        match info.code {
            code if code > 0 => Source::ProcessTimer,
            libc::SI_TIMER if info.value.sival_ptr as usize as u64 == OWNER.load(Relaxed) => {
                Source::ThreadTimer {
                    overrun: info.overrun.max(0) as u64,
                }
            }
            _ => Source::Other,
        }
    }
}

/// Adds `samples` to the interrupted stack's bucket.
fn record(context: *const libc::c_void, samples: u64) {
    SIGNALS.fetch_add(1, Relaxed);
    let mut frames: Frames = [0; MAX_DEPTH];
    let depth = unwind_interrupted(context, &mut frames, TRAMPOLINE.load(Relaxed), false);
    if depth == 0 {
        NOT_UNWOUND.fetch_add(1, Relaxed);
    }
    let key = Key {
        kind: Kind::Cpu,
        rate: PERIOD_NS.load(Relaxed),
        flags: 0,
        size_class: 0,
        labels: labels::signal_id(),
        frames: &frames[..depth],
    };
    // An empty stack goes to the lost bucket: counted, never dropped.
    let bucket = if depth == 0 {
        Kind::Cpu as u32
    } else {
        CPU_TABLE.bucket_for(&key, Caller::SignalHandler)
    };
    CPU_TABLE.add(bucket, Add::CpuSamples(samples));
}

/// The interrupted code's frames by a DWARF unwind from the handler: everything after the
/// signal trampoline, the interrupted instruction first (as `pc + 1`, like
/// [`stack::capture_interrupted`]). 0 when the unwind did not get through the signal frame.
fn capture_dwarf(out: &mut Frames, trampoline: usize) -> usize {
    let mut all: Frames = [0; MAX_DEPTH];
    let n = stack::walk_dwarf(&mut all);
    let Some(at) = all[..n]
        .iter()
        .position(|&ip| trampoline != 0 && ip == trampoline)
    else {
        return 0;
    };
    let interrupted = &all[at + 1..n];
    for (i, (o, &ip)) in out.iter_mut().zip(interrupted).enumerate() {
        *o = ip + usize::from(i == 0);
    }
    interrupted.len()
}

/// The running glibc's (major, minor) version, if it is glibc.
fn glibc_version() -> Option<(u32, u32)> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `gnu_get_libc_version` returns a pointer to a static NUL-terminated string.
        let version = unsafe { std::ffi::CStr::from_ptr(libc::gnu_get_libc_version()) };
        let mut parts = version.to_str().ok()?.split('.');
        Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        None
    }
}

/// Whether libgcc's unwinder finds unwind tables without the loader's lock: glibc >= 2.35
/// (`_dl_find_object`, used by GCC >= 12's libgcc, which such a glibc ships with).
fn lock_free_unwinder(glibc: Option<(u32, u32)>) -> bool {
    glibc.is_some_and(|version| version >= (2, 35))
}

/// The main executable's code: the span of its executable `PT_LOAD` segments.
fn executable_code() -> Option<(usize, usize)> {
    let mut span: Option<(usize, usize)> = None;
    unsafe extern "C" fn first_object(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: `dl_iterate_phdr` passes a valid `dl_phdr_info` whose `dlpi_phdr` points at
        // `dlpi_phnum` program headers; `data` is the `span` passed below, alive meanwhile.
        unsafe {
            let info = &*info;
            let span = &mut *data.cast::<Option<(usize, usize)>>();
            for i in 0..usize::from(info.dlpi_phnum) {
                let ph = &*info.dlpi_phdr.add(i);
                if ph.p_type == libc::PT_LOAD && ph.p_flags & libc::PF_X != 0 {
                    let lo = info.dlpi_addr as usize + ph.p_vaddr as usize;
                    let hi = lo + ph.p_memsz as usize;
                    let (a, b) = span.unwrap_or((lo, hi));
                    *span = Some((a.min(lo), b.max(hi)));
                }
            }
        }
        1 // The first object is the executable: stop.
    }
    // SAFETY: the callback matches `dl_iterate_phdr`'s contract and `span` outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(first_object), (&mut span as *mut Option<_>).cast()) };
    span
}

/// `errno`, saved on entry to a signal handler and restored on exit, as POSIX asks of
/// handlers that might change it.
pub(crate) struct Errno(libc::c_int);

impl Errno {
    pub(crate) fn save() -> Errno {
        // SAFETY: `__errno_location` returns the calling thread's errno, valid for its life.
        Errno(unsafe { *libc::__errno_location() })
    }

    pub(crate) fn restore(self) {
        // SAFETY: as in `save`.
        unsafe { *libc::__errno_location() = self.0 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Burns CPU on this thread until the table has `n` samples, or 10 s of CPU time passed.
    fn spin_until_sampled(n: u64) {
        let start = thread_cpu_ns();
        let mut x = 0u64;
        while SIGNALS.load(Relaxed) < n && thread_cpu_ns() - start < 10_000_000_000 {
            for i in 0..10_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
        }
    }

    fn thread_cpu_ns() -> u64 {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `t` is a valid out-pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
        t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
    }

    #[test]
    fn dwarf_unwinds_in_the_handler_only_with_the_lock_free_unwinder() {
        assert!(lock_free_unwinder(Some((2, 36))));
        assert!(lock_free_unwinder(Some((3, 0))));
        assert!(!lock_free_unwinder(Some((2, 34))));
        assert!(!lock_free_unwinder(None));
    }

    #[test]
    fn the_executable_code_holds_this_function() {
        let (lo, hi) = executable_code().expect("the executable's segments");
        let here = the_executable_code_holds_this_function as fn() as usize;
        assert!((lo..hi).contains(&here), "{lo:#x}..{hi:#x} {here:#x}");
        let libc_getpid = libc::getpid as *const () as usize;
        assert!(!(lo..hi).contains(&libc_getpid), "getpid is libc's");
    }

    /// One test for the process-wide timer, table and handler: samples arrive with stacks,
    /// a second start is refused meanwhile, and finishing empties the table for the next.
    #[test]
    fn samples_are_recorded_one_profile_at_a_time_and_emptied_after() {
        STATE.with(stack::stack_bounds);
        let sampling = start(1000).expect("start");
        assert!(matches!(start(1000), Err(StartError::Busy)));
        spin_until_sampled(50);
        let samples = sampling.finish();
        let total: u64 = samples.records.iter().map(|r| r.cpu_samples()).sum();
        assert!(total >= 50, "{total} samples");
        assert!(
            total >= samples.signals,
            "{total} samples of {} signals",
            samples.signals
        );
        // The lost bucket (rate 0) may hold a sample whose handler found the insert lock taken
        // by another thread's, at the same tick.
        assert!(samples
            .records
            .iter()
            .all(|r| r.lost || r.rate == 1_000_000));
        // Other tests' threads may be sampled too, before their stack bounds are known.
        assert!(
            samples.records.iter().any(|r| r.stack.len() >= 3),
            "{:?}",
            samples.records
        );
        assert_eq!(CPU_TABLE.usage().0, 4, "emptied");
        assert!(CPU_TABLE.snapshot_with(Kind::Cpu, |_| true).is_empty());

        let again = start(500).expect("a finished profile frees the timer");
        spin_until_sampled(5);
        let samples = again.finish();
        assert!(samples
            .records
            .iter()
            .all(|r| r.lost || r.rate == 2_000_000));
        assert!(!timer_armed().unwrap());

        // A child forked during a profile can take its own; the parent's goes on.
        extern "C" fn in_child() {
            crate::fork::after_fork_in_child();
        }
        // SAFETY: registers a child handler of atomic stores (the facade registers the same).
        let registered = unsafe { libc::pthread_atfork(None, None, Some(in_child)) };
        assert_eq!(registered, 0);
        let running = start(1000).expect("start");
        // SAFETY: the child profiles and leaves with `_exit`, running no destructor; the one
        // allocation it makes (the records' copy) is glibc's malloc, which resets its locks in
        // a forked child.
        let child = unsafe { libc::fork() };
        if child == 0 {
            let ok = match start(1000) {
                Ok(own) => {
                    spin_until_sampled(3);
                    own.finish().signals >= 3
                }
                Err(_) => false,
            };
            // SAFETY: ends the child at once.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waits for the child just forked; `status` is a valid out-pointer.
        assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "the child could not profile: {status}"
        );
        spin_until_sampled(3);
        assert!(
            running.finish().signals >= 3,
            "the parent's profile went on"
        );

        // A SIGPROF that a process sends is not CPU time (at 1 Hz, the timer's first tick
        // is a second of CPU time away).
        let sampling = start(1).expect("start");
        for _ in 0..100 {
            // SAFETY: sends SIGPROF to this thread, handled before `raise` returns.
            assert_eq!(unsafe { libc::raise(libc::SIGPROF) }, 0);
        }
        let samples = sampling.finish();
        assert_eq!(samples.not_from_the_timer, 100, "the handler saw each");
        assert_eq!(samples.signals, 0, "and counted none as a sample");
    }
}
