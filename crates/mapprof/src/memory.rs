//! mapprof's own memory: what its work allocates is kept apart from the host's and given back
//! to the system after each profile, and [`self_memory`] says how much it holds.
//!
//! The profiler's work (building, encoding, serving profiles, the trace line) runs under
//! [`profiler_work`]: `mapprof_rt::thread::as_profiler` marks the thread, which sends each of
//! its allocations down `mapprof::Alloc`'s cold path, and that path routes them by inner
//! allocator:
//!
//! - **jemalloc** ([`crate::Alloc::jemalloc`]): into an arena of mapprof's own (made once,
//!   `arenas.create`), by `mallocx`/`rallocx` with `MALLOCX_ARENA` and `MALLOCX_TCACHE_NONE`, so
//!   none of it lands in the host's arenas or thread caches. Between works the arena's decay is
//!   0 (freed pages go back at once, however late the free: a profile handed to the host and
//!   dropped later); during works it keeps them ([`WORKS_RUNNING`]), and [`release`] flushes
//!   the thread's cache and purges the arena after each piece of work. Any thread may free or
//!   `realloc` a block of it later: jemalloc finds a block's arena itself. A block freed on a host thread may wait in
//!   that thread's cache (small sizes only, bounded by jemalloc's `tcache_max`) and be reused by
//!   the host from there.
//! - **system** ([`crate::Alloc::system`]): glibc has no arena to choose, so the blocks are the
//!   host's heap's; [`release`] calls `malloc_trim(0)`, which returns the free pages of every
//!   glibc arena (it walks them under their locks: a short stall for the host's `malloc`).
//! - **any other** ([`crate::Alloc::new`]): nothing; its memory is that allocator's business.
//!
//! Frees are not routed: the free fast path stays a hash and one load.

use mapprof_rt::thread::KEPT_HEAPS;
use std::sync::atomic::{AtomicU32, AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, Once, PoisonError};
#[cfg(feature = "jemalloc")]
use tikv_jemalloc_sys as ffi;
#[cfg(not(feature = "jemalloc"))]
mod no_jemalloc;
#[cfg(not(feature = "jemalloc"))]
use no_jemalloc as ffi;

/// Which inner allocator `mapprof::Alloc` wraps, as its cold path last saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum InnerKind {
    /// `mapprof::Alloc` has not allocated yet: it is not the global allocator.
    Unknown = 0,
    Jemalloc = 1,
    System = 2,
    Custom = 3,
}

static INNER: AtomicU8 = AtomicU8::new(InnerKind::Unknown as u8);

/// Called on `mapprof::Alloc`'s cold path: a load, and a store only the first time.
#[inline]
pub(crate) fn note_inner(kind: InnerKind) {
    if INNER.load(Relaxed) != kind as u8 {
        INNER.store(kind as u8, Relaxed);
    }
}

fn inner() -> InnerKind {
    match INNER.load(Relaxed) {
        1 => InnerKind::Jemalloc,
        2 => InnerKind::System,
        3 => InnerKind::Custom,
        _ => InnerKind::Unknown,
    }
}

/// mapprof's own jemalloc arena, its index + 1; 0 until made (or if jemalloc refused).
static OWN_ARENA: AtomicU32 = AtomicU32::new(0);
/// The arenas of what the profiler keeps across profiles (`mapprof_rt::thread::keeping`),
/// apart from the work's temporaries: a cache entry allocated among them would pin their
/// slab's page after they are freed (measured on the fixture service: 1.0 MiB allocated kept
/// 2.8 MiB resident after one scrape, 5.3 MiB after a few CPU profiles, in one arena). Two, so
/// that the symbol cache's generations alternate between them: with one, the entries of the
/// generation that stays pinned the slabs of the one dropped (0.96 MiB allocated in 2.06 MiB
/// of pages after a scrape and a CPU profile). Index + 1, as `OWN_ARENA`.
static KEPT_ARENAS: [AtomicU32; KEPT_HEAPS] = [const { AtomicU32::new(0) }; KEPT_HEAPS];
static MAKE_OWN_ARENA: Once = Once::new();

fn own_arena() -> Option<u32> {
    OWN_ARENA.load(Relaxed).checked_sub(1)
}

fn kept_arena(heap: usize) -> Option<u32> {
    KEPT_ARENAS[heap].load(Relaxed).checked_sub(1)
}

/// mapprof's arenas that exist.
fn arenas() -> impl Iterator<Item = u32> {
    own_arena()
        .into_iter()
        .chain((0..KEPT_HEAPS).filter_map(kept_arena))
}

/// Makes mapprof's arenas, once, with decay 0: their freed pages go back to the system at once.
fn make_own_arena() {
    MAKE_OWN_ARENA.call_once(|| {
        for slot in std::iter::once(&OWN_ARENA).chain(&KEPT_ARENAS) {
            let mut arena = 0u32;
            let mut len = std::mem::size_of::<u32>();
            // SAFETY: `arenas.create` is a read of a `u32` (the new arena's index) into ours.
            let failed = unsafe {
                ffi::mallctl(
                    c"arenas.create".as_ptr(),
                    (&mut arena as *mut u32).cast(),
                    &mut len,
                    std::ptr::null_mut(),
                    0,
                )
            } != 0;
            if failed {
                return;
            }
            set_decay(arena, b"arena.0.muzzy_decay_ms\0", 0);
            set_decay(arena, b"arena.0.dirty_decay_ms\0", 0);
            slot.store(arena + 1, Relaxed);
        }
    });
}

/// Sets a decay time of `arena` (`arena.<i>.{dirty,muzzy}_decay_ms`): 0 purges freed pages at
/// once, -1 never (until [`release`] purges).
fn set_decay(arena: u32, name: &[u8], ms: isize) {
    let Some((mib, len)) = arena_mib(name, 1, Some(arena)) else {
        return;
    };
    let mut ms = ms;
    // SAFETY: the setting is an `ssize_t`, written from an `isize` we own.
    unsafe {
        ffi::mallctlbymib(
            mib.as_ptr(),
            len,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            (&mut ms as *mut isize).cast(),
            std::mem::size_of::<isize>(),
        )
    };
}

/// Pieces of profiler work running now ([`profiler_work`], outermost ones). While there are
/// some, the arena keeps its freed pages (dirty decay -1), so that a build reuses them instead
/// of faulting fresh ones in after each purge (measured: most of the kernel time the routing
/// cost); when the last ends, decay goes back to 0 and the arena is purged. Threads that are
/// profiler work for their whole life ([`profiler_thread`]) are not counted.
static WORKS_RUNNING: Mutex<usize> = Mutex::new(0);

/// The count of works running, held across a fork (`crate::fork`).
pub(crate) type WorksGuard = MutexGuard<'static, usize>;

/// Takes the count for a fork; makes the arenas first, so that the child does not inherit
/// their `Once` half run by another thread.
pub(crate) fn lock_works() -> WorksGuard {
    if inner() == InnerKind::Jemalloc {
        make_own_arena();
    }
    WORKS_RUNNING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Counts a piece of work in (`+1`) or out (`-1`), switching the arena's decay at 0.
fn count_work(starting: bool) {
    let Some(arena) = own_arena() else {
        return;
    };
    let mut running = WORKS_RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
    if starting {
        *running += 1;
        if *running == 1 {
            set_decay(arena, b"arena.0.dirty_decay_ms\0", -1);
        }
    } else {
        *running = running.saturating_sub(1);
        if *running == 0 {
            set_decay(arena, b"arena.0.dirty_decay_ms\0", 0);
        }
    }
}

/// Runs `f` as the profiler's own work (`mapprof_rt::thread::as_profiler`), then gives back
/// to the system what it freed ([`release`]). Every facade site that builds, encodes or serves
/// a profile runs under it. Nested work is released (and its peak watched) by the outermost:
/// purging in the middle of a build would only make the rest of it fault the pages in again.
pub(crate) fn profiler_work<R>(f: impl FnOnce() -> R) -> R {
    if mapprof_rt::thread::is_profiler_work() {
        return mapprof_rt::thread::as_profiler(f);
    }
    let jemalloc = inner() == InnerKind::Jemalloc;
    if jemalloc {
        make_own_arena();
        count_work(true);
        start_peak_watch();
    }
    /// Ends the work even if `f` unwinds (an HTTP job's panic is caught by tokio), so that the
    /// count of works running and the decay it switches stay right.
    struct End(bool);
    impl Drop for End {
        fn drop(&mut self) {
            if self.0 {
                end_peak_watch();
                count_work(false);
            }
            release();
        }
    }
    let _end = End(jemalloc);
    mapprof_rt::thread::as_profiler(f)
}

/// Runs `f`, the whole life of one of mapprof's threads (the HTTP server, the background
/// threads), as profiler work. Such a thread calls [`release`] after each piece of its work
/// (a response, a trace line, a dump); the pieces it hands to [`profiler_work`] are nested, so
/// they are not counted in [`WORKS_RUNNING`].
pub(crate) fn profiler_thread<R>(f: impl FnOnce() -> R) -> R {
    if inner() == InnerKind::Jemalloc {
        make_own_arena();
    }
    let result = mapprof_rt::thread::as_profiler(f);
    release();
    result
}

std::thread_local! {
    /// [`SelfMemory::total`] when this thread last reset jemalloc's `thread.peak` (0: not
    /// watching): its peak since then, on top of this, estimates the peak of the total while
    /// its work ran.
    static TOTAL_AT_PEAK_RESET: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Starts watching the peak of this thread's work: resets jemalloc's `thread.peak` and keeps
/// the total now.
fn start_peak_watch() {
    void_ctl(b"thread.peak.reset\0", None);
    let total = self_memory().total;
    let _ = TOTAL_AT_PEAK_RESET.try_with(|t| t.set(total));
}

/// Notes the peak this thread's work reached since [`start_peak_watch`]: the total then plus
/// the most the thread had allocated on top (`thread.peak.read`).
fn end_peak_watch() {
    let since = TOTAL_AT_PEAK_RESET.try_with(|t| t.replace(0)).unwrap_or(0);
    let mut peak: u64 = 0;
    let mut size = std::mem::size_of::<u64>();
    // SAFETY: `thread.peak.read` is a `uint64_t`, read into a `u64` we own.
    let read = unsafe {
        ffi::mallctl(
            c"thread.peak.read".as_ptr(),
            (&mut peak as *mut u64).cast(),
            &mut size,
            std::ptr::null_mut(),
            0,
        )
    } == 0;
    if read && since > 0 {
        PEAK.fetch_max(since.saturating_add(peak as usize), Relaxed);
    }
}

/// The `mallocx` flags that put an allocation of `layout` into mapprof's arena, bypassing the
/// thread's cache (whose blocks would be reused by the host), as `tikv-jemallocator` computes
/// alignment flags.
fn own_flags(align: usize, size: usize) -> i32 {
    // tikv-jemallocator's rule: malloc's own alignment (`_Alignof(max_align_t)`) needs no flag.
    const MIN_ALIGN: usize = if cfg!(any(
        target_arch = "arm",
        target_arch = "mips",
        target_arch = "powerpc"
    )) {
        8
    } else {
        16
    };
    let align_flag = if align <= MIN_ALIGN && align <= size {
        0
    } else {
        ffi::MALLOCX_ALIGN(align)
    };
    let arena = match mapprof_rt::thread::kept_heap() {
        Some(heap) => kept_arena(heap),
        None => own_arena(),
    };
    let arena = match arena {
        Some(arena) => ffi::MALLOCX_ARENA(arena as usize),
        None => 0,
    };
    align_flag | arena | ffi::MALLOCX_TCACHE_NONE
}

/// Allocates `layout` for the profiler's work in mapprof's arena.
///
/// # Safety
/// As `GlobalAlloc::alloc`: `layout` has a non-zero size.
pub(crate) unsafe fn own_alloc(layout: std::alloc::Layout, zeroed: bool) -> *mut u8 {
    let zero = if zeroed { ffi::MALLOCX_ZERO } else { 0 };
    let flags = own_flags(layout.align(), layout.size()) | zero;
    // SAFETY: a non-zero size (the caller's contract) and flags built from a valid alignment and
    // an arena jemalloc made.
    unsafe { ffi::mallocx(layout.size(), flags).cast() }
}

/// Reallocates, for the profiler's work, a block of any arena; a block that moves moves into
/// mapprof's arena.
///
/// # Safety
/// As `GlobalAlloc::realloc`: `ptr` was allocated by jemalloc with `layout`, `new_size` is
/// non-zero.
pub(crate) unsafe fn own_realloc(
    ptr: *mut u8,
    layout: std::alloc::Layout,
    new_size: usize,
) -> *mut u8 {
    let flags = own_flags(layout.align(), new_size);
    // SAFETY: `ptr` is a live jemalloc block (the caller's contract); jemalloc accepts blocks of
    // any arena whatever the arena flag says.
    unsafe { ffi::rallocx(ptr.cast(), new_size, flags).cast() }
}

/// Gives back to the system the memory the profiler's work freed (after each outermost
/// [`profiler_work`], and where a thread that is profiler work for life finishes a piece of
/// it): with jemalloc, flushes the calling thread's cache and purges mapprof's arena; with the
/// system allocator, `malloc_trim(0)` (after a look at [`self_memory`], for the peak);
/// otherwise nothing.
pub(crate) fn release() {
    match inner() {
        InnerKind::Jemalloc => {
            void_ctl(b"thread.tcache.flush\0", None);
            for arena in arenas() {
                void_ctl(b"arena.0.purge\0", Some(arena));
            }
        }
        InnerKind::System => {
            observe();
            // SAFETY: malloc_trim only returns free memory of glibc's arenas to the system.
            unsafe { libc::malloc_trim(0) };
        }
        InnerKind::Custom | InnerKind::Unknown => {}
    }
}

/// The MIB of the jemalloc control `name` (NUL-terminated), with `arena` as its component
/// `at` (the `0` of `arena.0.*` or `stats.arenas.0.*`): (components, their count).
fn arena_mib(name: &[u8], at: usize, arena: Option<u32>) -> Option<([usize; 6], usize)> {
    let mut mib = [0usize; 6];
    let mut len = mib.len();
    // SAFETY: `name` is NUL-terminated, `mib` has room for `len` components.
    let failed =
        unsafe { ffi::mallctlnametomib(name.as_ptr().cast(), mib.as_mut_ptr(), &mut len) } != 0;
    if failed || at >= len {
        return None;
    }
    if let Some(arena) = arena {
        mib[at] = arena as usize;
    }
    Some((mib, len))
}

/// Calls a jemalloc control that takes and gives nothing, as `thread.tcache.flush` and
/// `arena.<i>.purge` are.
fn void_ctl(name: &[u8], arena: Option<u32>) {
    let Some((mib, len)) = arena_mib(name, 1, arena) else {
        return;
    };
    // SAFETY: the control reads and writes nothing: null pointers, zero length.
    unsafe {
        ffi::mallctlbymib(
            mib.as_ptr(),
            len,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    };
}

/// What mapprof itself holds ([`self_memory`]), in bytes: Go's
/// `/memory/classes/profiling/buckets:bytes`, and the profiler's heap besides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SelfMemory {
    /// Size of the hot path's fixed tables (stack table buckets, index and frame arena; the
    /// live set; the label table): a constant, the most they can ever hold.
    pub tables_reserved: usize,
    /// The part of them that is resident, asked of the kernel (`mincore`); grows with use up
    /// to `tables_reserved`, never beyond. Pages only read (they map the kernel's shared zero
    /// page) count too: an upper bound.
    pub tables_resident: usize,
    /// Bytes allocated in the profiler's heap now: with [`crate::Alloc::jemalloc`], its own
    /// arena's (`stats.arenas.<i>.{small,large}.allocated`), profiles handed to the caller and
    /// the symbol cache included. `None` where its blocks cannot be told from the host's: the
    /// system allocator (glibc has no arena to choose; counting frees would slow every free)
    /// or any other inner allocator.
    pub heap_allocated: Option<usize>,
    /// Resident bytes of the profiler's heap (jemalloc: the arena's `resident`, its metadata
    /// included); `None` as for `heap_allocated`.
    pub heap_resident: Option<usize>,
    /// `tables_resident` + `heap_resident`: what mapprof costs in memory now, as far as it can
    /// tell.
    pub total: usize,
    /// The highest `total` seen: at each call of [`self_memory`], and with jemalloc, for each
    /// piece of profiler work (the outermost, when nested), the total when it started plus the
    /// most its thread had allocated on top (jemalloc's `thread.peak`). An estimate: works running at the same
    /// time on several threads are not added up, and with the system allocator only the looks
    /// count.
    pub peak: usize,
}

static PEAK: AtomicUsize = AtomicUsize::new(0);

/// What mapprof itself holds now: its fixed tables and its own heap. Allocates nothing; with
/// jemalloc it refreshes jemalloc's statistics (`epoch`, which merges every arena's). Costs
/// tens of microseconds (measured: 64 µs, 41 of them `mincore` over the tables): fine per
/// profile or trace line, not per request of the host.
pub fn self_memory() -> SelfMemory {
    let (tables_reserved, tables_resident) = mapprof_rt::footprint::tables();
    let (heap_allocated, heap_resident) = match inner() {
        InnerKind::Jemalloc => {
            let (allocated, resident) = own_arena_stats();
            (Some(allocated), Some(resident))
        }
        _ => (None, None),
    };
    let total = tables_resident + heap_resident.unwrap_or(0);
    let peak = PEAK.fetch_max(total, Relaxed).max(total);
    SelfMemory {
        tables_reserved,
        tables_resident,
        heap_allocated,
        heap_resident,
        total,
        peak,
    }
}

fn observe() {
    let _ = self_memory();
}

/// mapprof's arenas together: (allocated, resident) bytes, (0, 0) before they exist.
fn own_arena_stats() -> (usize, usize) {
    advance_epoch();
    arenas().fold((0, 0), |(allocated, resident), arena| {
        let (a, r) = arena_stats(arena);
        (allocated + a, resident + r)
    })
}

/// Refreshes jemalloc's statistics, which it caches until the epoch advances.
pub(crate) fn advance_epoch() {
    let mut epoch = 1u64;
    // SAFETY: `epoch` is written from a `u64` we own.
    unsafe {
        ffi::mallctl(
            c"epoch".as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            (&mut epoch as *mut u64).cast(),
            std::mem::size_of::<u64>(),
        )
    };
}

/// One arena's (allocated, resident) bytes.
fn arena_stats(arena: u32) -> (usize, usize) {
    let read = |name: &[u8]| -> usize {
        let Some((mib, len)) = arena_mib(name, 2, Some(arena)) else {
            return 0;
        };
        let mut value: usize = 0;
        let mut size = std::mem::size_of::<usize>();
        // SAFETY: these statistics are `size_t`s, read into a `usize` we own.
        let failed = unsafe {
            ffi::mallctlbymib(
                mib.as_ptr(),
                len,
                (&mut value as *mut usize).cast(),
                &mut size,
                std::ptr::null_mut(),
                0,
            )
        } != 0;
        if failed {
            0
        } else {
            value
        }
    };
    let allocated =
        read(b"stats.arenas.0.small.allocated\0") + read(b"stats.arenas.0.large.allocated\0");
    (allocated, read(b"stats.arenas.0.resident\0"))
}

/// One line on mapprof's own memory, for every profile's comments (and the `/debug/pprof/`
/// index), e.g. `mapprof's own memory: 9.1 MiB (peak 14.0 MiB): fixed tables 4.6 MiB resident
/// of 18.6 MiB; own jemalloc arenas 4.5 MiB resident, 3.9 MiB allocated`.
pub fn self_memory_comment() -> String {
    let m = self_memory();
    let mib = |bytes: usize| format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64);
    let heap = match (inner(), m.heap_resident, m.heap_allocated) {
        (InnerKind::Jemalloc, Some(resident), Some(allocated)) => format!(
            "own jemalloc arenas {} resident, {} allocated",
            mib(resident),
            mib(allocated)
        ),
        (InnerKind::System, ..) => {
            "heap not told apart from the host's (system allocator; malloc_trim after each \
             profile)"
                .to_owned()
        }
        (InnerKind::Custom, ..) => {
            "heap not told apart from the host's (custom allocator)".to_owned()
        }
        _ => "heap not told apart from the host's (mapprof::Alloc is not the global allocator)"
            .to_owned(),
    };
    format!(
        "mapprof's own memory: {} (peak {}): fixed tables {} resident of {}; {heap}",
        mib(m.total),
        mib(m.peak),
        mib(m.tables_resident),
        mib(m.tables_reserved),
    )
}
