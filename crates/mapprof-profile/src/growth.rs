//! Growth classification: which sampled allocations a container made because it had to grow.
//!
//! A `HashMap` filled without a capacity allocates a new table each time it doubles; a `Vec`
//! pushed to without one reallocates its buffer each time it doubles. The allocator wrapper
//! records those allocations like any other, with their stacks; the stacks say which were
//! growth. [`classify`] reads one stack, leaf first, inlined frames expanded (as
//! [`crate::view::SampleRef::frames`] gives them), and names the container that grew, or
//! nothing. [`crate::resize::resize_profile`] uses it to make the resize profile.
//!
//! # How a stack is read
//!
//! 1. Allocator glue at the leaf is skipped: the profiler's and the allocator shims' frames
//!    (`__rust_alloc`, `mapprof::...`), jemalloc's, bare C names (`malloc`, `realloc`). If the
//!    first frame after them is an unsymbolized address, nothing can be said: no growth.
//! 2. The *container run* is the frames from there up to the first frame that is not the
//!    standard library's (std, core, alloc) or hashbrown's: the library code that the caller
//!    called, expanded. Its last frame is the *entry*, the method the caller called
//!    (`HashMap::insert`, `Vec::push`, `Iterator::collect`, `alloc::fmt::format`).
//! 3. The leaf-most frame of the run that the rule table says [`Role::Grows`] (the machinery by
//!    which a container gets a larger buffer: hashbrown's `reserve_rehash`, `RawVec`'s
//!    `finish_grow`, a B-tree node split) makes the sample growth of that container;
//!    [`Role::Shrinks`] (`RawVec::shrink`) makes it not growth.
//! 4. The nearest frame above the growing one that [`Role::Is`] a container built on the grown
//!    one's storage names it: `HashSet` (on hashbrown's map), `String`, `VecDeque`,
//!    `BinaryHeap` (on a `Vec`'s buffer), `BTreeSet` (on a `BTreeMap`).
//! 5. When the entry [`Role::Sizes`], the caller asked for that capacity (`with_capacity`,
//!    `reserve`, `reserve_exact`, `try_reserve*`, `shrink_to*`): the allocation is sized up
//!    front, not growth. Unless it is a `realloc`: then an existing buffer was resized, which
//!    is growth (`reserve_exact(1)` before every push is growth at its worst).
//! 6. Without growth machinery in the run, a sample taken in `realloc` through std's
//!    allocation API (`std::alloc::realloc`, `Allocator::grow`: the run is not empty) is
//!    growth of a block that no container explains: [`Container::Realloc`].
//!
//! A Go stack (`runtime.mallocgc`, `main.f`) has no container run, so nothing in it is growth;
//! [`crate::report`] reads Go's map growth from CPU profiles instead (`runtime.hashGrow`,
//! `growWork`, `evacuate`). The resize profile keeps one sample per stack and size class, from
//! which the report counts the containers grown at a site (the first growth step's resizes)
//! and the growths per container.
//!
//! # What the stacks look like (rustc 1.95, hashbrown in std, `debug = "limited"`)
//!
//! Measured at `heap_rate=1` with `mapprof::Alloc`, in release and in dev (opt-level 1) builds
//! (`crates/mapprof/tests/growth_is_classified_from_real_stacks.rs` keeps checking them):
//!
//! - `HashMap::insert` growing: `do_alloc` ← `new_uninitialized` ← `fallible_with_capacity` ←
//!   `prepare_resize` ← `resize_inner` ← `reserve_rehash_inner` ← `RawTable::reserve_rehash` ←
//!   `RawTable::reserve` ← `find_or_find_insert_index` ← hashbrown `HashMap::insert` ← std
//!   `HashMap::insert`; `entry` goes through hashbrown's `HashMap::reserve` ← `rustc_entry` ←
//!   std `HashMap::entry`; `HashSet::insert` adds `hashbrown::set::HashSet::insert` and std's.
//! - `HashMap::with_capacity`: `new_uninitialized` ← `fallible_with_capacity` ←
//!   `RawTableInner::with_capacity` ← ... ← `HashMap::with_capacity`: no growth frame.
//! - `Vec::push`: `finish_grow` ← `grow_amortized` ← `grow_one` ← `RawVec::grow_one` ←
//!   `Vec::push_mut` ← `Vec::push` (`alloc::alloc::realloc` at the leaf from the second growth
//!   on); `VecDeque::push_back` and `BinaryHeap::push` put their own frames above `grow_one`.
//! - `String::push_str`: `finish_grow` ← `grow_amortized` ← `do_reserve_and_handle` ← (release:
//!   `RawVec::reserve` ← `Vec::reserve` ←) `append_elements` ← `Vec::extend_from_slice` ←
//!   `String::push_str`; `String::push` goes through `String::reserve`; `format!` through
//!   `<String as fmt::Write>::write_str` ← `core::fmt::write` ← `alloc::fmt::format`.
//! - `Vec::with_capacity` and `collect()` of an exact-size iterator: `try_allocate_in` ←
//!   `RawVec::with_capacity_in`: no growth frame. `collect()`/`extend` of a filtered iterator:
//!   `do_reserve_and_handle` ← `extend_desugared` ← ... ← `Iterator::collect`.
//! - `Vec::reserve_exact`: `finish_grow` ← `grow_exact` ← `try_reserve_exact` ←
//!   `RawVec::reserve_exact` ← `Vec::reserve_exact`. `shrink_to_fit`: `realloc` ←
//!   `Global::shrink` ← `RawVecInner::shrink_unchecked` ← `shrink` ← `Vec::shrink_to_fit`.
//! - `BTreeMap::insert`: `Box::new_uninit_in` ← `LeafNode::new` (or `InternalNode::new`) ←
//!   `Handle<..>::split` ← `Handle<..>::insert` ← `insert_recursing` ← `VacantEntry::insert`;
//!   a new root level comes from `NodeRef::push_internal_level`; the first leaf from
//!   `NodeRef::new_leaf` (not growth).
//! - `std::alloc::realloc` called directly: `alloc::alloc::realloc`, then the caller.
//!
//! Two demangling styles meet in one stack: code instantiated in the program is named the
//! legacy way (`alloc::raw_vec::RawVecInner<A>::finish_grow`), std's own compiled code the v0
//! way (`<alloc::raw_vec::RawVecInner>::finish_grow`,
//! `<alloc::raw_vec::RawVecInner<_>>::reserve::do_reserve_and_handle::<alloc::alloc::Global>`).
//! [`frame_path`] reduces both to `alloc::raw_vec::RawVecInner::finish_grow`.
//!
//! Known limit: in dev builds the inlined frames of `Vec::reserve` called directly can be
//! missing (the stack goes from `do_reserve_and_handle` straight to the caller), so an up-front
//! `Vec::reserve` on an empty vector counts as one growth there; release builds show it.

use regex::RegexSet;
use std::sync::LazyLock;

use crate::names::{self, frame_path, PRIMITIVES, STD_CRATES};
use crate::profiler_frames::is_profiler_frame;

/// A container whose growth [`classify`] recognises. [`Container::name`] is the `container`
/// label of the resize profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Container {
    /// `std::collections::HashMap` or hashbrown's (and anything on `hashbrown::raw`).
    HashMap,
    /// `std::collections::HashSet` or hashbrown's.
    HashSet,
    /// `Vec`, and whatever grows a `RawVec` without a more specific frame above it.
    Vec,
    /// `String` (a `Vec<u8>` underneath).
    String,
    /// `VecDeque`.
    VecDeque,
    /// `BinaryHeap`.
    BinaryHeap,
    /// `BTreeMap`: a node split.
    BTreeMap,
    /// `BTreeSet`: a node split.
    BTreeSet,
    /// A `realloc` that no container's growth explains.
    Realloc,
}

impl Container {
    /// Every container, in label order.
    pub const ALL: [Container; 9] = [
        Container::HashMap,
        Container::HashSet,
        Container::Vec,
        Container::String,
        Container::VecDeque,
        Container::BinaryHeap,
        Container::BTreeMap,
        Container::BTreeSet,
        Container::Realloc,
    ];

    /// The label value: `HashMap`, `HashSet`, `Vec`, `String`, `VecDeque`, `BinaryHeap`,
    /// `BTreeMap`, `BTreeSet` or `realloc`.
    pub fn name(self) -> &'static str {
        match self {
            Container::HashMap => "HashMap",
            Container::HashSet => "HashSet",
            Container::Vec => "Vec",
            Container::String => "String",
            Container::VecDeque => "VecDeque",
            Container::BinaryHeap => "BinaryHeap",
            Container::BTreeMap => "BTreeMap",
            Container::BTreeSet => "BTreeSet",
            Container::Realloc => "realloc",
        }
    }

    /// The container whose growth machinery this one uses: `Vec` for a `String`.
    pub fn base(self) -> Container {
        match self {
            Container::HashSet => Container::HashMap,
            Container::String | Container::VecDeque | Container::BinaryHeap => Container::Vec,
            Container::BTreeSet => Container::BTreeMap,
            other => other,
        }
    }
}

/// What a frame of the container run tells [`classify`] (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Machinery by which this container gets a larger buffer.
    Grows(Container),
    /// Machinery by which a container gives memory back: not growth.
    Shrinks,
    /// A frame of this container, built on another's growth machinery ([`Container::base`]):
    /// names the growth below it.
    Is(Container),
    /// A method that asks for capacity: as the entry, the allocation is sized up front.
    Sizes,
}

/// The rules: a regular expression over a frame's [`frame_path`] (anchored at both ends) and
/// the role of the frames it matches; the first matching rule wins. Only frames of the
/// container run (std, core, alloc, hashbrown) are looked up. To recognise another
/// container, add its growth machinery (`Grows`), or, if it is built on one of these, a rule
/// naming its frames (`Is`) and a [`Container`] whose [`Container::base`] is that one.
pub const RULES: &[(&str, Role)] = &[
    // hashbrown (std's HashMap/HashSet and hashbrown's own): a new table on every doubling.
    // `fallible_with_capacity` and `new_uninitialized` are not listed: `with_capacity` uses
    // them too.
    (
        r"hashbrown::raw::RawTable(Inner)?::(reserve_rehash|reserve_rehash_inner|resize|resize_inner|prepare_resize)",
        Role::Grows(Container::HashMap),
    ),
    // RawVec, under Vec, String, VecDeque, BinaryHeap: `finish_grow` allocates or reallocs;
    // older toolchains have it as a free function and `reserve_for_push` for `grow_one`.
    (
        r"alloc::raw_vec::(RawVec(Inner)?::)?(grow_one|grow_amortized|grow_exact|finish_grow|reserve_for_push|(reserve::)?do_reserve_and_handle)",
        Role::Grows(Container::Vec),
    ),
    (
        r"alloc::raw_vec::RawVec(Inner)?::(shrink|shrink_unchecked|shrink_to_fit)",
        Role::Shrinks,
    ),
    // B-trees grow by splitting a full node, and by a new root level.
    (
        r"alloc::collections::btree::node::(Handle::split|NodeRef::push_internal_level)",
        Role::Grows(Container::BTreeMap),
    ),
    // Containers built on the ones above.
    (
        r"(std::collections::hash::set|hashbrown::set)::.*",
        Role::Is(Container::HashSet),
    ),
    (r"alloc::string::.*", Role::Is(Container::String)),
    (
        r"alloc::collections::vec_deque::.*",
        Role::Is(Container::VecDeque),
    ),
    (
        r"alloc::collections::binary_heap::.*",
        Role::Is(Container::BinaryHeap),
    ),
    (
        r"alloc::collections::btree::set::.*",
        Role::Is(Container::BTreeSet),
    ),
    // Asking for capacity.
    (
        r"(alloc::vec::Vec|alloc::string::String|alloc::collections::(vec_deque::VecDeque|binary_heap::BinaryHeap)|std::collections::hash::(map::HashMap|set::HashSet)|hashbrown::(map::HashMap|set::HashSet|table::HashTable|raw::RawTable))::(try_)?(with_capacity\w*|reserve|reserve_exact|try_reserve|try_reserve_exact|shrink_to|shrink_to_fit)",
        Role::Sizes,
    ),
];

static RULE_SET: LazyLock<RegexSet> = LazyLock::new(|| {
    RegexSet::new(RULES.iter().map(|(rx, _)| format!("^(?:{rx})$")))
        .expect("the growth rules are valid regular expressions")
});

/// The role of a frame whose [`frame_path`] is `path`, by the first matching rule.
pub fn role(path: &str) -> Option<Role> {
    RULE_SET.matches(path).iter().next().map(|i| RULES[i].1)
}

/// What one frame is, for [`classify`]; computed once per function name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameInfo {
    kind: FrameKind,
    role: Option<Role>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FrameKind {
    /// Allocator or profiler glue at the leaf.
    Glue,
    /// An unsymbolized location.
    Address,
    /// std, core, alloc or hashbrown.
    Library,
    /// Anything else: the caller's code, another crate, Go.
    Other,
}

impl FrameInfo {
    pub(crate) fn of(function: &str) -> FrameInfo {
        let name = function.trim();
        let kind = if names::is_address(name) {
            FrameKind::Address
        } else if is_glue(name) {
            FrameKind::Glue
        } else if is_library(name) {
            FrameKind::Library
        } else {
            FrameKind::Other
        };
        let role = (kind == FrameKind::Library)
            .then(|| role(&frame_path(name)))
            .flatten();
        FrameInfo { kind, role }
    }
}

/// The container whose growth made the allocation with this stack (function names, leaf
/// first, inlined frames expanded), or `None` when it was not growth or nothing can be said.
/// `realloc`: the sample was taken in `realloc` (mapprof's `alloc=realloc` label). See the
/// module documentation for the rules.
pub fn classify<'f>(frames: impl IntoIterator<Item = &'f str>, realloc: bool) -> Option<Container> {
    let infos: Vec<FrameInfo> = frames.into_iter().map(FrameInfo::of).collect();
    classify_frames(&infos, realloc)
}

pub(crate) fn classify_frames<'i>(
    frames: impl IntoIterator<Item = &'i FrameInfo>,
    realloc: bool,
) -> Option<Container> {
    let mut frames = frames
        .into_iter()
        .skip_while(|f| f.kind == FrameKind::Glue)
        .peekable();
    if frames.peek()?.kind == FrameKind::Address {
        return None;
    }
    let run: Vec<&FrameInfo> = frames
        .take_while(|f| f.kind == FrameKind::Library)
        .collect();
    let machinery = run
        .iter()
        .position(|f| matches!(f.role, Some(Role::Grows(_) | Role::Shrinks)));
    let Some(at) = machinery else {
        // A realloc through std's allocation API (`std::alloc::realloc`, `Allocator::grow`).
        return (realloc && !run.is_empty()).then_some(Container::Realloc);
    };
    let Some(Role::Grows(base)) = run[at].role else {
        return None; // shrinking
    };
    let sized = run
        .last()
        .is_some_and(|entry| entry.role == Some(Role::Sizes));
    if sized && !realloc {
        return None;
    }
    let named = run[at + 1..].iter().find_map(|f| match f.role {
        Some(Role::Is(c)) if c.base() == base && c != base => Some(c),
        _ => None,
    });
    Some(named.unwrap_or(base))
}

/// Whether a function is std's, core's, alloc's or hashbrown's ([`STD_CRATES`]): for
/// `<Self as Trait>::f` both `Self` (unless it is not a path: a slice, primitive or type
/// parameter) and `Trait` must be.
pub(crate) fn is_library(name: &str) -> bool {
    let in_std = |path: &str| STD_CRATES.contains(&names::first_segment(path));
    match names::qualified(name) {
        Some(q) => {
            let self_is = if q.self_type.starts_with('<') {
                is_library(q.self_type)
            } else {
                !names::is_type_path(q.self_type) || in_std(q.self_type)
            };
            self_is && q.trait_path.is_none_or(in_std)
        }
        None => {
            names::is_rust_path(name)
                && (in_std(name) || PRIMITIVES.contains(&names::first_segment(name)))
        }
    }
}

/// Allocator and profiler frames at the leaf: mapprof's and the shims (see
/// [`is_profiler_frame`]), jemalloc's, and bare C names such as `malloc` or `realloc` (no
/// `::`, not a Go name, not a `[pseudo]` frame).
fn is_glue(name: &str) -> bool {
    is_profiler_frame(name)
        || name
            .trim_start_matches('<')
            .starts_with("tikv_jemallocator::")
        || (!name.contains("::") && !name.contains('.') && !name.starts_with('['))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stack written leaf first, one frame per line, as the probes printed them.
    fn stack(text: &str) -> Vec<&str> {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect()
    }

    fn class(text: &str, realloc: bool) -> Option<&'static str> {
        classify(stack(text), realloc).map(Container::name)
    }

    const HASHMAP_INSERT: &str = "
        alloc::alloc::alloc
        <alloc::alloc::Global as core::alloc::Allocator>::allocate
        hashbrown::raw::alloc::inner::do_alloc
        hashbrown::raw::RawTableInner::new_uninitialized
        hashbrown::raw::RawTableInner::fallible_with_capacity
        hashbrown::raw::RawTableInner::prepare_resize
        hashbrown::raw::RawTableInner::resize_inner
        hashbrown::raw::RawTableInner::reserve_rehash_inner
        hashbrown::raw::RawTable<T,A>::reserve_rehash
        hashbrown::raw::RawTable<T,A>::reserve
        hashbrown::raw::RawTable<T,A>::find_or_find_insert_index
        hashbrown::map::HashMap<K,V,S,A>::find_or_find_insert_index
        hashbrown::map::HashMap<K,V,S,A>::insert
        std::collections::hash::map::HashMap<K,V,S,A>::insert
        cache_service::cache::Cache::update
        core::ops::function::FnOnce::call_once";

    #[test]
    fn hash_map_growth_and_up_front_capacity() {
        assert_eq!(class(HASHMAP_INSERT, false), Some("HashMap"));
        let with_capacity = "
            alloc::alloc::alloc
            hashbrown::raw::alloc::inner::do_alloc
            hashbrown::raw::RawTableInner::new_uninitialized
            hashbrown::raw::RawTableInner::fallible_with_capacity
            hashbrown::raw::RawTableInner::with_capacity
            hashbrown::raw::RawTable<T,A>::with_capacity_in
            hashbrown::raw::RawTable<T>::with_capacity
            hashbrown::map::HashMap<K,V,S>::with_capacity_and_hasher
            std::collections::hash::map::HashMap<K,V,S>::with_capacity_and_hasher
            std::collections::hash::map::HashMap<K,V>::with_capacity
            app::build";
        assert_eq!(class(with_capacity, false), None);
        let reserve = "
            hashbrown::raw::RawTableInner::prepare_resize
            hashbrown::raw::RawTable<T,A>::reserve_rehash
            hashbrown::raw::RawTable<T,A>::reserve
            hashbrown::map::HashMap<K,V,S,A>::reserve
            std::collections::hash::map::HashMap<K,V,S,A>::reserve
            app::build";
        assert_eq!(
            class(reserve, false),
            None,
            "reserve up front is not growth"
        );
        let entry = "
            hashbrown::raw::RawTable<T,A>::reserve_rehash
            hashbrown::raw::RawTable<T,A>::reserve
            hashbrown::map::HashMap<K,V,S,A>::reserve
            hashbrown::rustc_entry::<impl hashbrown::map::HashMap<K,V,S,A>>::rustc_entry
            std::collections::hash::map::HashMap<K,V,S,A>::entry
            app::count";
        assert_eq!(
            class(entry, false),
            Some("HashMap"),
            "entry reserves for one more"
        );
        let shrink = "
            hashbrown::raw::RawTableInner::resize_inner
            hashbrown::raw::RawTable<T,A>::resize
            hashbrown::raw::RawTable<T,A>::shrink_to
            hashbrown::map::HashMap<K,V,S,A>::shrink_to
            std::collections::hash::map::HashMap<K,V,S,A>::shrink_to
            app::trim";
        assert_eq!(class(shrink, false), None);
    }

    #[test]
    fn hash_sets_and_collect_are_named_by_the_nearest_container_above() {
        let set = "
            hashbrown::raw::RawTable<T,A>::reserve_rehash
            hashbrown::raw::RawTable<T,A>::reserve
            hashbrown::map::HashMap<K,V,S,A>::insert
            hashbrown::set::HashSet<T,S,A>::insert
            std::collections::hash::set::HashSet<T,S,A>::insert
            app::f";
        assert_eq!(class(set, false), Some("HashSet"));
        let collect = "
            hashbrown::raw::RawTable<T,A>::reserve_rehash
            hashbrown::map::HashMap<K,V,S,A>::insert
            <hashbrown::map::HashMap<K,V,S,A> as core::iter::traits::collect::Extend<(K,V)>>::extend::{{closure}}
            core::iter::adapters::map::map_fold::{{closure}}
            <core::iter::adapters::map::Map<I,F> as core::iter::traits::iterator::Iterator>::fold
            <hashbrown::set::HashSet<T,S,A> as core::iter::traits::collect::Extend<T>>::extend
            <std::collections::hash::set::HashSet<T,S> as core::iter::traits::collect::FromIterator<T>>::from_iter
            core::iter::traits::iterator::Iterator::collect
            app::f";
        assert_eq!(class(collect, false), Some("HashSet"));
    }

    #[test]
    fn vec_family_growth_in_both_demangling_styles() {
        let push = "
            alloc::alloc::realloc
            <alloc::alloc::Global>::grow_impl
            alloc::raw_vec::RawVecInner<A>::finish_grow
            alloc::raw_vec::RawVecInner<A>::grow_amortized
            alloc::raw_vec::RawVecInner<A>::grow_one
            alloc::raw_vec::RawVec<T,A>::grow_one
            alloc::vec::Vec<T,A>::push_mut
            alloc::vec::Vec<T,A>::push
            app::f";
        assert_eq!(class(push, true), Some("Vec"));
        assert_eq!(class(push, false), Some("Vec"), "the first buffer");
        let push_str = "
            <alloc::raw_vec::RawVecInner>::finish_grow
            <alloc::raw_vec::RawVecInner>::grow_amortized
            <alloc::raw_vec::RawVecInner<_>>::reserve::do_reserve_and_handle::<alloc::alloc::Global>
            alloc::vec::Vec<T,A>::append_elements
            <alloc::vec::Vec<T,A> as alloc::vec::spec_extend::SpecExtend<&T,core::slice::iter::Iter<T>>>::spec_extend
            alloc::vec::Vec<T,A>::extend_from_slice
            <alloc::string::String>::push_str
            app::f";
        assert_eq!(class(push_str, false), Some("String"));
        let format = "
            <alloc::raw_vec::RawVecInner>::finish_grow
            <alloc::raw_vec::RawVecInner<_>>::reserve::do_reserve_and_handle::<alloc::alloc::Global>
            <alloc::vec::Vec<u8>>::extend_from_slice
            <alloc::string::String>::push_str
            <alloc::string::String as core::fmt::Write>::write_str
            core::fmt::write
            <&mut alloc::string::String as core::fmt::Write::write_fmt::SpecWriteFmt>::spec_write_fmt
            alloc::fmt::format::format_inner
            alloc::fmt::format
            app::f";
        assert_eq!(class(format, false), Some("String"));
        let deque = "
            alloc::raw_vec::RawVecInner<A>::finish_grow
            alloc::raw_vec::RawVec<T,A>::grow_one
            alloc::collections::vec_deque::VecDeque<T,A>::grow
            alloc::collections::vec_deque::VecDeque<T,A>::push_back
            app::f";
        assert_eq!(class(deque, true), Some("VecDeque"));
        let heap = "
            alloc::raw_vec::RawVec<T,A>::grow_one
            alloc::vec::Vec<T,A>::push
            alloc::collections::binary_heap::BinaryHeap<T,A>::push
            app::f";
        assert_eq!(class(heap, false), Some("BinaryHeap"));
        let collect = "
            <alloc::raw_vec::RawVecInner>::finish_grow
            <alloc::raw_vec::RawVecInner<_>>::reserve::do_reserve_and_handle::<alloc::alloc::Global>
            alloc::vec::Vec<T,A>::extend_desugared
            <alloc::vec::Vec<T> as alloc::vec::spec_from_iter::SpecFromIter<T,I>>::from_iter
            core::iter::traits::iterator::Iterator::collect
            app::f";
        assert_eq!(class(collect, false), Some("Vec"));
    }

    #[test]
    fn capacity_asked_for_up_front_is_not_growth_but_a_resized_buffer_is() {
        let with_capacity = "
            alloc::alloc::alloc
            alloc::raw_vec::RawVecInner<A>::try_allocate_in
            alloc::raw_vec::RawVecInner<A>::with_capacity_in
            alloc::vec::Vec<T>::with_capacity
            app::f";
        assert_eq!(class(with_capacity, false), None);
        let reserve_exact = "
            alloc::raw_vec::RawVecInner<A>::finish_grow
            alloc::raw_vec::RawVecInner<A>::grow_exact
            alloc::raw_vec::RawVecInner<A>::try_reserve_exact
            alloc::raw_vec::RawVec<T,A>::reserve_exact
            alloc::vec::Vec<T,A>::reserve_exact
            app::f";
        assert_eq!(class(reserve_exact, false), None);
        assert_eq!(
            class(&format!("alloc::alloc::realloc\n{reserve_exact}"), true),
            Some("Vec")
        );
        let reserve = "
            alloc::raw_vec::RawVecInner<A>::finish_grow
            alloc::raw_vec::RawVecInner<A>::reserve::do_reserve_and_handle
            alloc::vec::Vec<T,A>::reserve
            app::f";
        assert_eq!(class(reserve, false), None);
        // Reserving inside a growing call is growth: `String::push` reserves one more.
        let push = "
            alloc::raw_vec::RawVecInner<A>::reserve::do_reserve_and_handle
            alloc::vec::Vec<T,A>::reserve
            <alloc::string::String>::reserve
            <alloc::string::String>::push
            app::f";
        assert_eq!(class(push, false), Some("String"));
    }

    #[test]
    fn shrinking_is_not_growth_even_by_realloc() {
        let shrink = "
            alloc::alloc::realloc
            <alloc::alloc::Global>::shrink_impl
            alloc::raw_vec::RawVecInner<A>::shrink_unchecked
            alloc::raw_vec::RawVecInner<A>::shrink
            alloc::vec::Vec<T,A>::shrink_to_fit
            app::f";
        assert_eq!(class(shrink, true), None);
    }

    #[test]
    fn b_tree_node_splits_are_growth_and_the_first_leaf_is_not() {
        let split = "
            alloc::alloc::alloc
            alloc::boxed::Box<T,A>::new_uninit_in
            alloc::collections::btree::node::LeafNode<K,V>::new
            alloc::collections::btree::node::Handle<alloc::collections::btree::node::NodeRef<alloc::collections::btree::node::marker::Mut,K,V,alloc::collections::btree::node::marker::Leaf>,alloc::collections::btree::node::marker::KV>::split
            alloc::collections::btree::node::Handle<alloc::collections::btree::node::NodeRef<alloc::collections::btree::node::marker::Mut,K,V,alloc::collections::btree::node::marker::Leaf>,alloc::collections::btree::node::marker::Edge>::insert_recursing
            alloc::collections::btree::map::entry::VacantEntry<K,V,A>::insert
            alloc::collections::btree::map::BTreeMap<K,V,A>::insert
            app::f";
        assert_eq!(class(split, false), Some("BTreeMap"));
        let set = format!(
            "{}\nalloc::collections::btree::set::BTreeSet<T,A>::insert\napp::f",
            split.trim_end().trim_end_matches("app::f")
        );
        assert_eq!(class(&set, false), Some("BTreeSet"));
        let level = "
            alloc::collections::btree::node::InternalNode<K,V>::new
            alloc::collections::btree::node::NodeRef<alloc::collections::btree::node::marker::Owned,K,V,alloc::collections::btree::node::marker::LeafOrInternal>::push_internal_level
            alloc::collections::btree::map::BTreeMap<K,V,A>::insert
            app::f";
        assert_eq!(class(level, false), Some("BTreeMap"));
        let first_leaf = "
            alloc::collections::btree::node::LeafNode<K,V>::new
            alloc::collections::btree::node::NodeRef<alloc::collections::btree::node::marker::Owned,K,V,alloc::collections::btree::node::marker::Leaf>::new_leaf
            alloc::collections::btree::map::entry::VacantEntry<K,V,A>::insert_entry
            alloc::collections::btree::map::BTreeMap<K,V,A>::insert
            app::f";
        assert_eq!(class(first_leaf, false), None);
    }

    #[test]
    fn a_realloc_no_container_explains_is_realloc() {
        assert_eq!(
            class("alloc::alloc::realloc\napp::f", true),
            Some("realloc")
        );
        assert_eq!(class("alloc::alloc::alloc\napp::f", false), None);
        // Glue at the leaf is looked through, the caller's code is not.
        let glue = "__rust_realloc\n<mapprof::Alloc as core::alloc::global::GlobalAlloc>::realloc";
        assert_eq!(
            class(&format!("{glue}\nalloc::alloc::realloc\napp::f"), true),
            Some("realloc")
        );
        // Not through std: nothing says what it was.
        assert_eq!(class(&format!("{glue}\napp::f"), true), None);
        assert_eq!(class(&format!("app::hash\n{HASHMAP_INSERT}"), false), None);
    }

    #[test]
    fn unsymbolized_go_and_empty_stacks_are_not_growth() {
        assert_eq!(class("0x55d3c0a1b2c3\n0x55d3c0a1b000", true), None);
        assert_eq!(class("", true), None);
        assert_eq!(class("mapprof::lost_samples", false), None);
        let go = "
            runtime.mallocgc
            runtime.growslice
            main.fill
            main.main";
        assert_eq!(class(go, false), None);
        assert_eq!(class(go, true), None);
    }

    #[test]
    fn user_code_inside_library_frames_ends_the_container_run() {
        // A user trait implemented for Vec, and a user type's Extend, are the user's code.
        let user_trait = "
            alloc::raw_vec::RawVec<T,A>::grow_one
            alloc::vec::Vec<T,A>::push
            <alloc::vec::Vec<T> as app::Sink>::put
            <app::Buf as core::iter::traits::collect::Extend<u8>>::extend
            app::f";
        assert_eq!(class(user_trait, false), Some("Vec"));
        assert!(!is_library("<alloc::vec::Vec<T> as app::Sink>::put"));
        assert!(!is_library(
            "<app::Buf as core::iter::traits::collect::Extend<u8>>::extend"
        ));
        assert!(is_library("<[u8]>::to_vec_in::<alloc::alloc::Global>"));
        assert!(is_library("<str>::repeat"));
        assert!(is_library(
            "<T as alloc::vec::spec_from_elem::SpecFromElem>::from_elem"
        ));
        assert!(!is_library("main.main"));
    }

    #[test]
    fn every_rule_compiles_and_every_container_has_a_name() {
        assert_eq!(RULE_SET.len(), RULES.len());
        let names: Vec<&str> = Container::ALL.iter().map(|c| c.name()).collect();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(names.len(), unique.len(), "{names:?}");
        for c in Container::ALL {
            assert_eq!(c.base().base(), c.base());
        }
    }

    #[test]
    fn odd_names_never_panic() {
        for name in [
            "<",
            ">",
            "<<>>",
            "<a as",
            "<a as b",
            "::",
            "<>::f",
            "a::<",
            "->",
            "<fn() -> T>::f",
            "{{closure}}",
            "<&mut >::x",
            "<dyn >::y",
            "\u{e9}::\u{e9}",
        ] {
            let _ = frame_path(name);
            let _ = FrameInfo::of(name);
            let _ = classify([name, name], true);
        }
    }
}
