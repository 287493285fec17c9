//! Offline symbolization: a profile taken with `symbolize=false` (raw addresses and the
//! mappings they were taken in) turned into the profile the process would have written had it
//! symbolized, from the binary it was taken from.
//!
//! The samples are read back as raw samples and built again by [`builder::build`] with a
//! [`Symbolizer::offline`] over the recorded mappings: the same symbolizer, trimming, merging
//! and encoding as in process, so the result has the same Locations, Lines, Functions and
//! mapping flags. Shared libraries are named from the files at their recorded paths when those
//! are still there with the same build id.

use crate::builder::{self, BuildOptions, Header, LabelValue, RawSample};
use crate::mappings::ObjectMapping;
use crate::proto::{Location, Profile};
use crate::symbolize::Symbolizer;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

/// Why a profile could not be symbolized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolizeError(String);

impl fmt::Display for SymbolizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SymbolizeError {}

fn error(message: impl Into<String>) -> SymbolizeError {
    SymbolizeError(message.into())
}

/// Symbolizes `profile`, taken with `symbolize=false`, from `binary`, the main binary it was
/// taken from (its first mapping; the build ids must agree).
pub fn symbolize(profile: &Profile, binary: &Path) -> Result<Profile, SymbolizeError> {
    let string = |i: i64| -> Result<&str, SymbolizeError> {
        usize::try_from(i)
            .ok()
            .and_then(|i| profile.string_table.get(i))
            .map(String::as_str)
            .ok_or_else(|| error(format!("string index {i} is out of the string table")))
    };
    if profile.mapping.is_empty() {
        return Err(error(
            "the profile has no mappings: it was not taken with symbolize=false \
             (or not by a program with executable mappings)",
        ));
    }
    let symbolized = |l: &Location| l.address != 0 && !l.line.is_empty();
    if profile.mapping.iter().any(|m| m.has_functions) || profile.location.iter().any(symbolized) {
        return Err(error("the profile is already symbolized"));
    }
    let mappings = profile
        .mapping
        .iter()
        .map(|m| {
            Ok(ObjectMapping {
                start: m.memory_start,
                limit: m.memory_limit,
                file_offset: m.file_offset,
                path: string(m.filename)?.to_owned(),
                build_id: string(m.build_id)?.to_owned(),
            })
        })
        .collect::<Result<Vec<_>, SymbolizeError>>()?;
    let binary_path = binary
        .to_str()
        .ok_or_else(|| error(format!("{} is not a UTF-8 path", binary.display())))?;
    let mut symbolizer = Symbolizer::offline(mappings, binary_path).map_err(error)?;

    let header = header_of(profile, &string)?;
    let locations: HashMap<u64, &Location> = profile.location.iter().map(|l| (l.id, l)).collect();
    let mut samples = Vec::with_capacity(profile.sample.len());
    for sample in &profile.sample {
        let mut raw = RawSample {
            stack: Vec::with_capacity(sample.location_id.len()),
            synthetic: None,
            values: sample.value.clone(),
            labels: Vec::with_capacity(sample.label.len()),
        };
        for (depth, id) in sample.location_id.iter().enumerate() {
            let location = locations.get(id).ok_or_else(|| {
                error(format!("a sample names location {id}, which is not there"))
            })?;
            if location.address != 0 || location.line.is_empty() {
                // The builder takes return addresses and looks up the byte before each.
                raw.stack.push(location.address.wrapping_add(1));
                continue;
            }
            // A frame of the profiler's own (lost samples): named, no address, at the leaf.
            let function = location
                .line
                .first()
                .and_then(|line| profile.function.iter().find(|f| f.id == line.function_id));
            match function {
                Some(f) if depth == 0 => raw.synthetic = Some(string(f.name)?.to_owned()),
                _ => {
                    return Err(error(format!(
                        "location {id} has neither an address nor a name of the profiler's"
                    )))
                }
            }
        }
        for label in &sample.label {
            let key = string(label.key)?.to_owned();
            let value = if label.str != 0 {
                LabelValue::Str(string(label.str)?.to_owned())
            } else {
                let unit = (label.num_unit != 0)
                    .then(|| string(label.num_unit).map(str::to_owned))
                    .transpose()?;
                LabelValue::Num(label.num, unit)
            };
            raw.labels.push((key, value));
        }
        samples.push(raw);
    }
    Ok(builder::build(
        &header,
        samples,
        BuildOptions { symbolize: true },
        &mut symbolizer,
    ))
}

/// The header the profile was built with.
fn header_of<'p>(
    profile: &'p Profile,
    string: &impl Fn(i64) -> Result<&'p str, SymbolizeError>,
) -> Result<Header, SymbolizeError> {
    let value_type = |t: &crate::proto::ValueType| -> Result<(String, String), SymbolizeError> {
        Ok((string(t.r#type)?.to_owned(), string(t.unit)?.to_owned()))
    };
    let sample_types = profile
        .sample_type
        .iter()
        .map(value_type)
        .collect::<Result<Vec<_>, _>>()?;
    let optional = |i: i64| (i != 0).then(|| string(i).map(str::to_owned)).transpose();
    Ok(Header {
        // CPU profiles keep the profiler's frames: time spent there is the profiler's.
        keep_profiler_frames: sample_types.iter().any(|(ty, _)| ty == "cpu"),
        sample_types,
        period_type: profile
            .period_type
            .as_ref()
            .map(value_type)
            .transpose()?
            .unwrap_or_default(),
        period: profile.period,
        default_sample_type: optional(profile.default_sample_type)?,
        drop_frames: optional(profile.drop_frames)?,
        comments: profile
            .comment
            .iter()
            .map(|&c| string(c).map(str::to_owned))
            .collect::<Result<_, _>>()?,
        time_nanos: profile.time_nanos,
        duration_nanos: profile.duration_nanos,
    })
}
