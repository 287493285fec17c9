//! The live set: the sampled blocks still allocated, address → bucket, so that a free can be
//! charged to the stack that allocated it, on whatever thread it happens.
//!
//! A fixed array of lines of 16 addresses each; an address lives only in its home line (chosen by
//! hashing it), so a lookup reads at most one line. Each line has an occupancy count in a side
//! array of one byte per line; freeing an unsampled block (nearly every free) costs one hash and
//! one load from that 4 KiB array, small enough to stay in the L1 cache next to the allocator's
//! own data. A sampled block whose line is full is left out of the set: the caller counts it as
//! freed at once and reports the overflow.
//!
//! Correctness rests on the allocator's contract: an address is inserted after the inner
//! allocator returned it and removed before the block goes back to the inner allocator, so one
//! address is never in the set twice, and the free of a block happens after its insertion (the
//! pointer had to reach the freeing thread).

use crate::table::BucketId;
use std::sync::atomic::{
    AtomicU16, AtomicU64, AtomicU8, AtomicUsize,
    Ordering::{AcqRel, Acquire, Relaxed, Release},
};

const LINE_BITS: u32 = 12;
const LINES: usize = 1 << LINE_BITS;
const WAYS: usize = 16;

/// At most this many blocks are in the live set at once: 32 GiB of live heap at the default
/// rate ([`crate::sampler::DEFAULT_HEAP_RATE`]).
pub const CAPACITY: usize = LINES * WAYS;

/// Lines are cache-line aligned; a line of 16 addresses spans two cache lines.
#[repr(align(64))]
struct Line {
    addr: [AtomicUsize; WAYS],
}

#[allow(clippy::declare_interior_mutable_const)] // Used only as an array initialiser.
const EMPTY_LINE: Line = Line {
    addr: [const { AtomicUsize::new(0) }; WAYS],
};

static ADDR: [Line; LINES] = [EMPTY_LINE; LINES];
/// Each way's bucket id, in two bytes (ids fit, see [`BucketId`]): the lines are hashed, so
/// this array is all resident once a few hundred blocks were sampled.
static BUCKET: [[AtomicU16; WAYS]; LINES] = [const { [const { AtomicU16::new(0) }; WAYS] }; LINES];
static OCCUPIED: [AtomicU8; LINES] = [const { AtomicU8::new(0) }; LINES];
/// Sampled blocks left out of the live set because their line was full.
static OVERFLOW: AtomicU64 = AtomicU64::new(0);

#[inline(always)]
fn line_of(addr: usize) -> usize {
    // Fibonacci hashing of the low 32 address bits (higher bits rarely tell live blocks apart):
    // the top bits of the 32-bit product mix every input bit. A 32-bit multiply takes an
    // immediate operand and its own destination, so the free path stays three instructions
    // (multiply, shift, load) before its branch.
    ((addr as u32).wrapping_mul(0x9e37_79b1) >> (32 - LINE_BITS)) as usize
}

/// Records that the block at `addr` was sampled into `bucket`. Returns false, and counts an
/// overflow, when the block's line is full.
pub(crate) fn insert(addr: usize, bucket: BucketId) -> bool {
    let line = line_of(addr);
    for (way, slot) in ADDR[line].addr.iter().enumerate() {
        if slot.compare_exchange(0, addr, Acquire, Relaxed).is_ok() {
            BUCKET[line][way].store(bucket as u16, Relaxed);
            // Release: a free that sees the count sees the address and bucket stored above.
            OCCUPIED[line].fetch_add(1, Release);
            return true;
        }
    }
    OVERFLOW.fetch_add(1, Relaxed);
    false
}

/// Whether the block at `addr` may be in the set: false for nearly every unsampled block.
#[inline(always)]
pub(crate) fn may_contain(addr: usize) -> bool {
    OCCUPIED[line_of(addr)].load(Acquire) != 0
}

/// If the block at `addr` was sampled, forgets it and returns its bucket.
pub(crate) fn remove(addr: usize) -> Option<BucketId> {
    let line = line_of(addr);
    if OCCUPIED[line].load(Acquire) == 0 {
        return None;
    }
    for (way, slot) in ADDR[line].addr.iter().enumerate() {
        if slot.load(Relaxed) == addr {
            let bucket = BucketId::from(BUCKET[line][way].load(Relaxed));
            // Only the thread freeing `addr` can clear this slot, so a plain store is enough.
            slot.store(0, Release);
            OCCUPIED[line].fetch_sub(1, AcqRel);
            return Some(bucket);
        }
    }
    None
}

/// Sampled blocks left out of the live set because their line was full.
pub fn overflow() -> u64 {
    OVERFLOW.load(Relaxed)
}

/// The set's static arrays, for [`crate::footprint`].
pub(crate) fn static_tables() -> [crate::footprint::Region; 3] {
    use crate::footprint::region;
    [region(&ADDR), region(&BUCKET), region(&OCCUPIED)]
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test: the set is global, and parallel tests would share its lines.
    #[test]
    fn finds_each_address_once_and_overflows_when_a_line_is_full() {
        let base = 0x7f00_0000_0000usize;
        for i in 0..1000 {
            assert!(insert(base + i * 48, i as u32));
        }
        assert_eq!(remove(base + 8), None);
        for i in (0..1000).rev() {
            assert_eq!(remove(base + i * 48), Some(i as u32));
            assert_eq!(remove(base + i * 48), None);
        }

        // WAYS + 1 addresses with the same home line: the last one overflows.
        let target = line_of(0x5000_0000);
        let same: Vec<usize> = (0..)
            .map(|i| 0x5000_0000 + i * 16)
            .filter(|&a| line_of(a) == target)
            .take(WAYS + 1)
            .collect();
        let before = overflow();
        for &a in &same[..WAYS] {
            assert!(insert(a, 7));
        }
        assert!(!insert(same[WAYS], 7));
        assert_eq!(overflow(), before + 1);
        for &a in &same[..WAYS] {
            assert_eq!(remove(a), Some(7));
        }
    }
}
