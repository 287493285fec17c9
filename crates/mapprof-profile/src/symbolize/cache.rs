//! The bounded cache of resolved addresses.
//!
//! Two generations: lookups and inserts go to the recent one; a hit in the older one moves the
//! entry back to the recent one. When the recent generation reaches half the cap (entries or
//! estimated bytes), the older one is dropped (its entries counted as evicted) and the recent
//! one takes its place. So the cache never holds more than its cap, an address used at every
//! build stays, and eviction costs no per-entry bookkeeping (an approximate LRU).

use super::SourceFrame;
use std::collections::HashMap;
use std::mem::size_of;
use std::sync::Arc;

/// At most this many addresses are cached (a heap profile of 10,000 stacks of 30 frames has
/// tens of thousands of distinct addresses, most of them shared by many stacks).
pub const DEFAULT_MAX_ENTRIES: usize = 16_384;
/// At most this many bytes, as estimated by [`estimated_bytes`], are cached: part of the
/// footprint the profiler keeps between profiles.
pub const DEFAULT_MAX_BYTES: usize = 2 << 20;

/// What the cache holds and has done, for the profile's comments and the profiler's own
/// memory accounting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Addresses cached now.
    pub entries: usize,
    /// Their estimated heap bytes (strings, frames, table slots).
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
    frames: HashMap<u64, Arc<[SourceFrame]>>,
    bytes: usize,
}

impl Generation {
    fn insert(&mut self, pc: u64, frames: Arc<[SourceFrame]>) {
        self.bytes += estimated_bytes(&frames);
        self.frames.insert(pc, frames);
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

    pub(super) fn get(&mut self, pc: u64) -> Option<Arc<[SourceFrame]>> {
        if let Some(frames) = self.recent.frames.get(&pc) {
            self.hits += 1;
            return Some(frames.clone());
        }
        let Some(frames) = self.older.frames.remove(&pc) else {
            self.misses += 1;
            return None;
        };
        self.hits += 1;
        self.older.bytes -= estimated_bytes(&frames);
        self.insert(pc, frames.clone());
        Some(frames)
    }

    /// Caches `frames` for `pc` (not already cached), dropping the older generation if the
    /// recent one is full. An entry larger than half the byte cap is not cached.
    pub(super) fn insert(&mut self, pc: u64, frames: Arc<[SourceFrame]>) {
        let bytes = estimated_bytes(&frames);
        let (half_entries, half_bytes) = (self.max_entries / 2, self.max_bytes / 2);
        if bytes > half_bytes || half_entries == 0 {
            self.evictions += 1;
            return;
        }
        if self.recent.frames.len() + 1 > half_entries || self.recent.bytes + bytes > half_bytes {
            self.evictions += self.older.frames.len() as u64;
            self.older = std::mem::take(&mut self.recent);
        }
        self.recent.insert(pc, frames);
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

/// The heap an entry takes: its strings, the frames, the `Arc`'s counts, and a table slot (key,
/// pointer, length, control byte, rounded up for the table's spare capacity).
pub(super) fn estimated_bytes(frames: &[SourceFrame]) -> usize {
    const SLOT: usize = 2 * (size_of::<u64>() + size_of::<Arc<[SourceFrame]>>() + 1);
    let strings: usize = frames
        .iter()
        .map(|f| f.name.capacity() + f.system_name.capacity() + f.file.capacity())
        .sum();
    SLOT + 2 * size_of::<usize>() + size_of_val(frames) + strings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(name: &str) -> Arc<[SourceFrame]> {
        Arc::from([SourceFrame {
            name: name.to_owned(),
            system_name: name.to_owned(),
            file: "src/lib.rs".to_owned(),
            line: 1,
        }])
    }

    #[test]
    fn stays_within_its_entry_cap_and_counts_evictions() {
        let mut cache = AddressCache::new(64, usize::MAX);
        for pc in 0..1000 {
            assert!(cache.get(pc).is_none());
            cache.insert(pc, frames("f"));
            assert!(cache.stats().entries <= 64, "{:?}", cache.stats());
        }
        let stats = cache.stats();
        assert_eq!(stats.misses, 1000);
        assert_eq!(stats.evictions, 1000 - stats.entries as u64);
        // The most recent addresses are still there.
        assert!(cache.get(999).is_some());
        assert_eq!(cache.stats().hits, 1);
    }

    #[test]
    fn stays_within_its_byte_cap() {
        let one = estimated_bytes(&frames("some::function::name"));
        let mut cache = AddressCache::new(usize::MAX, 10 * one);
        for pc in 0..100 {
            cache.insert(pc, frames("some::function::name"));
            assert!(
                cache.stats().estimated_bytes <= 10 * one,
                "{:?}",
                cache.stats()
            );
        }
        assert!(cache.stats().evictions >= 90);
    }

    #[test]
    fn an_address_used_again_survives_rotation() {
        let mut cache = AddressCache::new(8, usize::MAX);
        cache.insert(7, frames("kept"));
        for pc in 100..200 {
            // Looked up between inserts, as a hot address is at every build.
            assert!(cache.get(7).is_some(), "evicted at {pc}");
            cache.insert(pc, frames("other"));
        }
    }
}
