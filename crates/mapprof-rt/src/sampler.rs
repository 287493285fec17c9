//! Byte-based Poisson sampling of allocations (Go's `nextSample`, tcmalloc's sampler).
//!
//! Each thread counts down the bytes it allocates. When the count reaches zero the allocation is
//! sampled and a fresh step is drawn from an exponential distribution with mean `rate`. Because
//! the exponential distribution is memoryless, an allocation of `size` bytes is sampled with
//! probability `1 - exp(-size / rate)` whatever happened before it; the encoder divides by that
//! probability to get unbiased estimates (see `mapprof_profile::heap::scale`).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Go's default `MemProfileRate`: on average one sample per 512 KiB allocated.
pub const DEFAULT_HEAP_RATE: u64 = 512 * 1024;

/// Mean bytes between heap samples; 0 = off, 1 = every allocation.
static HEAP_RATE: AtomicU64 = AtomicU64::new(DEFAULT_HEAP_RATE);

/// While sampling is off, a thread still looks at the rate once per this many bytes, so that
/// turning sampling on reaches threads that are already running.
pub(crate) const OFF_RECHECK_BYTES: u64 = 1 << 20;

/// Seeds the per-thread generators: fixed, so that a single-threaded run samples the same
/// allocations every time; each thread gets its own stream.
static NEXT_SEED: AtomicU64 = AtomicU64::new(0x6d61_7070_726f_6621);

/// Sets the mean number of bytes between heap samples (0 = off, 1 = every allocation).
/// A running thread picks the new rate up at its next sample (within 1 MiB when it was off).
pub fn set_heap_rate(rate: u64) {
    HEAP_RATE.store(rate, Relaxed);
}

/// The current heap sampling rate in bytes.
pub fn heap_rate() -> u64 {
    HEAP_RATE.load(Relaxed)
}

/// Returns a fresh seed for a thread's generator (splitmix64 of a global counter).
pub(crate) fn new_seed() -> u64 {
    let mut z = NEXT_SEED.fetch_add(0x9e37_79b9_7f4a_7c15, Relaxed);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) | 1 // xorshift state must not be 0
}

/// Advances an xorshift64* generator and returns its next output.
pub(crate) fn next_u64(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// Draws the next step in bytes: exponential with mean `rate`, at least 1 (0 for `rate == 1`,
/// so that every allocation, being larger than 0 bytes, is sampled).
pub(crate) fn next_step(rate: u64, rng: &mut u64) -> u64 {
    if rate <= 1 {
        return 0;
    }
    // u is uniform in (0, 1]: 53 random bits, shifted away from 0 so ln(u) is finite.
    let u = ((next_u64(rng) >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64);
    let step = -(rate as f64) * u.ln();
    // The cast saturates; 2^53 bytes is a step no program will reach.
    (step as u64).clamp(1, 1 << 53)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_exponential_with_the_requested_mean() {
        let mut rng = new_seed();
        let n = 200_000;
        let rate = 65_536;
        let steps: Vec<f64> = (0..n).map(|_| next_step(rate, &mut rng) as f64).collect();
        let mean = steps.iter().sum::<f64>() / n as f64;
        assert!((mean / rate as f64 - 1.0).abs() < 0.01, "mean {mean}");
        // Exponential: P(step > mean) = 1/e.
        let above = steps.iter().filter(|&&s| s > rate as f64).count() as f64 / n as f64;
        assert!(
            (above - (-1f64).exp()).abs() < 0.005,
            "P(step > mean) = {above}"
        );
    }

    #[test]
    fn rate_one_samples_everything() {
        let mut rng = new_seed();
        assert_eq!(next_step(1, &mut rng), 0);
    }
}
