//! The bounded cache of resolved addresses.
//!
//! Two generations: lookups and inserts go to the recent one; a hit in the older one moves the
//! entry back to the recent one. When the recent generation reaches half the cap (entries or
//! estimated bytes), the older one is dropped (its entries counted as evicted) and the recent
//! one takes its place. So the cache never holds more than its cap, an address used at every
//! build stays, and eviction costs no per-entry bookkeeping (an approximate LRU).
//!
//! Each generation interns its strings: the addresses of one function share its name and
//! file, so an entry costs its frames (a few words each) and only the strings no other entry
//! of its generation has. Entries refer only to strings of their own generation, so dropping
//! a generation frees every string it alone held. Each generation's allocations run under the
//! keeper with its number, so that a caller can give each parity a heap of its own: dropping
//! a generation then empties its heap (entries moved back are copies, made in the recent one).

use super::{Keeper, SourceFrame};
use std::collections::{HashMap, HashSet};
use std::mem::size_of;
use std::sync::Arc;

/// At most this many addresses are cached (a heap profile of 10,000 stacks of 30 frames has
/// tens of thousands of distinct addresses, most of them shared by many stacks).
pub const DEFAULT_MAX_ENTRIES: usize = 16_384;
/// At most this many bytes, as estimated by the cache, are cached: part of the footprint the
/// profiler keeps between profiles. CPU profiles bring new leaf addresses each time, so the
/// cache fills to its cap (on the fixture service about 800 bytes per address, long generic
/// names and their inlined chains): the cap is what stays after profiles.
pub const DEFAULT_MAX_BYTES: usize = 512 << 10;
/// The byte cap while symbolizing continuously (`Symbolizer::set_continuous`: the pusher,
/// every interval). At the default cap the CPU intervals' new leaf addresses push out the
/// heap's, mutex's and block's, which are resolved again each interval: on the fixture
/// service pushing every 10 s, ~500 misses an interval with no end, against a working set of
/// ~1,200 addresses in ~660 KiB that fits here and then misses only what is new.
pub const CONTINUOUS_MAX_BYTES: usize = 2 << 20;

/// What the cache holds and has done, for the profile's comments and the profiler's own
/// memory accounting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Addresses cached now.
    pub entries: usize,
    /// Their estimated heap bytes (frames, interned strings, table slots).
    pub estimated_bytes: usize,
    /// The cap on entries.
    pub max_entries: usize,
    /// The cap on estimated bytes.
    pub max_bytes: usize,
    /// Entries dropped to stay within the caps, since the symbolizer was made.
    pub evictions: u64,
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that had to resolve the address.
    pub misses: u64,
}

#[derive(Debug)]
pub(super) struct AddressCache {
    recent: Generation,
    older: Generation,
    max_entries: usize,
    max_bytes: usize,
    evictions: u64,
    hits: u64,
    misses: u64,
}

#[derive(Debug, Default)]
struct Generation {
    /// Counts rotations: the keeper's generation number.
    number: u64,
    frames: HashMap<u64, Arc<[SourceFrame]>>,
    strings: HashSet<Arc<str>>,
    bytes: usize,
}

/// A table slot: key or pointer, length, control byte, doubled for the table's spare room.
const SLOT: usize = 2 * (size_of::<u64>() + size_of::<Arc<[SourceFrame]>>() + 1);
/// An `Arc`'s two counts.
const ARC_COUNTS: usize = 2 * size_of::<usize>();

impl Generation {
    /// The generation's copy of `s`, made (and counted) if it has none.
    fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(kept) = self.strings.get(s) {
            return kept.clone();
        }
        let kept: Arc<str> = Arc::from(s);
        self.bytes += SLOT + ARC_COUNTS + s.len();
        self.strings.insert(kept.clone());
        kept
    }

    /// The frames that an entry for `frames` would add, with no strings counted.
    fn entry_bytes(frames: &[SourceFrame]) -> usize {
        SLOT + ARC_COUNTS + size_of_val(frames)
    }

    /// Caches `frames` for `pc` with this generation's strings; returns the copy kept.
    fn insert(&mut self, pc: u64, frames: &[SourceFrame]) -> Arc<[SourceFrame]> {
        let kept: Arc<[SourceFrame]> = frames
            .iter()
            .map(|f| SourceFrame {
                name: self.intern(&f.name),
                system_name: self.intern(&f.system_name),
                file: self.intern(&f.file),
                line: f.line,
            })
            .collect();
        self.bytes += Self::entry_bytes(&kept);
        self.frames.insert(pc, kept.clone());
        kept
    }
}

impl AddressCache {
    /// A cache of at most `max_entries` addresses and `max_bytes` estimated bytes.
    pub(super) fn new(max_entries: usize, max_bytes: usize) -> AddressCache {
        AddressCache {
            recent: Generation::default(),
            older: Generation::default(),
            max_entries,
            max_bytes,
            evictions: 0,
            hits: 0,
            misses: 0,
        }
    }

    /// The recent generation's number, for what is kept beside it.
    pub(super) fn generation(&self) -> u64 {
        self.recent.number
    }

    /// The entry for `pc`; one found in the older generation is copied (under `keeper`) into
    /// the recent one.
    pub(super) fn get(&mut self, pc: u64, keeper: Keeper) -> Option<Arc<[SourceFrame]>> {
        if let Some(frames) = self.recent.frames.get(&pc) {
            self.hits += 1;
            return Some(frames.clone());
        }
        let Some(frames) = self.older.frames.remove(&pc) else {
            self.misses += 1;
            return None;
        };
        self.hits += 1;
        // Its strings stay counted in the older generation until it is dropped.
        self.older.bytes -= Generation::entry_bytes(&frames);
        Some(self.insert(pc, &frames, keeper))
    }

    /// Caches a copy of `frames` for `pc` (not already cached), dropping the older generation
    /// if the recent one is full, and returns the copy. An entry that could take more than
    /// half the byte cap is not cached (the copy returned is `frames` as given). The copy is
    /// made under `keeper`.
    pub(super) fn insert(
        &mut self,
        pc: u64,
        frames: &[SourceFrame],
        keeper: Keeper,
    ) -> Arc<[SourceFrame]> {
        let most = Generation::entry_bytes(frames)
            + frames
                .iter()
                .map(|f| {
                    3 * (SLOT + ARC_COUNTS) + f.name.len() + f.system_name.len() + f.file.len()
                })
                .sum::<usize>();
        let (half_entries, half_bytes) = (self.max_entries / 2, self.max_bytes / 2);
        if most > half_bytes || half_entries == 0 {
            self.evictions += 1;
            return frames.into();
        }
        if self.recent.frames.len() + 1 > half_entries || self.recent.bytes + most > half_bytes {
            self.rotate();
        }
        let (recent, mut kept) = (&mut self.recent, None);
        keeper(recent.number, &mut || {
            kept = Some(recent.insert(pc, frames))
        });
        kept.unwrap_or_else(|| frames.into())
    }

    /// Drops the older generation (its entries counted as evicted); the recent one takes its
    /// place.
    fn rotate(&mut self) {
        self.evictions += self.older.frames.len() as u64;
        self.older = std::mem::take(&mut self.recent);
        self.recent.number = self.older.number + 1;
    }

    /// Changes the byte cap; a lower one drops generations until the cache is within it.
    pub(super) fn set_max_bytes(&mut self, max_bytes: usize) {
        self.max_bytes = max_bytes;
        if self.recent.bytes + self.older.bytes > max_bytes {
            self.rotate();
        }
        if self.recent.bytes + self.older.bytes > max_bytes || self.recent.bytes > max_bytes / 2 {
            self.rotate();
        }
    }

    pub(super) fn stats(&self) -> CacheStats {
        CacheStats {
            entries: self.recent.frames.len() + self.older.frames.len(),
            estimated_bytes: self.recent.bytes + self.older.bytes,
            max_entries: self.max_entries,
            max_bytes: self.max_bytes,
            evictions: self.evictions,
            hits: self.hits,
            misses: self.misses,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::run_here;
    use super::*;

    fn frames(name: &str) -> Arc<[SourceFrame]> {
        Arc::from([SourceFrame {
            name: name.into(),
            system_name: name.into(),
            file: "src/lib.rs".into(),
            line: 1,
        }])
    }

    #[test]
    fn stays_within_its_entry_cap_and_counts_evictions() {
        let mut cache = AddressCache::new(64, usize::MAX);
        for pc in 0..1000 {
            assert!(cache.get(pc, run_here).is_none());
            cache.insert(pc, &frames("f"), run_here);
            assert!(cache.stats().entries <= 64, "{:?}", cache.stats());
        }
        let stats = cache.stats();
        assert_eq!(stats.misses, 1000);
        assert_eq!(stats.evictions, 1000 - stats.entries as u64);
        // The most recent addresses are still there.
        assert!(cache.get(999, run_here).is_some());
        assert_eq!(cache.stats().hits, 1);
    }

    /// Raised, the cap lets the cache hold more; lowered again, the cache drops what is over.
    #[test]
    fn a_changed_byte_cap_holds() {
        let (small, large) = (8 << 10, 64 << 10);
        let mut cache = AddressCache::new(usize::MAX, small);
        let fill = |cache: &mut AddressCache, n: u64| {
            for pc in 0..n {
                if cache.get(pc, run_here).is_none() {
                    cache.insert(
                        pc,
                        &frames(&format!("some::function::number_{pc}")),
                        run_here,
                    );
                }
            }
        };
        fill(&mut cache, 120);
        let at_small = cache.stats();
        assert!(
            at_small.estimated_bytes <= small && at_small.evictions > 0,
            "{at_small:?}"
        );
        cache.set_max_bytes(large);
        fill(&mut cache, 120);
        let evictions = cache.stats().evictions;
        fill(&mut cache, 120);
        let at_large = cache.stats();
        assert_eq!(at_large.entries, 120, "{at_large:?}");
        assert!(at_large.estimated_bytes > small, "{at_large:?}");
        assert_eq!(
            at_large.evictions, evictions,
            "a second pass misses nothing: {at_large:?}"
        );
        cache.set_max_bytes(small);
        let lowered = cache.stats();
        assert!(lowered.estimated_bytes <= small, "{lowered:?}");
        assert!(lowered.evictions > at_large.evictions, "{lowered:?}");
    }

    #[test]
    fn stays_within_its_byte_cap() {
        let cap = 64 << 10;
        let mut cache = AddressCache::new(usize::MAX, cap);
        for pc in 0..10_000 {
            cache.insert(
                pc,
                &frames(&format!("some::function::number_{pc}")),
                run_here,
            );
            assert!(cache.stats().estimated_bytes <= cap, "{:?}", cache.stats());
        }
        assert!(cache.stats().evictions >= 9_000, "{:?}", cache.stats());
    }

    /// Addresses of one function share its strings: a thousand of them cost a few words each,
    /// where a thousand functions cost a name each.
    #[test]
    fn addresses_of_one_function_share_its_strings() {
        let name = "<hashbrown::map::HashMap<K,V,S> as core::iter::traits::collect::Extend<(K,V)>>::extend";
        let mut shared = AddressCache::new(usize::MAX, usize::MAX);
        let mut distinct = AddressCache::new(usize::MAX, usize::MAX);
        let first = shared.insert(0, &frames(name), run_here);
        for pc in 1..1000 {
            let kept = shared.insert(pc, &frames(name), run_here);
            assert!(
                Arc::ptr_eq(&kept[0].name, &first[0].name),
                "one copy of the name"
            );
        }
        for pc in 0..1000 {
            distinct.insert(pc, &frames(&format!("{name}{pc}")), run_here);
        }
        let (shared, distinct) = (shared.stats(), distinct.stats());
        assert_eq!((shared.entries, distinct.entries), (1000, 1000));
        assert!(
            shared.estimated_bytes * 2 < distinct.estimated_bytes,
            "shared {shared:?}, distinct {distinct:?}"
        );
    }

    /// Each generation's allocations run under its own number, copies moved back from the
    /// older one included, so that a heap per parity holds one generation only.
    #[test]
    fn each_generation_allocates_under_its_number() {
        thread_local! {
            static SEEN: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        fn keeper(generation: u64, f: &mut dyn FnMut()) {
            SEEN.with(|seen| seen.borrow_mut().push(generation));
            f();
        }
        let seen = || SEEN.with(|seen| seen.take());
        let mut cache = AddressCache::new(8, usize::MAX);
        for pc in 0..4 {
            cache.insert(pc, &frames("first"), keeper);
        }
        assert_eq!(seen(), [0, 0, 0, 0]);
        cache.insert(4, &frames("second"), keeper);
        assert_eq!((seen(), cache.generation()), (vec![1], 1));
        // In the older generation: copied into the recent one, under its number.
        let moved = cache.get(0, keeper).expect("still cached");
        assert_eq!(seen(), [1]);
        // Found in the recent one now: no copy.
        assert!(Arc::ptr_eq(&moved, &cache.get(0, keeper).unwrap()));
        assert!(seen().is_empty());
        for pc in 5..8 {
            cache.insert(pc, &frames("third"), keeper);
        }
        assert_eq!(seen(), [1, 1, 2], "the recent one filled up: rotated");
    }

    #[test]
    fn an_address_used_again_survives_rotation() {
        let mut cache = AddressCache::new(8, usize::MAX);
        cache.insert(7, &frames("kept"), run_here);
        for pc in 100..200 {
            // Looked up between inserts, as a hot address is at every build.
            assert!(cache.get(7, run_here).is_some(), "evicted at {pc}");
            cache.insert(pc, &frames("other"), run_here);
        }
    }
}
