//! The stack table: fixed-capacity buckets keyed by (kind, rate, flags, size class, labels,
//! stack), each with four counters. Go's `stkbucket`, without its allocations.
//!
//! This module alone knows the counters' layout: writers say what they add ([`Add`]), readers
//! get typed counts in their units ([`Record::heap`], [`Record::contention`],
//! [`Record::cpu_samples`]).
//!
//! * Lookup is lock-free: a linear-probe index of `u16` slots points at buckets; a slot, once
//!   published (release store), never changes, and buckets are never removed.
//! * Inserting a new stack takes the table's insert lock with a bounded spin (and yield, except
//!   in a signal handler); it protects
//!   the bucket count, the frame arena's bump pointer and the writing of the new bucket. A sample that
//!   cannot get the lock, or finds the table or the arena full, is charged to its kind's
//!   *lost* bucket, which the profile shows as a frame of its own (Go's `lostProfileEvent`).
//! * Readers ([`snapshot`]) see buckets `0..count`, published with release after being written.

use crate::spin::{Caller, SpinLock};
use std::sync::atomic::{
    AtomicU16, AtomicU32, AtomicU64, AtomicUsize,
    Ordering::{Acquire, Relaxed, Release},
};

/// What a bucket's counters measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Kind {
    /// Sampled allocations ([`HeapCounts`]).
    Heap = 0,
    /// Lock holders that made others wait ([`ContentionCounts`]).
    Mutex = 1,
    /// Lock waiters ([`ContentionCounts`]).
    Block = 2,
    /// CPU samples (SIGPROF), in the CPU table ([`crate::cpu`]): [`Record::cpu_samples`]; the
    /// bucket's rate is the sampling period in ns.
    Cpu = 3,
}

/// Objects and contentions are counted in units of 1/65536, so that unbiased counts (a sample
/// taken with probability p stands for 1/p events) keep their fraction.
pub const COUNT_UNIT: u64 = 1 << 16;

/// What is added to a bucket, by what it measures. Objects and events are in [`COUNT_UNIT`]s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Add {
    /// Heap: sampled allocations, already unbiased.
    Allocated { objects: u64, bytes: u64 },
    /// Heap: frees of sampled allocations, weighted as they were.
    Freed { objects: u64, bytes: u64 },
    /// Mutex or block: contentions and their delay, already scaled.
    Contention { events: u64, delay_ns: u64 },
    /// CPU: samples (a timer's signal, and the periods it overran).
    CpuSamples(u64),
}

impl Add {
    /// The layout: heap `[allocated objects, bytes, freed objects, bytes]`; contention
    /// `[events, delay]`; CPU `[samples]`.
    fn counters(self) -> [u64; 4] {
        match self {
            Add::Allocated { objects, bytes } => [objects, bytes, 0, 0],
            Add::Freed { objects, bytes } => [0, 0, objects, bytes],
            Add::Contention { events, delay_ns } => [events, delay_ns, 0, 0],
            Add::CpuSamples(samples) => [samples, 0, 0, 0],
        }
    }
}

/// A heap bucket's counts, unbiased: what the sampled allocations stand for.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct HeapCounts {
    /// Objects allocated.
    pub allocated_objects: f64,
    /// Bytes allocated.
    pub allocated_bytes: u64,
    /// Of those objects, how many were freed.
    pub freed_objects: f64,
    /// And their bytes.
    pub freed_bytes: u64,
}

/// A mutex or block bucket's counts, scaled by the sampling.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ContentionCounts {
    /// Contentions.
    pub events: f64,
    /// The delay they caused (mutex) or suffered (block), in ns.
    pub delay_ns: u64,
}

fn in_units(count: u64) -> f64 {
    count as f64 / COUNT_UNIT as f64
}

const KINDS: usize = 4;
const ALL_KINDS: [Kind; KINDS] = [Kind::Heap, Kind::Mutex, Kind::Block, Kind::Cpu];

/// Bucket flag: the sampled allocation came from `realloc`.
pub const FLAG_REALLOC: u8 = 1;

/// Number of buckets of the main table (heap, mutex, block), the lost buckets included.
pub const MAX_BUCKETS: usize = 1 << 16;
/// Frames shared by the main table's stacks: 16 per bucket on average.
pub const MAX_FRAMES: usize = 1 << 20;

/// A stack table of `BUCKETS` buckets, a probe index of `SLOTS` slots (twice the buckets, so
/// that probes stay short) and `FRAMES` frames shared by the buckets' stacks. All atomics,
/// zero when empty, so a `static` of it lives in `.bss` and is paged in as used. Page-aligned
/// so that [`Table::clear`] can hand its pages back to the kernel.
#[repr(C, align(65536))]
pub(crate) struct Table<const BUCKETS: usize, const SLOTS: usize, const FRAMES: usize> {
    buckets: [Bucket; BUCKETS],
    /// Slot value: the bucket's index; 0 = empty (bucket 0 is a lost bucket, never indexed).
    /// Two bytes, not four: the index is hashed, so a few hundred stacks touch every page of
    /// it, and this halves what stays resident.
    slots: [AtomicU16; SLOTS],
    frames: [AtomicUsize; FRAMES],
    /// Buckets in use beyond the lost buckets: bucket `k < KINDS` is kind `k`'s lost bucket.
    used: AtomicU32,
    frames_used: AtomicU32,
    insert_lock: SpinLock,
}

struct Bucket {
    hash: AtomicU64,
    rate: AtomicU64,
    /// kind | flags << 8 | size class << 16 | depth << 24 (depth <= `MAX_DEPTH`, 8 bits).
    meta: AtomicU32,
    labels: AtomicU32,
    frames_at: AtomicU32,
    counters: [AtomicU64; 4],
}

#[allow(clippy::declare_interior_mutable_const)] // Used only as an array initialiser.
const EMPTY_BUCKET: Bucket = Bucket {
    hash: AtomicU64::new(0),
    rate: AtomicU64::new(0),
    meta: AtomicU32::new(0),
    labels: AtomicU32::new(0),
    frames_at: AtomicU32::new(0),
    counters: [const { AtomicU64::new(0) }; 4],
};

/// The main table: heap, mutex and block buckets, kept for the life of the process (a free
/// must find its allocation's bucket). 4 MiB of buckets, 256 KiB of index, 8 MiB of frames.
pub(crate) static MAIN: Table<MAX_BUCKETS, { 2 * MAX_BUCKETS }, MAX_FRAMES> = Table::new();

/// Identifies a bucket; stored by the live set so a free finds its bucket. Every table's ids
/// fit in 16 bits (`Table::new` checks), which the index and the live set store.
pub type BucketId = u32;

/// The key of a sample: everything but its counters.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Key<'a> {
    pub(crate) kind: Kind,
    /// The sampling rate the bucket's samples are taken at (heap: bytes; CPU: the period in
    /// ns; 0 for other kinds), so that a free is unbiased exactly like its allocation even if
    /// the rate changed in between, and CPU samples of different frequencies stay apart.
    pub(crate) rate: u64,
    pub(crate) flags: u8,
    /// Heap: [`size_class`] of the allocation's size; 0 for other kinds.
    pub(crate) size_class: u8,
    pub(crate) labels: u32,
    pub(crate) frames: &'a [usize],
}

/// The size class of an allocation of `size` bytes: its bit length (0 for 0 bytes, 1 for 1,
/// 2 for 2–3, ..., 11 for 1024–2047). Heap buckets are keyed by it, so a call site keeps one
/// bucket per power of two it allocates rather than one per size (Go) or one in all: a map that
/// doubles as it grows leaves one bucket per step, which is how a report counts growth steps,
/// while a site allocating every size from 8 B to 4 KiB still takes only 10 buckets.
pub fn size_class(size: usize) -> u8 {
    (usize::BITS - size.leading_zeros()) as u8
}

impl Key<'_> {
    fn hash(&self) -> u64 {
        // FNV-1a over the words, then a final mix: cheap, no allocation, good enough spread.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |w: u64| h = (h ^ w).wrapping_mul(0x0000_0100_0000_01b3);
        eat(self.meta() as u64 | (self.labels as u64) << 32);
        eat(self.rate);
        for &f in self.frames {
            eat(f as u64);
        }
        h ^ (h >> 29)
    }

    fn meta(&self) -> u32 {
        self.kind as u32
            | (self.flags as u32) << 8
            | (self.size_class as u32) << 16
            | (self.frames.len() as u32) << 24
    }
}

/// Finds or creates the main table's bucket for `key`; falls back to the kind's lost bucket.
pub(crate) fn bucket_for(key: &Key<'_>) -> BucketId {
    MAIN.bucket_for(key, Caller::Thread)
}

/// The sampling rate in a main-table bucket's key (0 for the lost buckets, whose samples mix
/// rates).
pub(crate) fn rate_of(id: BucketId) -> u64 {
    MAIN.bucket(id).rate.load(Relaxed)
}

/// Adds to a main-table bucket's counters.
pub(crate) fn add(id: BucketId, add: Add) {
    MAIN.add(id, add)
}

impl<const BUCKETS: usize, const SLOTS: usize, const FRAMES: usize> Table<BUCKETS, SLOTS, FRAMES> {
    #[allow(clippy::declare_interior_mutable_const)] // Array initialisers only.
    pub(crate) const fn new() -> Self {
        const {
            assert!(BUCKETS > KINDS && BUCKETS <= 1 << 16 && SLOTS >= 2 * BUCKETS);
            assert!(SLOTS <= u32::MAX as usize);
        };
        Table {
            buckets: [EMPTY_BUCKET; BUCKETS],
            slots: [const { AtomicU16::new(0) }; SLOTS],
            frames: [const { AtomicUsize::new(0) }; FRAMES],
            used: AtomicU32::new(0),
            frames_used: AtomicU32::new(0),
            insert_lock: SpinLock::new(),
        }
    }

    /// In a child just forked: the insert lock, which another thread of the parent may have
    /// held (see `crate::fork`).
    pub(crate) fn after_fork_in_child(&self) {
        self.insert_lock.release_in_child();
    }

    fn bucket(&self, id: BucketId) -> &Bucket {
        &self.buckets[id as usize % BUCKETS]
    }

    /// Finds or creates the bucket for `key`; falls back to the kind's lost bucket.
    pub(crate) fn bucket_for(&self, key: &Key<'_>, caller: Caller) -> BucketId {
        let hash = key.hash();
        if let Ok(id) = self.probe(key, hash) {
            return id;
        }
        self.insert(key, hash, caller)
            .unwrap_or(key.kind as BucketId)
    }

    /// Adds to a bucket's counters. Release: a snapshot that reads a free (acquire) sees the
    /// allocation that happened before it (the same instruction as a relaxed add on x86).
    pub(crate) fn add(&self, id: BucketId, add: Add) {
        let b = self.bucket(id);
        for (c, v) in b.counters.iter().zip(add.counters()) {
            if v != 0 {
                c.fetch_add(v, Release);
            }
        }
    }

    fn matches(&self, key: &Key<'_>, hash: u64, b: &Bucket) -> bool {
        if b.hash.load(Relaxed) != hash
            || b.meta.load(Relaxed) != key.meta()
            || b.rate.load(Relaxed) != key.rate
            || b.labels.load(Relaxed) != key.labels
        {
            return false;
        }
        let at = b.frames_at.load(Relaxed) as usize;
        let Some(stored) = self.frames.get(at..at + key.frames.len()) else {
            return false;
        };
        key.frames
            .iter()
            .zip(stored)
            .all(|(f, a)| *f == a.load(Relaxed))
    }

    /// Returns the bucket's id, or the empty slot where the probe ended.
    fn probe(&self, key: &Key<'_>, hash: u64) -> Result<BucketId, Option<usize>> {
        let mut at = hash as usize % SLOTS;
        for _ in 0..SLOTS {
            let id = BucketId::from(self.slots[at].load(Acquire));
            if id == 0 {
                return Err(Some(at));
            }
            if self.matches(key, hash, self.bucket(id)) {
                return Ok(id);
            }
            at = (at + 1) % SLOTS;
        }
        Err(None)
    }

    fn insert(&self, key: &Key<'_>, hash: u64, caller: Caller) -> Option<BucketId> {
        let _lock = self.insert_lock.lock_as(caller)?;
        // Someone may have inserted the same key since our lock-free look.
        let at = match self.probe(key, hash) {
            Ok(id) => return Some(id),
            Err(at) => at?,
        };
        let id = KINDS as u32 + self.used.load(Relaxed);
        let frames_at = self.frames_used.load(Relaxed);
        let frames_end = frames_at as usize + key.frames.len();
        if id as usize >= BUCKETS || frames_end > FRAMES {
            return None;
        }
        for (a, f) in self.frames[frames_at as usize..frames_end]
            .iter()
            .zip(key.frames)
        {
            a.store(*f, Relaxed);
        }
        let b = &self.buckets[id as usize];
        b.hash.store(hash, Relaxed);
        b.rate.store(key.rate, Relaxed);
        b.meta.store(key.meta(), Relaxed);
        b.labels.store(key.labels, Relaxed);
        b.frames_at.store(frames_at, Relaxed);
        self.frames_used.store(frames_end as u32, Relaxed);
        // Release: a reader that sees the slot or the count sees the bucket written above.
        self.used.store(id + 1 - KINDS as u32, Release);
        self.slots[at].store(id as u16, Release);
        Some(id)
    }

    /// Copies out every non-empty bucket of `kind`, copying the stacks only of the buckets
    /// `with_stack` names. Allocates; never call it from the hot path.
    ///
    /// In use (allocated minus freed) never reads less than what stayed live throughout, also
    /// when a structure is replaced meanwhile: a map rebuilt into buckets of its own (new
    /// stacks, new labels) and the old one freed from its buckets. So the frees of every bucket
    /// are read before the allocations of any: a block whose free is seen was allocated before,
    /// into a bucket that existed before, whose allocations are read after. (Each bucket's
    /// frees and then its allocations, one bucket after the other, saw the old map's frees but
    /// not the new map's buckets, made after the count of buckets was read: in use 0 with the
    /// map live.) A block allocated and freed during the snapshot may count as in use; none
    /// that was live throughout is missed.
    pub(crate) fn snapshot_with(
        &self,
        kind: Kind,
        with_stack: impl Fn(BucketId) -> bool,
    ) -> Vec<Record> {
        let kind_of = |id: usize, meta: u32| {
            if id < KINDS {
                ALL_KINDS[id]
            } else {
                ALL_KINDS[(meta & 0xff) as usize % KINDS]
            }
        };
        let frees_of = |b: &Bucket| [b.counters[2].load(Acquire), b.counters[3].load(Acquire)];
        // First the frees of the buckets there are now...
        let known = (KINDS + self.used.load(Acquire) as usize).min(BUCKETS);
        let frees: Vec<(usize, [u64; 2])> = self.buckets[..known]
            .iter()
            .enumerate()
            .filter(|(id, b)| kind_of(*id, b.meta.load(Relaxed)) == kind)
            .map(|(id, b)| (id, frees_of(b)))
            .collect();
        let mut frees = frees.into_iter().peekable();
        // ... then the allocations of every bucket there is by then.
        let count = (KINDS + self.used.load(Acquire) as usize).min(BUCKETS);
        let mut out = Vec::new();
        for (id, b) in self.buckets[..count].iter().enumerate() {
            let lost = id < KINDS;
            let meta = b.meta.load(Relaxed);
            if kind_of(id, meta) != kind {
                continue;
            }
            // A bucket made since the frees were read: its frees now, before its allocations.
            let [freed_objects, freed_bytes] = match frees.next_if(|(at, _)| *at == id) {
                Some((_, read)) => read,
                None => frees_of(b),
            };
            let counters = [
                b.counters[0].load(Acquire),
                b.counters[1].load(Acquire),
                freed_objects,
                freed_bytes,
            ];
            if counters == [0; 4] {
                continue;
            }
            let at = b.frames_at.load(Relaxed) as usize;
            let depth = if lost || !with_stack(id as BucketId) {
                0
            } else {
                (meta >> 24) as usize
            };
            let stack = self.frames.get(at..at + depth).unwrap_or_default();
            out.push(Record {
                id: id as BucketId,
                kind,
                rate: b.rate.load(Relaxed),
                flags: (meta >> 8) as u8,
                size_class: (meta >> 16) as u8,
                labels: b.labels.load(Relaxed),
                stack: stack.iter().map(|f| f.load(Relaxed)).collect(),
                counters,
                lost,
            });
        }
        out
    }

    /// (buckets used, bucket capacity), the lost buckets counted as used.
    pub(crate) fn usage(&self) -> (usize, usize) {
        (KINDS + self.used.load(Relaxed) as usize, BUCKETS)
    }

    /// Empties the table and gives its pages back to the kernel (they read as zeros, the
    /// empty table, when next touched). The caller makes sure that nothing reads or writes it
    /// meanwhile: the CPU table is cleared only between profiles, with the timer stopped and
    /// no handler running.
    pub(crate) fn clear(&'static self) {
        let start = self as *const Self as *mut libc::c_void;
        let len = std::mem::size_of::<Self>();
        // SAFETY: `sysconf` has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        let aligned = page > 0 && std::mem::align_of::<Self>().is_multiple_of(page as usize);
        // SAFETY: `Self` is page-aligned (checked) and its size a multiple of its alignment,
        // so `[start, start + len)` are whole pages holding this table and nothing else; they
        // are private anonymous memory (`.bss`), which MADV_DONTNEED refills with zeros, the
        // bit pattern of the empty table (every field is an atomic integer that starts at 0).
        // No other access happens meanwhile (the caller's contract).
        if aligned && unsafe { libc::madvise(start, len, libc::MADV_DONTNEED) } == 0 {
            return;
        }
        // Pages larger than the alignment: clear by hand.
        for b in &self.buckets {
            for c in &b.counters {
                c.store(0, Relaxed);
            }
        }
        for s in &self.slots {
            s.store(0, Relaxed);
        }
        self.used.store(0, Release);
        self.frames_used.store(0, Relaxed);
    }
}

/// One bucket as read by [`snapshot`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The bucket: stable for the life of the process, so a reader can cache what it learns
    /// from the stack (symbols, growth class) by id.
    pub id: BucketId,
    /// What the counters measure.
    pub kind: Kind,
    /// The bucket's sampling rate: heap bytes, the CPU period in ns, or 0.
    pub rate: u64,
    /// `FLAG_*` bits.
    pub flags: u8,
    /// Heap: the [`size_class`] of the bucket's allocations; 0 for other kinds.
    pub size_class: u8,
    /// Label set id (0 = none).
    pub labels: u32,
    /// Return addresses, innermost first. Empty for the lost bucket.
    pub stack: Vec<usize>,
    /// The bucket's counters, read through the accessor of `kind`.
    counters: [u64; 4],
    /// Whether this is the kind's lost bucket: samples that found the table full.
    pub lost: bool,
}

impl Record {
    /// A heap bucket's counts.
    pub fn heap(&self) -> HeapCounts {
        debug_assert_eq!(self.kind, Kind::Heap);
        let [a, b, c, d] = self.counters;
        HeapCounts {
            allocated_objects: in_units(a),
            allocated_bytes: b,
            freed_objects: in_units(c),
            freed_bytes: d,
        }
    }

    /// A mutex or block bucket's counts.
    pub fn contention(&self) -> ContentionCounts {
        debug_assert!(matches!(self.kind, Kind::Mutex | Kind::Block));
        ContentionCounts {
            events: in_units(self.counters[0]),
            delay_ns: self.counters[1],
        }
    }

    /// A CPU bucket's samples.
    pub fn cpu_samples(&self) -> u64 {
        debug_assert_eq!(self.kind, Kind::Cpu);
        self.counters[0]
    }
}

/// In a child just forked (see `crate::fork`).
pub(crate) fn after_fork_in_child() {
    MAIN.after_fork_in_child();
}

/// Copies out every non-empty bucket of `kind` (heap, mutex or block). Allocates; never call
/// it from the hot path.
pub fn snapshot(kind: Kind) -> Vec<Record> {
    snapshot_with(kind, |_| true)
}

/// [`snapshot`], copying the stacks only of the buckets `with_stack` names (the others' records
/// have an empty stack): for readers that need only the counters of buckets they already know.
pub fn snapshot_with(kind: Kind, with_stack: impl Fn(BucketId) -> bool) -> Vec<Record> {
    MAIN.snapshot_with(kind, with_stack)
}

/// How full the main table is: (buckets used, bucket capacity).
pub fn usage() -> (usize, usize) {
    MAIN.usage()
}

/// The stack tables (the main one and the CPU samples'), for [`crate::footprint`].
pub(crate) fn static_tables() -> [crate::footprint::Region; 2] {
    [crate::footprint::region(&MAIN), crate::cpu::table_region()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn size_classes_are_bit_lengths() {
        let classes: Vec<u8> = [0, 1, 2, 3, 4, 1023, 1024, 2047, 2048, usize::MAX]
            .iter()
            .map(|&size| size_class(size))
            .collect();
        assert_eq!(classes, [0, 1, 2, 2, 3, 10, 11, 11, 12, 64]);
    }

    #[test]
    fn buckets_agree_with_a_btreemap_reference() {
        let mut reference = BTreeMap::new();
        let mut rng = 12345u64;
        for i in 0..20_000u64 {
            let r = crate::sampler::next_u64(&mut rng);
            let depth = (r % 5) as usize + 1;
            let frames: Vec<usize> = (0..depth)
                .map(|d| 0x1000 + d * 16 + (r % 7) as usize)
                .collect();
            let rate = (r >> 8) % 3 + 1_000_000; // keys unlikely to clash with other tests
            let key = Key {
                kind: Kind::Block,
                rate,
                flags: 0,
                size_class: 0,
                labels: 0,
                frames: &frames,
            };
            let id = bucket_for(&key);
            add(
                id,
                Add::Contention {
                    events: COUNT_UNIT,
                    delay_ns: i,
                },
            );
            let e = reference.entry((rate, frames)).or_insert((0.0, 0));
            e.0 += 1.0;
            e.1 += i;
        }
        let mut seen = BTreeMap::new();
        for r in snapshot(Kind::Block)
            .into_iter()
            .filter(|r| r.rate >= 1_000_000)
        {
            assert!(!r.lost);
            let counts = r.contention();
            seen.insert((r.rate, r.stack), (counts.events, counts.delay_ns));
        }
        assert_eq!(seen, reference);
    }

    #[test]
    fn a_child_forked_during_an_insert_can_insert() {
        static TABLE: Table<64, 128, 1024> = Table::new();
        let key = Key {
            kind: Kind::Block,
            rate: 1,
            flags: 0,
            size_class: 0,
            labels: 0,
            frames: &[0x5000, 0x6000],
        };
        // Another thread of the parent is inside an insert when the fork happens.
        let held = TABLE.insert_lock.try_lock().expect("free");
        // SAFETY: the child only touches atomics and leaves with `_exit`.
        let child = unsafe { libc::fork() };
        if child == 0 {
            let lost_before = TABLE.bucket_for(&key, Caller::Thread) < KINDS as BucketId;
            TABLE.after_fork_in_child();
            let kept_after = TABLE.bucket_for(&key, Caller::Thread) >= KINDS as BucketId;
            // SAFETY: ends the child at once.
            unsafe { libc::_exit(if lost_before && kept_after { 0 } else { 1 }) };
        }
        drop(held);
        let mut status = 0;
        // SAFETY: waits for the child just forked; `status` is a valid out-pointer.
        assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "in the child, the held lock lost the sample and releasing it kept the next: {status}"
        );
    }
}
