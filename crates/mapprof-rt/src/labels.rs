//! Label sets: the `(key, value)` pairs a thread carries (`mapprof::labels`), interned into a
//! bounded table so that a sample carries one `u32`.
//!
//! # Invariants
//!
//! * **Setting labels takes no lock and allocates nothing.** [`enter`] copies the pairs into
//!   the thread's own fixed buffer (`stack::STACK`, const-initialised, no destructor) and [`leave`]
//!   truncates it again; both are a few stores. A label unique per request (a trace id) thus
//!   costs its request some 20 ns, and nothing global, unless a sample catches it.
//! * **A set is interned when a sample first needs it**, on the sampling path, under the same
//!   rules as the stack table: no allocation (fixed arrays of atomics in `.bss`), lock-free
//!   lookup, insertion under a spin lock with a bounded number of attempts, bounded loops, no
//!   panic. The id found is cached in the thread's state (`labels`), so later samples under
//!   the same labels read one `Cell<u32>`; [`enter`] and [`leave`] reset the cache.
//! * **Bounded.** A thread's labels, nesting included, take at most [`MAX_STACK_PAIRS`] pairs
//!   and [`MAX_STACK_BYTES`] bytes; a set has at most [`MAX_PAIRS`] distinct keys. The table
//!   holds [`MAX_SETS`] ids (two reserved) and [`ARENA_BYTES`] of strings, and only sets that
//!   samples carried. What does not fit gets [`OVERFLOW`], shown as
//!   [`OVERFLOW_KEY`]=[`OVERFLOW_VALUE`], and is counted ([`overflow`]). A key keeps at most
//!   [`MAX_VALUES_PER_KEY`] distinct values; a new one past them is interned as
//!   [`OVERFLOW_VALUE`], the other pairs kept, and counted ([`capped`]), so that a key unique
//!   per request cannot fill the table.
//!
//! Sets are interned sorted by key, keys unique; an inner pair replaces an outer pair of the
//! same key (Go's `pprof.WithLabels`).

mod cap;
mod encoded;
mod stack;
mod table;
#[cfg(test)]
mod tests;

pub use cap::{capped, MAX_VALUES_PER_KEY};
pub use encoded::MAX_PAIRS;
pub(crate) use stack::current_id;
pub use stack::{
    current_pairs, enter, enter_prepared, leave, leave_prepared, signal_id, Prepared, Saved,
    MAX_STACK_BYTES, MAX_STACK_PAIRS,
};
pub(crate) use table::after_fork_in_child;
pub use table::{pairs, usage, ARENA_BYTES, MAX_SETS};

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The id of the empty set: no labels.
pub const NONE: u32 = 0;
/// The id of every set that does not fit: too many pairs or bytes, or the table full.
pub const OVERFLOW: u32 = 1;
/// The label key that samples carrying [`OVERFLOW`] show.
pub const OVERFLOW_KEY: &str = "mapprof_labels";
/// The value of [`OVERFLOW_KEY`].
pub const OVERFLOW_VALUE: &str = "overflow";

/// Times labels got [`OVERFLOW`].
pub(super) static OVERFLOWS: AtomicU64 = AtomicU64::new(0);

/// How many times labels got [`OVERFLOW`] since the process started: a guard whose pairs did
/// not fit, a set of too many keys or one the full table had no room for (once per guard), or
/// a sample that found the insert lock busy.
pub fn overflow() -> u64 {
    OVERFLOWS.load(Relaxed)
}

pub(super) fn overflow_pairs() -> Vec<(String, String)> {
    vec![(OVERFLOW_KEY.to_owned(), OVERFLOW_VALUE.to_owned())]
}

/// The label table's static arrays, for [`crate::footprint`].
pub(crate) fn static_tables() -> [crate::footprint::Region; 6] {
    let [sets, slots, arena] = table::static_tables();
    let [keys, values, pairs] = cap::static_tables();
    [sets, slots, arena, keys, values, pairs]
}
