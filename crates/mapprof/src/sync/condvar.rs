//! `Condvar`: a futex condition variable with std's API, for the shim's `Mutex`.
//!
//! Waiting releases the mutex like an unlock (charging the holder if others sleep on it), and
//! takes it back like a lock (a wait for it after the wake-up shows in the block profile).

use super::futex;
use super::mutex::MutexGuard;
use mapprof_rt::contention::now_ns;
use mapprof_rt::threads::{WaitKind, Waiting};
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::LockResult;
use std::time::{Duration, Instant};

/// A condition variable, as `std::sync::Condvar`, for [`super::Mutex`].
#[derive(Default)]
pub struct Condvar {
    /// Bumped by every notification; sleepers wait for it to change.
    seq: AtomicU32,
}

/// Whether a timed wait returned because its time ran out, as `std::sync::WaitTimeoutResult`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// True if the wait ended because the timeout elapsed.
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

impl Condvar {
    /// Creates a new condition variable.
    pub const fn new() -> Condvar {
        Condvar {
            seq: AtomicU32::new(0),
        }
    }

    /// Releases the mutex, sleeps until notified (or `timeout`), takes the mutex back.
    /// Returns false if the timeout passed.
    fn sleep<T>(&self, guard: &MutexGuard<'_, T>, timeout: Option<Duration>) -> bool {
        let (raw, book) = guard.raw();
        // Read before unlocking, so that a notification sent after the unlock is not lost.
        let seq = self.seq.load(Relaxed);
        raw.unlock_charged(book);
        // Thread dumps say what it waits for (the clock read costs little beside the sleep).
        let waiting = Waiting::new(
            WaitKind::Condvar,
            self as *const Condvar as usize,
            None,
            now_ns(),
        );
        let woken = futex::wait(&self.seq, seq, timeout);
        drop(waiting);
        raw.lock(book);
        woken
    }

    /// Blocks until notified, releasing the mutex meanwhile, as std.
    pub fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> LockResult<MutexGuard<'a, T>> {
        self.sleep(&guard, None);
        guard.into_result()
    }

    /// Blocks while `condition` returns true, as std.
    pub fn wait_while<'a, T, F>(
        &self,
        mut guard: MutexGuard<'a, T>,
        mut condition: F,
    ) -> LockResult<MutexGuard<'a, T>>
    where
        F: FnMut(&mut T) -> bool,
    {
        while condition(&mut *guard) {
            guard = self.wait(guard)?;
        }
        Ok(guard)
    }

    /// Blocks until notified or `timeout` has passed, as std.
    pub fn wait_timeout<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)> {
        let woken = self.sleep(&guard, Some(timeout));
        let timed_out = WaitTimeoutResult(!woken);
        match guard.into_result() {
            Ok(g) => Ok((g, timed_out)),
            Err(e) => Err(std::sync::PoisonError::new((e.into_inner(), timed_out))),
        }
    }

    /// Blocks while `condition` returns true, at most `timeout`, as std.
    pub fn wait_timeout_while<'a, T, F>(
        &self,
        mut guard: MutexGuard<'a, T>,
        timeout: Duration,
        mut condition: F,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)>
    where
        F: FnMut(&mut T) -> bool,
    {
        let start = Instant::now();
        loop {
            if !condition(&mut *guard) {
                return Ok((guard, WaitTimeoutResult(false)));
            }
            let Some(left) = timeout.checked_sub(start.elapsed()) else {
                return Ok((guard, WaitTimeoutResult(true)));
            };
            guard = self.wait_timeout(guard, left)?.0;
        }
    }

    /// Wakes up one blocked thread.
    pub fn notify_one(&self) {
        self.seq.fetch_add(1, Relaxed);
        futex::wake(&self.seq, 1);
    }

    /// Wakes up all blocked threads.
    pub fn notify_all(&self) {
        self.seq.fetch_add(1, Relaxed);
        futex::wake(&self.seq, i32::MAX);
    }
}

impl fmt::Debug for Condvar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condvar").finish_non_exhaustive()
    }
}
