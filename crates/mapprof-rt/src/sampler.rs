//! Byte-based Poisson sampling of allocations (Go's `nextSample`, tcmalloc's sampler).
//!
//! Each thread counts down the bytes it allocates. When the count reaches zero the allocation is
//! sampled and a fresh step is drawn from an exponential distribution with mean `rate`. Because
//! the exponential distribution is memoryless, an allocation of `size` bytes is sampled with
//! probability `1 - exp(-size / rate)` whatever happened before it; the encoder divides by that
//! probability to get unbiased estimates (see `mapprof_profile::heap::scale`).
//!
//! # A thread's step always has the current rate
//!
//! The rate and the seed are global; each thread's countdown was drawn at some rate. So that a
//! change reaches every thread without adding anything to the allocation fast path (one
//! thread-local subtraction and a branch), every change of the rate or the seed bumps a global
//! [generation](generation), which a thread compares with its own on its cold path (where its
//! countdown ran out). On a change, the step running still decides the allocation at hand
//! (sampled if it reaches past the step, and then counted at the rate the step was drawn at),
//! and the next step is drawn at the current rate and seed. Nothing is biased by the switch:
//! every allocation is decided by the step running when it starts (memorylessness: an
//! allocation of `size` bytes is sampled with probability `1 - exp(-size/rate)` of that
//! step's rate) and its sample is unbiased at that rate. A thread's first look, or one
//! restarted by a change it made itself, starts a step at the allocation at hand instead.
//!
//! A stale countdown drawn at the default rate would still take up to that (and, being
//! exponential, sometimes several times that) before its thread looks at the generation. So a
//! thread never counts down more than [`MAX_COUNTDOWN`] bytes at once: a longer step is run in
//! pieces of at most that, the rest kept aside (`ThreadState::pending`) and carried on, without
//! sampling, when a piece runs out and the generation has not changed. One piece is the most a
//! thread that was already running can allocate at the old rate after a change (unbiased, at
//! that rate's variance; `heap_rate=1` is exact on it from the next piece); it costs one
//! cold-path call per piece allocated (about 20 ns, against a piece's worth of allocations),
//! and allocations larger than a piece always take the cold path (they cost microseconds
//! anyway).
//! The thread that changes the rate ([`set_heap_rate`], [`set_seed`]) restarts its own
//! countdown at once, and a thread that starts counting after the change draws at the new rate.
//!
//! `MAPPROF`'s `heap_rate` and `seed` apply from the process's first allocation (as Go applies
//! `GODEBUG=memprofilerate`), read once by the first thread that allocates, so that what a
//! short-lived program allocates before it starts its profiler is sampled at the rate it asked
//! for too. With that, `MAPPROF=heap_rate=1` counts every byte and every allocation.

use crate::thread::{ThreadState, STATE};
use std::sync::atomic::{
    AtomicBool, AtomicU32, AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};

/// Go's default `MemProfileRate`: on average one sample per 512 KiB allocated.
pub const DEFAULT_HEAP_RATE: u64 = 512 * 1024;

/// The sampler's seed unless one is set (`seed`): fixed, so that a deterministic program
/// samples the same allocations in every run.
pub const DEFAULT_SEED: u64 = 0x6d61_7070_726f_6621;

/// The most bytes a thread counts down before its cold path looks at the [`generation`] again
/// (see the module's documentation): 64 KiB.
pub const MAX_COUNTDOWN: u64 = 64 << 10;

/// Mean bytes between heap samples; 0 = off, 1 = every allocation.
static HEAP_RATE: AtomicU64 = AtomicU64::new(DEFAULT_HEAP_RATE);

/// The seed of every thread's generator.
static SEED: AtomicU64 = AtomicU64::new(DEFAULT_SEED);

/// Bumped after each change of the rate or the seed; 0 is never used (a thread's 0 means it
/// has not looked yet).
static GENERATION: AtomicU64 = AtomicU64::new(1);

/// The next thread's ordinal: thread `k` (in the order of their first sample or lock draw) has
/// the `k`-th stream of the seed.
static NEXT_THREAD: AtomicU32 = AtomicU32::new(0);

/// The [`generation`] of the last [`set_seed`]: a thread seeded before it reseeds.
static SEEDED: AtomicU64 = AtomicU64::new(0);

/// Whether `MAPPROF` was read, or a setting made in code supersedes it.
static ENV_DONE: AtomicBool = AtomicBool::new(false);

/// Sets the mean number of bytes between heap samples (0 = off, 1 = every allocation). The
/// calling thread restarts its countdown at once; every other thread at its next cold path,
/// after at most [`MAX_COUNTDOWN`] bytes (see the module's documentation).
pub fn set_heap_rate(rate: u64) {
    ENV_DONE.store(true, Relaxed);
    HEAP_RATE.store(rate, Relaxed);
    changed();
}

/// The current heap sampling rate in bytes.
pub fn heap_rate() -> u64 {
    HEAP_RATE.load(Relaxed)
}

/// Sets the seed of the sampler: every thread's generator is seeded again from it and the
/// thread's ordinal (threads in the order they first draw), so that two seeds give two
/// different sets of samples, and one seed the same samples of a deterministic program (each
/// call starts the streams over, the same seed included). Reaches the running threads as
/// [`set_heap_rate`] does; lock sampling draws from the same per-thread generators.
pub fn set_seed(seed: u64) {
    ENV_DONE.store(true, Relaxed);
    SEED.store(seed, Relaxed);
    SEEDED.store(changed(), Release);
}

/// The current seed.
pub fn seed() -> u64 {
    SEED.load(Relaxed)
}

/// The generation of the rate and the seed: changes whenever either is set.
pub fn generation() -> u64 {
    GENERATION.load(Acquire)
}

/// Bumps the generation and returns the new one.
fn changed() -> u64 {
    // Release: a thread that sees the new generation sees the rate and seed stored before it.
    let generation = GENERATION.fetch_add(1, Release) + 1;
    // The calling thread's own countdown may be long and stale: restart it now (unless it is
    // inside `ignore` or the profiler's work, whose parked countdown is restored afterwards).
    // Its next allocation starts a step at the new rate (generation 0: no step running).
    let _ = STATE.try_with(|s| {
        if !s.busy.get() {
            s.countdown.set(0);
            s.pending.set(0);
            s.generation.set(0);
        }
    });
    generation
}

/// Applies `MAPPROF`'s `heap_rate` and `seed`, once per process, unless code set them first.
/// Called at a thread's first cold path, in practice the process's first allocation (before
/// `main`, with one thread: `getenv` races only with `setenv`). Allocates nothing.
pub(crate) fn apply_env_once() {
    if ENV_DONE.load(Relaxed) || ENV_DONE.swap(true, Relaxed) {
        return;
    }
    // SAFETY: the name is a NUL-terminated string; `getenv` returns null or a pointer to a
    // NUL-terminated value in the environment, read at once (see above on `setenv`).
    let value = unsafe { libc::getenv(c"MAPPROF".as_ptr()) };
    if value.is_null() {
        return;
    }
    // SAFETY: a non-null result of `getenv` is a valid NUL-terminated string.
    let settings = env_settings(unsafe { std::ffi::CStr::from_ptr(value) }.to_bytes());
    if let Some(rate) = settings.heap_rate {
        HEAP_RATE.store(rate, Relaxed);
    }
    if let Some(seed) = settings.seed {
        SEED.store(seed, Relaxed);
    }
    if settings != EnvSettings::default() {
        let generation = GENERATION.fetch_add(1, Release) + 1;
        if settings.seed.is_some() {
            SEEDED.store(generation, Release);
        }
    }
}

/// What the sampler takes from a `MAPPROF` value before the profiler parses it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EnvSettings {
    /// The last valid `heap_rate` entry.
    pub heap_rate: Option<u64>,
    /// The last valid `seed` entry.
    pub seed: Option<u64>,
}

/// Reads the `heap_rate` and `seed` entries of `MAPPROF`-style settings (`key=value,...`) as
/// `mapprof::Config::parse` does, without allocating; entries it cannot read are left to the
/// profiler, which reports them.
pub fn env_settings(settings: &[u8]) -> EnvSettings {
    let mut out = EnvSettings::default();
    for entry in settings.split(|&b| b == b',') {
        let Some(eq) = entry.iter().position(|&b| b == b'=') else {
            continue;
        };
        let (key, value) = (entry[..eq].trim_ascii(), entry[eq + 1..].trim_ascii());
        match key {
            b"heap_rate" => out.heap_rate = parse_bytes(value).or(out.heap_rate),
            b"seed" => out.seed = parse_u64(value).or(out.seed),
            _ => {}
        }
    }
    out
}

/// A decimal `u64`, as `str::parse::<u64>` reads it (an optional `+`, digits).
pub fn parse_u64(digits: &[u8]) -> Option<u64> {
    let digits = digits.strip_prefix(b"+").unwrap_or(digits);
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit().then_some(())?;
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// A byte count: `524288`, `512k`, `512KiB`, `1m`, `1MiB` (suffixes in any case, blanks
/// allowed before them).
pub fn parse_bytes(value: &[u8]) -> Option<u64> {
    let lower_ends = |suffix: &[u8]| {
        value.len() >= suffix.len()
            && value[value.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
    };
    let (digits, multiplier) = [
        (&b"kib"[..], 1u64 << 10),
        (b"mib", 1 << 20),
        (b"k", 1 << 10),
        (b"m", 1 << 20),
    ]
    .iter()
    .find(|(suffix, _)| lower_ends(suffix))
    .map_or((value, 1), |(suffix, m)| {
        (&value[..value.len() - suffix.len()], *m)
    });
    parse_u64(digits.trim_ascii())?.checked_mul(multiplier)
}

/// The generator seed of thread `ordinal` under `seed` (splitmix64 of the thread's point on a
/// Weyl sequence; never 0, which xorshift cannot leave).
pub(crate) fn thread_seed(seed: u64, ordinal: u32) -> u64 {
    let mut z = seed.wrapping_add(u64::from(ordinal).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) | 1
}

/// The thread's generator state, seeded from the current seed and the thread's ordinal if it
/// is not seeded yet or was seeded before the last [`set_seed`]. Store it back with
/// `state.rng.set`.
pub(crate) fn thread_rng(state: &ThreadState) -> u64 {
    let rng = state.rng.get();
    let seeded = SEEDED.load(Acquire);
    if rng != 0 && state.seeded.get() >= seeded {
        return rng;
    }
    let mut ordinal = state.ordinal.get();
    if ordinal == 0 {
        ordinal = NEXT_THREAD.fetch_add(1, Relaxed).wrapping_add(1).max(1);
        state.ordinal.set(ordinal);
    }
    // The seed stored before SEEDED (acquired above), or a later one.
    state.seeded.set(seeded.max(1));
    thread_seed(seed(), ordinal - 1)
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
        let mut rng = thread_seed(DEFAULT_SEED, 0);
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
    fn the_default_seed_keeps_the_streams_threads_had_before_seeds_could_be_set() {
        // Before `seed`, thread k's generator was splitmix64 of DEFAULT_SEED + k * golden.
        let golden = 0x9e37_79b9_7f4a_7c15u64;
        let old = |k: u64| {
            let mut z = DEFAULT_SEED.wrapping_add(k.wrapping_mul(golden));
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) | 1
        };
        for k in 0..4 {
            assert_eq!(thread_seed(DEFAULT_SEED, k as u32), old(k));
        }
        assert_ne!(thread_seed(1, 0), thread_seed(2, 0));
        assert_ne!(thread_seed(1, 0), thread_seed(1, 1));
        assert_ne!(thread_seed(0, 0), 0);
    }

    #[test]
    fn reads_heap_rate_and_seed_from_mapprof_settings() {
        let s = env_settings(b"dump_dir=/tmp/p, heap_rate = 64k ,seed=42,heap_rate=lots");
        assert_eq!(
            s,
            EnvSettings {
                heap_rate: Some(65536),
                seed: Some(42)
            }
        );
        assert_eq!(env_settings(b"heap_rate=1MiB").heap_rate, Some(1 << 20));
        assert_eq!(
            env_settings(b"heap_rate=512 KiB").heap_rate,
            Some(512 << 10)
        );
        assert_eq!(env_settings(b"heap_rate=-1,seed=0x10").heap_rate, None);
        assert_eq!(env_settings(b"seed=0x10").seed, None);
        assert_eq!(env_settings(b"seed=18446744073709551616").seed, None);
        assert_eq!(env_settings(b"seed=+7").seed, Some(7));
        assert_eq!(env_settings(b"heap_rate,seed").heap_rate, None);
        assert_eq!(env_settings(b"").heap_rate, None);
    }

    #[test]
    fn rate_one_samples_everything() {
        let mut rng = thread_seed(DEFAULT_SEED, 0);
        assert_eq!(next_step(1, &mut rng), 0);
    }
}
