//! `fork()` without `exec` in a profiled process (pre-fork servers, daemonizers, test
//! harnesses).
//!
//! A child has one thread: a lock another thread of the parent held at the fork stays held in
//! the child, and a thread the parent had does not exist there. So, with `pthread_atfork`:
//! - *prepare* (in the forking thread, before the fork) takes the locks that profile building
//!   holds (the symbolizer, the count of profiler work, the dump directory): the fork waits
//!   for a build in progress to end (tens to hundreds of milliseconds), as glibc's and
//!   jemalloc's own handlers wait for their arenas;
//! - *parent* and *child* release them; in the child, the hot path's insert locks and the CPU
//!   sampler are freed too (`mapprof_rt::fork`), the lock shims' cached process id refreshed,
//!   and the `/debug/pprof` listeners closed, so that a port is not held by a child that never
//!   answers on it.
//!
//! What a child then has: sampling goes on, and every profile (`mapprof::profile`, `dump`,
//! `write_profile`) works, with the samples inherited from the parent (its heap *is* the
//! parent's, copied) plus its own. It has no background thread, no HTTP server and no CPU
//! profile running, and it does not dump at exit (the at-exit dump belongs to the process that
//! started the profiler: a pre-fork server's children would each write a full set). A child
//! may start a `Profiler` of its own. Dropping the parent's `Profiler` (or server) in the
//! child does nothing: it joins no thread, dumps nothing.
//!
//! Registered once, by the first profiler, CPU profile, profile built or contended lock shim
//! (the handlers cannot be removed; later forks of a process that never profiles cost two
//! uncontended lock round trips).

use crate::memory;
use crate::profiles;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering::AcqRel};

/// The locks [`prepare`] took, held by the forking thread across the fork.
struct Held {
    _symbolizer: profiles::SymbolizerGuard,
    works: memory::WorksGuard,
    dump_dir: crate::profiler::DumpDirGuard,
}

thread_local! {
    static HELD: RefCell<Option<Held>> = const { RefCell::new(None) };
}

/// Registers the handlers, once per process.
pub(crate) fn register() {
    static REGISTERED: AtomicBool = AtomicBool::new(false);
    if REGISTERED.swap(true, AcqRel) {
        return;
    }
    // SAFETY: the three handlers are `extern "C" fn()`s that live as long as the process and
    // never unwind (nothing in them panics: see each).
    let r = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    if r != 0 {
        eprintln!(
            "mapprof: pthread_atfork failed ({}): a child forked without exec may hang in \
             profile building",
            std::io::Error::from_raw_os_error(r)
        );
    }
}

extern "C" fn prepare() {
    // In this order, the order in which profile building takes them (the symbolizer is never
    // waited for while the other two are held).
    let held = Held {
        _symbolizer: profiles::lock_symbolizer(),
        works: memory::lock_works(),
        dump_dir: crate::profiler::lock_dump_dir(),
    };
    let _ = HELD.try_with(|h| h.replace(Some(held)));
}

extern "C" fn parent() {
    let _ = HELD.try_with(|h| h.take());
}

extern "C" fn child() {
    mapprof_rt::fork::after_fork_in_child();
    crate::sync::wait_book::after_fork_in_child();
    crate::sync::owner::after_fork_in_child();
    let _ = HELD.try_with(|h| {
        if let Some(mut held) = h.take() {
            // Work that other threads of the parent were doing is not going on here.
            *held.works = 0;
            // The at-exit dump is the parent's.
            *held.dump_dir = None;
        }
    });
    crate::profiler::after_fork_in_child();
    #[cfg(feature = "http")]
    crate::http::close_listeners_in_child();
}
