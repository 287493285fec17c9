//! An exact counting allocator, to compare mapprof's estimates with the truth: every
//! allocation made on a thread inside [`counted`] is counted, objects and bytes (a `realloc`
//! counts as an allocation of its new size, as the heap profile counts it), then forwarded to
//! `System`. Also the heap table's totals, and the standard errors that sampling theory gives.
#![allow(dead_code)] // Each test binary uses a different subset.

use mapprof_rt::{table, Kind};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;

/// Forwards to `System`, counting on threads inside [`counted`].
pub(crate) struct Exact;

/// The instance to wrap: `mapprof::Alloc::new(&exact::INNER)`.
pub(crate) static INNER: Exact = Exact;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static OBJECTS: Cell<u64> = const { Cell::new(0) };
    static BYTES: Cell<u64> = const { Cell::new(0) };
}

fn count(size: usize) {
    let _ = COUNTING.try_with(|counting| {
        if counting.get() {
            OBJECTS.with(|o| o.set(o.get() + 1));
            BYTES.with(|b| b.set(b.get() + size as u64));
        }
    });
}

// SAFETY: forwards to `System` unchanged.
unsafe impl GlobalAlloc for Exact {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller's contract is forwarded as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller's contract is forwarded as is.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is forwarded as is.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: the caller's contract is forwarded as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Objects and bytes, exact or estimated.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Totals {
    pub(crate) objects: f64,
    pub(crate) bytes: f64,
}

impl std::ops::Sub for Totals {
    type Output = Totals;
    fn sub(self, other: Totals) -> Totals {
        Totals {
            objects: self.objects - other.objects,
            bytes: self.bytes - other.bytes,
        }
    }
}

impl std::ops::AddAssign for Totals {
    fn add_assign(&mut self, other: Totals) {
        self.objects += other.objects;
        self.bytes += other.bytes;
    }
}

/// Runs `f`, returning what it allocated on this thread, exactly.
pub(crate) fn counted<R>(f: impl FnOnce() -> R) -> (R, Totals) {
    let before = (OBJECTS.with(Cell::get), BYTES.with(Cell::get));
    COUNTING.with(|c| c.set(true));
    let r = f();
    COUNTING.with(|c| c.set(false));
    let after = (OBJECTS.with(Cell::get), BYTES.with(Cell::get));
    let totals = Totals {
        objects: (after.0 - before.0) as f64,
        bytes: (after.1 - before.1) as f64,
    };
    (r, totals)
}

/// Runs `f` labelled, so that its samples can be told from those of other threads (the test
/// harness's): [`estimated`] and [`per_bucket`] count labelled samples only.
pub(crate) fn labelled<R>(f: impl FnOnce() -> R) -> R {
    mapprof::labels(&[("exact", "measured")], f)
}

/// The heap table's allocated totals so far of the samples taken under [`labelled`]: the
/// estimates a profile would show, read unsampled.
pub(crate) fn estimated() -> Totals {
    mapprof_rt::thread::ignore(|| {
        let mut totals = Totals::default();
        for r in table::snapshot(Kind::Heap)
            .into_iter()
            .filter(|r| r.labels != 0)
        {
            let counts = r.heap();
            totals.objects += counts.allocated_objects;
            totals.bytes += counts.allocated_bytes as f64;
        }
        totals
    })
}

/// The allocated objects and bytes per bucket of the samples taken under [`labelled`], read
/// unsampled: which samples were taken (exact: sums of 1/65536ths and of integers).
pub(crate) fn per_bucket() -> BTreeMap<u32, [f64; 2]> {
    mapprof_rt::thread::ignore(|| {
        table::snapshot(Kind::Heap)
            .into_iter()
            .filter(|r| r.labels != 0)
            .map(|r| {
                let counts = r.heap();
                (
                    r.id,
                    [counts.allocated_objects, counts.allocated_bytes as f64],
                )
            })
            .collect()
    })
}

/// `after - before`, buckets whose counters did not change left out.
pub(crate) fn bucket_diff(
    before: &BTreeMap<u32, [f64; 2]>,
    after: &BTreeMap<u32, [f64; 2]>,
) -> BTreeMap<u32, [f64; 2]> {
    after
        .iter()
        .filter_map(|(id, a)| {
            let b = before.get(id).copied().unwrap_or_default();
            (*a != b).then(|| (*id, [a[0] - b[0], a[1] - b[1]]))
        })
        .collect()
}

/// The standard errors of the estimated objects and bytes of allocations of `sizes` sampled at
/// `rate`. Each allocation of `s` bytes is sampled with probability `p = 1 - exp(-s/rate)`,
/// independently of the others (the countdown left at any allocation is exponential whatever
/// came before: memorylessness), and a sample counts `1/p` objects and `s/p` bytes; so the
/// estimates are sums of independent terms with variances `(1-p)/p` and `s²(1-p)/p`.
pub(crate) fn standard_errors(sizes: impl IntoIterator<Item = usize>, rate: u64) -> Totals {
    let mut variance = Totals::default();
    for s in sizes {
        let s = s as f64;
        let p = -(-s / rate as f64).exp_m1();
        variance.objects += (1.0 - p) / p;
        variance.bytes += s * s * (1.0 - p) / p;
    }
    Totals {
        objects: variance.objects.sqrt(),
        bytes: variance.bytes.sqrt(),
    }
}

/// A small deterministic generator for workloads (xorshift64*).
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `lo..hi`.
    pub(crate) fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo) as u64) as usize
    }

    /// Uniform in (0, 1].
    pub(crate) fn unit(&mut self) -> f64 {
        ((self.next() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// Exponential with mean `mean`.
    pub(crate) fn exponential(&mut self, mean: f64) -> f64 {
        -mean * self.unit().ln()
    }
}
