//! The table of label sets that samples carried: fixed arrays of atomics, looked up without a
//! lock, a new set inserted under a bounded spin, as in the stack table.

use super::cap::{cap_values, count_values};
use super::encoded::{decode, hash, MAX_ENCODED};
use super::{overflow_pairs, NONE, OVERFLOW};
use crate::spin::{Caller, SpinLock};
use std::sync::atomic::{
    AtomicU32, AtomicU64, AtomicU8,
    Ordering::{Acquire, Relaxed, Release},
};

/// Ids in the table, [`NONE`] and [`OVERFLOW`] included. Only sets that a sample carried take
/// one, and each such set takes at least one of the stack table's buckets too
/// ([`crate::table::MAX_BUCKETS`]).
pub const MAX_SETS: usize = 4096;
/// Bytes of interned keys and values (1 MiB of virtual memory, paged in as used): 256 bytes
/// per set on average when the table is full.
pub const ARENA_BYTES: usize = 1 << 20;
/// Index slots: twice the sets, so that probes stay short.
const SLOTS: usize = 2 * MAX_SETS;

/// One interned set: its hash and where its encoding lies in [`ARENA`].
struct Set {
    hash: AtomicU64,
    at: AtomicU32,
    len: AtomicU32,
}

#[allow(clippy::declare_interior_mutable_const)] // Used only as an array initialiser.
const EMPTY_SET: Set = Set {
    hash: AtomicU64::new(0),
    at: AtomicU32::new(0),
    len: AtomicU32::new(0),
};

static SETS: [Set; MAX_SETS] = [EMPTY_SET; MAX_SETS];
/// Slot value: set id + 1; 0 = empty. Once published, a slot never changes.
static SLOT: [AtomicU32; SLOTS] = [const { AtomicU32::new(0) }; SLOTS];
/// Encoded sets, back to back.
static ARENA: [AtomicU8; ARENA_BYTES] = [const { AtomicU8::new(0) }; ARENA_BYTES];
/// Ids in use; [`NONE`] and [`OVERFLOW`] are reserved. Published with release after the set
/// is written.
static SET_COUNT: AtomicU32 = AtomicU32::new(2);
/// Protects `SET_COUNT`, `ARENA_USED` and the writing of a new set.
static INSERT_LOCK: SpinLock = SpinLock::new();
static ARENA_USED: AtomicU32 = AtomicU32::new(0);

/// In a child just forked: the insert lock, which another thread of the parent may have held
/// (see `crate::fork`).
pub(crate) fn after_fork_in_child() {
    INSERT_LOCK.release_in_child();
}

pub(super) enum Interned {
    Id(u32),
    /// The insert lock stayed busy.
    Busy,
    /// No id or arena room left.
    Full,
}

fn matches(id: u32, hash: u64, encoded: &[u8]) -> bool {
    let set = &SETS[id as usize % MAX_SETS];
    if set.hash.load(Relaxed) != hash || set.len.load(Relaxed) as usize != encoded.len() {
        return false;
    }
    let at = set.at.load(Relaxed) as usize;
    ARENA.get(at..at + encoded.len()).is_some_and(|arena| {
        arena
            .iter()
            .zip(encoded)
            .all(|(a, b)| a.load(Relaxed) == *b)
    })
}

/// Returns the set's id, or the empty slot where the probe ended.
fn probe(hash: u64, encoded: &[u8]) -> Result<u32, Option<usize>> {
    let mut at = hash as usize % SLOTS;
    for _ in 0..SLOTS {
        let slot = SLOT[at].load(Acquire);
        if slot == 0 {
            return Err(Some(at));
        }
        if matches(slot - 1, hash, encoded) {
            return Ok(slot - 1);
        }
        at = (at + 1) % SLOTS;
    }
    Err(None)
}

/// The id of the encoded set, inserted if new, with the values of keys past
/// [`MAX_VALUES_PER_KEY`](super::MAX_VALUES_PER_KEY) capped.
pub(super) fn intern(encoded: &[u8], caller: Caller) -> Interned {
    let found = |encoded: &[u8]| {
        let hash = hash(encoded);
        probe(hash, encoded).map(Interned::Id).map_err(|_| hash)
    };
    let hash = match found(encoded) {
        Ok(id) => return id,
        Err(hash) => hash,
    };
    let mut capped = [0u8; MAX_ENCODED];
    let Some(len) = cap_values(encoded, &mut capped) else {
        return insert(encoded, hash, caller);
    };
    match found(&capped[..len]) {
        Ok(id) => id,
        Err(hash) => insert(&capped[..len], hash, caller),
    }
}

/// Inserts the encoded set, which a lock-free look did not find, unless someone did since;
/// returns its id.
fn insert(encoded: &[u8], hash: u64, caller: Caller) -> Interned {
    if SET_COUNT.load(Relaxed) as usize >= MAX_SETS {
        return Interned::Full;
    }
    let Some(_lock) = INSERT_LOCK.lock_as(caller) else {
        return Interned::Busy;
    };
    // Someone may have inserted it since the lock-free look.
    let Some(slot) = (match probe(hash, encoded) {
        Ok(id) => return Interned::Id(id),
        Err(slot) => slot,
    }) else {
        return Interned::Full;
    };
    let id = SET_COUNT.load(Relaxed);
    let at = ARENA_USED.load(Relaxed) as usize;
    if id as usize >= MAX_SETS || at + encoded.len() > ARENA_BYTES {
        return Interned::Full;
    }
    for (a, b) in ARENA[at..at + encoded.len()].iter().zip(encoded) {
        a.store(*b, Relaxed);
    }
    let set = &SETS[id as usize];
    set.hash.store(hash, Relaxed);
    set.at.store(at as u32, Relaxed);
    set.len.store(encoded.len() as u32, Relaxed);
    ARENA_USED.store((at + encoded.len()) as u32, Relaxed);
    // Release: whoever sees the slot or the count sees the set written above.
    SET_COUNT.store(id + 1, Release);
    SLOT[slot].store(id + 1, Release);
    count_values(encoded);
    Interned::Id(id)
}

/// The pairs of set `id`, sorted by key: empty for [`NONE`] (and an id not in the table),
/// [`OVERFLOW_KEY`](super::OVERFLOW_KEY)=[`OVERFLOW_VALUE`](super::OVERFLOW_VALUE) for
/// [`OVERFLOW`]. Allocates: for profile building.
pub fn pairs(id: u32) -> Vec<(String, String)> {
    if id == OVERFLOW {
        return overflow_pairs();
    }
    if id == NONE || id >= SET_COUNT.load(Acquire) {
        return Vec::new();
    }
    let set = &SETS[id as usize % MAX_SETS];
    let at = set.at.load(Relaxed) as usize;
    let len = set.len.load(Relaxed) as usize;
    let encoded: Vec<u8> = ARENA
        .get(at..at + len)
        .unwrap_or(&[])
        .iter()
        .map(|b| b.load(Relaxed))
        .collect();
    decode(&encoded)
}

/// How full the table is: (ids used, the two reserved included; capacity).
pub fn usage() -> (usize, usize) {
    (SET_COUNT.load(Relaxed) as usize, MAX_SETS)
}

/// The table's static arrays, for [`crate::footprint`].
pub(super) fn static_tables() -> [crate::footprint::Region; 3] {
    use crate::footprint::region;
    [region(&SETS), region(&SLOT), region(&ARENA)]
}
