//! Delta profiles: what happened between two snapshots of a cumulative profile, as Go's
//! `net/http/pprof` serves for `/debug/pprof/heap?seconds=N` (`serveDeltaProfile`: snapshot,
//! wait, snapshot, scale the first by -1 and merge).
//!
//! Every value is the end's minus the start's, in-use values included, as in Go: in a heap
//! delta `alloc_*` are the allocations made during the window and `inuse_*` the change of live
//! memory over it (negative where more was freed than allocated). Samples whose values are all
//! zero (stacks that did nothing during the window) are left out.
//!
//! Samples are matched by their stack (each frame's address and functions), their string labels
//! and their numeric labels, with one exception: the numeric label `bytes` of heap profiles is
//! matched by its power of two. mapprof keys heap buckets by size class (the bit length of the
//! size) and writes the bucket's *average* size as `bytes`, which moves within its class as the
//! bucket grows; Go writes exact sizes, which stay in theirs. In the delta, `bytes` is the
//! average size of the window's allocations (`alloc_space / alloc_objects`) when there were
//! any.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::codec::{validate, DecodeError};
use crate::proto::{
    Function, Label, Line, Location, Mapping, Profile, Sample, StringTable, ValueType,
};
use crate::view::string_at;

/// Why two profiles cannot be subtracted.
#[derive(Debug)]
#[non_exhaustive]
pub enum DeltaError {
    /// One of the profiles does not validate ([`crate::codec::validate`]).
    Invalid {
        /// `"start"` or `"end"`.
        which: &'static str,
        /// What is wrong with it.
        source: DecodeError,
    },
    /// The profiles have different sample types.
    SampleTypes {
        /// The start's, as `name/unit`.
        start: Vec<String>,
        /// The end's, as `name/unit`.
        end: Vec<String>,
    },
}

impl fmt::Display for DeltaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeltaError::Invalid { which, source } => {
                write!(f, "cannot subtract profiles: the {which} profile: {source}")
            }
            DeltaError::SampleTypes { start, end } => write!(
                f,
                "cannot subtract profiles with different sample types: [{}] and [{}]",
                start.join(", "),
                end.join(", ")
            ),
        }
    }
}

impl std::error::Error for DeltaError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DeltaError::Invalid { source, .. } => Some(source),
            DeltaError::SampleTypes { .. } => None,
        }
    }
}

/// The numeric label matched by its power of two (see the module documentation).
const BYTES_LABEL: &str = "bytes";

/// `end` minus `start`, sample by sample (see the module documentation). The header (sample
/// types, period, default sample type, drop frames, comments) is the end's; `time_nanos` is the
/// end's and `duration_nanos` the time between the two. Deterministic: the same inputs give the
/// same output.
pub fn delta(start: &Profile, end: &Profile) -> Result<Profile, DeltaError> {
    delta_keeping(start, end, &[])
}

/// [`delta`], except that the sample types named in `snapshot` keep the end's values: a heap
/// profile's window as continuous-profiling engines show it (Pyroscope's `memory`: what was
/// allocated over the window, and what is live at its end).
pub fn delta_keeping(
    start: &Profile,
    end: &Profile,
    snapshot: &[&str],
) -> Result<Profile, DeltaError> {
    validate(start).map_err(|source| DeltaError::Invalid {
        which: "start",
        source,
    })?;
    validate(end).map_err(|source| DeltaError::Invalid {
        which: "end",
        source,
    })?;
    let types = |p: &Profile| -> Vec<String> {
        p.sample_type
            .iter()
            .map(|t| format!("{}/{}", string_at(p, t.r#type), string_at(p, t.unit)))
            .collect()
    };
    if types(start) != types(end) {
        return Err(DeltaError::SampleTypes {
            start: types(start),
            end: types(end),
        });
    }

    let kept: Vec<bool> = end
        .sample_type
        .iter()
        .map(|t| snapshot.contains(&string_at(end, t.r#type)))
        .collect();
    let mut out = Out::default();
    let mut sums: BTreeMap<SampleKey, Sum> = BTreeMap::new();
    // The end first, so that a sample present in both keeps the end's labels.
    for (profile, sign) in [(end, 1), (start, -1)] {
        let mut import = Import::new(profile);
        for sample in &profile.sample {
            let locations: Vec<u64> = sample
                .location_id
                .iter()
                .map(|&id| import.location(&mut out, id))
                .collect();
            let labels: Vec<Label> = sample
                .label
                .iter()
                .map(|l| Label {
                    key: out.strings.id(string_at(profile, l.key)),
                    str: out.strings.id(string_at(profile, l.str)),
                    num: l.num,
                    num_unit: out.strings.id(string_at(profile, l.num_unit)),
                })
                .collect();
            let bytes_key = out.strings.id(BYTES_LABEL);
            let mut label_key: Vec<(i64, i64, i64, i64)> = labels
                .iter()
                .map(|l| {
                    let num = if l.key == bytes_key {
                        i64::from(64 - l.num.unsigned_abs().leading_zeros())
                    } else {
                        l.num
                    };
                    (l.key, l.str, num, l.num_unit)
                })
                .collect();
            label_key.sort_unstable();
            let sum = sums.entry((locations, label_key)).or_insert_with(|| Sum {
                values: vec![0; end.sample_type.len()],
                labels,
            });
            for ((total, &v), &kept) in sum.values.iter_mut().zip(&sample.value).zip(&kept) {
                if !(kept && sign < 0) {
                    *total = total.saturating_add(v.saturating_mul(sign));
                }
            }
        }
    }

    let index_of = |name: &str| {
        end.sample_type
            .iter()
            .position(|t| string_at(end, t.r#type) == name)
    };
    let alloc = index_of("alloc_objects").zip(index_of("alloc_space"));
    let bytes_key = out.strings.id(BYTES_LABEL);
    let sample = sums
        .into_iter()
        .filter(|(_, sum)| sum.values.iter().any(|&v| v != 0))
        .map(|((location_id, _), mut sum)| {
            if let Some((objects, space)) = alloc {
                let (objects, space) = (sum.values[objects], sum.values[space]);
                if objects > 0 {
                    let average = (space as f64 / objects as f64).round() as i64;
                    for l in sum.labels.iter_mut().filter(|l| l.key == bytes_key) {
                        l.num = average;
                    }
                }
            }
            Sample {
                location_id,
                value: sum.values,
                label: sum.labels,
            }
        })
        .collect();

    let mut value_type = |t: &ValueType| {
        out.strings
            .value_type(string_at(end, t.r#type), string_at(end, t.unit))
    };
    let sample_type = end.sample_type.iter().map(&mut value_type).collect();
    let period_type = end.period_type.as_ref().map(&mut value_type);
    let drop_frames = out.strings.id(string_at(end, end.drop_frames));
    let keep_frames = out.strings.id(string_at(end, end.keep_frames));
    let default_sample_type = out.strings.id(string_at(end, end.default_sample_type));
    let comment = end
        .comment
        .iter()
        .map(|&c| out.strings.id(string_at(end, c)))
        .collect();
    let duration_nanos = if start.time_nanos > 0 && end.time_nanos > start.time_nanos {
        end.time_nanos - start.time_nanos
    } else {
        end.duration_nanos
    };
    Ok(Profile {
        sample_type,
        sample,
        mapping: out.mappings,
        location: out.locations,
        function: out.functions,
        string_table: out.strings.into_vec(),
        drop_frames,
        keep_frames,
        time_nanos: end.time_nanos,
        duration_nanos,
        period_type,
        period: end.period,
        comment,
        default_sample_type,
    })
}

/// Locations (output ids) and labels as (key, str, num or power of two, unit), sorted.
type SampleKey = (Vec<u64>, Vec<(i64, i64, i64, i64)>);

/// The running difference of one sample, with the labels it is written with.
struct Sum {
    values: Vec<i64>,
    labels: Vec<Label>,
}

/// The output's tables, each entry once.
#[derive(Default)]
struct Out {
    strings: StringTable,
    mappings: Vec<Mapping>,
    mapping_ids: HashMap<Mapping, u64>,
    functions: Vec<Function>,
    function_ids: HashMap<Function, u64>,
    locations: Vec<Location>,
    location_ids: HashMap<Location, u64>,
}

/// Adds the entries of one input profile to an [`Out`], remembering the ids it gave them.
struct Import<'a> {
    profile: &'a Profile,
    locations: HashMap<u64, &'a Location>,
    functions: HashMap<u64, &'a Function>,
    mappings: HashMap<u64, &'a Mapping>,
    location_ids: HashMap<u64, u64>,
}

impl<'a> Import<'a> {
    fn new(profile: &'a Profile) -> Self {
        Import {
            profile,
            locations: profile.location.iter().map(|l| (l.id, l)).collect(),
            functions: profile.function.iter().map(|f| (f.id, f)).collect(),
            mappings: profile.mapping.iter().map(|m| (m.id, m)).collect(),
            location_ids: HashMap::new(),
        }
    }

    /// The output id of input location `id` (which exists: the profile was validated).
    fn location(&mut self, out: &mut Out, id: u64) -> u64 {
        if let Some(&new) = self.location_ids.get(&id) {
            return new;
        }
        let l = self.locations[&id];
        let p = self.profile;
        let mapping_id = match self.mappings.get(&l.mapping_id) {
            Some(m) => {
                let key = Mapping {
                    id: 0,
                    filename: out.strings.id(string_at(p, m.filename)),
                    build_id: out.strings.id(string_at(p, m.build_id)),
                    ..(*m).clone()
                };
                let next = out.mappings.len() as u64 + 1;
                let id = *out.mapping_ids.entry(key.clone()).or_insert(next);
                if id == next {
                    out.mappings.push(Mapping { id, ..key });
                }
                id
            }
            None => 0,
        };
        let line = l
            .line
            .iter()
            .map(|line| {
                let function_id = match self.functions.get(&line.function_id) {
                    Some(f) => {
                        let key = Function {
                            id: 0,
                            name: out.strings.id(string_at(p, f.name)),
                            system_name: out.strings.id(string_at(p, f.system_name)),
                            filename: out.strings.id(string_at(p, f.filename)),
                            start_line: f.start_line,
                        };
                        let next = out.functions.len() as u64 + 1;
                        let id = *out.function_ids.entry(key.clone()).or_insert(next);
                        if id == next {
                            out.functions.push(Function { id, ..key });
                        }
                        id
                    }
                    None => 0,
                };
                Line {
                    function_id,
                    ..*line
                }
            })
            .collect();
        let key = Location {
            id: 0,
            mapping_id,
            address: l.address,
            line,
            is_folded: l.is_folded,
        };
        let next = out.locations.len() as u64 + 1;
        let new = *out.location_ids.entry(key.clone()).or_insert(next);
        if new == next {
            out.locations.push(Location { id: new, ..key });
        }
        self.location_ids.insert(id, new);
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{frame, num_label, Frame, Loc, ProfileBuilder};

    /// A tiny profile: sample types `alloc_objects/count, alloc_space/bytes, inuse_space/bytes`,
    /// samples given as (frames leaf first, values, bytes label), one location per function
    /// name.
    fn heap(samples: &[(&[&str], [i64; 3], i64)], time: i64) -> Profile {
        let location = |name: &str| {
            Loc::from(Frame {
                system_name: name.into(),
                line: 1,
                ..frame(name)
            })
            // The same function at the same address in every profile, as in one process.
            .at_address(name.bytes().fold(0x1000, |a, b| a * 31 + u64::from(b)))
        };
        let types = [
            ("alloc_objects", "count"),
            ("alloc_space", "bytes"),
            ("inuse_space", "bytes"),
        ];
        samples
            .iter()
            .fold(
                ProfileBuilder::new(&types).time_nanos(time),
                |b, (frames, values, size)| {
                    let stack: Vec<Loc> = frames.iter().map(|f| location(f)).collect();
                    b.labelled_sample(&stack, values, &[num_label("bytes", *size, None)])
                },
            )
            .build()
    }

    /// (leaf first frame names, values, bytes) of each sample.
    fn samples(p: &Profile) -> Vec<(Vec<String>, Vec<i64>, i64)> {
        let mut all: Vec<_> = p
            .sample
            .iter()
            .map(|s| {
                let frames = s
                    .location_id
                    .iter()
                    .map(|id| {
                        let l = p.location.iter().find(|l| l.id == *id).unwrap();
                        let f = p
                            .function
                            .iter()
                            .find(|f| f.id == l.line[0].function_id)
                            .unwrap();
                        string_at(p, f.name).to_owned()
                    })
                    .collect();
                (frames, s.value.clone(), s.label[0].num)
            })
            .collect();
        all.sort();
        all
    }

    /// The start of the windows below: a growing, an idle and a freed stack.
    fn window_start() -> Profile {
        heap(
            &[
                (&["grow", "main"], [10, 1000, 500], 100),
                (&["idle", "main"], [4, 400, 400], 100),
                (&["gone", "main"], [2, 20, 20], 10),
            ],
            1_000,
        )
    }

    /// A sample as [`samples`] lists it.
    fn s(frames: &[&str], values: [i64; 3], bytes: i64) -> (Vec<String>, Vec<i64>, i64) {
        let frames = frames.iter().map(|f| f.to_string()).collect();
        (frames, values.to_vec(), bytes)
    }

    #[test]
    fn subtracts_matching_samples_and_drops_unchanged_ones() {
        let start = window_start();
        let end = heap(
            &[
                (&["grow", "main"], [30, 3400, 600], 113),
                (&["idle", "main"], [4, 400, 400], 100),
                (&["new", "main"], [1, 64, 0], 64),
            ],
            3_000,
        );
        let d = delta(&start, &end).unwrap();
        validate(&d).unwrap();
        assert_eq!(
            samples(&d),
            vec![
                s(&["gone", "main"], [-2, -20, -20], 10),
                // 20 objects of 2400 bytes in the window: 120 bytes each.
                s(&["grow", "main"], [20, 2400, 100], 120),
                s(&["new", "main"], [1, 64, 0], 64),
            ]
        );
        assert_eq!((d.time_nanos, d.duration_nanos), (3_000, 2_000));
        assert_eq!(delta(&end, &end).unwrap().sample, vec![]);
    }

    #[test]
    fn snapshot_types_keep_the_ends_values() {
        let start = window_start();
        let end = heap(
            &[
                (&["grow", "main"], [30, 3400, 600], 113),
                (&["idle", "main"], [4, 400, 400], 100),
            ],
            3_000,
        );
        let d = delta_keeping(&start, &end, &["inuse_space"]).unwrap();
        validate(&d).unwrap();
        assert_eq!(
            samples(&d),
            vec![
                // Freed entirely: its allocations are the start's, and nothing is live.
                s(&["gone", "main"], [-2, -20, 0], 10),
                s(&["grow", "main"], [20, 2400, 600], 120),
                // Nothing allocated over the window, but still live: kept.
                s(&["idle", "main"], [0, 0, 400], 100),
            ]
        );
    }

    #[test]
    fn bytes_is_matched_by_its_power_of_two() {
        // One stack, two size classes; each class's average moved within its power of two.
        let start = heap(
            &[(&["f"], [1, 100, 0], 100), (&["f"], [1, 1000, 0], 1000)],
            1,
        );
        let end = heap(
            &[(&["f"], [3, 330, 0], 110), (&["f"], [1, 1000, 0], 1000)],
            2,
        );
        let d = delta(&start, &end).unwrap();
        assert_eq!(
            samples(&d),
            vec![(vec!["f".to_owned()], vec![2, 230, 0], 115)]
        );
    }

    #[test]
    fn different_sample_types_are_refused() {
        let a = heap(&[], 1);
        let mut b = heap(&[], 2);
        b.sample_type.pop();
        let e = delta(&a, &b).unwrap_err();
        assert!(e.to_string().contains("different sample types"), "{e}");
    }
}
