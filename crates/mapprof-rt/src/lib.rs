//! mapprof's hot path: everything that runs inside the host's allocations.
//!
//! # Invariants (read before changing anything here)
//!
//! Every function in [`heap`] and everything it reaches obeys these rules, because it runs
//! inside the host's `GlobalAlloc`:
//!
//! 1. **No allocation.** All memory is static: the stack table, the frame arena and the
//!    live set are fixed-size arrays of atomics in `.bss`, paged in only when touched.
//! 2. **No blocking lock.** Lookups are lock-free; inserting a new stack takes a spin lock with a
//!    bounded number of attempts (yielding the CPU between rounds, so that a preempted holder
//!    can finish), and a sample that cannot get it is counted as lost.
//! 3. **No panic, no unbounded loop.** Indexing is bounds-checked by construction (masks) and every
//!    loop has a fixed bound (stack depth, probe length, spin count).
//! 4. **No reentrancy.** A const-initialised thread-local flag makes nested calls (from the
//!    profiler itself, from [`thread::ignore`], or from a signal handler that allocates) pass
//!    straight through; those of the profiler's own work ([`thread::as_profiler`]) take the
//!    cold path only to be routed, never sampled. Thread-local state has no destructor, so it
//!    stays usable while a thread exits.
//!
//! Collection is kept apart from encoding, as in Go (`runtime/mprof.go` vs `runtime/pprof`): this
//! crate records raw return addresses and counters; `mapprof-profile` symbolizes and encodes.

pub mod contention;
pub mod cpu;
pub mod footprint;
pub mod fork;
pub mod heap;
pub mod labels;
pub mod live;
pub mod sampler;
pub mod scope;
mod spin;
pub mod stack;
pub mod table;
pub mod thread;
pub mod threads;

pub use table::{Kind, Record};
