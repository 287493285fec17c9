//! Contention events from the lock shim (`mapprof::sync`): sampling and recording.
//!
//! Only the contended paths come here; the uncontended lock and unlock never do. Two profiles,
//! as Go defines them:
//!
//! * **mutex**: the delay is charged to the lock's *holder*, at unlock, with the holder's
//!   stack: the time its waiters spent waiting while it held the lock (Go 1.22 semantics: a 1 s
//!   hold with 5 waiters counts 5 s). This points at the code that holds the lock too long.
//!   Sampled 1 in `mutex_fraction` events (Go's `SetMutexProfileFraction`); each kept event
//!   counts `mutex_fraction` times.
//! * **block**: the delay is charged to each *waiter*, with the waiter's stack. A wait of at
//!   least `block_rate` ns is always kept; a shorter one with probability `wait / block_rate`
//!   (Go's `SetBlockProfileRate`), and then counts `block_rate / wait` times.
//!
//! Recorded values are therefore already unbiased estimates: contentions in units of
//! [`COUNT_UNIT`], delay in nanoseconds.
//!
//! Labels (`crate::labels`) follow the stack, as in Go: a mutex sample carries the holder's
//! labels as they are at its unlock, a block sample the waiter's (as they were while it
//! waited: it was blocked in between).

use crate::sampler::next_u64;
use crate::stack::{self, Frames, MAX_DEPTH};
use crate::table::{self, Add, Key, Kind, COUNT_UNIT};
use crate::thread::STATE;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::Instant;

/// Default `mutex_fraction`: one contention event in 10 is recorded. Cheap enough for
/// contended hot locks, and an incident-sized delay (milliseconds, thousands of events) is
/// still estimated within a few percent.
pub const DEFAULT_MUTEX_FRACTION: u64 = 10;
/// Default `block_rate`: waits of 10 µs or more are always recorded, shorter ones in
/// proportion to their length.
pub const DEFAULT_BLOCK_RATE_NS: u64 = 10_000;

static MUTEX_FRACTION: AtomicU64 = AtomicU64::new(DEFAULT_MUTEX_FRACTION);
static BLOCK_RATE: AtomicU64 = AtomicU64::new(DEFAULT_BLOCK_RATE_NS);

/// Records 1 in `fraction` mutex contention events (0 = off, 1 = all).
pub fn set_mutex_fraction(fraction: u64) {
    MUTEX_FRACTION.store(fraction, Relaxed);
}

/// The current mutex profile fraction.
pub fn mutex_fraction() -> u64 {
    MUTEX_FRACTION.load(Relaxed)
}

/// Records waits of at least `rate_ns`, and shorter ones with probability `wait / rate_ns`
/// (0 = off, 1 = all).
pub fn set_block_rate(rate_ns: u64) {
    BLOCK_RATE.store(rate_ns, Relaxed);
}

/// The current block profile rate in nanoseconds.
pub fn block_rate() -> u64 {
    BLOCK_RATE.load(Relaxed)
}

/// Nanoseconds on a monotonic clock (since the first call). Only contended paths read it.
pub fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// A waiter's stack, captured before it blocks so that nothing is captured while it holds
/// the lock.
#[derive(Debug)]
pub struct WaiterStack {
    frames: Frames,
    depth: usize,
}

impl WaiterStack {
    /// Captures the calling thread's stack if the block profile is on; `None` otherwise, or
    /// when the thread is inside the profiler.
    #[inline(never)]
    pub fn capture() -> Option<WaiterStack> {
        if block_rate() == 0 {
            return None;
        }
        STATE
            .try_with(|state| {
                if state.busy.get() {
                    return None;
                }
                let mut stack = WaiterStack {
                    frames: [0; MAX_DEPTH],
                    depth: 0,
                };
                stack.depth = stack::capture(state, &mut stack.frames);
                Some(stack)
            })
            .ok()
            .flatten()
    }

    /// Records that this waiter waited `delay_ns`, if the block profile samples it.
    pub fn record_wait(&self, delay_ns: u64) {
        let Some(weight) = block_weight(delay_ns) else {
            return;
        };
        let labels = STATE
            .try_with(crate::labels::current_id)
            .unwrap_or(crate::labels::NONE);
        add(
            Kind::Block,
            &self.frames[..self.depth],
            labels,
            weight,
            delay_ns,
        );
    }
}

/// Records a wait of `delay_ns` that just ended, with the calling thread's stack captured now
/// if the block profile samples it: a task's wait, whose stack when it resumes from the
/// `.await` is the one it waited at. Costs nothing but a draw for the waits not sampled; the
/// capture of those that are runs under the lock just taken.
#[inline(never)]
pub fn record_wait_here(delay_ns: u64) {
    if let Some(weight) = block_weight(delay_ns) {
        add_here(Kind::Block, weight, delay_ns);
    }
}

/// The weight of a wait of `delay_ns` in the block profile, `None` if it is not sampled: at
/// least `block_rate` always (weight 1), shorter with probability `delay / rate`.
fn block_weight(delay_ns: u64) -> Option<f64> {
    let rate = block_rate();
    if rate == 0 || delay_ns == 0 {
        None
    } else if delay_ns >= rate {
        Some(1.0)
    } else if keep_with_probability(delay_ns as f64 / rate as f64) {
        Some(rate as f64 / delay_ns as f64)
    } else {
        None
    }
}

/// Records that the calling thread, as holder, made others wait `delay_ns` in total, if the
/// mutex profile samples this event. Call it after unlocking.
#[inline(never)]
pub fn record_holder_delay(delay_ns: u64) {
    let fraction = mutex_fraction();
    if fraction == 0 || delay_ns == 0 {
        return;
    }
    if fraction > 1 && !keep_with_probability(1.0 / fraction as f64) {
        return;
    }
    add_here(Kind::Mutex, fraction as f64, delay_ns);
}

/// [`add`] with the calling thread's stack and labels, unless the thread is inside the
/// profiler.
fn add_here(kind: Kind, weight: f64, delay_ns: u64) {
    let _ = STATE.try_with(|state| {
        if state.busy.get() {
            return;
        }
        let mut frames = [0; MAX_DEPTH];
        let depth = stack::capture(state, &mut frames);
        let labels = crate::labels::current_id(state);
        add(kind, &frames[..depth], labels, weight, delay_ns);
    });
}

/// Adds `weight` contentions and `weight * delay_ns` of delay to the bucket of the stack and
/// of `labels`, the label set of the thread charged (the holder or the waiter).
fn add(kind: Kind, frames: &[usize], labels: u32, weight: f64, delay_ns: u64) {
    let key = Key {
        kind,
        rate: 0,
        flags: 0,
        size_class: 0,
        labels,
        frames,
    };
    let bucket = table::bucket_for(&key);
    let events = (weight * COUNT_UNIT as f64).round() as u64;
    let delay_ns = (weight * delay_ns as f64).round() as u64;
    table::add(bucket, Add::Contention { events, delay_ns });
}

/// True with probability `p`, from the thread's generator.
fn keep_with_probability(p: f64) -> bool {
    STATE
        .try_with(|state| {
            let mut rng = crate::sampler::thread_rng(state);
            let draw = (next_u64(&mut rng) >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
            state.rng.set(rng);
            draw < p
        })
        .unwrap_or(false)
}
