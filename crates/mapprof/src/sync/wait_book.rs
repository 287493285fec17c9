//! Who is waiting on one lock, so that its holder can be charged for their wait when it unlocks
//! (Go 1.22's mutex profile: a hold of `t` with `n` waiters costs `n * t`).
//!
//! Everything here runs only on contended paths: the uncontended unlock finds no sleeper in the
//! lock word (`Mutex`) or 0 in `waiters` (`RwLock`). An unlock that finds waiters computes its charge just before releasing (a
//! clock read and a few instructions under the ledger's lock: the charge must be taken before
//! a waiter can get the lock and charge in its turn) and records it, stack and all, after.

use mapprof_rt::contention::{now_ns, record_holder_delay};
use std::cell::UnsafeCell;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{
    AtomicU32,
    Ordering::{Acquire, Relaxed, Release},
};

/// The waiting side of one lock.
#[derive(Debug, Default)]
pub(crate) struct WaitBook {
    /// Registered waiters (`RwLock`'s unlock reads it; `Mutex`'s lock word tells the same).
    waiters: AtomicU32,
    /// The id of the process whose thread holds the ledger, 0 when free: taken by waiters as
    /// they start and stop waiting and by unlocks that found waiters, for a few instructions.
    /// A fork in that instant leaves it held in the child by a thread that does not exist
    /// there; the child sees another process's id and takes it ([`WaitBook::ledger`]).
    holder: AtomicU32,
    ledger: UnsafeCell<Ledger>,
}

// SAFETY: `ledger` is only reached through `LedgerGuard`, which exists only while `holder`
// holds the calling process's id, taken by compare-and-swap: one thread at a time.
unsafe impl Sync for WaitBook {}
// The ledger's critical sections are arithmetic that cannot panic: no unwind leaves it half
// updated (std's `Mutex`, used before, is unwind-safe the same way, by poisoning).
impl std::panic::RefUnwindSafe for WaitBook {}

/// Waiters that registered since the last charge are "new" (their start times summed); the
/// others are "old" and have all been waiting since at least `last_charge`. `pending` is the
/// wait of waiters that got the lock before anyone charged it.
#[derive(Debug, Default)]
struct Ledger {
    /// The process the counts are of: in a child just forked they are its parent's threads',
    /// which are not there, so they are reset.
    process: u32,
    epoch: u64,
    old: u64,
    new: u64,
    new_start_sum: u64,
    last_charge: u64,
    pending: u64,
}

/// A waiter's registration: when it started and in which epoch. Its stack is the caller's
/// to keep: a thread's is captured before it sleeps, a task's when its wait is sampled.
#[derive(Debug)]
pub(crate) struct Ticket {
    start: u64,
    epoch: u64,
}

impl Ticket {
    /// When the wait started (`contention::now_ns`).
    pub(crate) fn start(&self) -> u64 {
        self.start
    }
}

impl WaitBook {
    pub(crate) const fn new() -> WaitBook {
        WaitBook {
            waiters: AtomicU32::new(0),
            holder: AtomicU32::new(0),
            ledger: UnsafeCell::new(Ledger {
                process: 0,
                epoch: 0,
                old: 0,
                new: 0,
                new_start_sum: 0,
                last_charge: 0,
                pending: 0,
            }),
        }
    }

    /// Takes the ledger: free, or held by a thread of another process (the parent this one was
    /// forked from). Its holders run a few instructions, so waiting is spinning, then yielding.
    fn ledger(&self) -> LedgerGuard<'_> {
        let process = this_process();
        let mut spins = 0u32;
        loop {
            let holder = self.holder.load(Relaxed);
            if holder != process
                && self
                    .holder
                    .compare_exchange(holder, process, Acquire, Relaxed)
                    .is_ok()
            {
                break;
            }
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        let mut guard = LedgerGuard { book: self };
        if guard.process != process {
            // First use, or first in a forked child: nobody of this process waits yet.
            *guard = Ledger {
                process,
                ..Ledger::default()
            };
            self.waiters.store(0, Relaxed);
        }
        guard
    }

    /// Registers the caller as about to wait for the lock: notes the time.
    pub(crate) fn enter(&self) -> Ticket {
        let start = now_ns();
        let mut l = self.ledger();
        l.new += 1;
        l.new_start_sum = l.new_start_sum.wrapping_add(start);
        self.waiters.fetch_add(1, Relaxed);
        Ticket {
            start,
            epoch: l.epoch,
        }
    }

    /// The waiter got the lock: unregisters it and keeps its not yet charged wait for the next
    /// charge. Returns its whole wait, for the block profile.
    #[must_use = "the wait is the block profile's to record"]
    pub(crate) fn leave(&self, ticket: &Ticket) -> u64 {
        let mut l = self.ledger();
        // Under the lock, as in `charge_waiters`: after the last charge.
        let end = now_ns();
        let uncharged_since = self.unregister(&mut l, ticket);
        l.pending = l
            .pending
            .saturating_add(end.saturating_sub(uncharged_since));
        end.saturating_sub(ticket.start)
    }

    /// The waiter gave up without the lock (an async lock's future dropped while it waited):
    /// unregisters it and records nothing. The part of its wait not yet charged is dropped, so
    /// a holder is charged only for waits that ended in the lock, as the block profile shows.
    #[cfg(feature = "tokio")]
    pub(crate) fn cancel(&self, ticket: &Ticket) {
        let mut l = self.ledger();
        self.unregister(&mut l, ticket);
    }

    /// Removes the waiter from the counts; returns since when its wait is not yet charged.
    fn unregister(&self, l: &mut Ledger, ticket: &Ticket) -> u64 {
        self.waiters.fetch_sub(1, Relaxed);
        if l.epoch == ticket.epoch {
            l.new -= 1;
            l.new_start_sum = l.new_start_sum.wrapping_sub(ticket.start);
            ticket.start
        } else {
            l.old -= 1;
            l.last_charge
        }
    }

    /// Called by a holder about to unlock: the wait its waiters accumulated since the last
    /// charge, or 0 (after a single load) when nobody waits. Pass it to [`record_charge`] once
    /// the lock is released.
    #[inline]
    pub(crate) fn charge(&self) -> u64 {
        if self.waiters.load(Relaxed) == 0 {
            return 0;
        }
        self.charge_waiters()
    }

    #[cold]
    #[inline(never)]
    fn charge_waiters(&self) -> u64 {
        let mut l = self.ledger();
        // Read under the ledger's lock: every start in it was read before it was entered, so
        // `now` is after all of them (read before the lock, a waiter entering meanwhile made
        // `new * now - new_start_sum` wrap to a delay of about 2^64 ns).
        let now = now_ns();
        let old = l.old * now.saturating_sub(l.last_charge);
        let new = (l.new * now).wrapping_sub(l.new_start_sum);
        let delay = old.saturating_add(new).saturating_add(l.pending);
        l.old += l.new;
        l.new = 0;
        l.new_start_sum = 0;
        l.pending = 0;
        l.epoch += 1;
        l.last_charge = now;
        delay
    }
}

/// This process's id, cached: `getpid` is a system call (glibc no longer caches it), and the
/// ledger is taken up to three times per contention (it was a third of an async contention's
/// cost). mapprof's fork handlers, registered at the first call, refresh it in a forked child
/// ([`after_fork_in_child`]) before any code of the child's runs.
fn this_process() -> u32 {
    match PROCESS.load(Relaxed) {
        0 => {
            crate::fork::register();
            after_fork_in_child();
            PROCESS.load(Relaxed)
        }
        process => process,
    }
}

/// The id [`this_process`] returns; 0 until its first call.
static PROCESS: AtomicU32 = AtomicU32::new(0);

/// In a child just forked (and at the first use): the cached process id is this process's.
pub(crate) fn after_fork_in_child() {
    PROCESS.store(std::process::id(), Relaxed);
}

/// The ledger, held ([`WaitBook::ledger`]); dropping it frees it.
struct LedgerGuard<'a> {
    book: &'a WaitBook,
}

impl Deref for LedgerGuard<'_> {
    type Target = Ledger;
    fn deref(&self) -> &Ledger {
        // SAFETY: the guard exists only while this thread holds the ledger (see `Sync`).
        unsafe { &*self.book.ledger.get() }
    }
}

impl DerefMut for LedgerGuard<'_> {
    fn deref_mut(&mut self) -> &mut Ledger {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference through the guard.
        unsafe { &mut *self.book.ledger.get() }
    }
}

impl Drop for LedgerGuard<'_> {
    fn drop(&mut self) {
        // Release: the next holder sees the ledger as this one left it.
        self.book.holder.store(0, Release);
    }
}

/// Records a holder's charge (its stack included), after its lock is released.
#[inline]
pub(crate) fn record_charge(delay_ns: u64) {
    if delay_ns > 0 {
        mapprof_rt::scope::on_holder_delay(delay_ns);
        record_holder_delay(delay_ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fork while another thread holds the ledger, with a waiter registered: the child can
    /// still register, leave and charge (rather than spin forever on a holder it does not
    /// have), and is not charged for its parent's waiter. `alarm` ends a child that hangs.
    #[test]
    fn a_forked_child_takes_a_ledger_its_parent_held() {
        let book = WaitBook::new();
        let parents_waiter = book.enter();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(
            book.charge() > 0,
            "the parent's waiter is charged in the parent"
        );
        let held = book.ledger();
        // SAFETY: the child only uses the book (atomics, the clock, a fixed-size stack
        // capture) and leaves with `_exit`, running no destructor.
        let child = unsafe { libc::fork() };
        if child == 0 {
            // SAFETY: schedules SIGALRM, whose default action ends the child, in 5 s.
            unsafe { libc::alarm(5) };
            let charged_for_parent = book.charge();
            let ticket = book.enter();
            let req = libc::timespec {
                tv_sec: 0,
                tv_nsec: 1_000_000,
            };
            // SAFETY: a plain sleep of 1 ms; `req` is valid and the remainder not asked for.
            unsafe { libc::nanosleep(&req, std::ptr::null_mut()) };
            let charged_for_own = book.charge();
            let _ = book.leave(&ticket);
            let ok = charged_for_parent == 0 && charged_for_own > 0;
            // SAFETY: ends the child at once.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        drop(held);
        let mut status = 0;
        // SAFETY: waits for the child just forked; `status` is a valid out-pointer.
        assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "the child hung or was charged for its parent's waiter: {status}"
        );
        let _ = book.leave(&parents_waiter);
    }
}
