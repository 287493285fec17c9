//! Several profiles of one kind as one, as `go tool pprof a.pb.gz b.pb.gz` merges them: every
//! sample of each, with its stack and labels. The profiles must have the same sample types
//! (names and units, in order); the first one's header (period, default sample type,
//! `drop_frames`) is kept, durations add up and the earliest time is the merged one's.

use std::collections::HashMap;
use std::fmt;

use crate::proto::{Function, Label, Line, Location, Mapping, Profile, Sample, ValueType};

/// Two inputs whose sample types differ: which ones, and their types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeError {
    first: (String, String),
    other: (String, String),
}

impl fmt::Display for MergeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot merge profiles of different kinds: {} has sample types {}, {} has {}",
            self.first.0, self.first.1, self.other.0, self.other.1
        )
    }
}

impl std::error::Error for MergeError {}

/// `type/unit, ...` of `p`.
fn sample_types(p: &Profile) -> String {
    let text = |i: i64| p.string_table.get(i as usize).map_or("", String::as_str);
    let types: Vec<String> = p
        .sample_type
        .iter()
        .map(|t| format!("{}/{}", text(t.r#type), text(t.unit)))
        .collect();
    format!("[{}]", types.join(", "))
}

/// The profiles `(name, profile)` (decoded, so valid) as one; the names are for the error.
/// One profile comes back unchanged.
pub fn merge(mut inputs: Vec<(String, Profile)>) -> Result<Profile, MergeError> {
    let first_types = inputs.first().map(|(_, p)| sample_types(p));
    for (name, p) in &inputs[1.min(inputs.len())..] {
        let types = sample_types(p);
        if Some(&types) != first_types.as_ref() {
            return Err(MergeError {
                first: (inputs[0].0.clone(), first_types.unwrap_or_default()),
                other: (name.clone(), types),
            });
        }
    }
    if inputs.len() == 1 {
        return Ok(inputs.pop().expect("one").1);
    }
    let mut merged = Merged::default();
    for (_, p) in &inputs {
        merged.add(p);
    }
    Ok(merged.out)
}

#[derive(Default)]
struct Merged {
    out: Profile,
    strings: HashMap<String, i64>,
}

impl Merged {
    fn string(&mut self, s: &str) -> i64 {
        if self.out.string_table.is_empty() {
            self.out.string_table.push(String::new());
            self.strings.insert(String::new(), 0);
        }
        if let Some(&i) = self.strings.get(s) {
            return i;
        }
        let i = self.out.string_table.len() as i64;
        self.out.string_table.push(s.to_owned());
        self.strings.insert(s.to_owned(), i);
        i
    }

    fn add(&mut self, p: &Profile) {
        let first = self.out.sample_type.is_empty();
        let s = |m: &mut Merged, i: i64| m.string(&p.string_table[i as usize]);
        let value_type = |m: &mut Merged, t: &ValueType| ValueType {
            r#type: s(m, t.r#type),
            unit: s(m, t.unit),
        };
        if first {
            self.out.sample_type = p.sample_type.iter().map(|t| value_type(self, t)).collect();
            self.out.period_type = p.period_type.as_ref().map(|t| value_type(self, t));
            self.out.period = p.period;
            self.out.drop_frames = s(self, p.drop_frames);
            self.out.keep_frames = s(self, p.keep_frames);
            self.out.default_sample_type = s(self, p.default_sample_type);
            self.out.time_nanos = p.time_nanos;
        } else if p.time_nanos != 0 {
            self.out.time_nanos = match self.out.time_nanos {
                0 => p.time_nanos,
                t => t.min(p.time_nanos),
            };
        }
        self.out.duration_nanos = self.out.duration_nanos.saturating_add(p.duration_nanos);
        for &c in &p.comment {
            let c = s(self, c);
            self.out.comment.push(c);
        }

        // Ids renumbered after those already merged; 0 stays "none".
        let base = |ids: &mut dyn Iterator<Item = u64>| ids.max().unwrap_or(0);
        let mapping_base = base(&mut self.out.mapping.iter().map(|m| m.id));
        let function_base = base(&mut self.out.function.iter().map(|f| f.id));
        let location_base = base(&mut self.out.location.iter().map(|l| l.id));
        let shift = |id: u64, by: u64| if id == 0 { 0 } else { id + by };
        for m in &p.mapping {
            let mapping = Mapping {
                id: m.id + mapping_base,
                filename: s(self, m.filename),
                build_id: s(self, m.build_id),
                ..m.clone()
            };
            self.out.mapping.push(mapping);
        }
        for f in &p.function {
            let function = Function {
                id: f.id + function_base,
                name: s(self, f.name),
                system_name: s(self, f.system_name),
                filename: s(self, f.filename),
                start_line: f.start_line,
            };
            self.out.function.push(function);
        }
        for l in &p.location {
            self.out.location.push(Location {
                id: l.id + location_base,
                mapping_id: shift(l.mapping_id, mapping_base),
                line: l
                    .line
                    .iter()
                    .map(|line| Line {
                        function_id: shift(line.function_id, function_base),
                        ..*line
                    })
                    .collect(),
                ..l.clone()
            });
        }
        for sample in &p.sample {
            let label = sample
                .label
                .iter()
                .map(|l| Label {
                    key: s(self, l.key),
                    str: s(self, l.str),
                    num: l.num,
                    num_unit: s(self, l.num_unit),
                })
                .collect();
            self.out.sample.push(Sample {
                location_id: sample
                    .location_id
                    .iter()
                    .map(|&id| id + location_base)
                    .collect(),
                value: sample.value.clone(),
                label,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;
    use crate::testing::{at, str_label, ProfileBuilder};
    use crate::view::ProfileView;

    fn totals_by_leaf(p: &Profile) -> Vec<(String, i64)> {
        let view = ProfileView::unpruned(p).unwrap();
        let mut rows: Vec<(String, i64)> = view
            .samples()
            .map(|s| (s.frames().next().unwrap().function.to_string(), s.value(0)))
            .collect();
        rows.sort();
        rows
    }

    #[test]
    fn merging_keeps_every_sample_with_its_stack_and_labels() {
        let a = ProfileBuilder::new(&[("samples", "count"), ("cpu", "nanoseconds")])
            .sample(&[at("a::leaf", "a.rs", 3), at("main", "m.rs", 1)], &[2, 20])
            .build();
        let b = ProfileBuilder::new(&[("samples", "count"), ("cpu", "nanoseconds")])
            .sample(&[at("b::leaf", "b.rs", 7), at("main", "m.rs", 1)], &[5, 50])
            .labelled_sample(
                &[at("a::leaf", "a.rs", 3)],
                &[1, 10],
                &[str_label("role", "x")],
            )
            .build();
        let merged = merge(vec![("a".into(), a), ("b".into(), b)]).unwrap();
        // Valid: every id it refers to exists.
        codec::validate(&merged).unwrap();
        assert_eq!(
            totals_by_leaf(&merged),
            [
                ("a::leaf".into(), 1),
                ("a::leaf".into(), 2),
                ("b::leaf".into(), 5)
            ]
        );
        let view = ProfileView::unpruned(&merged).unwrap();
        let labelled: Vec<_> = view
            .samples()
            .filter(|s| s.value(0) == 1)
            .flat_map(|s| s.raw().label.iter())
            .map(|l| format!("{}={}", view.string(l.key), view.string(l.str)))
            .collect();
        assert_eq!(labelled, ["role=x"]);
        let b_stack: Vec<String> = view
            .samples()
            .find(|s| s.value(0) == 5)
            .unwrap()
            .frames()
            .map(|f| format!("{} {}:{}", f.function, f.file, f.line))
            .collect();
        assert_eq!(b_stack, ["b::leaf b.rs:7", "main m.rs:1"]);
    }

    #[test]
    fn profiles_of_different_kinds_are_refused_by_name() {
        let cpu = ProfileBuilder::new(&[("samples", "count")]).build();
        let heap = ProfileBuilder::new(&[("alloc_space", "bytes")]).build();
        let e = merge(vec![("cpu.pb.gz".into(), cpu), ("heap.pb.gz".into(), heap)]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot merge profiles of different kinds: cpu.pb.gz has sample types \
             [samples/count], heap.pb.gz has [alloc_space/bytes]"
        );
    }
}
