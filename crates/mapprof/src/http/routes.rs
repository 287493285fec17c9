//! The `/debug/pprof` routes: which path and method get which answer (see the parent module
//! for the table and where mapprof differs).

use super::absent;
use super::params::Params;
use super::render::{cmdline, encoded, flame_graph, index, thread_dump, top_table};
use super::reply::{bad_request, error, fail, respond, Problem, Reply};
use super::state::State;
use super::symbol::symbol;
use super::take::take;
use crate::profiles::ProfileKind;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, StatusCode};
use mapprof_profile::kinds::{self, Spec};
use std::convert::Infallible;
use std::sync::Arc;

/// Answers one request.
pub(super) async fn handle(
    request: Request<Incoming>,
    state: Arc<State>,
) -> Result<Reply, Infallible> {
    Ok(route(request, &state)
        .await
        .unwrap_or_else(|p| error(p.status, p.text)))
}

async fn route(request: Request<Incoming>, state: &Arc<State>) -> Result<Reply, Problem> {
    let path = request.uri().path();
    if path == "/debug/pprof" {
        // As Go's ServeMux does for a subtree registered with a trailing slash.
        let mut reply = respond(
            StatusCode::MOVED_PERMANENTLY,
            "text/html; charset=utf-8",
            Bytes::from_static(b"<a href=\"/debug/pprof/\">Moved Permanently</a>.\n\n"),
            None,
        );
        reply
            .headers_mut()
            .insert(header::LOCATION, HeaderValue::from_static("/debug/pprof/"));
        return Ok(reply);
    }
    let Some(name) = path.strip_prefix("/debug/pprof/") else {
        return Err(fail(StatusCode::NOT_FOUND, "404 page not found"));
    };
    let name = name.to_owned();
    let post_allowed = name == "symbol";
    let method = request.method();
    if !(method == Method::GET || method == Method::HEAD || post_allowed && method == Method::POST)
    {
        let mut reply = error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
        let allow = if post_allowed {
            "GET, HEAD, POST"
        } else {
            "GET, HEAD"
        };
        reply
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
        return Ok(reply);
    }
    let params = Params::parse(request.uri().query().unwrap_or(""));
    match name.as_str() {
        "" => Ok(index()),
        "cmdline" => Ok(cmdline()),
        "symbol" => symbol(request, state).await,
        // Go's goroutine profile, for threads (`crate::threads`), under both names.
        "goroutine" | "threads" => thread_dump(state, &params).await,
        "profile" => {
            let taken = take(state, Source::Cpu, &params, None).await?;
            encoded(state, taken, "profile").await
        }
        _ => {
            if let Some(file) = name.strip_prefix("flame/") {
                let source = file
                    .strip_suffix(".svg")
                    .and_then(Source::by_name)
                    .ok_or_else(unknown_profile)?;
                return flame_graph(state, source, &params).await;
            }
            let kind = match Source::by_name(&name) {
                Some(Source::Kind(kind)) => kind,
                _ => match absent::reason(&name) {
                    Some(why) => {
                        return Err(fail(
                            StatusCode::NOT_FOUND,
                            format!("Unknown profile: mapprof does not serve {name}: {why}."),
                        ))
                    }
                    None => return Err(unknown_profile()),
                },
            };
            let debug = params.get("debug").and_then(|d| d.parse::<i64>().ok());
            if debug.is_some_and(|d| d != 0) {
                if params.get("seconds").is_some() {
                    return Err(bad_request("seconds and debug params are incompatible"));
                }
                let sample_index = params.get("sample_index");
                let taken = take(state, Source::Kind(kind), &params, None).await?;
                return top_table(state, taken, sample_index).await;
            }
            let taken = take(state, Source::Kind(kind), &params, None).await?;
            encoded(state, taken, kind.name()).await
        }
    }
}

fn unknown_profile() -> Problem {
    fail(StatusCode::NOT_FOUND, "Unknown profile")
}

/// What a profile endpoint serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Source {
    Kind(ProfileKind),
    /// `profile`: CPU.
    Cpu,
}

impl Source {
    pub(super) fn by_name(name: &str) -> Option<Source> {
        if name == kinds::CPU.name {
            return Some(Source::Cpu);
        }
        ProfileKind::named(name).map(Source::Kind)
    }

    pub(super) fn spec(self) -> &'static Spec {
        match self {
            Source::Kind(kind) => kind.spec(),
            Source::Cpu => &kinds::CPU,
        }
    }

    pub(super) fn name(self) -> &'static str {
        self.spec().name
    }
}
