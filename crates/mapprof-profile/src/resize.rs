//! The resize profile: the sampled allocations that were container growth, derived from a heap
//! or allocs profile by [`crate::growth`].
//!
//! | | |
//! |---|---|
//! | sample types | `resizes/count`, `resize_space/bytes` (default) |
//! | period | `space/bytes`, the heap profile's (the sampling rate) |
//! | labels | `container` (`HashMap`, `Vec`, `realloc`, ... see [`Container::name`]), and the heap sample's own (`bytes`, `alloc=realloc`) |
//!
//! Values are the heap profile's `alloc_objects` and `alloc_space` of the kept samples, already
//! unbiased, so `resizes` estimates how many times containers grew there and `resize_space` the
//! bytes those growths allocated. `go tool pprof -tagfocus=container=HashMap` keeps the maps.
//! (pprof matches a tag value as an unanchored regular expression: `container=Vec` also keeps
//! `VecDeque`; `container=^Vec$` does not.)

use std::collections::{BTreeSet, HashMap};

use crate::growth::{classify_frames, FrameInfo};
use crate::heap::{ALLOC_LABEL, REALLOC};
use crate::kinds;
use crate::proto::{Function, Label, Location, Mapping, Profile, Sample, StringTable};
use crate::view::string_at;
use crate::view::ProfileView;

pub use crate::growth::Container;

/// The label naming the container that grew.
pub const CONTAINER_LABEL: &str = "container";

/// The first comment of a resize profile.
pub const COMMENT: &str = "mapprof resize profile";

/// Derives the resize profile from `heap`, a heap or allocs profile (mapprof's or anyone's
/// with `alloc_objects` and `alloc_space`): the samples whose stack is container growth, with
/// their stacks, labels and values, and the label `container`. Locations and functions that
/// no kept sample uses are left out; every mapping is kept (symbolized locations name none,
/// and the first is the executable, which pprof shows as the profile's `File`). A profile without symbols, without those
/// sample types, one that does not validate, or a Go profile gives a valid, empty resize
/// profile. Deterministic: the same input gives the same output.
pub fn resize_profile(heap: &Profile) -> Profile {
    let mut out = StringTable::default();
    let mut samples = Vec::new();
    let mut kept_locations = BTreeSet::new();
    if let Ok(view) = ProfileView::unpruned(heap) {
        let index = |name| view.sample_index_by_name(name).ok();
        let objects = index("alloc_objects").filter(|&i| view.sample_types()[i].unit == "count");
        let space = index("alloc_space").filter(|&i| view.sample_types()[i].unit == "bytes");
        if let (Some(objects), Some(space)) = (objects, space) {
            let mut infos: HashMap<&str, FrameInfo> = HashMap::new();
            for sample in view.samples() {
                let values = vec![sample.value(objects), sample.value(space)];
                if values == [0, 0] {
                    continue;
                }
                let raw = sample.raw();
                let realloc = raw
                    .label
                    .iter()
                    .any(|l| view.string(l.key) == ALLOC_LABEL && view.string(l.str) == REALLOC);
                let frames: Vec<FrameInfo> = sample
                    .frames()
                    .map(|f| {
                        *infos
                            .entry(f.function.as_ref())
                            .or_insert_with(|| FrameInfo::of(&f.function))
                    })
                    .collect();
                let Some(container) = classify_frames(&frames, realloc) else {
                    continue;
                };
                let mut label: Vec<Label> = raw
                    .label
                    .iter()
                    .filter(|l| view.string(l.key) != CONTAINER_LABEL)
                    .map(|l| Label {
                        key: out.id(view.string(l.key)),
                        str: out.id(view.string(l.str)),
                        num: l.num,
                        num_unit: out.id(view.string(l.num_unit)),
                    })
                    .collect();
                label.push(Label {
                    key: out.id(CONTAINER_LABEL),
                    str: out.id(container.name()),
                    ..Label::default()
                });
                kept_locations.extend(raw.location_id.iter().copied());
                samples.push(Sample {
                    location_id: raw.location_id.clone(),
                    value: values,
                    label,
                });
            }
        }
    }
    // Validation passed, so every id below refers to something that exists.
    let location: Vec<Location> = heap
        .location
        .iter()
        .filter(|l| kept_locations.contains(&l.id))
        .cloned()
        .collect();
    let function_ids: BTreeSet<u64> = location
        .iter()
        .flat_map(|l| l.line.iter().map(|line| line.function_id))
        .collect();
    let string = |i: i64| string_at(heap, i);
    let function = heap
        .function
        .iter()
        .filter(|f| function_ids.contains(&f.id))
        .map(|f| Function {
            id: f.id,
            name: out.id(string(f.name)),
            system_name: out.id(string(f.system_name)),
            filename: out.id(string(f.filename)),
            start_line: f.start_line,
        })
        .collect();
    // Every mapping when a sample is kept, also those no kept location names (symbolized
    // locations name none): the first is the executable, which pprof shows as the `File`.
    let mapping = heap
        .mapping
        .iter()
        .filter(|_| !samples.is_empty())
        .map(|m| Mapping {
            filename: out.id(string(m.filename)),
            build_id: out.id(string(m.build_id)),
            ..m.clone()
        })
        .collect();
    let spec = &kinds::RESIZE;
    let sample_type = spec
        .sample_types
        .iter()
        .map(|&(ty, unit)| out.value_type(ty, unit))
        .collect();
    let period_type = Some(out.value_type(spec.period_type.0, spec.period_type.1));
    let default_sample_type = spec.default_sample_type.map_or(0, |ty| out.id(ty));
    let comment = vec![
        out.id(COMMENT),
        out.id("container growth classified from the heap profile's stacks"),
    ];
    let drop_frames = out.id(string(heap.drop_frames));
    let keep_frames = out.id(string(heap.keep_frames));
    Profile {
        sample_type,
        sample: samples,
        mapping,
        location,
        function,
        string_table: out.into_vec(),
        drop_frames,
        keep_frames,
        time_nanos: heap.time_nanos,
        duration_nanos: heap.duration_nanos,
        period_type,
        period: heap.period,
        comment,
        default_sample_type,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{frame, str_label, Frame, Loc, ProfileBuilder};

    /// A symbolized heap profile: sample 1 grows a HashMap under `app::fill`, sample 2 is a
    /// `Vec::with_capacity` under `app::fill`, sample 3 a realloc under `app::raw`.
    fn heap() -> Profile {
        let loc = |address, names: &[&str]| {
            Loc::inlined(names.iter().map(|&name| Frame {
                system_name: name.into(),
                line: 1,
                ..frame(name)
            }))
            .at_address(address)
        };
        let fill = loc(0x3000, &["app::fill"]);
        let values = |v: i64| [v, v * 100, 0, 0];
        ProfileBuilder::new(&[
            ("alloc_objects", "count"),
            ("alloc_space", "bytes"),
            ("inuse_objects", "count"),
            ("inuse_space", "bytes"),
        ])
        .period("space", "bytes", 524288)
        .mapping(0, 0x100000, "", false)
        .sample(
            &[
                loc(
                    0x1000,
                    &[
                        "hashbrown::raw::RawTable<T,A>::reserve_rehash",
                        "std::collections::hash::map::HashMap<K,V,S>::insert",
                    ],
                ),
                fill.clone(),
            ],
            &values(16),
        )
        .sample(
            &[loc(0x2000, &["alloc::vec::Vec<T>::with_capacity"]), fill],
            &values(5),
        )
        .labelled_sample(
            &[loc(0x4000, &["alloc::alloc::realloc", "app::raw"])],
            &values(2),
            &[str_label("alloc", "realloc")],
        )
        .sample(&[loc(0x5000, &["unused::function"])], &values(7))
        .build()
    }

    #[test]
    fn growth_samples_are_kept_with_their_container_and_the_rest_dropped() {
        let p = resize_profile(&heap());
        let v = ProfileView::new(&p).expect("valid");
        assert_eq!(v.kind_name(), "resize");
        assert_eq!(
            v.sample_types()
                .iter()
                .map(|t| (t.name, t.unit))
                .collect::<Vec<_>>(),
            [("resizes", "count"), ("resize_space", "bytes")]
        );
        assert_eq!(
            v.sample_types()[v.default_sample_index()].name,
            "resize_space"
        );
        assert_eq!(p.period, 524288);
        assert_eq!(v.string(p.period_type.unwrap().r#type), "space");
        // (frames, values, labels) of each sample.
        type Row = (Vec<String>, Vec<i64>, Vec<(String, String)>);
        let rows: Vec<Row> = v
            .samples()
            .map(|s| {
                (
                    s.frames().map(|f| f.function.to_string()).collect(),
                    s.raw().value.clone(),
                    s.raw()
                        .label
                        .iter()
                        .map(|l| (v.string(l.key).to_owned(), v.string(l.str).to_owned()))
                        .collect(),
                )
            })
            .collect();
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(rows[0].1, [16, 1600]);
        assert_eq!(
            rows[0].0[0],
            "hashbrown::raw::RawTable<T,A>::reserve_rehash"
        );
        assert_eq!(rows[0].2, [("container".into(), "HashMap".into())]);
        assert_eq!(rows[1].1, [2, 200]);
        assert_eq!(
            rows[1].2,
            [
                ("alloc".into(), "realloc".into()),
                ("container".into(), "realloc".into())
            ]
        );
        // What no kept sample uses is gone.
        assert_eq!(p.location.len(), 3);
        assert_eq!(p.function.len(), 5);
        assert!(!p.string_table.iter().any(|s| s == "unused::function"));
        assert!(!p.string_table.iter().any(|s| s == "alloc_space"));
        assert_eq!(p.comment.len(), 2);
        assert_eq!(p.string_table[p.comment[0] as usize], COMMENT);
        assert_eq!(resize_profile(&heap()), p, "deterministic");
    }

    #[test]
    fn profiles_without_heap_sample_types_or_invalid_give_an_empty_resize_profile() {
        let mut contention = heap();
        let alloc_objects = contention.sample_type[0].r#type as usize;
        contention.string_table[alloc_objects] = "contentions".into();
        let mut broken = heap();
        broken.sample[0].location_id.push(99);
        for input in [contention, broken, Profile::default()] {
            let p = resize_profile(&input);
            assert!(p.sample.is_empty() && p.location.is_empty() && p.function.is_empty());
            assert!(p.mapping.is_empty(), "an empty profile keeps no mapping");
            let v = ProfileView::new(&p).expect("valid");
            assert_eq!(v.kind_name(), "resize");
        }
    }
}
