//! Heap and allocs profiles, as Go's `runtime/pprof` writes them.

use crate::builder::{Header, LabelValue, RawSample, LOST_FRAME};

/// One bucket of sampled allocations: same stack, same allocation size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeapRecord {
    /// Return addresses, innermost first (empty for lost samples).
    pub stack: Vec<u64>,
    /// Size of each allocation in bytes (0 for the lost bucket, whose sizes vary).
    pub size: u64,
    /// Sampled allocations.
    pub alloc_count: u64,
    /// Bytes of sampled allocations.
    pub alloc_bytes: u64,
    /// Sampled allocations since freed.
    pub free_count: u64,
    /// Bytes of sampled allocations since freed.
    pub free_bytes: u64,
    /// Samples the collector could not file under their stack (table full).
    pub lost: bool,
}

/// Which of the two views of the heap data to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeapView {
    /// `heap`: viewers default to `inuse_space`.
    Heap,
    /// `allocs`: the same data, viewers default to `alloc_space`.
    Allocs,
}

/// Rust's allocation plumbing: functions that obtain memory for their caller and call back into
/// user code at most through `Hash`, `Eq` or `Clone` of the elements. Viewers (`go tool pprof`,
/// `mapprof top`) drop these frames and everything beneath them (the profile's `drop_frames`), so
/// flat figures land on the code that asked for the memory, as Go's profiles start above
/// `runtime.mallocgc`. The frames stay in the file for growth classification. Each pattern
/// accepts both demangling styles (`alloc::vec::Vec<T>::push`, `<alloc::vec::Vec<u8>>::push`).
pub const ALLOCATION_PLUMBING: &[&str] = &[
    r"<?alloc::alloc::.*",
    r"<?alloc::raw_vec::.*",
    r"<?alloc::slice::.*",
    r"<\[.*\]>::to_vec.*",
    r"<?alloc::boxed::Box<.*>>?::(new|new_uninit|try_new)",
    r"<?alloc::vec::Vec<.*>>?::(with_capacity.*|reserve.*|push.*|insert|extend_from_slice|resize)",
    r"<?alloc::vec::from_elem.*|<.* as alloc::vec::spec_from_elem::SpecFromElem>::from_elem",
    r"<alloc::vec::Vec<.*> as core::clone::Clone>::clone",
    r"<?alloc::string::String>?::(with_capacity|reserve.*|push|push_str)",
    r"<alloc::string::String as core::clone::Clone>::clone",
    r"<?hashbrown::raw::.*",
    r"<?hashbrown::map::HashMap<.*>>?::(insert|reserve|find_or_find_insert_index|with_capacity.*)",
    r"<?std::collections::hash::map::HashMap<.*>>?::(insert|reserve|with_capacity.*)",
];

/// Unbiases a sampled (count, bytes) pair: each sampled allocation of average size `s` had
/// probability `p = 1 - exp(-s / rate)` of being sampled, so it stands for `1/p` allocations.
/// Go's `scaleHeapSample`, jemalloc's per-sample rule. With `rate <= 1` every allocation was
/// sampled and nothing is scaled.
pub fn scale(count: u64, bytes: u64, rate: u64) -> (i64, i64) {
    if count == 0 || bytes == 0 {
        return (0, 0);
    }
    if rate <= 1 {
        return (count as i64, bytes as i64);
    }
    let avg = bytes as f64 / count as f64;
    let s = 1.0 / (1.0 - (-avg / rate as f64).exp());
    ((count as f64 * s) as i64, (bytes as f64 * s) as i64)
}

/// The header of a heap profile sampled at `rate` bytes.
pub fn header(rate: u64, view: HeapView) -> Header {
    let st = |t: &str, u: &str| (t.to_owned(), u.to_owned());
    Header {
        sample_types: vec![
            st("alloc_objects", "count"),
            st("alloc_space", "bytes"),
            st("inuse_objects", "count"),
            st("inuse_space", "bytes"),
        ],
        period_type: st("space", "bytes"),
        period: rate as i64,
        default_sample_type: match view {
            HeapView::Heap => None,
            HeapView::Allocs => Some("alloc_space".to_owned()),
        },
        drop_frames: Some(ALLOCATION_PLUMBING.join("|")),
        ..Header::default()
    }
}

/// Turns heap buckets into samples with unbiased values
/// `[alloc_objects, alloc_space, inuse_objects, inuse_space]` and the numeric label `bytes`.
pub fn samples(records: &[HeapRecord], rate: u64) -> Vec<RawSample> {
    records
        .iter()
        .filter(|r| r.alloc_count > 0)
        .map(|r| {
            let (alloc_objects, alloc_space) = scale(r.alloc_count, r.alloc_bytes, rate);
            // Frees are counted after allocations; a racing snapshot may see fewer allocations.
            let inuse_count = r.alloc_count.saturating_sub(r.free_count);
            let inuse_bytes = r.alloc_bytes.saturating_sub(r.free_bytes);
            let (inuse_objects, inuse_space) = scale(inuse_count, inuse_bytes, rate);
            let block_size = r.alloc_bytes / r.alloc_count;
            RawSample {
                stack: r.stack.clone(),
                synthetic: r.lost.then(|| LOST_FRAME.to_owned()),
                values: vec![alloc_objects, alloc_space, inuse_objects, inuse_space],
                labels: vec![("bytes".to_owned(), LabelValue::Num(block_size as i64, None))],
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_matches_the_sampling_probability() {
        // A 64 KiB allocation at rate 64 KiB is sampled with p = 1 - 1/e.
        let (n, b) = scale(1000, 1000 * 65536, 65536);
        let p = 1.0 - (-1f64).exp();
        assert_eq!(n, (1000.0 / p) as i64);
        assert_eq!(b, (1000.0 * 65536.0 / p) as i64);
        // Huge allocations are always sampled: no scaling.
        assert_eq!(scale(3, 3 << 30, 524288), (3, 3 << 30));
        assert_eq!(scale(5, 40, 1), (5, 40));
        assert_eq!(scale(0, 0, 524288), (0, 0));
    }

    #[test]
    fn plumbing_is_dropped_and_user_code_is_not() {
        let rx = regex::Regex::new(&format!("^({})$", ALLOCATION_PLUMBING.join("|"))).unwrap();
        for plumbing in [
            "<alloc::vec::Vec<u8>>::with_capacity_in",
            "alloc::raw_vec::finish_grow",
            "<alloc::raw_vec::RawVecInner>::grow_amortized",
            "hashbrown::map::HashMap<K,V,S,A>::find_or_find_insert_index",
            "std::collections::hash::map::HashMap<K,V,S>::insert",
            "<[u8]>::to_vec_in::<alloc::alloc::Global>",
            "<alloc::string::String as core::clone::Clone>::clone",
            "alloc::alloc::exchange_malloc",
        ] {
            assert!(rx.is_match(plumbing), "{plumbing}");
        }
        for user in [
            "cache::Cache::update",
            "core::iter::traits::iterator::Iterator::for_each",
            "<alloc::boxed::Box<dyn core::ops::function::FnOnce<()>> as core::ops::function::FnOnce<()>>::call_once",
            "std::thread::lifecycle::spawn_unchecked::{{closure}}",
            "alloc::vec::Vec<T,A>::extend_desugared",
        ] {
            assert!(!rx.is_match(user), "{user}");
        }
    }
}
