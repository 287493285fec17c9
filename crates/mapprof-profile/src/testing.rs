//! Hand-built profiles for tests, written as readable stacks: function names, values, labels.
//! Every id and string index is assigned here, so no test numbers a string table by hand.
//! Test support only (hidden from the documentation); mapprof's and the CLI's tests use it too.
//!
//! ```
//! use mapprof_profile::testing::{at, ProfileBuilder};
//! let profile = ProfileBuilder::new(&[("alloc_space", "bytes")])
//!     .sample(&["alloc::raw_vec::finish_grow".into(), at("app::f", "src/f.rs", 3)], &[64])
//!     .build();
//! assert_eq!(profile.location.len(), 2);
//! ```

use std::collections::HashMap;

use crate::builder::LabelValue;
use crate::proto::{Function, Line, Location, Mapping, Profile, Sample, StringTable};

/// One frame of a [`Loc`]: a function, where it was compiled, and the line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Frame {
    /// The function's (demangled) name; empty for a function known only by `system_name`.
    pub name: String,
    /// The function's raw symbol name; empty when it is the same as `name`.
    pub system_name: String,
    /// Its source file; empty when unknown.
    pub file: String,
    /// The line; 0 when unknown.
    pub line: i64,
}

/// A frame of `name`, without a file.
pub fn frame(name: &str) -> Frame {
    Frame {
        name: name.to_owned(),
        system_name: String::new(),
        file: String::new(),
        line: 0,
    }
}

/// A location of one frame, `name` at `file:line`.
pub fn at(name: &str, file: &str, line: i64) -> Loc {
    Loc::from(Frame {
        file: file.to_owned(),
        line,
        ..frame(name)
    })
}

/// A location: an address and its frames, innermost (inlined) first. An address without
/// frames is an unsymbolized location.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Loc {
    /// The address; 0 when none.
    pub address: u64,
    /// The frames, innermost first.
    pub frames: Vec<Frame>,
}

impl Loc {
    /// An unsymbolized location at `address`.
    pub fn address(address: u64) -> Loc {
        Loc {
            address,
            frames: Vec::new(),
        }
    }

    /// `frames` inlined into one location, innermost first.
    pub fn inlined(frames: impl IntoIterator<Item = Frame>) -> Loc {
        Loc {
            address: 0,
            frames: frames.into_iter().collect(),
        }
    }

    /// The same location at `address`.
    pub fn at_address(mut self, address: u64) -> Loc {
        self.address = address;
        self
    }
}

impl From<Frame> for Loc {
    fn from(frame: Frame) -> Loc {
        Loc::inlined([frame])
    }
}

impl From<&str> for Loc {
    fn from(name: &str) -> Loc {
        Loc::from(frame(name))
    }
}

/// A string label.
pub fn str_label(key: &str, value: &str) -> (String, LabelValue) {
    (key.to_owned(), LabelValue::Str(value.to_owned()))
}

/// A numeric label, with its unit when given.
pub fn num_label(key: &str, value: i64, unit: Option<&str>) -> (String, LabelValue) {
    (
        key.to_owned(),
        LabelValue::Num(value, unit.map(str::to_owned)),
    )
}

/// Builds a [`Profile`] from stacks. Functions and locations are numbered from 1 in the order
/// they first appear; equal locations (address and frames) are one Location. Samples stay in
/// the order given, unmerged.
#[derive(Debug, Default)]
pub struct ProfileBuilder {
    profile: Profile,
    strings: StringTable,
    functions: HashMap<(String, String, String), u64>,
    locations: HashMap<Loc, u64>,
}

impl ProfileBuilder {
    /// A profile of these (type, unit) sample types, no period.
    pub fn new(sample_types: &[(&str, &str)]) -> ProfileBuilder {
        let mut b = ProfileBuilder::default();
        b.profile.sample_type = sample_types
            .iter()
            .map(|(ty, unit)| b.strings.value_type(ty, unit))
            .collect();
        b
    }

    /// The sampling period and its (type, unit).
    pub fn period(mut self, ty: &str, unit: &str, period: i64) -> ProfileBuilder {
        self.profile.period_type = Some(self.strings.value_type(ty, unit));
        self.profile.period = period;
        self
    }

    /// The sample type viewers show by default.
    pub fn default_sample_type(mut self, ty: &str) -> ProfileBuilder {
        self.profile.default_sample_type = self.strings.id(ty);
        self
    }

    /// Adds a comment.
    pub fn comment(mut self, text: &str) -> ProfileBuilder {
        let id = self.strings.id(text);
        self.profile.comment.push(id);
        self
    }

    /// The `drop_frames` regular expression.
    pub fn drop_frames(mut self, regex: &str) -> ProfileBuilder {
        self.profile.drop_frames = self.strings.id(regex);
        self
    }

    /// The time of collection, in ns since the epoch.
    pub fn time_nanos(mut self, nanos: i64) -> ProfileBuilder {
        self.profile.time_nanos = nanos;
        self
    }

    /// Adds a mapping of `[start, limit)` from `file`; `symbolized` sets its `has_*` flags.
    /// Locations whose address falls in it refer to it.
    pub fn mapping(mut self, start: u64, limit: u64, file: &str, symbolized: bool) -> Self {
        let id = self.profile.mapping.len() as u64 + 1;
        let filename = self.strings.id(file);
        self.profile.mapping.push(Mapping {
            id,
            memory_start: start,
            memory_limit: limit,
            filename,
            has_functions: symbolized,
            has_filenames: symbolized,
            has_line_numbers: symbolized,
            has_inline_frames: symbolized,
            ..Mapping::default()
        });
        self
    }

    /// Adds a sample: its stack, leaf first, and one value per sample type.
    pub fn sample(self, stack: &[Loc], values: &[i64]) -> ProfileBuilder {
        self.labelled_sample(stack, values, &[])
    }

    /// Adds a sample of function names (leaf first, one frame per location, no files).
    pub fn names(self, stack: &[&str], values: &[i64]) -> ProfileBuilder {
        let stack: Vec<Loc> = stack.iter().map(|&name| Loc::from(name)).collect();
        self.sample(&stack, values)
    }

    /// Adds a sample with labels.
    pub fn labelled_sample(
        mut self,
        stack: &[Loc],
        values: &[i64],
        labels: &[(String, LabelValue)],
    ) -> ProfileBuilder {
        let location_id = stack.iter().map(|loc| self.location(loc)).collect();
        let label = labels
            .iter()
            .map(|(key, value)| value.to_label(key, &mut self.strings))
            .collect();
        self.profile.sample.push(Sample {
            location_id,
            value: values.to_vec(),
            label,
        });
        self
    }

    /// The profile.
    pub fn build(mut self) -> Profile {
        self.profile.string_table = self.strings.into_vec();
        self.profile
    }

    fn location(&mut self, loc: &Loc) -> u64 {
        if let Some(&id) = self.locations.get(loc) {
            return id;
        }
        let line = loc
            .frames
            .iter()
            .map(|f| Line {
                function_id: self.function(f),
                line: f.line,
                column: 0,
            })
            .collect();
        let mapping = self
            .profile
            .mapping
            .iter()
            .find(|m| m.memory_start <= loc.address && loc.address < m.memory_limit);
        let id = self.profile.location.len() as u64 + 1;
        self.profile.location.push(Location {
            id,
            mapping_id: mapping.map_or(0, |m| m.id),
            address: loc.address,
            line,
            is_folded: false,
        });
        self.locations.insert(loc.clone(), id);
        id
    }

    fn function(&mut self, f: &Frame) -> u64 {
        let key = (f.name.clone(), f.system_name.clone(), f.file.clone());
        if let Some(&id) = self.functions.get(&key) {
            return id;
        }
        let id = self.profile.function.len() as u64 + 1;
        let function = Function {
            id,
            name: self.strings.id(&f.name),
            system_name: self.strings.id(&f.system_name),
            filename: self.strings.id(&f.file),
            start_line: 0,
        };
        self.profile.function.push(function);
        self.functions.insert(key, id);
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::ProfileView;

    #[test]
    fn stacks_read_back_as_written() {
        let p = ProfileBuilder::new(&[("alloc_space", "bytes")])
            .period("space", "bytes", 512)
            .sample(
                &[
                    Loc::inlined([frame("helper"), frame("main")]).at_address(0x10),
                    at("main", "src/main.rs", 3),
                    Loc::address(0x55d3c0a1b2c3),
                ],
                &[7],
            )
            .labelled_sample(&["main".into()], &[2], &[str_label("role", "x")])
            .build();
        let view = ProfileView::new(&p).unwrap();
        let stacks: Vec<Vec<String>> = view
            .samples()
            .map(|s| s.frames().map(|f| f.function.to_string()).collect())
            .collect();
        assert_eq!(
            stacks,
            [
                vec!["helper", "main", "main", "0x55d3c0a1b2c3"],
                vec!["main"]
            ]
        );
        assert_eq!(
            p.function.len(),
            3,
            "helper, and main with a file and without"
        );
        assert_eq!(p.location.len(), 4);
        assert_eq!(p.string_table[0], "");
    }
}
