//! Who is waiting on one lock, so that its holder can be charged for their wait when it unlocks
//! (Go 1.22's mutex profile: a hold of `t` with `n` waiters costs `n * t`).
//!
//! Everything here runs only on contended paths: the uncontended unlock finds no sleeper in the
//! lock word (`Mutex`) or 0 in `waiters` (`RwLock`). An unlock that finds waiters computes its charge just before releasing (a
//! clock read and a few instructions under the ledger's lock: the charge must be taken before
//! a waiter can get the lock and charge in its turn) and records it, stack and all, after.

use mapprof_rt::contention::{now_ns, record_holder_delay, WaiterStack};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};

/// The waiting side of one lock.
#[derive(Debug, Default)]
pub(crate) struct WaitBook {
    /// Registered waiters (`RwLock`'s unlock reads it; `Mutex`'s lock word tells the same).
    waiters: AtomicU32,
    /// Protects the arithmetic below; taken by waiters as they start and stop waiting and by
    /// unlocks that found waiters, for a few instructions.
    ledger: Mutex<Ledger>,
}

/// Waiters that registered since the last charge are "new" (their start times summed); the
/// others are "old" and have all been waiting since at least `last_charge`. `pending` is the
/// wait of waiters that got the lock before anyone charged it.
#[derive(Debug, Default)]
struct Ledger {
    epoch: u64,
    old: u64,
    new: u64,
    new_start_sum: u64,
    last_charge: u64,
    pending: u64,
}

/// A waiter's registration: when it started and in which epoch.
#[derive(Debug)]
pub(crate) struct Ticket {
    start: u64,
    epoch: u64,
    stack: Option<WaiterStack>,
}

impl WaitBook {
    pub(crate) const fn new() -> WaitBook {
        WaitBook {
            waiters: AtomicU32::new(0),
            ledger: Mutex::new(Ledger {
                epoch: 0,
                old: 0,
                new: 0,
                new_start_sum: 0,
                last_charge: 0,
                pending: 0,
            }),
        }
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        // Nothing in the ledger's critical sections can panic; recover anyway.
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers the calling thread as about to block on the lock: captures its stack first,
    /// then notes the time.
    pub(crate) fn enter(&self) -> Ticket {
        let stack = WaiterStack::capture();
        let start = now_ns();
        let mut l = self.ledger();
        l.new += 1;
        l.new_start_sum = l.new_start_sum.wrapping_add(start);
        self.waiters.fetch_add(1, Relaxed);
        Ticket {
            start,
            epoch: l.epoch,
            stack,
        }
    }

    /// The waiter got the lock: unregisters it, keeps its not yet charged wait for the next
    /// charge, and records its whole wait for the block profile.
    pub(crate) fn leave(&self, ticket: Ticket) {
        let end;
        {
            let mut l = self.ledger();
            // Under the lock, as in `charge_waiters`: after the last charge.
            end = now_ns();
            let uncharged_since = if l.epoch == ticket.epoch {
                l.new -= 1;
                l.new_start_sum = l.new_start_sum.wrapping_sub(ticket.start);
                ticket.start
            } else {
                l.old -= 1;
                l.last_charge
            };
            l.pending = l
                .pending
                .saturating_add(end.saturating_sub(uncharged_since));
            self.waiters.fetch_sub(1, Relaxed);
        }
        if let Some(stack) = ticket.stack {
            stack.record_wait(end.saturating_sub(ticket.start));
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

/// Records a holder's charge (its stack included), after its lock is released.
#[inline]
pub(crate) fn record_charge(delay_ns: u64) {
    if delay_ns > 0 {
        record_holder_delay(delay_ns);
    }
}
