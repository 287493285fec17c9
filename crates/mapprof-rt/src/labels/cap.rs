//! The value cap: how many distinct values each key has in the table, so that a key unique per
//! request (a trace id) cannot fill it.

use super::encoded::{fields, hash, hash_parts, MAX_ENCODED, OVERFLOW_FIELD};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

/// Distinct values a key keeps in the table. Past them, a set with a value of that key not seen
/// before is interned with [`OVERFLOW_VALUE`](super::OVERFLOW_VALUE) in its place: a key unique per
/// request (a trace id) then takes at most this many sets, and at most their stacks' worth of the
/// stack table's buckets and frames, while the set's other keys (a route) stay exact.
pub const MAX_VALUES_PER_KEY: usize = 256;
/// Keys whose distinct values are counted; a key past them counts as having too many.
const KEY_SLOTS: usize = 64;
/// Distinct (key, value) pairs remembered; once full, new values count as past the cap.
const PAIR_SLOTS: usize = 1 << 14;
/// Longest probe in the pair index.
const PAIR_PROBES: usize = 64;

/// Hashes of the keys whose values are counted (0 = free) and their distinct values.
static KEY_HASH: [AtomicU64; KEY_SLOTS] = [const { AtomicU64::new(0) }; KEY_SLOTS];
static KEY_VALUES: [AtomicU32; KEY_SLOTS] = [const { AtomicU32::new(0) }; KEY_SLOTS];
/// Hashes of the (key, value) pairs of the interned sets (0 = free).
static PAIR_HASH: [AtomicU64; PAIR_SLOTS] = [const { AtomicU64::new(0) }; PAIR_SLOTS];
/// Times a value was replaced by [`OVERFLOW_VALUE`](super::OVERFLOW_VALUE) because its key had too
/// many.
static VALUES_CAPPED: AtomicU64 = AtomicU64::new(0);

/// A pair's hash (of its encoding: both fields are length-prefixed), never 0 (the free
/// slot's mark).
fn pair_hash(key: &[u8], value: &[u8]) -> u64 {
    hash_parts(&[key, value]) | 1
}

/// A key's hash, never 0 (the free slot's mark).
fn key_hash(key: &[u8]) -> u64 {
    hash(key) | 1
}

/// Looks `h` (never 0) up in an open-addressed table of hashes, probing at most `probes`
/// slots: `Some((slot, true))` where it is, `Some((slot, false))` at the free slot where the
/// probe ended (taken for `h` if `add`), `None` when every probed slot holds another hash.
fn find_hash(table: &[AtomicU64], h: u64, probes: usize, add: bool) -> Option<(usize, bool)> {
    let start = (h >> 1) as usize % table.len(); // bit 0 is always set
    for i in 0..probes {
        let at = (start + i) % table.len();
        match table[at].load(Relaxed) {
            0 => {
                if add {
                    table[at].store(h, Relaxed);
                }
                return Some((at, false));
            }
            found if found == h => return Some((at, true)),
            _ => {}
        }
    }
    None
}

/// Counts the new values of a set just interned (under the insert lock).
pub(super) fn count_values(encoded: &[u8]) {
    for (key, value) in fields(encoded) {
        let pair = find_hash(&PAIR_HASH, pair_hash(key, value), PAIR_PROBES, true);
        if let Some((_, false)) = pair {
            if let Some((at, _)) = find_hash(&KEY_HASH, key_hash(key), KEY_SLOTS, true) {
                KEY_VALUES[at].fetch_add(1, Relaxed);
            }
        }
    }
}

/// Writes into `out` the set with [`OVERFLOW_VALUE`](super::OVERFLOW_VALUE) for each value not seen
/// before of a key that already has [`MAX_VALUES_PER_KEY`] values (or whose values cannot be
/// counted: the key or pair index is full); returns its length, or `None` when no value needs
/// capping.
pub(super) fn cap_values(encoded: &[u8], out: &mut [u8; MAX_ENCODED]) -> Option<usize> {
    let capped = |key: &[u8], value: &[u8]| match find_hash(
        &PAIR_HASH,
        pair_hash(key, value),
        PAIR_PROBES,
        false,
    ) {
        Some((_, true)) => false,
        Some((_, false)) => match find_hash(&KEY_HASH, key_hash(key), KEY_SLOTS, false) {
            Some((at, true)) => KEY_VALUES[at].load(Relaxed) as usize >= MAX_VALUES_PER_KEY,
            Some((_, false)) => false,
            None => true,
        },
        None => true,
    };
    let (mut len, mut any) = (0, false);
    for (key, value) in fields(encoded) {
        let value = if capped(key, value) {
            any = true;
            OVERFLOW_FIELD
        } else {
            value
        };
        for field in [key, value] {
            out.get_mut(len..len + field.len())?.copy_from_slice(field);
            len += field.len();
        }
    }
    if any {
        VALUES_CAPPED.fetch_add(1, Relaxed);
    }
    any.then_some(len)
}

/// How many times a label value was replaced by [`OVERFLOW_VALUE`](super::OVERFLOW_VALUE) because
/// its key already had [`MAX_VALUES_PER_KEY`] values: once per thread's labels, when first sampled.
pub fn capped() -> u64 {
    VALUES_CAPPED.load(Relaxed)
}

/// The cap's static arrays, for [`crate::footprint`].
pub(super) fn static_tables() -> [crate::footprint::Region; 3] {
    use crate::footprint::region;
    [region(&KEY_HASH), region(&KEY_VALUES), region(&PAIR_HASH)]
}
