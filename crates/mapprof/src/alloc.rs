//! `mapprof::Alloc`: the global allocator wrapper. It forwards every call to an inner allocator
//! and tells the hot path (`mapprof_rt::heap`) about it; see that crate for the rules it keeps.
//! The profiler's own work reaches the cold paths on every allocation, which hand it to the
//! profiler's own heap ([`crate::memory`]).

use crate::memory::{self, InnerKind};
use mapprof_rt::{heap, scope};
use std::alloc::{GlobalAlloc, Layout, System};
#[cfg(feature = "jemalloc")]
use tikv_jemallocator::Jemalloc;

/// A global allocator that samples allocations for the heap profile.
///
/// ```no_run
/// #[global_allocator]
/// static ALLOC: mapprof::Alloc = mapprof::Alloc::jemalloc();
/// ```
///
/// Sampling starts with the first allocation, at the rate and seed `MAPPROF` sets
/// (`heap_rate`, `seed`), else at the default rate (one sample per 512 KiB allocated on average,
/// as in Go); [`crate::Profiler`] changes them and writes profiles.
#[derive(Debug)]
pub struct Alloc {
    inner: Inner,
}

#[derive(Clone, Copy)]
enum Inner {
    #[cfg(feature = "jemalloc")]
    Jemalloc,
    System,
    Custom(&'static (dyn GlobalAlloc + Sync)),
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            #[cfg(feature = "jemalloc")]
            Inner::Jemalloc => "Jemalloc",
            Inner::System => "System",
            Inner::Custom(_) => "Custom",
        })
    }
}

impl Inner {
    fn kind(self) -> InnerKind {
        match self {
            #[cfg(feature = "jemalloc")]
            Inner::Jemalloc => InnerKind::Jemalloc,
            Inner::System => InnerKind::System,
            Inner::Custom(_) => InnerKind::Custom,
        }
    }
}

impl Alloc {
    /// Wraps jemalloc (`tikv-jemallocator`), the recommended inner allocator. The profiler's
    /// own work allocates in a jemalloc arena of its own, purged after each profile, so that
    /// its memory goes back to the system (see [`crate::self_memory`]). Cargo feature
    /// `jemalloc`, on by default.
    #[cfg(feature = "jemalloc")]
    pub const fn jemalloc() -> Alloc {
        Alloc {
            inner: Inner::Jemalloc,
        }
    }

    /// Wraps the system allocator (`std::alloc::System`). The profiler's own work allocates
    /// from the host's heap (glibc has no arena to choose) and calls `malloc_trim(0)` after
    /// each profile.
    pub const fn system() -> Alloc {
        Alloc {
            inner: Inner::System,
        }
    }

    /// Wraps any allocator, for example a counting one in tests, or mimalloc. The profiler's
    /// own work allocates from it too, and mapprof does nothing to give that memory back.
    pub const fn new(inner: &'static (dyn GlobalAlloc + Sync)) -> Alloc {
        Alloc {
            inner: Inner::Custom(inner),
        }
    }
}

/// Calls `$method` on the inner allocator. A `match` rather than `&dyn` so that the two usual
/// allocators are called directly (and inlined), not through a vtable.
macro_rules! inner {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match $self.inner {
            #[cfg(feature = "jemalloc")]
            Inner::Jemalloc => Jemalloc.$method($($arg),*),
            Inner::System => System.$method($($arg),*),
            Inner::Custom(a) => a.$method($($arg),*),
        }
    };
}

// SAFETY: every method forwards to the inner allocator with the caller's arguments unchanged, so
// the inner allocator's guarantees hold; the hooks only read the pointers as numbers.
//
// Shape: the fast paths do the hooks' cheap test first and end in a tail call to the inner
// allocator, with no stack frame of their own; everything else is in the cold functions below.
unsafe impl GlobalAlloc for Alloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if heap::count_down(layout.size()) {
            // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract for `layout`.
            return unsafe { alloc_sampled(layout, false, self) };
        }
        // SAFETY: as above.
        unsafe { inner!(self.alloc(layout)) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if heap::count_down(layout.size()) {
            // SAFETY: the caller upholds `GlobalAlloc::alloc_zeroed`'s contract for `layout`.
            return unsafe { alloc_sampled(layout, true, self) };
        }
        // SAFETY: as above.
        unsafe { inner!(self.alloc_zeroed(layout)) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if heap::maybe_live(ptr) || a_test_measures() {
            // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract for the arguments.
            return unsafe { dealloc_live(ptr, layout, self) };
        }
        // SAFETY: as above.
        unsafe { inner!(self.dealloc(ptr, layout)) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let live = heap::maybe_live(ptr);
        let sample = heap::count_down(new_size);
        if live || sample {
            // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract for the arguments.
            return unsafe { realloc_sampled(ptr, layout, new_size, sample, self) };
        }
        // SAFETY: as above.
        unsafe { inner!(self.realloc(ptr, layout, new_size)) }
    }
}

// The slow paths take the wrapper last, so that the fast paths reach them with their own
// arguments still in place (no register shuffling before the test).

/// An allocation whose countdown ran out, or one of the profiler's own work (whose countdown
/// is parked at 0 so that each comes here).
#[cold]
#[inline(never)]
unsafe fn alloc_sampled(layout: Layout, zeroed: bool, this: &Alloc) -> *mut u8 {
    memory::note_inner(this.inner.kind());
    if heap::for_the_profiler() && this.inner.kind() == InnerKind::Jemalloc {
        // SAFETY: forwarded from `alloc`/`alloc_zeroed`, whose callers uphold the contract.
        return unsafe { memory::own_alloc(layout, zeroed) };
    }
    // SAFETY: forwarded from `alloc`/`alloc_zeroed`, whose callers uphold the contract.
    let ptr = unsafe {
        if zeroed {
            inner!(this.alloc_zeroed(layout))
        } else {
            inner!(this.alloc(layout))
        }
    };
    // A thread in an exact-counting scope (`mapprof::testing`) is counted, not sampled.
    if !scope::on_alloc(ptr, layout.size()) {
        heap::sample_alloc(ptr, layout.size(), 0);
    }
    ptr
}

/// Whether a scope of `mapprof::testing` is active in the process, whose frees the cold path
/// counts: a relaxed load of a global with the `testing` feature, and nothing without it, so
/// that a build that does not test keeps the free path at a hash and one load.
#[inline(always)]
fn a_test_measures() -> bool {
    cfg!(feature = "testing") && scope::any_active()
}

/// A free of a block that may be in the live set (a sampled block), or made while a scope of
/// `mapprof::testing` is active somewhere.
#[cold]
#[inline(never)]
unsafe fn dealloc_live(ptr: *mut u8, layout: Layout, this: &Alloc) {
    // Forget the block before the inner allocator can hand its address out again.
    if heap::maybe_live(ptr) {
        heap::on_live_dealloc(ptr, layout.size());
    }
    scope::on_free(ptr, layout.size());
    // SAFETY: forwarded from `dealloc`, whose caller upholds the contract.
    unsafe { inner!(this.dealloc(ptr, layout)) }
}

/// A realloc of a block that may be in the live set, or whose new size is to be sampled.
#[cold]
#[inline(never)]
unsafe fn realloc_sampled(
    ptr: *mut u8,
    layout: Layout,
    new_size: usize,
    sample: bool,
    this: &Alloc,
) -> *mut u8 {
    let live_bucket = heap::before_realloc(ptr);
    let scoped = scope::in_scope();
    let new = if heap::for_the_profiler() && this.inner.kind() == InnerKind::Jemalloc {
        // SAFETY: forwarded from `realloc`, whose caller upholds the contract.
        unsafe { memory::own_realloc(ptr, layout, new_size) }
    } else {
        // SAFETY: as above.
        unsafe { inner!(this.realloc(ptr, layout, new_size)) }
    };
    // A thread in an exact-counting scope (`mapprof::testing`) is counted, not sampled.
    let sample = sample && !(scoped && scope::on_realloc(ptr, layout.size(), new, new_size));
    heap::after_realloc(live_bucket, ptr, layout.size(), new, new_size, sample);
    new
}
