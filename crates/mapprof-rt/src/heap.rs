//! The allocator hooks: called by `mapprof::Alloc` around every call to the inner allocator.
//!
//! Cost when nothing is sampled: on allocation, a thread-local subtraction and a branch; on free,
//! a hash and one load from a small shared array (see [`crate::live`]). Everything else is in
//! cold functions, so that the wrapper's fast paths need no stack frame and end in a tail call
//! to the inner allocator.

use crate::live;
use crate::sampler::{self, heap_rate, next_step, MAX_COUNTDOWN};
use crate::stack::{self, MAX_DEPTH};
use crate::table::{self, Add, BucketId, Key, Kind, COUNT_UNIT, FLAG_REALLOC};
use crate::thread::{ThreadState, STATE};

/// Counts an allocation of `size` bytes against the thread's sampling countdown. Call it before
/// the inner allocator; when it returns true, call [`sample_alloc`] with what the inner
/// allocator returned. The common case is a thread-local subtraction and a branch, and the
/// caller can then tail-call the inner allocator.
#[inline(always)]
pub fn count_down(size: usize) -> bool {
    STATE
        .try_with(|state| {
            // One subtraction whose borrow is the answer: an allocation larger than what is
            // left of the countdown is sampled.
            let (left, ran_out) = state.countdown.get().overflowing_sub(size as u64);
            state.countdown.set(left);
            ran_out
        })
        .unwrap_or(false)
}

/// The countdown ran out at the allocation of `ptr` (`size` bytes): sample it, or only carry
/// the step on (a piece of a longer step ended, the thread's first look, sampling off; see
/// `crate::sampler`). A null `ptr` (the inner allocator failed) records nothing and passes the
/// sample on to the next call.
#[cold]
#[inline(never)]
pub fn sample_alloc(ptr: *mut u8, size: usize, flags: u8) {
    let _ = STATE.try_with(|state| maybe_sample(state, ptr, size, flags));
}

/// Whether this allocation, whose countdown ran out, is the profiler's own work
/// ([`crate::thread::as_profiler`]): then the wrapper gives it to the profiler's own heap
/// instead of sampling it. The thread's countdown is parked at 0 again (the subtraction wrapped
/// it around), so that its next allocation takes the cold path too. Cold: only allocations
/// that already left the fast path call it.
#[inline]
pub fn for_the_profiler() -> bool {
    STATE
        .try_with(|state| {
            let profiler = state.profiler.get();
            if profiler {
                state.countdown.set(0);
            }
            profiler
        })
        .unwrap_or(false)
}

/// Whether `ptr` may be in the live set ([`crate::live`]): a hash and one load. When true,
/// free it through [`on_live_dealloc`] (or [`before_realloc`]).
#[inline(always)]
pub fn maybe_live(ptr: *mut u8) -> bool {
    live::may_contain(ptr as usize)
}

/// Call before `ptr` (of `size` bytes) goes back to the inner allocator, when
/// [`maybe_live`] said it may be in the live set.
#[cold]
#[inline(never)]
pub fn on_live_dealloc(ptr: *mut u8, size: usize) {
    if let Some(bucket) = live::remove(ptr as usize) {
        freed(bucket, size);
    }
}

/// Call before the inner allocator's `realloc(ptr, ..)` when [`maybe_live`] or
/// [`count_down`] said so; pass the result to [`after_realloc`]. The block leaves the live set
/// first, so its address can be reused safely by the inner allocator as soon as `realloc`
/// moves it.
pub fn before_realloc(ptr: *mut u8) -> Option<BucketId> {
    live::remove(ptr as usize)
}

/// Call after the inner allocator's `realloc` moved or resized `old` (of `old_size` bytes) to
/// `new` (of `new_size` bytes); `new` is null when it failed and `old` is still allocated.
/// `sample` is what [`count_down`] returned for `new_size`. A realloc counts as the free of the
/// old block and the allocation of the new one, as in jemalloc's profiler; samples from it carry
/// [`FLAG_REALLOC`].
pub fn after_realloc(
    live_bucket: Option<BucketId>,
    old: *mut u8,
    old_size: usize,
    new: *mut u8,
    new_size: usize,
    sample: bool,
) {
    if new.is_null() {
        // `old` is still allocated: it stays in the live set.
        if let Some(bucket) = live_bucket {
            if !live::insert(old as usize, bucket) {
                freed(bucket, old_size);
            }
        }
    } else if let Some(bucket) = live_bucket {
        freed(bucket, old_size);
    }
    if sample {
        sample_alloc(new, new_size, FLAG_REALLOC);
    }
}

/// What one sampled allocation of `size` bytes, sampled at `rate`, stands for: `[objects in
/// COUNT_UNIT, bytes]`. With byte-based Poisson sampling an allocation of `size` bytes is
/// sampled with probability `p = 1 - exp(-size / rate)`, so it stands for `1/p` allocations
/// (Go's `scaleHeapSample`, applied per sample as jemalloc does rather than per bucket). With
/// `rate <= 1` every allocation is sampled and stands for itself.
pub fn unbiased(size: u64, rate: u64) -> [u64; 2] {
    if rate <= 1 {
        return [COUNT_UNIT, size];
    }
    // 1 - exp(-x) without cancellation for small x.
    let p = -(-(size as f64) / rate as f64).exp_m1();
    let scale = 1.0 / p;
    [
        (COUNT_UNIT as f64 * scale).round() as u64,
        (size as f64 * scale).round() as u64,
    ]
}

fn freed(bucket: BucketId, size: usize) {
    let rate = match table::rate_of(bucket) {
        0 => heap_rate(), // the lost bucket: its samples' rates were not kept
        rate => rate,
    };
    let [objects, bytes] = unbiased(size as u64, rate);
    table::add(bucket, Add::Freed { objects, bytes });
}

/// What the cold path decided for an allocation whose countdown piece ran out.
enum Step {
    /// Not sampled: the step carries on (or sampling is off, or the thread is busy).
    Carry,
    /// Sampled at this rate; the next step is already drawn and waits in `next`.
    Sample { rate: u64, next: u64 },
}

/// The countdown piece ran out at an allocation of `size` bytes (see `crate::sampler`): carry
/// the step on, or sample this allocation. When the rate or the seed changed since the step was
/// drawn, the step still decides this allocation (at the rate it was drawn at) and the next one
/// is drawn at the current rate; on the thread's first look, or after it changed the rate
/// itself, a step at the current rate starts at this allocation.
fn decide(state: &ThreadState, size: usize) -> Step {
    if state.busy.get() {
        // Inside the profiler (or its own work, whose countdown stays parked at 0): look again
        // at the next allocation.
        state.countdown.set(0);
        return Step::Carry;
    }
    // Once per thread, at its first allocation: CPU samples (signal handlers, which cannot
    // look them up) walk its stack only once they are known.
    stack::stack_bounds(state);
    let size = size as u64;
    let mine = state.generation.get();
    if mine == 0 {
        sampler::apply_env_once();
    }
    let generation = sampler::generation();
    // What was left of the step before this allocation: the wrapped-around piece plus the
    // rest kept aside (0 when the countdown was reset to pass a sample on).
    let mut left = state
        .countdown
        .get()
        .wrapping_add(size)
        .saturating_add(state.pending.get());
    let mut rate = state.step_rate.get();
    let mut rng = 0;
    if mine != generation {
        // The rate or the seed changed since the step was drawn (or the thread looks for the
        // first time): the next step is drawn at the current rate and seed.
        state.generation.set(generation);
        let current = heap_rate();
        state.step_rate.set(current);
        rng = sampler::thread_rng(state);
        if mine != 0 && rate != 0 {
            // A step drawn at `rate` is running: it decides this allocation, which is sampled
            // and unbiased at that rate if it reaches past the step, and the current rate's
            // first step starts after it. Unbiased: every allocation is decided by the step
            // running when it starts, and counted at that step's rate.
            let next = next_step(current, &mut rng);
            state.rng.set(rng);
            if size > left {
                return Step::Sample { rate, next };
            }
            set_countdown(state, if current == 0 { MAX_COUNTDOWN } else { next });
            return Step::Carry;
        }
        // No step is running (first look, restarted by `sampler::set_heap_rate`, or sampling
        // was off): one starts at this allocation, which is sampled only if it reaches past
        // the step, like any other.
        rate = current;
        left = next_step(rate, &mut rng);
    }
    let step = if rate == 0 {
        // Off: look at the generation again after one piece.
        Step::Carry
    } else if left >= size {
        left -= size;
        Step::Carry
    } else {
        if rng == 0 {
            rng = sampler::thread_rng(state);
        }
        let next = next_step(rate, &mut rng);
        Step::Sample { rate, next }
    };
    if rng != 0 {
        state.rng.set(rng);
    }
    if let Step::Carry = step {
        set_countdown(state, if rate == 0 { MAX_COUNTDOWN } else { left });
    }
    step
}

/// Starts counting down `bytes`, in pieces of at most [`MAX_COUNTDOWN`].
fn set_countdown(state: &ThreadState, bytes: u64) {
    let piece = bytes.min(MAX_COUNTDOWN);
    state.countdown.set(piece);
    state.pending.set(bytes - piece);
}

fn maybe_sample(state: &ThreadState, ptr: *mut u8, size: usize, flags: u8) {
    let Step::Sample { rate, next } = decide(state, size) else {
        return;
    };
    if ptr.is_null() {
        // The inner allocator failed: pass the sample on to the next allocation.
        state.countdown.set(0);
        state.pending.set(0);
        return;
    }
    state.busy.set(true);
    record(state, ptr, size, flags, rate);
    state.busy.set(false);
    // Set after `record`: what it allocates itself (the DWARF unwinder may) counts down the
    // wrapped-around countdown and takes no cold path.
    set_countdown(state, next);
}

fn record(state: &ThreadState, ptr: *mut u8, size: usize, flags: u8, rate: u64) {
    let mut frames = [0usize; MAX_DEPTH];
    let depth = stack::capture(state, &mut frames);
    let labels = crate::labels::current_id(state);
    let key = Key {
        kind: Kind::Heap,
        rate,
        flags,
        size_class: table::size_class(size),
        labels,
        frames: &frames[..depth],
    };
    let bucket = table::bucket_for(&key);
    let [objects, bytes] = unbiased(size as u64, rate);
    table::add(bucket, Add::Allocated { objects, bytes });
    if !live::insert(ptr as usize, bucket) {
        // Not in the live set: count it freed so in-use figures never include it forever.
        freed(bucket, size);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unbiased_weights_match_the_sampling_probability() {
        // A 64 KiB allocation at rate 64 KiB is sampled with p = 1 - 1/e.
        let p = 1.0 - (-1f64).exp();
        let [objects, bytes] = unbiased(65536, 65536);
        assert!((objects as f64 / COUNT_UNIT as f64 - 1.0 / p).abs() < 1e-4);
        assert_eq!(bytes, (65536.0 / p).round() as u64);
        // Tiny allocations stand for about rate/size of them, without cancellation error.
        let [objects, bytes] = unbiased(8, 524288);
        assert!(
            (objects as f64 / COUNT_UNIT as f64 - 65536.5).abs() < 0.01,
            "{objects}"
        );
        assert_eq!(bytes, 524292);
        // Huge ones are always sampled; rate 1 samples everything.
        assert_eq!(unbiased(1 << 30, 524288), [COUNT_UNIT, 1 << 30]);
        assert_eq!(unbiased(40, 1), [COUNT_UNIT, 40]);
    }
}
