//! Heap and allocs profiles, as Go's `runtime/pprof` writes them.

use crate::builder::{Header, LabelValue, RawSample, LOST_FRAME};
use crate::kinds;

/// One stack's sampled allocations, already unbiased by the collector: each sample of `s` bytes
/// taken at rate `R` counts for `1/(1-exp(-s/R))` allocations (see `mapprof_rt::heap::unbiased`).
#[derive(Clone, Debug, PartialEq)]
pub struct HeapRecord {
    /// Return addresses, innermost first (empty for lost samples).
    pub stack: Vec<u64>,
    /// Estimated allocations.
    pub alloc_objects: f64,
    /// Estimated bytes allocated.
    pub alloc_bytes: f64,
    /// Estimated allocations since freed.
    pub free_objects: f64,
    /// Estimated bytes since freed.
    pub free_bytes: f64,
    /// Samples the collector could not file under their stack (table full).
    pub lost: bool,
    /// The samples were taken in `realloc` (labelled [`ALLOC_LABEL`]=[`REALLOC`]).
    pub realloc: bool,
}

/// The string label that marks samples taken in `realloc` ([`REALLOC`]); allocations made by
/// `alloc`/`alloc_zeroed` have none. Growth classification reads it (a realloc that no
/// container explains), and `go tool pprof -tagfocus=alloc=realloc` selects them.
pub const ALLOC_LABEL: &str = "alloc";
/// The value of [`ALLOC_LABEL`] on samples taken in `realloc`.
pub const REALLOC: &str = "realloc";

/// Which of the two views of the heap data to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeapView {
    /// `heap`: viewers default to `inuse_space`.
    Heap,
    /// `allocs`: the same data, viewers default to `alloc_space`.
    Allocs,
}

impl HeapView {
    /// The view's kind: [`kinds::HEAP`] or [`kinds::ALLOCS`].
    pub fn spec(self) -> &'static kinds::Spec {
        match self {
            HeapView::Heap => &kinds::HEAP,
            HeapView::Allocs => &kinds::ALLOCS,
        }
    }

    /// The profile's name, as Go's: `heap` or `allocs`.
    pub fn name(self) -> &'static str {
        self.spec().name
    }
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
    // The same functions as `go tool pprof` names them when it symbolizes an unsymbolized
    // profile itself: its built-in symbolizer (cmd/pprof) takes DWARF's `DW_AT_name` of the
    // function an address is in, so names have no path and, once pprof drops the generics,
    // no parameters (`finish_grow<alloc::alloc::Global>` becomes `finish_grow`); inlined
    // frames are not reported. Only names no application function is likely to have:
    // `insert`, `push`, `clone` or `reserve` stay, since the application's own would go too.
    r"try_allocate_in|allocate_in|finish_grow|grow_one|grow_amortized|grow_exact",
    r"do_reserve_and_handle|reserve_rehash|reserve_rehash_inner|resize_inner|prepare_resize",
    r"fallible_with_capacity|new_uninitialized|exchange_malloc|from_elem|to_vec|to_vec_in",
    r"with_capacity_in",
];

/// The header of a heap profile sampled at `rate` bytes.
pub fn header(rate: u64, view: HeapView) -> Header {
    Header {
        drop_frames: Some(ALLOCATION_PLUMBING.join("|")),
        ..view.spec().header(rate as i64)
    }
}

/// Turns heap records into samples `[alloc_objects, alloc_space, inuse_objects, inuse_space]`
/// with the numeric label `bytes`, the average allocation size (as Go writes it), and
/// [`ALLOC_LABEL`]=[`REALLOC`] on samples taken in `realloc`. The values are rounded to whole
/// numbers by [`round_unbiased`].
pub fn samples(records: &[HeapRecord]) -> Vec<RawSample> {
    records
        .iter()
        .filter(|r| r.alloc_objects > 0.0)
        .map(|r| {
            // Frees are counted after allocations; a racing snapshot may see more frees.
            let inuse_objects = (r.alloc_objects - r.free_objects).max(0.0);
            let inuse_bytes = (r.alloc_bytes - r.free_bytes).max(0.0);
            let average_size = r.alloc_bytes / r.alloc_objects;
            RawSample {
                stack: r.stack.clone(),
                synthetic: r.lost.then(|| LOST_FRAME.to_owned()),
                values: round_unbiased(
                    [r.alloc_objects, r.alloc_bytes, inuse_objects, inuse_bytes],
                    &r.stack,
                ),
                labels: std::iter::once((
                    "bytes".to_owned(),
                    LabelValue::Num(average_size.round() as i64, None),
                ))
                .chain(
                    r.realloc
                        .then(|| (ALLOC_LABEL.to_owned(), LabelValue::Str(REALLOC.to_owned()))),
                )
                .collect(),
            }
        })
        .collect()
}

/// Rounds `values` to whole numbers, as pprof stores them, without bias: each `v` becomes
/// `floor(v + u)`, whose expectation is `v` for `u` uniform in [0, 1). `round()` is biased for
/// a given weight: a lone sample of an allocation sampled with probability 2/3 (weight 1.5)
/// would count 2 objects, +33%, as a short program's last live map did
/// (`tests/realistic_programs_are_estimated_within_sampling_error.rs`). `u` is drawn from the
/// stack and the values, so the same record rounds the same in every profile (a delta of an
/// unchanged sample is 0), and one `u` for all values keeps in use at most what was allocated.
/// Whole values (every count at `heap_rate=1`) stay as they are.
fn round_unbiased(values: [f64; 4], stack: &[u64]) -> Vec<i64> {
    use std::hash::{Hash, Hasher};
    // Fixed keys: the same draw in every process of a build.
    let mut hasher = std::hash::DefaultHasher::new();
    stack.hash(&mut hasher);
    values.map(f64::to_bits).hash(&mut hasher);
    let u = (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64;
    values.map(|v| (v + u).floor() as i64).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_keeps_the_expectation_and_whole_values() {
        let stacks = 10_000;
        let rounded: Vec<Vec<i64>> = (0..stacks)
            .map(|a| round_unbiased([1.5, 840.6, 1.2, 600.3], &[a]))
            .collect();
        // The mean's standard deviation is 0.5/100.
        let mean = rounded.iter().map(|v| v[0] as f64).sum::<f64>() / stacks as f64;
        assert!((mean - 1.5).abs() < 0.02, "mean {mean}");
        assert!(rounded.iter().all(|v| v[2] <= v[0] && v[3] <= v[1]));
        assert_eq!(
            round_unbiased([3.0, 4096.0, 1.0, 1024.0], &[7]),
            [3, 4096, 1, 1024]
        );
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
            // As go tool pprof's own symbolizer names them.
            "finish_grow",
            "try_allocate_in",
            "reserve_rehash",
            "grow_one",
            "from_elem",
        ] {
            assert!(rx.is_match(plumbing), "{plumbing}");
        }
        for user in [
            "cache::Cache::update",
            "core::iter::traits::iterator::Iterator::for_each",
            "<alloc::boxed::Box<dyn core::ops::function::FnOnce<()>> as core::ops::function::FnOnce<()>>::call_once",
            "std::thread::lifecycle::spawn_unchecked::{{closure}}",
            "alloc::vec::Vec<T,A>::extend_desugared",
            // Bare names an application function may have too.
            "insert",
            "update",
            "clone",
            "push",
            "cache::Cache::finish_growing",
        ] {
            assert!(!rx.is_match(user), "{user}");
        }
    }
}
