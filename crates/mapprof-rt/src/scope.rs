//! Exact counting scopes for tests (`mapprof::testing::measure`): while a thread is in a
//! [`Scope`], every allocation, realloc and free it makes is counted exactly into the scope,
//! with its stack, instead of being sampled.
//!
//! How it keeps the hot path's rules: the scope's tables are allocated by [`Scope::new`], before
//! the thread enters it, and are fixed in size, so counting allocates nothing and every loop is
//! bounded (a probe length). The scoped thread's countdown is parked at 0 (as
//! [`crate::thread::as_profiler`] does), so each of its allocations takes the wrapper's cold
//! path, which counts it here and parks the countdown at 0 again; other threads' fast paths are
//! unchanged and they keep sampling. Frees have no countdown: while any scope is active in the
//! process ([`any_active`], one relaxed load of a global), the wrapper's free path also asks
//! whether the current thread is in a scope.
//!
//! A stack is captured for *every* allocation and realloc, into a bounded table of distinct
//! stacks ([`SITES`]): whether an allocation is container growth is only known from its stack
//! (hashbrown grows with a fresh allocation, not a realloc), and a failing count assertion
//! names the sites that allocated. A frame-pointer walk costs about a hundred nanoseconds; tests
//! afford it. Stacks beyond the table's room are counted in [`Scope::lost_sites`].

use crate::stack::{self, MAX_DEPTH};
use crate::thread::STATE;
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Distinct stacks a scope keeps (with their counts).
pub const SITES: usize = 1024;
/// Frames kept per stack, innermost first.
pub const SITE_DEPTH: usize = 64;
/// Blocks a scope can follow from allocation to free (for live and peak bytes).
pub const BLOCKS: usize = 1 << 16;
const PROBE: usize = 64;
const EMPTY: usize = 0;
const TOMBSTONE: usize = 1;

static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// Whether some thread of the process is in a scope: the only test the wrapper's free path adds
/// for everyone (a relaxed load of a global that does not change while no test measures).
#[inline(always)]
pub fn any_active() -> bool {
    ACTIVE.load(Relaxed) != 0
}

/// What the calls of a stack were.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SiteKind {
    /// `alloc` or `alloc_zeroed` calls; the amount is their bytes.
    Alloc,
    /// `realloc` calls; the amount is their new sizes.
    Realloc,
    /// Contended lock acquisitions, the waiter's stack; the amount is the nanoseconds waited.
    Wait,
    /// Unlocks that woke waiters, the holder's stack; the amount is the nanoseconds its
    /// waiters waited since the last such unlock (the mutex profile's charge).
    Hold,
}

/// One distinct stack of a scope.
#[derive(Debug)]
struct Site {
    hash: Cell<u64>,
    kind: Cell<SiteKind>,
    depth: Cell<usize>,
    frames: Cell<[usize; SITE_DEPTH]>,
    count: Cell<u64>,
    amount: Cell<u64>,
}

/// A stack of a scope, read after it ended: return addresses innermost first.
#[derive(Debug, Clone)]
pub struct SiteRecord {
    /// Return addresses, innermost first (the hooks' frames included).
    pub frames: Vec<usize>,
    /// What the calls were.
    pub kind: SiteKind,
    /// Calls made with this stack.
    pub count: u64,
    /// Their bytes or nanoseconds, as [`SiteKind`] says.
    pub amount: u64,
}

/// The exact counters of one scope. Owned by the code that measures; the thread it is
/// [`enter`]ed on is the only one that touches it meanwhile.
#[derive(Debug)]
pub struct Scope {
    /// `alloc` and `alloc_zeroed` calls.
    pub allocations: Cell<u64>,
    /// Bytes they asked for.
    pub bytes: Cell<u64>,
    /// `realloc` calls.
    pub reallocs: Cell<u64>,
    /// Their new sizes, summed.
    pub realloc_bytes: Cell<u64>,
    /// Frees (of any block, allocated in the scope or before it).
    pub frees: Cell<u64>,
    /// Bytes freed.
    pub freed_bytes: Cell<u64>,
    /// Bytes of blocks allocated in the scope and not freed yet.
    pub live_bytes: Cell<u64>,
    /// Blocks allocated in the scope and not freed yet.
    pub live_blocks: Cell<u64>,
    /// The highest `live_bytes` reached.
    pub peak_bytes: Cell<u64>,
    /// Blocks the block table had no room for (their frees do not lower `live_bytes`).
    pub lost_blocks: Cell<u64>,
    /// Calls whose stack the site table had no room for.
    pub lost_sites: Cell<u64>,
    /// Contended lock acquisitions through `mapprof::sync`.
    pub contentions: Cell<u64>,
    /// Nanoseconds waited in them.
    pub wait_ns: Cell<u64>,
    /// Unlocks that woke waiters (of threads in this scope).
    pub holds: Cell<u64>,
    /// Nanoseconds those waiters waited for them.
    pub held_ns: Cell<u64>,
    sites: Box<[Site]>,
    block_addr: Box<[Cell<usize>]>,
    block_size: Box<[Cell<usize>]>,
}

impl Default for Scope {
    fn default() -> Self {
        Scope::new()
    }
}

impl Scope {
    /// A scope with its tables allocated (about 1.5 MiB, zero pages until touched).
    pub fn new() -> Scope {
        let site = || Site {
            hash: Cell::new(0),
            kind: Cell::new(SiteKind::Alloc),
            depth: Cell::new(0),
            frames: Cell::new([0; SITE_DEPTH]),
            count: Cell::new(0),
            amount: Cell::new(0),
        };
        Scope {
            allocations: Cell::new(0),
            bytes: Cell::new(0),
            reallocs: Cell::new(0),
            realloc_bytes: Cell::new(0),
            frees: Cell::new(0),
            freed_bytes: Cell::new(0),
            live_bytes: Cell::new(0),
            live_blocks: Cell::new(0),
            peak_bytes: Cell::new(0),
            lost_blocks: Cell::new(0),
            lost_sites: Cell::new(0),
            contentions: Cell::new(0),
            wait_ns: Cell::new(0),
            holds: Cell::new(0),
            held_ns: Cell::new(0),
            sites: (0..SITES).map(|_| site()).collect(),
            block_addr: (0..BLOCKS).map(|_| Cell::new(EMPTY)).collect(),
            block_size: (0..BLOCKS).map(|_| Cell::new(0)).collect(),
        }
    }

    /// The distinct stacks recorded, with their counts.
    pub fn sites(&self) -> Vec<SiteRecord> {
        self.sites
            .iter()
            .filter(|s| s.count.get() != 0)
            .map(|s| SiteRecord {
                frames: s.frames.get()[..s.depth.get()].to_vec(),
                kind: s.kind.get(),
                count: s.count.get(),
                amount: s.amount.get(),
            })
            .collect()
    }

    fn slot(addr: usize) -> usize {
        ((addr >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 16) % BLOCKS
    }

    fn add_block(&self, addr: usize, size: usize) {
        let start = Self::slot(addr);
        for i in 0..PROBE {
            let slot = &self.block_addr[(start + i) % BLOCKS];
            if slot.get() == EMPTY || slot.get() == TOMBSTONE {
                slot.set(addr);
                self.block_size[(start + i) % BLOCKS].set(size);
                self.live_blocks.set(self.live_blocks.get() + 1);
                let live = self.live_bytes.get() + size as u64;
                self.live_bytes.set(live);
                self.peak_bytes.set(self.peak_bytes.get().max(live));
                return;
            }
        }
        self.lost_blocks.set(self.lost_blocks.get() + 1);
    }

    /// Forgets block `addr` if the scope allocated it; whether it did.
    fn remove_block(&self, addr: usize) -> bool {
        let start = Self::slot(addr);
        for i in 0..PROBE {
            let at = (start + i) % BLOCKS;
            let slot = &self.block_addr[at];
            if slot.get() == addr {
                slot.set(TOMBSTONE);
                let size = self.block_size[at].get() as u64;
                self.live_blocks.set(self.live_blocks.get() - 1);
                self.live_bytes.set(self.live_bytes.get() - size);
                return true;
            }
            if slot.get() == EMPTY {
                return false;
            }
        }
        false
    }

    fn add_site(&self, frames: &[usize], kind: SiteKind, amount: u64) {
        let frames = &frames[..frames.len().min(SITE_DEPTH)];
        // FNV-1a over the addresses and the kind of call.
        let mut hash = 0xcbf2_9ce4_8422_2325u64 ^ kind as u64;
        for &f in frames {
            hash = (hash ^ f as u64).wrapping_mul(0x0100_0000_01b3);
        }
        hash |= 1; // 0 marks a free slot
        let start = (hash as usize) % SITES;
        for i in 0..PROBE {
            let site = &self.sites[(start + i) % SITES];
            if site.hash.get() == 0 {
                let mut kept = [0; SITE_DEPTH];
                kept[..frames.len()].copy_from_slice(frames);
                site.hash.set(hash);
                site.kind.set(kind);
                site.depth.set(frames.len());
                site.frames.set(kept);
            } else if site.hash.get() != hash
                || site.kind.get() != kind
                || site.frames.get()[..site.depth.get()] != *frames
            {
                continue;
            }
            site.count.set(site.count.get() + 1);
            site.amount.set(site.amount.get() + amount);
            return;
        }
        self.lost_sites.set(self.lost_sites.get() + 1);
    }
}

/// Why [`enter`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnterError {
    /// The thread is already in a scope: scopes do not nest.
    Nested,
    /// The thread-local state is gone (the thread is exiting).
    NoThreadState,
}

/// The thread's state before [`enter`], put back by [`Entered`]'s drop.
#[derive(Debug)]
pub struct Entered {
    countdown: u64,
    pending: u64,
}

/// Makes `scope` the current thread's scope until the returned guard is dropped: from now on
/// every allocation, realloc and free of this thread is counted in it, and none is sampled.
///
/// # Safety
///
/// `scope` must outlive the guard, and the guard must be dropped on this thread.
pub unsafe fn enter(scope: &Scope) -> Result<Entered, EnterError> {
    STATE
        .try_with(|s| {
            if !s.scope.get().is_null() {
                return Err(EnterError::Nested);
            }
            // So that the first allocations' cold path finds the stack bounds known.
            stack::stack_bounds(s);
            ACTIVE.fetch_add(1, Relaxed);
            s.scope.set(scope);
            Ok(Entered {
                countdown: s.countdown.replace(0),
                pending: s.pending.replace(0),
            })
        })
        .unwrap_or(Err(EnterError::NoThreadState))
}

impl Drop for Entered {
    fn drop(&mut self) {
        let _ = STATE.try_with(|s| {
            s.scope.set(std::ptr::null());
            s.countdown.set(self.countdown);
            s.pending.set(self.pending);
        });
        ACTIVE.fetch_sub(1, Relaxed);
    }
}

/// Runs `f` with the current thread's scope, if it is in one and not inside the profiler's own
/// work; parks the countdown at 0 again (the cold path's subtraction wrapped it around).
#[inline]
fn with_scope(f: impl FnOnce(&Scope, &crate::thread::ThreadState)) -> bool {
    STATE
        .try_with(|s| {
            let scope = s.scope.get();
            if scope.is_null() {
                return false;
            }
            s.countdown.set(0);
            if s.busy.get() {
                return true; // the profiler's work, or a capture's own allocations: not counted
            }
            // SAFETY: `enter`'s contract keeps the scope alive while the pointer is set, and
            // only this thread reads it; no other reference to it is used meanwhile.
            let scope = unsafe { &*scope };
            s.busy.set(true);
            f(scope, s);
            s.busy.set(false);
            true
        })
        .unwrap_or(false)
}

/// Whether the current thread is in a scope (then its allocations are the scope's, not
/// sampled). Cold: asked only by allocations that left the fast path.
#[inline]
pub fn in_scope() -> bool {
    STATE
        .try_with(|s| !s.scope.get().is_null())
        .unwrap_or(false)
}

/// Counts an allocation of `size` bytes at `ptr` (null: it failed) in the thread's scope, with
/// its stack; false when the thread is in none.
#[inline(never)]
pub fn on_alloc(ptr: *mut u8, size: usize) -> bool {
    with_scope(|scope, state| {
        if ptr.is_null() {
            return;
        }
        scope.allocations.set(scope.allocations.get() + 1);
        scope.bytes.set(scope.bytes.get() + size as u64);
        scope.add_block(ptr as usize, size);
        let mut frames = [0; MAX_DEPTH];
        let depth = stack::capture(state, &mut frames);
        scope.add_site(&frames[..depth], SiteKind::Alloc, size as u64);
    })
}

/// Counts a realloc of `old` (`old_size` bytes) to `new` (`new_size`; null: it failed and `old`
/// stays) in the thread's scope, with its stack. A block allocated before the scope stays
/// outside its live figures when reallocated in it. False when the thread is in none.
#[inline(never)]
pub fn on_realloc(old: *mut u8, old_size: usize, new: *mut u8, new_size: usize) -> bool {
    with_scope(|scope, state| {
        if new.is_null() {
            return;
        }
        scope.reallocs.set(scope.reallocs.get() + 1);
        scope
            .realloc_bytes
            .set(scope.realloc_bytes.get() + new_size as u64);
        scope
            .freed_bytes
            .set(scope.freed_bytes.get() + old_size as u64);
        if scope.remove_block(old as usize) {
            scope.add_block(new as usize, new_size);
        }
        let mut frames = [0; MAX_DEPTH];
        let depth = stack::capture(state, &mut frames);
        scope.add_site(&frames[..depth], SiteKind::Realloc, new_size as u64);
    })
}

/// Counts a free of `ptr` (`size` bytes) in the thread's scope, if it is in one.
#[inline(never)]
pub fn on_free(ptr: *mut u8, size: usize) {
    with_scope(|scope, _| {
        scope.frees.set(scope.frees.get() + 1);
        scope.freed_bytes.set(scope.freed_bytes.get() + size as u64);
        scope.remove_block(ptr as usize);
    });
}

/// Counts a contended lock acquisition that waited `wait_ns` in the thread's scope, if any,
/// with the waiter's stack. Called once the lock is taken: in a scope the capture runs under
/// the lock (tests only; outside scopes nothing is captured here).
#[inline(never)]
pub fn on_contention(wait_ns: u64) {
    with_scope(|scope, state| {
        scope.contentions.set(scope.contentions.get() + 1);
        scope.wait_ns.set(scope.wait_ns.get() + wait_ns);
        let mut frames = [0; MAX_DEPTH];
        let depth = stack::capture(state, &mut frames);
        scope.add_site(&frames[..depth], SiteKind::Wait, wait_ns);
    });
}

/// Counts an unlock that charged its holder `delay_ns` of its waiters' time (called after the
/// release) in the thread's scope, if any, with the holder's stack.
#[inline(never)]
pub fn on_holder_delay(delay_ns: u64) {
    with_scope(|scope, state| {
        scope.holds.set(scope.holds.get() + 1);
        scope.held_ns.set(scope.held_ns.get() + delay_ns);
        let mut frames = [0; MAX_DEPTH];
        let depth = stack::capture(state, &mut frames);
        scope.add_site(&frames[..depth], SiteKind::Hold, delay_ns);
    });
}
