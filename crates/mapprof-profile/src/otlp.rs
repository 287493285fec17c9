//! mapprof's pprof profiles as an OpenTelemetry profiles request (feature `otlp`).
//!
//! The messages are the `opentelemetry-proto` crate's (0.33.1), generated from
//! [opentelemetry-proto v1.10.0](https://github.com/open-telemetry/opentelemetry-proto/tree/v1.10.0),
//! package `opentelemetry.proto.profiles.v1development`: the signal is alpha and its wire format
//! still changes between releases (v1.9.0 → v1.10.0 renumbered `Sample`'s fields), so a receiver
//! must decode the same release. PyPI's `opentelemetry-proto` 1.43.0 to 1.45.2 (pinned in
//! `crates/mapprof/tests/receivers/requirements.txt`) are generated from it too.
//!
//! How a pprof profile maps onto the request, field by field:
//!
//! - One request holds one [`ProfilesDictionary`](otlp::ProfilesDictionary) for all its
//!   profiles: strings, mappings, locations, functions, stacks and attributes each once (deduped
//!   by value; entry 0 of every table is the empty value, as the proto requires).
//! - The resource: `service.name` and the static labels, as resource attributes (inline key and
//!   string value, which is what Pyroscope's ingest reads).
//! - Each [`Named`] pprof profile is one `ScopeProfiles`, scope `mapprof` with this crate's
//!   version and the attributes `mapprof.profile.name` (the engine's name for it),
//!   `pprof.scope.default_sample_type` and `pprof.scope.sample_type_order` (semantic conventions'
//!   `pprof.*` attributes for lossless conversion).
//! - A pprof profile has several sample types; an OTLP profile has one (`sample_type`), so each
//!   pprof sample type is one OTLP `Profile`, in pprof's order. Each keeps pprof's
//!   `time_nanos`, `duration_nanos`, `period_type` and `period`; comments, `drop_frames` and
//!   `keep_frames` are profile attributes (`pprof.profile.comment`, a string array, and
//!   `pprof.profile.drop_frames` / `keep_frames`), since v1.9.0 dropped the comment field.
//! - Each sample's value for that type, with its stack (leaf first, as pprof) and its labels as
//!   sample attributes: a string label as a string value, a numeric label as an int value with
//!   its unit (`unit_strindex`); the values of a key that repeats in a sample as one array
//!   (the proto wants keys unique per sample). Samples whose value is 0 for the type are left
//!   out (a heap's freed stacks, in `inuse_space`); samples with the same stack and labels are
//!   summed into one, as the proto asks.
//! - Locations keep their address, mapping and lines (inlined callee first, caller last, as in
//!   pprof), and `pprof.location.is_folded`; functions their name, system name, file and start
//!   line; mappings their range, offset and file, the build id as
//!   `process.executable.build_id.gnu` (mapprof's build ids are GNU notes, in hex) and pprof's
//!   `has_*` flags as `pprof.mapping.has_*`.
//!
//! Not set: `profile_id` (optional; engines assign one) and `original_payload` (the proto says
//! off by default). Engines may name series their own way: Pyroscope's OTLP ingest derives
//! `__name__` from the sample and period types (`process_cpu` for `samples`/`count` sampled per
//! `cpu`/`nanoseconds`, mapprof's CPU profile), not from `mapprof.profile.name`.
//!
//! Profiles are expected to be valid ([`crate::codec::validate`], which what the builders and
//! [`crate::codec::decode`] return passes); in one that is not, an index out of range reads as
//! the empty string or the null (index 0) table entry, never a panic.

use std::collections::HashMap;
use std::hash::Hash;

pub use opentelemetry_proto;
use opentelemetry_proto::tonic::collector::profiles::v1development::ExportProfilesServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue,
};
use opentelemetry_proto::tonic::profiles::v1development as otlp;
use opentelemetry_proto::tonic::resource::v1::Resource as OtlpResource;
use prost::Message;

use crate::proto;

/// The resource attribute that names the service (OpenTelemetry semantic conventions).
pub const SERVICE_NAME: &str = "service.name";
/// The scope attribute with the name the profile is known by ([`Named::name`]).
pub const PROFILE_NAME: &str = "mapprof.profile.name";
/// The scope's name (`InstrumentationScope.name`).
pub const SCOPE_NAME: &str = "mapprof";

/// Who the profiles are from: the OTLP resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resource {
    /// `service.name`.
    pub service_name: String,
    /// Further resource attributes (the static labels, e.g. `deployment.environment.name`),
    /// string-valued, in this order; a key given twice, or `service.name` again, keeps its first
    /// value (resource keys are unique).
    pub attributes: Vec<(String, String)>,
}

/// One pprof profile to export, with the name engines know it by: Pyroscope's `__name__`
/// values as the pusher sends them (`process_cpu` for CPU, `memory` for the heap, `mutex`,
/// `block`, and mapprof's own `resize`).
#[derive(Debug, Clone, Copy)]
pub struct Named<'a> {
    /// The engine's name for it, sent as the scope attribute [`PROFILE_NAME`].
    pub name: &'a str,
    /// The profile; every sample type of it is exported.
    pub profile: &'a proto::Profile,
}

/// The request for `profiles` from `resource`: one `ResourceProfiles`, one `ScopeProfiles` per
/// named profile, one OTLP `Profile` per exported sample type (see the module's documentation).
pub fn export_request(resource: &Resource, profiles: &[Named<'_>]) -> ExportProfilesServiceRequest {
    let mut dictionary = Dictionary::new();
    let scope_profiles = profiles
        .iter()
        .map(|named| Converter::new(named.profile).scope_profiles(named, &mut dictionary))
        .collect();
    ExportProfilesServiceRequest {
        resource_profiles: vec![otlp::ResourceProfiles {
            resource: Some(otlp_resource(resource)),
            scope_profiles,
            schema_url: String::new(),
        }],
        dictionary: Some(dictionary.into_proto()),
    }
}

/// [`export_request`] as protobuf bytes: the body of an OTLP/HTTP `POST /v1development/profiles`
/// with `Content-Type: application/x-protobuf`.
pub fn encode_export_request(resource: &Resource, profiles: &[Named<'_>]) -> Vec<u8> {
    export_request(resource, profiles).encode_to_vec()
}

fn otlp_resource(resource: &Resource) -> OtlpResource {
    let mut attributes = vec![key_value(SERVICE_NAME, str_value(&resource.service_name))];
    for (key, value) in &resource.attributes {
        if attributes.iter().all(|kv| kv.key != *key) {
            attributes.push(key_value(key, str_value(value)));
        }
    }
    OtlpResource {
        attributes,
        dropped_attributes_count: 0,
        entity_refs: Vec::new(),
    }
}

fn key_value(key: &str, value: AnyValue) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(value),
        key_strindex: 0,
    }
}

fn str_value(s: &str) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(s.to_owned())),
    }
}

/// An attribute value, hashable (unlike `AnyValue`, which may hold a double) for deduplication.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    Strs(Vec<String>),
    Ints(Vec<i64>),
}

impl Value {
    fn to_any(&self) -> AnyValue {
        use any_value::Value as V;
        let array = |values: Vec<AnyValue>| V::ArrayValue(ArrayValue { values });
        let value = match self {
            Value::Str(s) => V::StringValue(s.clone()),
            Value::Int(n) => V::IntValue(*n),
            Value::Bool(b) => V::BoolValue(*b),
            Value::Strs(v) => array(v.iter().map(|s| Value::Str(s.clone()).to_any()).collect()),
            Value::Ints(v) => array(v.iter().map(|n| Value::Int(*n).to_any()).collect()),
        };
        AnyValue { value: Some(value) }
    }
}

/// One table of the dictionary: entries by value, the first the zero value.
#[derive(Debug)]
struct Table<K, T> {
    entries: Vec<T>,
    ids: HashMap<K, i32>,
}

impl<K: Hash + Eq, T: Default> Table<K, T> {
    fn new() -> Self {
        Table {
            entries: vec![T::default()],
            ids: HashMap::new(),
        }
    }

    /// The index of the entry keyed `key`, made by `make` if new.
    fn index(&mut self, key: K, make: impl FnOnce() -> T) -> i32 {
        if let Some(&id) = self.ids.get(&key) {
            return id;
        }
        // Each entry stands for bytes of a profile held in memory: 2^31 of them is out of reach.
        let id = i32::try_from(self.entries.len()).expect("OTLP dictionary tables index by i32");
        self.entries.push(make());
        self.ids.insert(key, id);
        id
    }
}

type LocationKey = (i32, u64, Vec<otlp::Line>, Vec<i32>);

/// The request's `ProfilesDictionary` being built.
#[derive(Debug)]
struct Dictionary {
    strings: Table<String, String>,
    mappings: Table<otlp::Mapping, otlp::Mapping>,
    locations: Table<LocationKey, otlp::Location>,
    functions: Table<otlp::Function, otlp::Function>,
    stacks: Table<Vec<i32>, otlp::Stack>,
    attributes: Table<(i32, Value, i32), otlp::KeyValueAndUnit>,
}

impl Dictionary {
    fn new() -> Self {
        let mut strings = Table::new();
        // Entry 0 is "" already; keyed so that "" finds it.
        strings.ids.insert(String::new(), 0);
        Dictionary {
            strings,
            mappings: Table::new(),
            locations: Table::new(),
            functions: Table::new(),
            stacks: Table::new(),
            attributes: Table::new(),
        }
    }

    fn string(&mut self, s: &str) -> i32 {
        self.strings.index(s.to_owned(), || s.to_owned())
    }

    fn value_type(&mut self, ty: &str, unit: &str) -> otlp::ValueType {
        otlp::ValueType {
            type_strindex: self.string(ty),
            unit_strindex: self.string(unit),
        }
    }

    fn attribute(&mut self, key: &str, value: Value, unit: &str) -> i32 {
        let key_strindex = self.string(key);
        let unit_strindex = self.string(unit);
        let any = value.to_any();
        self.attributes
            .index((key_strindex, value, unit_strindex), || {
                otlp::KeyValueAndUnit {
                    key_strindex,
                    value: Some(any),
                    unit_strindex,
                }
            })
    }

    fn into_proto(self) -> otlp::ProfilesDictionary {
        otlp::ProfilesDictionary {
            mapping_table: self.mappings.entries,
            location_table: self.locations.entries,
            function_table: self.functions.entries,
            // mapprof records no trace links: the table is its zero entry alone.
            link_table: vec![otlp::Link::default()],
            string_table: self.strings.entries,
            attribute_table: self.attributes.entries,
            stack_table: self.stacks.entries,
        }
    }
}

/// One pprof profile's ids turned into dictionary indices, each converted when first used (so
/// that the dictionary holds nothing that no exported sample refers to).
#[derive(Debug)]
struct Converter<'p> {
    profile: &'p proto::Profile,
    mappings: HashMap<u64, &'p proto::Mapping>,
    locations: HashMap<u64, &'p proto::Location>,
    functions: HashMap<u64, &'p proto::Function>,
    mapping_index: HashMap<u64, i32>,
    location_index: HashMap<u64, i32>,
    function_index: HashMap<u64, i32>,
    /// Per pprof sample: its stack index and sorted attribute indices, once computed.
    samples: Vec<Option<(i32, Vec<i32>)>>,
}

impl<'p> Converter<'p> {
    fn new(profile: &'p proto::Profile) -> Self {
        Converter {
            profile,
            mappings: profile.mapping.iter().map(|m| (m.id, m)).collect(),
            locations: profile.location.iter().map(|l| (l.id, l)).collect(),
            functions: profile.function.iter().map(|f| (f.id, f)).collect(),
            mapping_index: HashMap::new(),
            location_index: HashMap::new(),
            function_index: HashMap::new(),
            samples: vec![None; profile.sample.len()],
        }
    }

    /// pprof's string `index`; "" when out of range.
    fn str(&self, index: i64) -> &'p str {
        let strings = &self.profile.string_table;
        usize::try_from(index)
            .ok()
            .and_then(|i| strings.get(i))
            .map_or("", String::as_str)
    }

    fn scope_profiles(&mut self, named: &Named<'_>, dict: &mut Dictionary) -> otlp::ScopeProfiles {
        let p = self.profile;
        let exported: Vec<usize> = (0..p.sample_type.len()).collect();
        let attribute_indices = self.profile_attributes(dict);
        let profiles = exported
            .iter()
            .map(|&t| self.profile_for(t, &attribute_indices, dict))
            .collect();

        let mut attributes = vec![key_value(PROFILE_NAME, str_value(named.name))];
        // pprof's rule: default_sample_type 0 means none given (viewers then show the last).
        if p.default_sample_type != 0 {
            let default = self.str(p.default_sample_type);
            attributes.push(key_value(
                "pprof.scope.default_sample_type",
                str_value(default),
            ));
        }
        let order = exported.iter().map(|&t| t as i64).collect();
        attributes.push(key_value(
            "pprof.scope.sample_type_order",
            Value::Ints(order).to_any(),
        ));
        otlp::ScopeProfiles {
            scope: Some(InstrumentationScope {
                name: SCOPE_NAME.to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                attributes,
                dropped_attributes_count: 0,
            }),
            profiles,
            schema_url: String::new(),
        }
    }

    /// The attributes every OTLP profile made from this pprof profile carries.
    fn profile_attributes(&self, dict: &mut Dictionary) -> Vec<i32> {
        let p = self.profile;
        let mut indices = Vec::new();
        if !p.comment.is_empty() {
            let comments = p.comment.iter().map(|&c| self.str(c).to_owned()).collect();
            indices.push(dict.attribute("pprof.profile.comment", Value::Strs(comments), ""));
        }
        for (key, index) in [
            ("pprof.profile.drop_frames", p.drop_frames),
            ("pprof.profile.keep_frames", p.keep_frames),
        ] {
            if index != 0 {
                let value = Value::Str(self.str(index).to_owned());
                indices.push(dict.attribute(key, value, ""));
            }
        }
        indices
    }

    /// The OTLP profile of sample type `t`.
    fn profile_for(
        &mut self,
        t: usize,
        attributes: &[i32],
        dict: &mut Dictionary,
    ) -> otlp::Profile {
        let p = self.profile;
        let ty = p.sample_type[t];
        let sample_type = dict.value_type(self.str(ty.r#type), self.str(ty.unit));
        let period_type = p
            .period_type
            .map(|pt| dict.value_type(self.str(pt.r#type), self.str(pt.unit)));

        let mut samples: Vec<otlp::Sample> = Vec::new();
        let mut by_identity: HashMap<(i32, Vec<i32>), usize> = HashMap::new();
        for (i, sample) in p.sample.iter().enumerate() {
            let value = sample.value.get(t).copied().unwrap_or(0);
            if value == 0 {
                continue;
            }
            let (stack_index, attribute_indices) = self.sample_keys(i, dict);
            match by_identity.entry((stack_index, attribute_indices)) {
                std::collections::hash_map::Entry::Occupied(e) => {
                    let merged = &mut samples[*e.get()].values[0];
                    *merged = merged.saturating_add(value);
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    let (stack_index, attribute_indices) = e.key().clone();
                    e.insert(samples.len());
                    samples.push(otlp::Sample {
                        stack_index,
                        attribute_indices,
                        link_index: 0,
                        values: vec![value],
                        timestamps_unix_nano: Vec::new(),
                    });
                }
            }
        }

        otlp::Profile {
            sample_type: Some(sample_type),
            samples,
            time_unix_nano: u64::try_from(p.time_nanos).unwrap_or(0),
            duration_nano: u64::try_from(p.duration_nanos).unwrap_or(0),
            period_type,
            period: p.period,
            profile_id: Vec::new(),
            dropped_attributes_count: 0,
            original_payload_format: String::new(),
            original_payload: Vec::new(),
            attribute_indices: attributes.to_vec(),
        }
    }

    /// Sample `i`'s stack index and sorted attribute indices (its identity in OTLP).
    fn sample_keys(&mut self, i: usize, dict: &mut Dictionary) -> (i32, Vec<i32>) {
        if let Some(keys) = &self.samples[i] {
            return keys.clone();
        }
        let sample = &self.profile.sample[i];
        let locations: Vec<i32> = sample
            .location_id
            .iter()
            .map(|&id| self.location(id, dict))
            .collect();
        let stack = dict.stacks.index(locations.clone(), || otlp::Stack {
            location_indices: locations,
        });
        let mut attributes = self.labels(&sample.label, dict);
        attributes.sort_unstable();
        let keys = (stack, attributes);
        self.samples[i] = Some(keys.clone());
        keys
    }

    /// pprof labels as attribute indices, one per key: several values of a key as an array.
    fn labels(&self, labels: &[proto::Label], dict: &mut Dictionary) -> Vec<i32> {
        // (key, string values, numeric values, unit of the first numeric value), in key order
        // of first appearance.
        let mut keys: Vec<(&str, Vec<String>, Vec<i64>, &str)> = Vec::new();
        for label in labels {
            let key = self.str(label.key);
            let pos = match keys.iter().position(|k| k.0 == key) {
                Some(pos) => pos,
                None => {
                    keys.push((key, Vec::new(), Vec::new(), self.str(label.num_unit)));
                    keys.len() - 1
                }
            };
            let entry = &mut keys[pos];
            // pprof's rule (Go's profile package): a label with a string is a string label.
            if label.str != 0 {
                entry.1.push(self.str(label.str).to_owned());
            } else {
                if entry.2.is_empty() {
                    entry.3 = self.str(label.num_unit);
                }
                entry.2.push(label.num);
            }
        }
        keys.into_iter()
            .map(|(key, mut strs, mut nums, unit)| {
                let (value, unit) = match (strs.len(), nums.len()) {
                    (1, 0) => (Value::Str(strs.remove(0)), ""),
                    (_, 0) => (Value::Strs(strs), ""),
                    (0, 1) => (Value::Int(nums.remove(0)), unit),
                    (0, _) => (Value::Ints(nums), unit),
                    // A key with both kinds of value (never written by mapprof): the numbers as
                    // strings, so that nothing is lost.
                    _ => {
                        strs.extend(nums.iter().map(i64::to_string));
                        (Value::Strs(strs), unit)
                    }
                };
                dict.attribute(key, value, unit)
            })
            .collect()
    }

    fn location(&mut self, id: u64, dict: &mut Dictionary) -> i32 {
        if let Some(&index) = self.location_index.get(&id) {
            return index;
        }
        let Some(location) = self.locations.get(&id).copied() else {
            return 0;
        };
        let mapping_index = self.mapping(location.mapping_id, dict);
        let lines: Vec<otlp::Line> = location
            .line
            .iter()
            .map(|line| otlp::Line {
                function_index: self.function(line.function_id, dict),
                line: line.line,
                column: line.column,
            })
            .collect();
        let mut attribute_indices = Vec::new();
        if location.is_folded {
            attribute_indices.push(dict.attribute(
                "pprof.location.is_folded",
                Value::Bool(true),
                "",
            ));
        }
        let key = (
            mapping_index,
            location.address,
            lines.clone(),
            attribute_indices.clone(),
        );
        let index = dict.locations.index(key, || otlp::Location {
            mapping_index,
            address: location.address,
            lines,
            attribute_indices,
        });
        self.location_index.insert(id, index);
        index
    }

    fn mapping(&mut self, id: u64, dict: &mut Dictionary) -> i32 {
        if let Some(&index) = self.mapping_index.get(&id) {
            return index;
        }
        let Some(mapping) = self.mappings.get(&id).copied() else {
            return 0;
        };
        let mut attribute_indices = Vec::new();
        let build_id = self.str(mapping.build_id);
        if !build_id.is_empty() {
            let value = Value::Str(build_id.to_owned());
            attribute_indices.push(dict.attribute("process.executable.build_id.gnu", value, ""));
        }
        for (key, set) in [
            ("pprof.mapping.has_functions", mapping.has_functions),
            ("pprof.mapping.has_filenames", mapping.has_filenames),
            ("pprof.mapping.has_line_numbers", mapping.has_line_numbers),
            ("pprof.mapping.has_inline_frames", mapping.has_inline_frames),
        ] {
            if set {
                attribute_indices.push(dict.attribute(key, Value::Bool(true), ""));
            }
        }
        let converted = otlp::Mapping {
            memory_start: mapping.memory_start,
            memory_limit: mapping.memory_limit,
            file_offset: mapping.file_offset,
            filename_strindex: dict.string(self.str(mapping.filename)),
            attribute_indices,
        };
        let index = dict.mappings.index(converted.clone(), || converted);
        self.mapping_index.insert(id, index);
        index
    }

    fn function(&mut self, id: u64, dict: &mut Dictionary) -> i32 {
        if let Some(&index) = self.function_index.get(&id) {
            return index;
        }
        let Some(function) = self.functions.get(&id).copied() else {
            return 0;
        };
        let converted = otlp::Function {
            name_strindex: dict.string(self.str(function.name)),
            system_name_strindex: dict.string(self.str(function.system_name)),
            filename_strindex: dict.string(self.str(function.filename)),
            start_line: function.start_line,
        };
        let index = dict.functions.index(converted, || converted);
        self.function_index.insert(id, index);
        index
    }
}
