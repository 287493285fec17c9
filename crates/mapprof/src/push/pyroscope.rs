//! Pyroscope's `push.v1.PusherService/Push`, over Connect's unary protocol (an HTTP POST of
//! the binary protobuf): the `PushRequest` messages of Pyroscope's `api/push/v1/push.proto`
//! and `LabelPair` of `api/types/v1/types.proto`, field for field and tag for tag. The test
//! receiver decodes them with code generated from those definitions
//! (`tests/receivers/receiver.py`), not with these structs.

use mapprof_profile::codec::encode_gzip;

use super::collect::Interval;
use super::Protocol;

pub(crate) const PROTOCOL: Protocol = Protocol {
    name: "pyroscope",
    path: "/push.v1.PusherService/Push",
    content_type: "application/proto",
    encode,
};

#[derive(Clone, PartialEq, prost::Message)]
struct PushRequest {
    #[prost(message, repeated, tag = "1")]
    series: Vec<RawProfileSeries>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RawProfileSeries {
    #[prost(message, repeated, tag = "1")]
    labels: Vec<LabelPair>,
    #[prost(message, repeated, tag = "2")]
    samples: Vec<RawSample>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct LabelPair {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RawSample {
    /// A pprof profile, gzipped.
    #[prost(bytes = "vec", tag = "1")]
    raw_profile: Vec<u8>,
    #[prost(string, tag = "2")]
    id: String,
}

/// One series per profile, labelled with its name (`__name__`), the service, `__delta__`
/// `false` (the values are already the interval's: the engine must not subtract again) and
/// the static labels; per-sample labels stay in the pprof.
fn encode(interval: &Interval) -> Vec<u8> {
    let label = |name: &str, value: &str| LabelPair {
        name: name.to_owned(),
        value: value.to_owned(),
    };
    let series = interval
        .profiles
        .iter()
        .map(|(pushed, profile)| {
            let mut labels = vec![
                label("__name__", pushed.engine_name()),
                label("service_name", &interval.service),
                label("__delta__", "false"),
            ];
            labels.extend(interval.labels.iter().map(|(n, v)| label(n, v)));
            let mut raw_profile = Vec::new();
            encode_gzip(profile, &mut raw_profile).expect("writing to memory cannot fail");
            RawProfileSeries {
                labels,
                samples: vec![RawSample {
                    raw_profile,
                    id: String::new(),
                }],
            }
        })
        .collect();
    prost::Message::encode_to_vec(&PushRequest { series })
}
