//! Profiler labels, the facade over `mapprof_rt::labels`: [`set_labels`] documents what they
//! do and cost on a thread, [`WithLabels`] on an async task.

#[cfg(feature = "tracing")]
mod spans;
mod task;

use mapprof_rt::labels as rt;
#[cfg(feature = "tracing")]
pub use spans::MapprofLayer;
use std::marker::PhantomData;
pub use task::{Labelled, Labels, WithLabels};

/// How many distinct label sets samples can carry, the empty and the overflow set included.
pub const MAX_LABEL_SETS: usize = rt::MAX_SETS;
/// How many distinct keys a thread's labels have at most, outer guards' included.
pub const MAX_LABEL_KEYS: usize = rt::MAX_PAIRS;
/// How many pairs a thread's guards hold together (a key set by two guards counts twice).
pub const MAX_LABEL_PAIRS: usize = rt::MAX_STACK_PAIRS;
/// How many bytes of keys and values a thread's guards hold together.
pub const MAX_LABEL_BYTES: usize = rt::MAX_STACK_BYTES;
/// How many distinct values of one key samples can tell apart; later new values read
/// `overflow`.
pub const MAX_LABEL_VALUES: usize = rt::MAX_VALUES_PER_KEY;

/// Runs `f` with `pairs` added to the current thread's labels, and restores them afterwards
/// (also when `f` panics). See [`set_labels`] for what labels do and cost.
///
/// ```
/// let body = mapprof::labels(&[("trace_id", "abc"), ("route", "/item GET")], || {
///     vec![0u8; 1024] // carries trace_id=abc and route=/item GET when sampled
/// });
/// # drop(body);
/// ```
pub fn labels<R>(pairs: &[(&str, &str)], f: impl FnOnce() -> R) -> R {
    let _guard = set_labels(pairs);
    f()
}

/// Adds `pairs` to the current thread's labels until the guard is dropped. Every heap, allocs,
/// resize, mutex, block and CPU sample the thread takes meanwhile carries them, so that
/// `go tool pprof -tagfocus=trace_id=abc` keeps one request's samples and `-tags` lists them.
///
/// ```
/// let _labels = mapprof::set_labels(&[("trace_id", "abc"), ("route", "/item GET")]);
/// // Allocations and lock waits from here on carry trace_id=abc and route=/item GET.
/// ```
///
/// Nested guards merge with the labels already set, the inner value winning for a key set
/// twice (Go's `pprof.WithLabels`); of equal keys within `pairs`, the last wins. Drop guards in
/// the reverse order of their making, as [`labels`] does for you: out of order, samples may
/// carry wrong labels until the outermost guard is gone (nothing worse).
///
/// # Threads and tasks
///
/// A guard's labels belong to its thread. In async code a guard held across an `.await` would
/// label the work of every other task that thread polls meanwhile, and the task itself would
/// lose its labels when it resumes on another thread: label the future instead
/// ([`WithLabels::with_labels`]), which makes its labels current for each of its polls, and
/// carry labels into spawned tasks and threads with [`Labels`]. [`LabelGuard`] is not `Send`,
/// so it cannot be moved to another thread.
///
/// Lock samples follow Go: a mutex sample (the holder, charged with the delay it caused)
/// carries the holder's labels at its unlock; a block sample (a waiter, charged with its own
/// wait) the waiter's. A CPU sample carries the labels the thread had when SIGPROF landed.
///
/// # What it costs
///
/// Making and dropping a guard copies the pairs into a fixed per-thread buffer and back: no
/// lock, no allocation, tens of nanoseconds, and nothing shared between threads. The first
/// sample taken under new labels looks their set up in a fixed-size table (inserting it if
/// new, without allocating) and the thread caches its id; every later sample reads that one
/// thread-local `u32` and keeps it in its bucket key. Allocations that are not sampled do not
/// look at labels at all.
///
/// # Bounds
///
/// A thread's guards hold at most [`MAX_LABEL_PAIRS`] pairs and [`MAX_LABEL_BYTES`] bytes of
/// keys and values together, and its labels at most [`MAX_LABEL_KEYS`] distinct keys. Only
/// sets that a sample carried enter the table, which holds [`MAX_LABEL_SETS`] of them (two
/// reserved) for the life of the process. A label unique per request (a trace id) costs one
/// set per *sampled* request, and one key keeps at most [`MAX_LABEL_VALUES`] distinct values:
/// past them, a set with a new value of that key is recorded with the value `overflow`, its
/// other pairs kept (`trace_id=overflow, route=/item`), so that the trace ids of the first
/// sampled requests are told apart and the routes of all of them; [`label_values_capped`]
/// counts it. Labels that do not fit at all (too many keys or bytes, or the table full) label
/// their samples `mapprof_labels=overflow` instead; [`label_overflow`] counts how often that
/// happened. The profiles' comments show both.
pub fn set_labels(pairs: &[(&str, &str)]) -> LabelGuard {
    LabelGuard {
        saved: rt::enter(pairs),
        _not_send: PhantomData,
    }
}

/// The current thread's labels, sorted by key. Allocates.
pub fn current_labels() -> Vec<(String, String)> {
    rt::current_pairs()
}

/// How many times labels were replaced by `mapprof_labels=overflow`: a guard whose pairs did
/// not fit, labels of too many keys or a set the full table had no room for (counted once per
/// guard), or a sample that found the table busy inserting another set (each time).
pub fn label_overflow() -> u64 {
    rt::overflow()
}

/// How many times a label's value was recorded as `overflow` because its key already had
/// [`MAX_LABEL_VALUES`] values: once per thread's labels, the first time they were sampled.
pub fn label_values_capped() -> u64 {
    rt::capped()
}

/// Restores the thread's previous labels when dropped. Made by [`set_labels`].
#[must_use = "the labels are removed when the guard is dropped"]
#[derive(Debug)]
pub struct LabelGuard {
    /// What to restore.
    saved: rt::Saved,
    /// Labels belong to the thread that set them.
    _not_send: PhantomData<*const ()>,
}

impl Drop for LabelGuard {
    fn drop(&mut self) {
        rt::leave(self.saved);
    }
}
