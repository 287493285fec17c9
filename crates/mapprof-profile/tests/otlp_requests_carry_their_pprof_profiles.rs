//! mapprof's OTLP profiles requests (`mapprof_profile::otlp`, feature `otlp`) read back by two
//! readers and compared with the pprof profiles they were made from: prost with the
//! `opentelemetry-proto` crate's types, and PyPI's `opentelemetry-proto` (the OpenTelemetry
//! project's Python bindings, crates/mapprof/tests/receivers/otlp_decode.py), which shares no
//! code with the encoder. Both must find, per profile and sample type, the same total, the same
//! stacks (function names, leaf first, inlined frames included) with the same values, the
//! labels as attributes, and the resource's attributes.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use mapprof_profile::codec::read_file;
use mapprof_profile::otlp::opentelemetry_proto::tonic::collector::profiles::v1development::ExportProfilesServiceRequest;
use mapprof_profile::otlp::opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, KeyValue,
};
use mapprof_profile::otlp::opentelemetry_proto::tonic::profiles::v1development as otlp;
use mapprof_profile::otlp::{encode_export_request, Named, Resource};
use mapprof_profile::proto::{
    Function, Label, Line, Location, Mapping, Profile, Sample, ValueType,
};
use prost::Message;
use serde_json::Value as Json;

/// A label or attribute value as text, the same for both sides: `s:VALUE` or `n:NUM:UNIT`.
type Attr = (String, String);
/// Per (profile name, sample type, unit): (frames, sorted attributes) → summed value.
type Summary = BTreeMap<(String, String, String), BTreeMap<(Vec<String>, Vec<Attr>), i64>>;

/// What the request must say about `profiles`, read from the pprof side only: each sample's
/// value per sample type (zeros left out, equal stacks and labels summed).
fn expected(profiles: &[Named<'_>]) -> Summary {
    let mut out = Summary::new();
    for named in profiles {
        let p = named.profile;
        let s = |i: i64| p.string_table[i as usize].clone();
        for (t, ty) in p.sample_type.iter().enumerate() {
            let by_stack = out
                .entry((named.name.to_owned(), s(ty.r#type), s(ty.unit)))
                .or_default();
            for sample in &p.sample {
                if sample.value[t] == 0 {
                    continue;
                }
                let frames = sample
                    .location_id
                    .iter()
                    .flat_map(|id| &p.location.iter().find(|l| l.id == *id).unwrap().line)
                    .map(|line| {
                        let f = p.function.iter().find(|f| f.id == line.function_id);
                        s(f.unwrap().name)
                    })
                    .collect();
                let mut labels: Vec<Attr> = sample
                    .label
                    .iter()
                    .map(|l| {
                        let value = if l.str != 0 {
                            format!("s:{}", s(l.str))
                        } else {
                            format!("n:{}:{}", l.num, s(l.num_unit))
                        };
                        (s(l.key), value)
                    })
                    .collect();
                labels.sort();
                *by_stack.entry((frames, labels)).or_default() += sample.value[t];
            }
        }
    }
    out
}

fn any_text(value: &AnyValue, unit: &str, strings: &[String]) -> Vec<String> {
    match value.value.as_ref().expect("attribute value set") {
        any_value::Value::StringValue(s) => vec![format!("s:{s}")],
        any_value::Value::StringValueStrindex(i) => vec![format!("s:{}", strings[*i as usize])],
        any_value::Value::IntValue(n) => vec![format!("n:{n}:{unit}")],
        any_value::Value::ArrayValue(a) => a
            .values
            .iter()
            .flat_map(|v| any_text(v, unit, strings))
            .collect(),
        other => panic!("unexpected sample attribute value {other:?}"),
    }
}

fn scope_attribute<'r>(attributes: &'r [KeyValue], key: &str) -> Option<&'r any_value::Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn string_of(value: Option<&any_value::Value>) -> &str {
    match value {
        Some(any_value::Value::StringValue(s)) => s,
        other => panic!("expected a string value, got {other:?}"),
    }
}

/// The request as prost reads it, checked against the proto's rules for the dictionary.
fn decode(bytes: &[u8]) -> ExportProfilesServiceRequest {
    let request = ExportProfilesServiceRequest::decode(bytes).expect("a valid request");
    let d = request.dictionary.as_ref().expect("a dictionary");
    assert_eq!(d.string_table[0], "");
    assert_eq!(d.mapping_table[0], otlp::Mapping::default());
    assert_eq!(d.location_table[0], otlp::Location::default());
    assert_eq!(d.function_table[0], otlp::Function::default());
    assert_eq!(d.link_table, [otlp::Link::default()]);
    assert_eq!(d.attribute_table[0], otlp::KeyValueAndUnit::default());
    assert_eq!(d.stack_table[0], otlp::Stack::default());
    let mut strings = d.string_table.clone();
    strings.sort();
    strings.dedup();
    assert_eq!(strings.len(), d.string_table.len(), "strings are unique");
    let mut stacks = d.stack_table.clone();
    stacks.sort_by(|a, b| a.location_indices.cmp(&b.location_indices));
    stacks.dedup();
    assert_eq!(stacks.len(), d.stack_table.len(), "stacks are unique");
    request
}

/// The summary of a request read with prost.
fn summary_of(request: &ExportProfilesServiceRequest) -> Summary {
    let d = request.dictionary.as_ref().unwrap();
    let strings = &d.string_table;
    let mut out = Summary::new();
    for scope_profiles in &request.resource_profiles[0].scope_profiles {
        let scope = scope_profiles.scope.as_ref().unwrap();
        let name = string_of(scope_attribute(&scope.attributes, "mapprof.profile.name"));
        for profile in &scope_profiles.profiles {
            let ty = profile.sample_type.unwrap();
            let key = (
                name.to_owned(),
                strings[ty.type_strindex as usize].clone(),
                strings[ty.unit_strindex as usize].clone(),
            );
            let by_stack = out.entry(key).or_default();
            for sample in &profile.samples {
                assert_eq!(sample.values.len(), 1, "one aggregated value per sample");
                let stack = &d.stack_table[sample.stack_index as usize];
                let frames = stack
                    .location_indices
                    .iter()
                    .flat_map(|&l| &d.location_table[l as usize].lines)
                    .map(|line| {
                        let f = d.function_table[line.function_index as usize];
                        strings[f.name_strindex as usize].clone()
                    })
                    .collect();
                let mut attributes: Vec<Attr> = sample
                    .attribute_indices
                    .iter()
                    .flat_map(|&a| {
                        let kv = &d.attribute_table[a as usize];
                        let key = strings[kv.key_strindex as usize].clone();
                        let unit = &strings[kv.unit_strindex as usize];
                        any_text(kv.value.as_ref().unwrap(), unit, strings)
                            .into_iter()
                            .map(move |v| (key.clone(), v))
                    })
                    .collect();
                attributes.sort();
                *by_stack.entry((frames, attributes)).or_default() += sample.values[0];
            }
        }
    }
    out
}

fn totals(summary: &Summary) -> BTreeMap<(String, String, String), i64> {
    summary
        .iter()
        .map(|(k, stacks)| (k.clone(), stacks.values().sum()))
        .collect()
}

/// The venv's Python (made by `make receivers`, which `make test` runs).
fn python() -> PathBuf {
    let python =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/receivers-venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `make receivers` (part of `make test`), which makes the receivers' venv",
        python.display()
    );
    python
}

/// The JSON summary that otlp_decode.py prints for `bytes`.
fn python_summary(name: &str, bytes: &[u8]) -> Json {
    let path = std::env::temp_dir().join(format!("mapprof-otlp-{}-{name}.pb", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../mapprof/tests/receivers/otlp_decode.py");
    let output = Command::new(python()).arg(&script).arg(&path).output();
    std::fs::remove_file(&path).unwrap();
    let output = output.unwrap();
    assert!(
        output.status.success(),
        "otlp_decode.py failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("otlp_decode.py prints JSON")
}

fn json_text(value: &Json) -> Vec<String> {
    match value {
        Json::String(s) => vec![format!("s:{s}")],
        Json::Number(n) => vec![format!("n:{n}:")],
        Json::Array(values) => values.iter().flat_map(json_text).collect(),
        Json::Object(o) => {
            let unit = o["unit"].as_str().unwrap();
            json_text(&o["value"])
                .into_iter()
                .map(|v| format!("{v}{unit}"))
                .collect()
        }
        other => panic!("unexpected attribute value {other}"),
    }
}

/// The Python summary in the form of [`Summary`], and its sample count per profile.
fn summary_of_json(json: &Json) -> (Summary, BTreeMap<(String, String, String), usize>) {
    let mut out = Summary::new();
    let mut counts = BTreeMap::new();
    for profile in json["profiles"].as_array().unwrap() {
        let text = |k: &str| profile[k].as_str().unwrap().to_owned();
        let key = (text("name"), text("sample_type"), text("unit"));
        let by_stack = out.entry(key.clone()).or_default();
        let samples = profile["samples"].as_array().unwrap();
        for sample in samples {
            let frames = sample["frames"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap().to_owned())
                .collect();
            let mut attributes: Vec<Attr> = sample["attributes"]
                .as_object()
                .unwrap()
                .iter()
                .flat_map(|(k, v)| json_text(v).into_iter().map(move |t| (k.clone(), t)))
                .collect();
            attributes.sort();
            *by_stack.entry((frames, attributes)).or_default() += sample["value"].as_i64().unwrap();
        }
        let total: i64 = samples.iter().map(|s| s["value"].as_i64().unwrap()).sum();
        assert_eq!(profile["total"].as_i64(), Some(total), "{key:?}");
        assert_eq!(profile["sample_count"].as_u64(), Some(samples.len() as u64));
        counts.insert(key, samples.len());
    }
    (out, counts)
}

/// A profile as mapprof's resize profile could be, with what Go's never have: string and
/// numeric labels (one key with two values), inlined frames, a folded location, duplicate
/// samples, zero values, comments, a build id.
fn hand_built() -> Profile {
    let mut strings = vec![String::new()];
    let mut s = |text: &str| -> i64 {
        if let Some(i) = strings.iter().position(|x| x == text) {
            return i as i64;
        }
        strings.push(text.to_owned());
        strings.len() as i64 - 1
    };
    let str_label = |key: i64, value: i64| Label {
        key,
        str: value,
        num: 0,
        num_unit: 0,
    };
    let num_label = |key: i64, num: i64, unit: i64| Label {
        key,
        str: 0,
        num,
        num_unit: unit,
    };
    let sample_type = vec![
        ValueType {
            r#type: s("resizes"),
            unit: s("count"),
        },
        ValueType {
            r#type: s("resize_space"),
            unit: s("bytes"),
        },
    ];
    let period_type = Some(ValueType {
        r#type: s("space"),
        unit: s("bytes"),
    });
    let function = |id: u64, name: i64, system_name: i64, filename: i64| Function {
        id,
        name,
        system_name,
        filename,
        start_line: 10 * id as i64,
    };
    let functions = vec![
        function(1, s("app::main"), s("_ZN3app4main"), s("src/main.rs")),
        function(2, s("app::grow"), s("_ZN3app4grow"), s("src/grow.rs")),
        function(3, s("alloc::vec::Vec<T>::push"), 0, s("vec/mod.rs")),
        function(4, s("std::rt::lang_start"), 0, 0),
    ];
    let line = |function_id: u64, line: i64| Line {
        function_id,
        line,
        column: 0,
    };
    let locations = vec![
        Location {
            id: 1,
            mapping_id: 1,
            address: 0x1100,
            line: vec![line(1, 20)],
            is_folded: false,
        },
        // push inlined into grow: the callee first, as pprof orders them.
        Location {
            id: 2,
            mapping_id: 1,
            address: 0x1200,
            line: vec![line(3, 5), line(2, 30)],
            is_folded: false,
        },
        Location {
            id: 3,
            mapping_id: 0,
            address: 0x7f00_0000_1300,
            line: vec![line(4, 1)],
            is_folded: true,
        },
    ];
    let mappings = vec![Mapping {
        id: 1,
        memory_start: 0x1000,
        memory_limit: 0x9000,
        file_offset: 0,
        filename: s("/usr/bin/app"),
        build_id: s("0123456789abcdef"),
        has_functions: true,
        has_filenames: true,
        has_line_numbers: true,
        has_inline_frames: true,
    }];
    let (route, container, size, bytes) = (s("route"), s("container"), s("size"), s("bytes"));
    let (a, b, c, vec) = (s("/a"), s("/b"), s("/c"), s("Vec"));
    let sample = |location_id: Vec<u64>, value: Vec<i64>, label: Vec<Label>| Sample {
        location_id,
        value,
        label,
    };
    let samples = vec![
        sample(
            vec![2, 1],
            vec![3, 300],
            vec![str_label(route, a), str_label(container, vec)],
        ),
        // The same stack and labels again: one OTLP sample, summed.
        sample(
            vec![2, 1],
            vec![1, 100],
            vec![str_label(container, vec), str_label(route, a)],
        ),
        sample(
            vec![3, 1],
            vec![2, 0],
            vec![str_label(route, b), num_label(bytes, 64, bytes)],
        ),
        sample(
            vec![3, 2, 1],
            vec![0, 50],
            vec![
                str_label(route, c),
                num_label(size, 8, bytes),
                num_label(size, 16, bytes),
            ],
        ),
        sample(vec![1], vec![5, 500], vec![]),
    ];
    let comment = vec![s("mapprof test"), s("second comment")];
    let default_sample_type = s("resize_space");
    Profile {
        sample_type,
        sample: samples,
        mapping: mappings,
        location: locations,
        function: functions,
        string_table: strings,
        drop_frames: 0,
        keep_frames: 0,
        time_nanos: 1_700_000_000_123_456_789,
        duration_nanos: 10_000_000_000,
        period_type,
        period: 524_288,
        comment,
        default_sample_type,
    }
}

fn resource() -> Resource {
    Resource {
        service_name: "checkout".into(),
        attributes: vec![
            ("deployment.environment.name".into(), "prod".into()),
            ("service.version".into(), "1.2".into()),
            // Resource keys are unique: the first value stays.
            ("service.name".into(), "ignored".into()),
            ("deployment.environment.name".into(), "ignored".into()),
        ],
    }
}

const RESOURCE: [(&str, &str); 3] = [
    ("service.name", "checkout"),
    ("deployment.environment.name", "prod"),
    ("service.version", "1.2"),
];

fn check_resource(request: &ExportProfilesServiceRequest) {
    assert_eq!(request.resource_profiles.len(), 1);
    let resource = request.resource_profiles[0].resource.as_ref().unwrap();
    let attributes: Vec<(&str, &str)> = resource
        .attributes
        .iter()
        .map(|kv| {
            (
                kv.key.as_str(),
                string_of(kv.value.as_ref().unwrap().value.as_ref()),
            )
        })
        .collect();
    assert_eq!(attributes, RESOURCE);
}

fn check_python(
    name: &str,
    bytes: &[u8],
    expected: &Summary,
    request: &ExportProfilesServiceRequest,
) {
    let json = python_summary(name, bytes);
    let resource: Vec<(&str, &str)> = json["resource"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
        .collect();
    let mut want = RESOURCE.to_vec();
    want.sort();
    assert_eq!(resource, want, "sorted by json");
    let (summary, counts) = summary_of_json(&json);
    assert_eq!(totals(&summary), totals(expected));
    assert_eq!(&summary, expected);
    // Both readers see the same samples, one by one.
    let strings = &request.dictionary.as_ref().unwrap().string_table;
    let mut prost_counts = BTreeMap::new();
    for scope_profiles in &request.resource_profiles[0].scope_profiles {
        let attributes = &scope_profiles.scope.as_ref().unwrap().attributes;
        let name = string_of(scope_attribute(attributes, "mapprof.profile.name"));
        for profile in &scope_profiles.profiles {
            let ty = profile.sample_type.unwrap();
            let key = (
                name.to_owned(),
                strings[ty.type_strindex as usize].clone(),
                strings[ty.unit_strindex as usize].clone(),
            );
            prost_counts.insert(key, profile.samples.len());
        }
    }
    assert_eq!(counts, prost_counts);
}

#[test]
fn go_profiles_arrive_with_every_sample_type_stack_and_label() {
    let heap = read_file(common::data("go-heap.pb.gz")).unwrap();
    let mutex = read_file(common::data("go-mutex.pb.gz")).unwrap();
    let profiles = [
        Named {
            name: "memory",
            profile: &heap,
        },
        Named {
            name: "mutex",
            profile: &mutex,
        },
    ];
    let bytes = encode_export_request(&resource(), &profiles);
    let request = decode(&bytes);
    check_resource(&request);

    let want = expected(&profiles);
    let got = summary_of(&request);
    assert_eq!(totals(&got), totals(&want));
    assert_eq!(got, want);
    // Go's heap profile labels each sample with the object size: numeric, in bytes.
    let sized = want[&("memory".into(), "alloc_space".into(), "bytes".into())]
        .keys()
        .filter(|(_, attrs)| {
            attrs
                .iter()
                .any(|(k, v)| k == "bytes" && v.starts_with("n:"))
        })
        .count();
    assert!(sized > 0, "the Go heap profile has numeric labels");
    // One OTLP profile per pprof sample type, in pprof's order, one scope per pprof profile.
    let scopes = &request.resource_profiles[0].scope_profiles;
    assert_eq!(scopes.len(), 2);
    assert_eq!(scopes[0].profiles.len(), 4);
    assert_eq!(scopes[1].profiles.len(), 2);
    for (scope, source) in scopes.iter().zip([&heap, &mutex]) {
        let order = scope_attribute(
            &scope.scope.as_ref().unwrap().attributes,
            "pprof.scope.sample_type_order",
        );
        let Some(any_value::Value::ArrayValue(order)) = order else {
            panic!("sample_type_order is an array: {order:?}");
        };
        let order: Vec<_> = order.values.iter().map(|v| v.value.clone()).collect();
        let want: Vec<_> = (0..source.sample_type.len() as i64)
            .map(|i| Some(any_value::Value::IntValue(i)))
            .collect();
        assert_eq!(order, want);
        for profile in &scope.profiles {
            assert_eq!(profile.period, source.period);
            assert_eq!(profile.time_unix_nano, source.time_nanos as u64);
            assert_eq!(profile.duration_nano, source.duration_nanos as u64);
        }
    }
    check_python("go", &bytes, &want, &request);
}

#[test]
fn labels_inlined_frames_and_metadata_survive_the_conversion() {
    let profile = hand_built();
    let profiles = [Named {
        name: "resize",
        profile: &profile,
    }];
    let bytes = encode_export_request(&resource(), &profiles);
    let request = decode(&bytes);
    check_resource(&request);
    let want = expected(&profiles);
    let got = summary_of(&request);
    assert_eq!(got, want);

    let frames = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let attr = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    let space = &got[&("resize".into(), "resize_space".into(), "bytes".into())];
    // Duplicates summed; the inlined callee before its caller; the zero sample left out.
    assert_eq!(
        space[&(
            frames(&["alloc::vec::Vec<T>::push", "app::grow", "app::main"]),
            vec![attr("container", "s:Vec"), attr("route", "s:/a")]
        )],
        400
    );
    assert_eq!(space.len(), 3, "{space:?}");
    assert_eq!(
        space[&(
            frames(&[
                "std::rt::lang_start",
                "alloc::vec::Vec<T>::push",
                "app::grow",
                "app::main"
            ]),
            vec![
                attr("route", "s:/c"),
                attr("size", "n:16:bytes"),
                attr("size", "n:8:bytes")
            ]
        )],
        50
    );
    let counts = &got[&("resize".into(), "resizes".into(), "count".into())];
    assert_eq!(
        counts[&(
            frames(&["std::rt::lang_start", "app::main"]),
            vec![attr("bytes", "n:64:bytes"), attr("route", "s:/b")]
        )],
        2
    );

    let d = request.dictionary.as_ref().unwrap();
    let s = |i: i32| d.string_table[i as usize].as_str();
    let scope = &request.resource_profiles[0].scope_profiles[0];
    let attributes = &scope.scope.as_ref().unwrap().attributes;
    assert_eq!(scope.scope.as_ref().unwrap().name, "mapprof");
    assert_eq!(
        string_of(scope_attribute(
            attributes,
            "pprof.scope.default_sample_type"
        )),
        "resize_space"
    );
    // Two sample types: two profiles, sharing the stacks of the dictionary.
    assert_eq!(scope.profiles.len(), 2);
    let resize_space = &scope.profiles[1];
    assert_eq!(
        s(resize_space.sample_type.unwrap().type_strindex),
        "resize_space"
    );
    let period_type = resize_space.period_type.unwrap();
    assert_eq!(
        (s(period_type.type_strindex), s(period_type.unit_strindex)),
        ("space", "bytes")
    );
    assert_eq!(resize_space.period, 524_288);
    assert_eq!(resize_space.time_unix_nano, 1_700_000_000_123_456_789);
    assert_eq!(resize_space.duration_nano, 10_000_000_000);
    // Stacks [2,1], [3,1], [3,2,1] and [1]: each once.
    assert_eq!(d.stack_table.len(), 1 + 4);
    // The comments, as the semantic conventions' string array.
    let comment = &d.attribute_table[resize_space.attribute_indices[0] as usize];
    assert_eq!(s(comment.key_strindex), "pprof.profile.comment");
    assert_eq!(
        any_text(comment.value.as_ref().unwrap(), "", &d.string_table),
        ["s:mapprof test", "s:second comment"]
    );
    assert_eq!(
        scope.profiles[0].attribute_indices,
        resize_space.attribute_indices
    );

    // The mapping with its file, build id and pprof flags; the folded location; functions whole.
    assert_eq!(d.mapping_table.len(), 2);
    let mapping = &d.mapping_table[1];
    assert_eq!(
        (mapping.memory_start, mapping.memory_limit),
        (0x1000, 0x9000)
    );
    assert_eq!(s(mapping.filename_strindex), "/usr/bin/app");
    let mapping_attrs: Vec<_> = mapping
        .attribute_indices
        .iter()
        .map(|&i| {
            let kv = &d.attribute_table[i as usize];
            (s(kv.key_strindex), kv.value.clone().unwrap().value.unwrap())
        })
        .collect();
    assert!(mapping_attrs.contains(&(
        "process.executable.build_id.gnu",
        any_value::Value::StringValue("0123456789abcdef".into())
    )));
    for flag in ["functions", "filenames", "line_numbers", "inline_frames"] {
        let key = format!("pprof.mapping.has_{flag}");
        assert!(
            mapping_attrs.contains(&(key.as_str(), any_value::Value::BoolValue(true))),
            "{key}"
        );
    }
    let folded = d
        .location_table
        .iter()
        .find(|l| l.address == 0x7f00_0000_1300)
        .unwrap();
    assert_eq!(folded.mapping_index, 0, "no mapping: the null one");
    let key = d.attribute_table[folded.attribute_indices[0] as usize].key_strindex;
    assert_eq!(s(key), "pprof.location.is_folded");
    let inlined = d
        .location_table
        .iter()
        .find(|l| l.address == 0x1200)
        .unwrap();
    assert_eq!(inlined.mapping_index, 1);
    assert_eq!(
        inlined.lines.iter().map(|l| l.line).collect::<Vec<_>>(),
        [5, 30]
    );
    let main = d
        .function_table
        .iter()
        .find(|f| s(f.name_strindex) == "app::main")
        .unwrap();
    assert_eq!(
        (
            s(main.system_name_strindex),
            s(main.filename_strindex),
            main.start_line
        ),
        ("_ZN3app4main", "src/main.rs", 10)
    );

    check_python("hand-built", &bytes, &want, &request);
}

#[test]
fn the_python_reader_sees_what_prost_sees_in_an_empty_request() {
    let bytes = encode_export_request(&resource(), &[]);
    let request = decode(&bytes);
    check_resource(&request);
    check_python("empty", &bytes, &Summary::new(), &request);
}
