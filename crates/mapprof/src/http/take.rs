//! Taking the profile a request asks for: now, as the delta over `seconds`, or a CPU profile
//! of `seconds`; and checking its `sample_index`.

use super::params::Params;
use super::reply::{bad_request, fail, Problem};
use super::routes::Source;
use super::state::State;
use super::MAX_DELTAS;
use crate::cpu::CpuProfiler;
use crate::profiles::{profile, ProfileKind};
use hyper::StatusCode;
use mapprof_profile::delta::delta;
use mapprof_profile::kinds::{self, Spec};
use mapprof_profile::proto::Profile;
use mapprof_profile::view::ProfileView;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OwnedSemaphorePermit;

/// Refuses a `sample_index` the profile of `spec` will not have, before profiling or waiting
/// for `seconds` (the answer checks it again on the profile taken).
fn check_sample_type(spec: &Spec, name: &str) -> Result<(), Problem> {
    if spec.has_sample_type(name) {
        return Ok(());
    }
    let types: Vec<&str> = spec.sample_types.iter().map(|(ty, _)| *ty).collect();
    Err(unknown_sample_index(name, &types))
}

/// A profile taken for a request, with the response slot its answer will hold.
pub(super) struct Taken {
    pub(super) profile: Profile,
    /// The window of a delta or CPU profile.
    pub(super) seconds: Option<u64>,
    pub(super) slot: OwnedSemaphorePermit,
}

/// Takes the profile a request asks for: the current one, the delta over `seconds`, or a CPU
/// profile of `seconds`. With `sample_index`, refuses a name the profile will not have before
/// waiting out `seconds` (the caller checks it again on the profile taken).
pub(super) async fn take(
    state: &Arc<State>,
    source: Source,
    params: &Params,
    sample_index: Option<&str>,
) -> Result<Taken, Problem> {
    let seconds = match (params.get("seconds").filter(|s| !s.is_empty()), source) {
        (None, Source::Kind(_)) => None,
        // Go's default for CPU profiles.
        (None, Source::Cpu) => match kinds::CPU.source {
            kinds::Source::Window { default_seconds } => Some(default_seconds),
            _ => None,
        },
        (Some(s), _) => match s.parse::<u64>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                return Err(bad_request(
                    r#"invalid value for "seconds" - must be a positive integer"#,
                ))
            }
        },
    };
    if let Some(seconds) = seconds.filter(|&s| s > state.max_seconds) {
        return Err(bad_request(format!(
            "profile duration exceeds server's WriteTimeout: {seconds} seconds asked for, \
             at most {} allowed",
            state.max_seconds
        )));
    }
    match (source, seconds) {
        (Source::Kind(kind), None) => {
            let slot = state.responseslot().await?;
            let profile = state.run(move || profile(kind)).await?;
            Ok(Taken {
                profile,
                seconds: None,
                slot,
            })
        }
        (Source::Kind(kind), Some(seconds)) => {
            let Ok(_deltaslot) = state.deltas.clone().try_acquire_owned() else {
                return Err(fail(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "{MAX_DELTAS} delta profiles are already being taken; \
                         try again when one is done"
                    ),
                ));
            };
            // A derived kind's delta is derived from its source's delta.
            let snapshot = kind
                .spec()
                .derived_from()
                .and_then(|from| ProfileKind::named(from.name))
                .unwrap_or(kind);
            if let Some(name) = sample_index {
                check_sample_type(kind.spec(), name)?;
            }
            let start = state.run(move || profile(snapshot)).await?;
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            let slot = state.responseslot().await?;
            let profile = state
                .run(move || -> Result<Profile, String> {
                    let end = profile(snapshot);
                    let mut d = kind
                        .spec()
                        .derive(delta(&start, &end).map_err(|e| e.to_string())?);
                    add_comment(
                        &mut d,
                        format!("delta: what changed over {seconds} s (end minus start)"),
                    );
                    Ok(d)
                })
                .await?
                .map_err(|e| {
                    fail(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("failed to compute delta: {e}"),
                    )
                })?;
            Ok(Taken {
                profile,
                seconds: Some(seconds),
                slot,
            })
        }
        (Source::Cpu, seconds) => {
            let seconds = seconds.unwrap_or(30);
            if let Some(name) = sample_index {
                check_sample_type(&kinds::CPU, name)?;
            }
            let profiler = CpuProfiler::start(state.cpu_hz).map_err(|e| {
                #[cfg(feature = "push")]
                let e = format!("{e}{}", crate::push::cpu_busy_note());
                fail(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("Could not enable CPU profiling: {e}"),
                )
            })?;
            // A client that goes away drops this future and with it the profiler, which stops.
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            let slot = state.responseslot().await?;
            let profile = state.run(move || profiler.finish()).await?.map_err(|e| {
                fail(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("Could not finish CPU profiling: {e}"),
                )
            })?;
            Ok(Taken {
                profile,
                seconds: Some(seconds),
                slot,
            })
        }
    }
}

fn add_comment(p: &mut Profile, comment: String) {
    p.comment.push(p.string_table.len() as i64);
    p.string_table.push(comment);
}

/// The index of sample type `name` (or a number in range, as pprof's `-sample_index`).
pub(super) fn check_sample_index(p: &Profile, name: &str) -> Result<usize, Problem> {
    let view = ProfileView::unpruned(p).map_err(|e| {
        fail(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the profile is malformed: {e}"),
        )
    })?;
    view.sample_index_by_name(name).map_err(|e| {
        unknown_sample_index(
            name,
            &e.available().iter().map(String::as_str).collect::<Vec<_>>(),
        )
    })
}

fn unknown_sample_index(name: &str, available: &[&str]) -> Problem {
    bad_request(format!(
        "invalid value for \"sample_index\": this profile has no sample type {name:?}; \
         it has: {}",
        available.join(", ")
    ))
}
