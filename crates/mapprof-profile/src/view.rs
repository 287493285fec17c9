//! A resolved view of a decoded profile: names instead of string indices, stacks as frames.
//!
//! [`ProfileView::new`] validates the profile (see [`crate::codec::validate`]) and expands every
//! Location into its frames once, so iterating samples afterwards only follows ids that are known
//! to exist.

use std::borrow::Cow;
use std::collections::HashMap;
use std::error::Error;
use std::fmt;

use crate::codec::{validate, DecodeError};
use crate::limits::{
    LimitExceeded, MAX_FRAMES_PER_SAMPLE, MAX_TOTAL_FRAMES, MAX_TOTAL_FRAME_NAME_BYTES,
    MAX_TOTAL_VALUE,
};
use crate::proto::{Location, Profile, Sample};

/// The name and unit of one sample type (one column of values), e.g. `alloc_space` / `bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleType<'a> {
    /// The type, e.g. `alloc_space`, `delay`, `samples`.
    pub name: &'a str,
    /// The unit, e.g. `bytes`, `nanoseconds`, `count`.
    pub unit: &'a str,
}

/// One frame of a stack: a function at a source position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The function's `name`, else its `system_name`; for an unsymbolized location (no lines)
    /// the location's address in hex, e.g. `0x55d3c0a1b2c3`.
    pub function: Cow<'a, str>,
    /// The source file, empty when unknown.
    pub file: &'a str,
    /// The source line, 0 when unknown.
    pub line: i64,
    /// True when this frame was inlined into its caller (every line of a Location but the
    /// last, which is the outermost function).
    pub inlined: bool,
}

/// A decoded profile with its strings and stacks resolved. Cheap to query; built once.
#[derive(Debug)]
pub struct ProfileView<'a> {
    profile: &'a Profile,
    sample_types: Vec<SampleType<'a>>,
    /// Frames of each Location, leaf (innermost inlined) first, after `drop_frames` pruning.
    frames: HashMap<u64, Vec<Frame<'a>>>,
    /// Per sample: how many leaf locations `drop_frames` pruning removes.
    pruned_leaves: Vec<usize>,
}

impl<'a> ProfileView<'a> {
    /// Validates `profile` and resolves it, applying its `drop_frames`/`keep_frames` the way
    /// `go tool pprof` does, so that both show the same stacks.
    pub fn new(profile: &'a Profile) -> Result<Self, DecodeError> {
        let mut view = Self::unpruned(profile)?;
        view.prune();
        Ok(view)
    }

    /// Validates `profile` and resolves it with every frame the file holds (no pruning).
    ///
    /// Refuses, before expanding anything, a profile whose stacks would expand past
    /// [`MAX_FRAMES_PER_SAMPLE`], [`MAX_TOTAL_FRAMES`] or [`MAX_TOTAL_FRAME_NAME_BYTES`], or
    /// whose values of one sample type sum past [`MAX_TOTAL_VALUE`] (see [`crate::limits`]).
    pub fn unpruned(profile: &'a Profile) -> Result<Self, DecodeError> {
        validate(profile)?;
        check_expansion(profile)?;
        let string = |i: i64| string_at(profile, i);
        let sample_types = profile
            .sample_type
            .iter()
            .map(|vt| SampleType {
                name: string(vt.r#type),
                unit: string(vt.unit),
            })
            .collect();
        let functions: HashMap<u64, &crate::proto::Function> =
            profile.function.iter().map(|f| (f.id, f)).collect();
        let frames = profile
            .location
            .iter()
            .map(|loc| (loc.id, location_frames(profile, &functions, loc)))
            .collect();
        Ok(Self {
            profile,
            sample_types,
            frames,
            pruned_leaves: vec![0; profile.sample.len()],
        })
    }

    /// pprof's `Profile.Prune`: in each location, the outermost frame matching `drop_frames`
    /// (and not `keep_frames`) is removed with everything inlined into it; a sample loses the
    /// leaf-most locations from the first pruned one on, scanning from the root and starting
    /// only after the first location that is not pruned. An invalid regex prunes nothing.
    fn prune(&mut self) {
        let anchored = |i: i64| {
            let rx = self.string(i);
            (!rx.is_empty())
                .then(|| regex::Regex::new(&format!("^({rx})$")).ok())
                .flatten()
        };
        let Some(drop) = anchored(self.profile.drop_frames) else {
            return;
        };
        let keep = anchored(self.profile.keep_frames);
        let matches = |name: &str| {
            // pprof's simplifyFunc: the name up to its argument list.
            let name = name.split('(').next().unwrap_or(name);
            drop.is_match(name) && !keep.as_ref().is_some_and(|k| k.is_match(name))
        };
        let mut whole = HashMap::new(); // location id -> pruned entirely
        for (id, frames) in self.frames.iter_mut() {
            if let Some(i) = frames.iter().rposition(|f| matches(&f.function)) {
                let entire = i + 1 == frames.len();
                whole.insert(*id, entire);
                // A wholly pruned location keeps its frames where no sample cuts it.
                if !entire {
                    frames.drain(..=i);
                }
            }
        }
        for (sample, skip) in self.profile.sample.iter().zip(&mut self.pruned_leaves) {
            let ids = &sample.location_id;
            let mut found_user = false;
            for i in (0..ids.len()).rev() {
                match whole.get(&ids[i]) {
                    None => found_user = true,
                    Some(_) if !found_user => {}
                    Some(true) => {
                        *skip = i + 1;
                        break;
                    }
                    Some(false) => {
                        *skip = i;
                        break;
                    }
                }
            }
        }
    }

    /// The underlying profile.
    pub fn profile(&self) -> &'a Profile {
        self.profile
    }

    /// The string at `index` of the string table, `""` when out of range.
    pub fn string(&self, index: i64) -> &'a str {
        string_at(self.profile, index)
    }

    /// The sample types, in the order of each sample's values.
    pub fn sample_types(&self) -> &[SampleType<'a>] {
        &self.sample_types
    }

    /// The name and unit of sample type `index`, owned, for tables that outlive the view;
    /// empty for an index out of range.
    pub fn sample_type_owned(&self, index: usize) -> (String, String) {
        self.sample_types
            .get(index)
            .map_or_else(Default::default, |t| (t.name.to_owned(), t.unit.to_owned()))
    }

    /// The sample type to show when none is asked for, by pprof's rule: the one named by
    /// `default_sample_type` if it names one, else the last.
    pub fn default_sample_index(&self) -> usize {
        let default = self.string(self.profile.default_sample_type);
        if !default.is_empty() {
            if let Some(i) = self.sample_types.iter().position(|t| t.name == default) {
                return i;
            }
        }
        self.sample_types.len().saturating_sub(1)
    }

    /// The index of the sample type called `name`. Like pprof's `-sample_index`, a number in
    /// range is also accepted.
    pub fn sample_index_by_name(&self, name: &str) -> Result<usize, UnknownSampleType> {
        if let Some(i) = self.sample_types.iter().position(|t| t.name == name) {
            return Ok(i);
        }
        match name.parse::<usize>() {
            Ok(i) if i < self.sample_types.len() => Ok(i),
            _ => Err(UnknownSampleType {
                requested: name.to_owned(),
                available: self
                    .sample_types
                    .iter()
                    .map(|t| t.name.to_owned())
                    .collect(),
            }),
        }
    }

    /// The conventional name of this kind of profile, derived from its sample types as Go names
    /// them: `heap` (or `allocs` when the default sample type is `alloc_space`), `cpu`,
    /// `contention` (mutex and block profiles share sample types), `resize`, `goroutine`, else
    /// `profile`.
    pub fn kind_name(&self) -> &'static str {
        let has = |name: &str| self.sample_types.iter().any(|t| t.name == name);
        if has("alloc_space") || has("inuse_space") {
            let default = self.sample_types.get(self.default_sample_index());
            if default.is_some_and(|t| t.name == "alloc_space") {
                "allocs"
            } else {
                "heap"
            }
        } else if has("cpu") || has("samples") {
            "cpu"
        } else if has("contentions") || has("delay") {
            // Go's mutex and block profiles are alike; mapprof says which in a comment.
            let says = |name: &str| {
                let comment = format!("mapprof {name} profile");
                self.profile
                    .comment
                    .iter()
                    .any(|&c| self.string(c) == comment)
            };
            if says("mutex") {
                "mutex"
            } else if says("block") {
                "block"
            } else {
                "contention"
            }
        } else if has("resizes") || has("resize_space") {
            "resize"
        } else if has("goroutine") || has("goroutines") {
            "goroutine"
        } else {
            "profile"
        }
    }

    /// The samples, in profile order.
    pub fn samples(&self) -> impl Iterator<Item = SampleRef<'_, 'a>> + '_ {
        self.profile
            .sample
            .iter()
            .zip(&self.pruned_leaves)
            .map(move |(sample, &skip)| SampleRef {
                view: self,
                sample,
                skip,
            })
    }

    /// The sum of the values at `index` over all samples (saturating).
    pub fn total(&self, index: usize) -> i64 {
        self.samples()
            .fold(0i64, |acc, s| acc.saturating_add(s.value(index)))
    }
}

/// One sample of a [`ProfileView`]: its values and its stack.
#[derive(Debug, Clone, Copy)]
pub struct SampleRef<'v, 'a> {
    view: &'v ProfileView<'a>,
    sample: &'a Sample,
    /// Leaf locations removed by pruning.
    skip: usize,
}

impl<'v, 'a> SampleRef<'v, 'a> {
    /// The value at sample-type `index`, 0 when out of range.
    pub fn value(&self, index: usize) -> i64 {
        self.sample.value.get(index).copied().unwrap_or(0)
    }

    /// The stack, leaf first, inlined frames expanded.
    pub fn frames(&self) -> impl Iterator<Item = &'v Frame<'a>> + 'v {
        let view = self.view;
        self.sample.location_id[self.skip..]
            .iter()
            .flat_map(move |id| view.frames.get(id).into_iter().flatten())
    }

    /// The raw sample.
    pub fn raw(&self) -> &'a Sample {
        self.sample
    }
}

/// A sample type asked for by name that the profile does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownSampleType {
    requested: String,
    available: Vec<String>,
}

impl UnknownSampleType {
    /// The names this profile does have.
    pub fn available(&self) -> &[String] {
        &self.available
    }
}

impl fmt::Display for UnknownSampleType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no sample type {:?} in this profile; it has: {}",
            self.requested,
            self.available.join(", ")
        )
    }
}

impl Error for UnknownSampleType {}

/// The limits on what a profile's samples expand to, checked on the Locations' line counts
/// before any frame is built. Counting stops at the first limit crossed.
fn check_expansion(profile: &Profile) -> Result<(), LimitExceeded> {
    let mut lines_total = 0u64;
    for loc in &profile.location {
        let lines = (loc.line.len() as u64).max(1);
        if lines > MAX_FRAMES_PER_SAMPLE {
            return Err(LimitExceeded::new(
                "MAX_FRAMES_PER_SAMPLE",
                format!("location {} has", loc.id),
                lines,
                MAX_FRAMES_PER_SAMPLE,
                "inlined lines (frames)",
            ));
        }
        lines_total += lines;
        if lines_total > MAX_TOTAL_FRAMES {
            return Err(LimitExceeded::new(
                "MAX_TOTAL_FRAMES",
                "the locations hold at least",
                lines_total,
                MAX_TOTAL_FRAMES,
                "lines (frames)",
            ));
        }
    }
    let functions: HashMap<u64, &crate::proto::Function> =
        profile.function.iter().map(|f| (f.id, f)).collect();
    // Per location: (frames, bytes of their names); an address is at most 18 bytes.
    let cost: HashMap<u64, (u64, u64)> = profile
        .location
        .iter()
        .map(|loc| {
            let names = loc.line.iter().fold(0u64, |acc, line| {
                let len = functions.get(&line.function_id).map_or(18, |f| {
                    let name = string_at(profile, f.name).len();
                    if name > 0 {
                        name
                    } else {
                        string_at(profile, f.system_name).len().max(18)
                    }
                });
                acc.saturating_add(len as u64)
            });
            (loc.id, ((loc.line.len() as u64).max(1), names.max(18)))
        })
        .collect();
    let (mut frames_total, mut names_total) = (0u64, 0u64);
    let mut sums = vec![0u128; profile.sample_type.len()];
    for (i, sample) in profile.sample.iter().enumerate() {
        let refuse_sample = |seen| {
            LimitExceeded::new(
                "MAX_FRAMES_PER_SAMPLE",
                format!("sample {i} expands to at least"),
                seen,
                MAX_FRAMES_PER_SAMPLE,
                "frames",
            )
        };
        // Every location is at least one frame: no need to look them up to refuse.
        if sample.location_id.len() as u64 > MAX_FRAMES_PER_SAMPLE {
            return Err(refuse_sample(sample.location_id.len() as u64));
        }
        let mut frames = 0u64;
        for id in &sample.location_id {
            let (f, n) = cost.get(id).copied().unwrap_or((1, 18));
            frames += f;
            names_total = names_total.saturating_add(n);
            if frames > MAX_FRAMES_PER_SAMPLE {
                return Err(refuse_sample(frames));
            }
        }
        frames_total += frames;
        if frames_total > MAX_TOTAL_FRAMES {
            return Err(LimitExceeded::new(
                "MAX_TOTAL_FRAMES",
                "the samples expand to at least",
                frames_total,
                MAX_TOTAL_FRAMES,
                "frames",
            ));
        }
        if names_total > MAX_TOTAL_FRAME_NAME_BYTES {
            return Err(LimitExceeded::new(
                "MAX_TOTAL_FRAME_NAME_BYTES",
                "the samples' frames name functions in at least",
                names_total,
                MAX_TOTAL_FRAME_NAME_BYTES,
                "bytes",
            ));
        }
        for (sum, &v) in sums.iter_mut().zip(&sample.value) {
            *sum += u128::from(v.unsigned_abs());
        }
    }
    for (i, &sum) in sums.iter().enumerate() {
        if sum > u128::from(MAX_TOTAL_VALUE) {
            let name = string_at(profile, profile.sample_type[i].r#type);
            return Err(LimitExceeded::new(
                "MAX_TOTAL_VALUE",
                format!("the absolute values of sample type {name:?} sum to"),
                u64::try_from(sum).unwrap_or(u64::MAX),
                MAX_TOTAL_VALUE,
                "units",
            ));
        }
    }
    Ok(())
}

pub(crate) fn string_at(profile: &Profile, index: i64) -> &str {
    usize::try_from(index)
        .ok()
        .and_then(|i| profile.string_table.get(i))
        .map_or("", String::as_str)
}

fn location_frames<'a>(
    profile: &'a Profile,
    functions: &HashMap<u64, &'a crate::proto::Function>,
    loc: &'a Location,
) -> Vec<Frame<'a>> {
    let address = || Cow::Owned(format!("{:#x}", loc.address));
    if loc.line.is_empty() {
        return vec![Frame {
            function: address(),
            file: "",
            line: 0,
            inlined: false,
        }];
    }
    let last = loc.line.len() - 1;
    loc.line
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let function = functions.get(&line.function_id);
            let name = function.map_or("", |f| {
                let name = string_at(profile, f.name);
                if name.is_empty() {
                    string_at(profile, f.system_name)
                } else {
                    name
                }
            });
            Frame {
                function: if name.is_empty() {
                    address()
                } else {
                    Cow::Borrowed(name)
                },
                file: function.map_or("", |f| string_at(profile, f.filename)),
                line: line.line,
                inlined: i != last,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{frame, Frame, Loc, ProfileBuilder};

    /// main → (inlined) helper → leaf at 0x10, plus an unsymbolized location 0x55d3c0a1b2c3.
    fn profile() -> Profile {
        let in_main = |f: Frame, line| Frame {
            file: "src/main.rs".into(),
            line,
            ..f
        };
        // helper is known only by its symbol name.
        let helper = Frame {
            system_name: "_ZN6helper".into(),
            ..frame("")
        };
        let at_0x10 = Loc::inlined([in_main(helper, 20), in_main(frame("main"), 10)]);
        ProfileBuilder::new(&[("alloc_objects", "count"), ("alloc_space", "bytes")])
            .sample(
                &[Loc::address(0x55d3c0a1b2c3), at_0x10.at_address(0x10)],
                &[5, 500],
            )
            .build()
    }

    #[test]
    fn frames_are_leaf_first_with_inlines_expanded() {
        let p = profile();
        let v = ProfileView::new(&p).unwrap();
        let s = v.samples().next().unwrap();
        assert_eq!(s.value(1), 500);
        let frames: Vec<_> = s
            .frames()
            .map(|f| (f.function.as_ref(), f.file, f.line, f.inlined))
            .collect();
        assert_eq!(
            frames,
            [
                ("0x55d3c0a1b2c3", "", 0, false),
                ("_ZN6helper", "src/main.rs", 20, true),
                ("main", "src/main.rs", 10, false),
            ]
        );
    }

    #[test]
    fn default_sample_index_follows_pprof() {
        let mut p = profile();
        assert_eq!(ProfileView::new(&p).unwrap().default_sample_index(), 1);
        assert_eq!(ProfileView::new(&p).unwrap().kind_name(), "allocs");
        p.default_sample_type = p.sample_type[0].r#type; // alloc_objects
        let v = ProfileView::new(&p).unwrap();
        assert_eq!(v.default_sample_index(), 0);
        assert_eq!(v.kind_name(), "heap");
    }

    #[test]
    fn unknown_sample_type_lists_the_available_ones() {
        let p = profile();
        let v = ProfileView::new(&p).unwrap();
        assert_eq!(v.sample_index_by_name("alloc_space"), Ok(1));
        assert_eq!(v.sample_index_by_name("0"), Ok(0));
        let e = v.sample_index_by_name("inuse_space").unwrap_err();
        assert_eq!(
            e.to_string(),
            "no sample type \"inuse_space\" in this profile; it has: alloc_objects, alloc_space"
        );
    }
}
