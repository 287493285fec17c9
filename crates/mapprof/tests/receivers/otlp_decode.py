"""An OTLP profiles request read with the OpenTelemetry project's own Python bindings.

The independent reader of mapprof's OTLP encoder (mapprof_profile::otlp): PyPI's
`opentelemetry-proto` (requirements.txt), generated from opentelemetry-proto v1.10.0, the release
the Rust crate's messages come from. Nothing here is shared with the Rust side; the tables are
resolved as the proto's comments say (entry 0 of each is the null value, a stack's first
location is the leaf, a location's lines run from the inlined callee to its caller).

    python otlp_decode.py REQUEST.pb   prints the summary as JSON
"""

import json
import sys

from opentelemetry.proto.collector.profiles.v1development import profiles_service_pb2


def _value(any_value, strings):
    """An AnyValue as a plain Python value."""
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "string_value_strindex":
        return strings[any_value.string_value_strindex]
    if kind == "array_value":
        return [_value(v, strings) for v in any_value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value, strings) for kv in any_value.kvlist_value.values}
    if kind == "bytes_value":
        return any_value.bytes_value.hex()
    return getattr(any_value, kind)


def _key_values(key_values, strings):
    """Resource or scope attributes (common.v1.KeyValue) as a dict."""
    out = {}
    for kv in key_values:
        key = kv.key if kv.key else strings[kv.key_strindex]
        out[key] = _value(kv.value, strings)
    return out


def _attributes(indices, dictionary):
    """Dictionary attributes by index as a dict; a value with a unit as {"value", "unit"}."""
    strings = dictionary.string_table
    out = {}
    for index in indices:
        attribute = dictionary.attribute_table[index]
        key = strings[attribute.key_strindex]
        if key in out:
            raise ValueError(f"attribute key {key!r} twice in one attribute list")
        value = _value(attribute.value, strings)
        if attribute.unit_strindex:
            value = {"value": value, "unit": strings[attribute.unit_strindex]}
        out[key] = value
    return out


def _frames(stack_index, dictionary):
    """The function names of a stack, leaf first, inlined frames included."""
    names = []
    for location_index in dictionary.stack_table[stack_index].location_indices:
        location = dictionary.location_table[location_index]
        for line in location.lines:
            function = dictionary.function_table[line.function_index]
            names.append(dictionary.string_table[function.name_strindex])
    return names


def _check_dictionary(dictionary):
    """The proto's rules for the shared tables: entry 0 is the zero value and present."""
    tables = {
        "mapping_table": dictionary.mapping_table,
        "location_table": dictionary.location_table,
        "function_table": dictionary.function_table,
        "link_table": dictionary.link_table,
        "attribute_table": dictionary.attribute_table,
        "stack_table": dictionary.stack_table,
    }
    for name, table in tables.items():
        if not table or table[0].ByteSize() != 0:
            raise ValueError(f"{name}[0] must be present and the zero value")
    if not dictionary.string_table or dictionary.string_table[0] != "":
        raise ValueError('string_table[0] must be ""')
    if len(set(dictionary.string_table)) != len(dictionary.string_table):
        raise ValueError("string_table has duplicates")


def summarize(request_bytes):
    """What an engine would take from the request: per profile its name and types, total,
    samples (stack as function names, value, attributes); and the resource's attributes."""
    request = profiles_service_pb2.ExportProfilesServiceRequest()
    request.ParseFromString(request_bytes)
    dictionary = request.dictionary
    _check_dictionary(dictionary)
    strings = dictionary.string_table

    resources = []
    profiles = []
    for resource_profiles in request.resource_profiles:
        resources.append(_key_values(resource_profiles.resource.attributes, strings))
        for scope_profiles in resource_profiles.scope_profiles:
            scope = scope_profiles.scope
            scope_attributes = _key_values(scope.attributes, strings)
            for profile in scope_profiles.profiles:
                samples = []
                for sample in profile.samples:
                    if len(sample.values) != 1 or sample.timestamps_unix_nano:
                        raise ValueError("mapprof sends one aggregated value per sample")
                    samples.append(
                        {
                            "frames": _frames(sample.stack_index, dictionary),
                            "value": sample.values[0],
                            "attributes": _attributes(sample.attribute_indices, dictionary),
                        }
                    )
                period_type = profile.period_type
                profiles.append(
                    {
                        "name": scope_attributes.get("mapprof.profile.name"),
                        "scope": {
                            "name": scope.name,
                            "version": scope.version,
                            "attributes": scope_attributes,
                        },
                        "sample_type": strings[profile.sample_type.type_strindex],
                        "unit": strings[profile.sample_type.unit_strindex],
                        "period_type": strings[period_type.type_strindex],
                        "period_unit": strings[period_type.unit_strindex],
                        "period": profile.period,
                        "time_unix_nano": profile.time_unix_nano,
                        "duration_nano": profile.duration_nano,
                        "attributes": _attributes(profile.attribute_indices, dictionary),
                        "total": sum(s["value"] for s in samples),
                        "sample_count": len(samples),
                        "samples": samples,
                    }
                )
    return {
        "resource": resources[0] if len(resources) == 1 else resources,
        "profiles": profiles,
    }


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: otlp_decode.py REQUEST.pb")
    with open(sys.argv[1], "rb") as f:
        print(json.dumps(summarize(f.read()), indent=1, sort_keys=True))
