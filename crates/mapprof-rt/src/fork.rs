//! The hot path's state in a child just forked from a multithreaded host.
//!
//! The child has one thread; whatever another thread of the parent held at the fork is held
//! in the child forever. Here that is only the insert locks of the stack tables and the label
//! table (bounded spins: nothing would hang, but every new stack or label set of the child
//! would be counted as lost) and the CPU sampler's ownership. An insert interrupted by the
//! fork had not published its bucket or set yet (both are published last, by one store), so
//! releasing the lock is enough: the child's next insert writes that slot again.
//!
//! The facade registers [`after_fork_in_child`] with `pthread_atfork` (once, with its own
//! handlers: `mapprof`'s `fork` module).

/// Frees what the parent's other threads held, in the child. Atomic stores only, as a child of
/// a multithreaded process may do before it execs.
pub fn after_fork_in_child() {
    crate::table::after_fork_in_child();
    crate::labels::after_fork_in_child();
    crate::cpu::after_fork_in_child();
    crate::threads::after_fork_in_child();
}
