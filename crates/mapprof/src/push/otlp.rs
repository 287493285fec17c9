//! OTLP profiles over OTLP/HTTP (protobuf): an `ExportProfilesServiceRequest` per interval,
//! made by `mapprof_profile::otlp` from the interval's pprof profiles.

use mapprof_profile::otlp::{encode_export_request, Named, Resource};

use super::collect::Interval;
use super::Protocol;

pub(crate) const PROTOCOL: Protocol = Protocol {
    name: "otlp",
    path: "/v1development/profiles",
    content_type: "application/x-protobuf",
    encode,
};

/// The service and the static labels are the resource's attributes; each profile is named as
/// in Pyroscope's protocol.
fn encode(interval: &Interval) -> Vec<u8> {
    let resource = Resource {
        service_name: interval.service.clone(),
        attributes: interval.labels.clone(),
    };
    let profiles: Vec<Named> = interval
        .profiles
        .iter()
        .map(|(pushed, profile)| Named {
            name: pushed.engine_name(),
            profile,
        })
        .collect();
    encode_export_request(&resource, &profiles)
}
