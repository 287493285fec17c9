//! `mapprof::Alloc`: the global allocator wrapper. It forwards every call to an inner allocator
//! and tells the hot path (`mapprof_rt::heap`) about it; see that crate for the rules it keeps.

use mapprof_rt::heap;
use std::alloc::{GlobalAlloc, Layout, System};
use tikv_jemallocator::Jemalloc;

/// A global allocator that samples allocations for the heap profile.
///
/// ```no_run
/// #[global_allocator]
/// static ALLOC: mapprof::Alloc = mapprof::Alloc::jemalloc();
/// ```
///
/// Sampling starts with the first allocation at the default rate (one sample per 512 KiB
/// allocated on average, as in Go); [`crate::Profiler`] changes the rate and writes profiles.
#[derive(Debug)]
pub struct Alloc {
    inner: Inner,
}

#[derive(Clone, Copy)]
enum Inner {
    Jemalloc,
    System,
    Custom(&'static (dyn GlobalAlloc + Sync)),
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Inner::Jemalloc => "Jemalloc",
            Inner::System => "System",
            Inner::Custom(_) => "Custom",
        })
    }
}

impl Alloc {
    /// Wraps jemalloc (`tikv-jemallocator`), the recommended inner allocator.
    pub const fn jemalloc() -> Alloc {
        Alloc {
            inner: Inner::Jemalloc,
        }
    }

    /// Wraps the system allocator (`std::alloc::System`).
    pub const fn system() -> Alloc {
        Alloc {
            inner: Inner::System,
        }
    }

    /// Wraps any allocator, for example a counting one in tests, or mimalloc.
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
            Inner::Jemalloc => Jemalloc.$method($($arg),*),
            Inner::System => System.$method($($arg),*),
            Inner::Custom(a) => a.$method($($arg),*),
        }
    };
}

// SAFETY: every method forwards to the inner allocator with the caller's arguments unchanged, so
// the inner allocator's guarantees hold; the hooks only read the returned pointers as numbers.
unsafe impl GlobalAlloc for Alloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract for `layout`.
        let ptr = unsafe { inner!(self.alloc(layout)) };
        if !ptr.is_null() {
            heap::on_alloc(ptr, layout.size());
        }
        ptr
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc_zeroed`'s contract for `layout`.
        let ptr = unsafe { inner!(self.alloc_zeroed(layout)) };
        if !ptr.is_null() {
            heap::on_alloc(ptr, layout.size());
        }
        ptr
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // Forget the block before the inner allocator can hand its address out again.
        heap::on_dealloc(ptr, layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract for `ptr` and `layout`.
        unsafe { inner!(self.dealloc(ptr, layout)) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let tracked = heap::before_realloc(ptr);
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract for the arguments.
        let new = unsafe { inner!(self.realloc(ptr, layout, new_size)) };
        heap::after_realloc(tracked, ptr, layout.size(), new, new_size);
        new
    }
}
