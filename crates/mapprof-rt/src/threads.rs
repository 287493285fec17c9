//! Thread dumps: every thread's current stack, taken by signalling each thread and walking its
//! stack in the handler, and what each thread waits for in `mapprof::sync`.
//!
//! # How a dump is taken ([`dump`])
//!
//! 1. One dump at a time ([`DUMPING`]). The dumper lists the threads (`/proc/self/task`),
//!    gives each a slot of [`SLOTS`] (its tid, phase *asked* for this request's number), and
//!    publishes the request ([`REQUEST`]).
//! 2. It sends each thread the dump signal with `tgkill` (a real-time signal of its own, the
//!    highest one nobody handles, installed at the first dump: [`signal`]).
//! 3. The handler, on the signalled thread, finds its slot by tid, takes it (*asked* →
//!    *writing*, a compare-and-swap, so a late or duplicate signal writes nothing), unwinds the
//!    interrupted stack into a local array (the CPU sampler's unwinding: frame pointers inside
//!    the thread's known stack bounds, or libgcc's lock-free DWARF unwinder:
//!    [`crate::cpu::unwind_interrupted`]), copies it and the thread's [`Waiting`] record into
//!    the slot, and marks it *done*.
//! 4. The dumper waits until every slot is done or the timeout passes; a slot still *asked*
//!    is taken back (*asked* → idle) and reported as not answered (the thread blocks the
//!    signal, or was not scheduled in time); one being written is waited for (the handler's
//!    work is bounded). Then the request ends and the slots are copied out.
//!
//! # Invariants: the handler is async-signal-safe
//!
//! It allocates nothing and takes no lock: it reads and writes atomics of [`SLOTS`] (static),
//! calls `gettid` (a system call), unwinds as the SIGPROF handler does (under the same rules,
//! `crate::cpu`), reads the thread's own [`Waiting`] record (a thread-local of atomics, no
//! destructor) and the lock's owner word that record points at, and keeps `errno`. Its loops
//! are bounded by [`MAX_DUMP_THREADS`] and [`MAX_DEPTH`].
//!
//! # What a waiter tells
//!
//! A thread about to sleep for a `mapprof::sync` lock sets its [`Waiting`] record: the lock's
//! address, where the lock keeps its owner's tid (or none), the kind of wait and since when;
//! it clears it before it returns. The handler runs on that thread, between those two stores
//! or not at all, so the lock it reads the owner of is alive (the waiter holds a reference to
//! it throughout). Compiler fences order the stores against the handler, which is all a
//! signal handler on the same thread needs.

use crate::cpu::{self, Errno, Handler};
use crate::stack::{Frames, MAX_DEPTH};
use std::io;
use std::mem::MaybeUninit;
use std::sync::atomic::{
    compiler_fence, AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicU8, AtomicUsize,
    Ordering::{AcqRel, Acquire, Relaxed, Release},
};
use std::time::{Duration, Instant};

/// Threads one dump lists; past this they are counted ([`Dump::not_listed`]), not dumped.
/// Each slot holds a whole stack ([`MAX_DEPTH`] frames): 1,024 slots are about 1.1 MiB of
/// `.bss`, paged in by the dumps that use them.
pub const MAX_DUMP_THREADS: usize = 1024;

/// How long a dump waits for the threads to answer, by default: a sleeping thread is woken by
/// the signal at once, but on a busy machine it may wait for a CPU a while.
pub const DEFAULT_ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// What a thread waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum WaitKind {
    /// A `mapprof::sync::Mutex`.
    Mutex = 1,
    /// A `mapprof::sync::RwLock`, to read.
    RwLockRead = 2,
    /// A `mapprof::sync::RwLock`, to write.
    RwLockWrite = 3,
    /// A `mapprof::sync::Condvar`'s notification.
    Condvar = 4,
    /// A `mapprof::tokio` lock, from a blocking call (`blocking_lock`, ...): its holder is a
    /// task, not named.
    TokioLock = 5,
}

impl WaitKind {
    fn from_u8(v: u8) -> Option<WaitKind> {
        match v {
            1 => Some(WaitKind::Mutex),
            2 => Some(WaitKind::RwLockRead),
            3 => Some(WaitKind::RwLockWrite),
            4 => Some(WaitKind::Condvar),
            5 => Some(WaitKind::TokioLock),
            _ => None,
        }
    }
}

/// A thread's wait, as its handler found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wait {
    /// What for.
    pub kind: WaitKind,
    /// The lock's (or condition variable's) address.
    pub lock: usize,
    /// The tid the lock's owner word held (the thread that locked it last: its holder, but
    /// for the few instructions between a new holder's lock and its store of its tid); 0 when
    /// the lock keeps none (a `RwLock` held by readers, a condition variable).
    pub holder: u32,
    /// When the wait started, on `contention::now_ns`'s clock.
    pub since_ns: u64,
}

/// One thread in a dump.
#[derive(Clone, Debug)]
pub struct ThreadStack {
    /// Its id (`gettid`).
    pub tid: u32,
    /// Whether its handler answered in time.
    pub answered: bool,
    /// Its stack, innermost first: the interrupted instruction (as `pc + 1`), then return
    /// addresses. Empty if it did not answer.
    pub stack: Vec<usize>,
    /// What it waits for, if anything.
    pub wait: Option<Wait>,
}

/// A dump.
#[derive(Debug)]
pub struct Dump {
    /// The threads listed, by tid.
    pub threads: Vec<ThreadStack>,
    /// Threads past [`MAX_DUMP_THREADS`], not dumped.
    pub not_listed: usize,
    /// The signal used.
    pub signal: i32,
    /// The tid of the thread that took the dump.
    pub dumper: u32,
}

// ---- What a thread waits for --------------------------------------------------------------

/// A thread's wait record (see the module's "What a waiter tells"). `kind` 0: none.
struct Record {
    kind: AtomicU8,
    lock: AtomicUsize,
    owner: AtomicUsize,
    since_ns: AtomicU64,
}

thread_local! {
    static WAITING: Record = const {
        Record {
            kind: AtomicU8::new(0),
            lock: AtomicUsize::new(0),
            owner: AtomicUsize::new(0),
            since_ns: AtomicU64::new(0),
        }
    };
}

/// The calling thread waits for a lock while this lives (see [`Waiting::new`]).
#[derive(Debug)]
#[must_use = "the wait is recorded only while the guard lives"]
pub struct Waiting {
    set: bool,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Waiting {
    /// Records that the calling thread is about to wait (`kind`) for the lock at `lock`,
    /// since `since_ns`, until the guard is dropped. `owner`: the lock's word holding its
    /// holder's tid, if it keeps one. The caller keeps `owner` alive while the guard lives
    /// (the lock is borrowed for the whole wait), which is what lets the dump handler read it.
    /// A few thread-local stores: for contended paths only.
    pub fn new(kind: WaitKind, lock: usize, owner: Option<&AtomicU32>, since_ns: u64) -> Waiting {
        let owner = owner.map_or(0, |o| o as *const AtomicU32 as usize);
        let set = WAITING
            .try_with(|w| {
                w.lock.store(lock, Relaxed);
                w.owner.store(owner, Relaxed);
                w.since_ns.store(since_ns, Relaxed);
                // The handler reads `kind` first: the fields above are in place before it.
                compiler_fence(Release);
                w.kind.store(kind as u8, Relaxed);
            })
            .is_ok();
        Waiting {
            set,
            _not_send: std::marker::PhantomData,
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if self.set {
            let _ = WAITING.try_with(|w| {
                w.kind.store(0, Relaxed);
                // Before the lock (and its owner word) can go away after the wait.
                compiler_fence(Release);
            });
        }
    }
}

// ---- The slots ----------------------------------------------------------------------------

const IDLE: u64 = 0;
const ASKED: u64 = 1;
const WRITING: u64 = 2;
const DONE: u64 = 3;

const fn phase(request: u64, p: u64) -> u64 {
    request << 2 | p
}

/// One thread's answer.
struct Slot {
    tid: AtomicU32,
    /// `request << 2 | IDLE, ASKED, WRITING or DONE`.
    phase: AtomicU64,
    depth: AtomicUsize,
    frames: [AtomicUsize; MAX_DEPTH],
    wait_kind: AtomicU8,
    wait_lock: AtomicUsize,
    wait_holder: AtomicU32,
    wait_since: AtomicU64,
}

impl Slot {
    const fn new() -> Slot {
        Slot {
            tid: AtomicU32::new(0),
            phase: AtomicU64::new(IDLE),
            depth: AtomicUsize::new(0),
            frames: [const { AtomicUsize::new(0) }; MAX_DEPTH],
            wait_kind: AtomicU8::new(0),
            wait_lock: AtomicUsize::new(0),
            wait_holder: AtomicU32::new(0),
            wait_since: AtomicU64::new(0),
        }
    }
}

static SLOTS: [Slot; MAX_DUMP_THREADS] = [const { Slot::new() }; MAX_DUMP_THREADS];
/// Slots in use by the current request.
static COUNT: AtomicUsize = AtomicUsize::new(0);
/// The request being answered, 0 between dumps.
static REQUEST: AtomicU64 = AtomicU64::new(0);
static NEXT_REQUEST: AtomicU64 = AtomicU64::new(1);
/// Handlers between their read of [`REQUEST`] and their last write to a slot.
static IN_HANDLER: AtomicU32 = AtomicU32::new(0);
/// Held by the dump in progress.
static DUMPING: AtomicBool = AtomicBool::new(false);
/// The dump signal, 0 until installed.
static SIGNAL: AtomicI32 = AtomicI32::new(0);
/// The dump signal's trampoline, where a DWARF unwind leaves the handler's frames.
static TRAMPOLINE: AtomicUsize = AtomicUsize::new(0);
/// This process's id, for the handler's check of who sent the signal.
static PID: AtomicI32 = AtomicI32::new(0);

/// The dump handler (see the module's invariants).
extern "C" fn on_dump_signal(
    _sig: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    IN_HANDLER.fetch_add(1, AcqRel);
    let request = REQUEST.load(Acquire);
    if request != 0 && sent_by_this_process(info) {
        let errno = Errno::save();
        let tid = crate::thread::gettid();
        let count = COUNT.load(Acquire).min(MAX_DUMP_THREADS);
        if let Some(slot) = SLOTS[..count].iter().find(|s| s.tid.load(Relaxed) == tid) {
            let taken = slot.phase.compare_exchange(
                phase(request, ASKED),
                phase(request, WRITING),
                AcqRel,
                Relaxed,
            );
            if taken.is_ok() {
                answer(slot, context);
                slot.phase.store(phase(request, DONE), Release);
            }
        }
        errno.restore();
    }
    IN_HANDLER.fetch_sub(1, Release);
}

/// Whether `tgkill` from this process sent it (`SI_TKILL`, our pid): a `kill` from outside
/// finds nothing to answer.
fn sent_by_this_process(info: *const libc::siginfo_t) -> bool {
    if info.is_null() {
        return false;
    }
    // SAFETY: with `SA_SIGINFO` the kernel passes a valid `siginfo_t`; for `SI_TKILL` its
    // `_kill` member (sender's pid and uid) is the one filled in, which `si_pid` reads.
    unsafe { (*info).si_code == libc::SI_TKILL && (*info).si_pid() == PID.load(Relaxed) }
}

/// Fills the handler's slot: its stack and its wait.
fn answer(slot: &Slot, context: *const libc::c_void) {
    let mut frames: Frames = [0; MAX_DEPTH];
    let depth = cpu::unwind_interrupted(context, &mut frames, TRAMPOLINE.load(Relaxed), true);
    for (to, &from) in slot.frames.iter().zip(&frames[..depth]) {
        to.store(from, Relaxed);
    }
    slot.depth.store(depth, Relaxed);
    let _ = WAITING.try_with(|w| {
        let kind = w.kind.load(Relaxed);
        compiler_fence(Acquire);
        let owner = w.owner.load(Relaxed);
        let holder = if kind != 0 && owner != 0 {
            // SAFETY: `owner` was set by `Waiting::new` on this thread from a live
            // `&AtomicU32`, and `kind` is non-zero only between that and the guard's drop,
            // while the waiter borrows the lock: this handler interrupts the thread in that
            // span, so the atomic is alive; an atomic load of it is sound from any thread.
            unsafe { (*(owner as *const AtomicU32)).load(Relaxed) }
        } else {
            0
        };
        slot.wait_kind.store(kind, Relaxed);
        slot.wait_lock.store(w.lock.load(Relaxed), Relaxed);
        slot.wait_holder.store(holder, Relaxed);
        slot.wait_since.store(w.since_ns.load(Relaxed), Relaxed);
    });
}

// ---- The signal ---------------------------------------------------------------------------

/// The dump signal, installed at the first call: the highest real-time signal whose action is
/// the default (nobody handles it), so that the host's own signals are left alone. Installed
/// again on another if someone replaced the handler since.
pub fn signal() -> io::Result<i32> {
    let current = SIGNAL.load(Relaxed);
    let ours = on_dump_signal as Handler as usize;
    if current != 0 && action(current)?.sa_sigaction == ours {
        return Ok(current);
    }
    for sig in (libc::SIGRTMIN()..=libc::SIGRTMAX()).rev() {
        if action(sig)?.sa_sigaction != libc::SIG_DFL {
            continue;
        }
        // SAFETY: a zeroed `sigaction` is a valid value (empty mask, no flags), filled below.
        let mut new: libc::sigaction = unsafe { MaybeUninit::zeroed().assume_init() };
        new.sa_sigaction = ours;
        new.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        // SAFETY: `new` is valid, its handler an `extern "C"` function of the `SA_SIGINFO`
        // signature that lives as long as the process; the old action is not asked for.
        if unsafe { libc::sigaction(sig, &new, std::ptr::null_mut()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        TRAMPOLINE.store(cpu::trampoline_of(&action(sig)?), Relaxed);
        SIGNAL.store(sig, Relaxed);
        return Ok(sig);
    }
    Err(io::Error::other(
        "every real-time signal has a handler: none is free for thread dumps",
    ))
}

fn action(sig: i32) -> io::Result<libc::sigaction> {
    let mut action = MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: with a null new action, `sigaction` only writes the current one into `action`,
    // a valid, zeroed `struct sigaction`.
    if unsafe { libc::sigaction(sig, std::ptr::null(), action.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: zero-initialised, then filled in by the kernel: every field is valid.
    Ok(unsafe { action.assume_init() })
}

// ---- The dump -----------------------------------------------------------------------------

/// Takes a dump of every thread of the process, waiting at most `timeout` for their answers.
/// Allocates (the thread list, the result): call it from the profiler's own work, never from
/// a hot path. Dumps are taken one at a time; a second caller waits for the first.
pub fn dump(timeout: Duration) -> io::Result<Dump> {
    while DUMPING
        .compare_exchange(false, true, Acquire, Relaxed)
        .is_err()
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    struct Finish;
    impl Drop for Finish {
        fn drop(&mut self) {
            REQUEST.store(0, std::sync::atomic::Ordering::Release);
            DUMPING.store(false, std::sync::atomic::Ordering::Release);
        }
    }
    let _finish = Finish;
    let sig = signal()?;
    cpu::prepare_unwinding();
    let pid = std::process::id() as i32;
    PID.store(pid, Relaxed);
    let dumper = crate::thread::gettid();

    let mut tids: Vec<u32> = std::fs::read_dir("/proc/self/task")?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort_unstable();
    let not_listed = tids.len().saturating_sub(MAX_DUMP_THREADS);
    tids.truncate(MAX_DUMP_THREADS);

    // No handler of an earlier request is still writing a slot (their work is bounded).
    while IN_HANDLER.load(Acquire) != 0 {
        std::thread::yield_now();
    }
    let request = NEXT_REQUEST.fetch_add(1, Relaxed);
    for (slot, &tid) in SLOTS.iter().zip(&tids) {
        slot.tid.store(tid, Relaxed);
        slot.depth.store(0, Relaxed);
        slot.wait_kind.store(0, Relaxed);
        slot.phase.store(phase(request, ASKED), Relaxed);
    }
    COUNT.store(tids.len(), Release);
    REQUEST.store(request, Release);

    let mut gone = vec![false; tids.len()];
    for (i, &tid) in tids.iter().enumerate() {
        // SAFETY: `tgkill` sends `sig`, whose handler is installed, to a thread of this
        // process; a tid that has exited (or been reused elsewhere: the tgid check) fails.
        let r = unsafe { libc::syscall(libc::SYS_tgkill, pid, tid as libc::c_int, sig) };
        if r != 0 {
            gone[i] = true;
        }
    }
    let deadline = Instant::now() + timeout;
    let pending =
        |gone: &[bool], i: usize| !gone[i] && SLOTS[i].phase.load(Acquire) != phase(request, DONE);
    let mut polls = 0u32;
    while (0..tids.len()).any(|i| pending(&gone, i)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(500));
        polls += 1;
        // A thread that exited after its signal was sent never answers: every 50 ms, those
        // no longer in `/proc/self/task` are dropped rather than waited for.
        if polls.is_multiple_of(100) {
            for (i, &tid) in tids.iter().enumerate() {
                if pending(&gone, i)
                    && !std::path::Path::new(&format!("/proc/self/task/{tid}")).exists()
                {
                    gone[i] = true;
                }
            }
        }
    }
    // Take back the slots of threads that did not answer; wait for those being written.
    for slot in &SLOTS[..tids.len()] {
        let _ = slot
            .phase
            .compare_exchange(phase(request, ASKED), IDLE, AcqRel, Relaxed);
        while slot.phase.load(Acquire) == phase(request, WRITING) {
            std::thread::yield_now();
        }
    }
    REQUEST.store(0, std::sync::atomic::Ordering::Release);

    let threads = tids
        .iter()
        .enumerate()
        .filter(|&(i, _)| !gone[i])
        .map(|(i, &tid)| {
            let slot = &SLOTS[i];
            let answered = slot.phase.load(Acquire) == phase(request, DONE);
            let depth = if answered {
                slot.depth.load(Relaxed).min(MAX_DEPTH)
            } else {
                0
            };
            let stack = slot.frames[..depth]
                .iter()
                .map(|f| f.load(Relaxed))
                .collect();
            let wait = WaitKind::from_u8(slot.wait_kind.load(Relaxed))
                .filter(|_| answered)
                .map(|kind| Wait {
                    kind,
                    lock: slot.wait_lock.load(Relaxed),
                    holder: slot.wait_holder.load(Relaxed),
                    since_ns: slot.wait_since.load(Relaxed),
                });
            ThreadStack {
                tid,
                answered,
                stack,
                wait,
            }
        })
        .collect();
    Ok(Dump {
        threads,
        not_listed,
        signal: sig,
        dumper,
    })
}

/// In a child just forked: a dump the parent was taking is not going on here.
pub(crate) fn after_fork_in_child() {
    REQUEST.store(0, Relaxed);
    IN_HANDLER.store(0, Relaxed);
    COUNT.store(0, Relaxed);
    DUMPING.store(false, Relaxed);
}

/// The slots' memory, for [`crate::footprint`].
pub(crate) fn slots_region() -> crate::footprint::Region {
    crate::footprint::region(&SLOTS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_thread_answers_with_its_stack_and_wait() {
        let word = AtomicU32::new(4242);
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let waiter = std::thread::spawn(move || {
            let _w = Waiting::new(WaitKind::Mutex, 0x1234, Some(&word), 77);
            tx.send(crate::thread::gettid()).unwrap();
            let _ = stop_rx.recv();
        });
        let tid = rx.recv().unwrap();
        let dump = dump(Duration::from_secs(30)).unwrap();
        stop_tx.send(()).unwrap();
        waiter.join().unwrap();
        let me = dump.threads.iter().find(|t| t.tid == dump.dumper).unwrap();
        assert!(me.answered && me.stack.len() >= 3, "{me:?}");
        let t = dump.threads.iter().find(|t| t.tid == tid).unwrap();
        assert!(t.answered && !t.stack.is_empty(), "{t:?}");
        assert_eq!(
            t.wait,
            Some(Wait {
                kind: WaitKind::Mutex,
                lock: 0x1234,
                holder: 4242,
                since_ns: 77
            })
        );
        assert!(me.wait.is_none());

        // A thread that blocks every signal does not answer; the dump ends at its timeout
        // and says so, and the next dump is not disturbed by the signal left pending.
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let blocker = std::thread::spawn(move || {
            // SAFETY: `all` is initialised by sigfillset before use; blocking signals on this
            // thread only changes its own mask.
            unsafe {
                let mut all = MaybeUninit::<libc::sigset_t>::zeroed();
                libc::sigfillset(all.as_mut_ptr());
                libc::pthread_sigmask(libc::SIG_BLOCK, all.as_ptr(), std::ptr::null_mut());
            }
            tx.send(crate::thread::gettid()).unwrap();
            let _ = stop_rx.recv();
        });
        let blocked = rx.recv().unwrap();
        let dump = super::dump(Duration::from_millis(200)).unwrap();
        let t = dump.threads.iter().find(|t| t.tid == blocked).unwrap();
        assert!(
            !t.answered && t.stack.is_empty() && t.wait.is_none(),
            "{t:?}"
        );
        stop_tx.send(()).unwrap();
        blocker.join().unwrap();
        let again = super::dump(Duration::from_secs(30)).unwrap();
        assert!(again.threads.iter().all(|t| t.tid != blocked && t.answered));
    }
}
