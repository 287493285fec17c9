//! The `/debug/pprof` handlers: routing, parameters, and the answers `net/http/pprof` gives
//! (see the parent module for the table and where mapprof differs).

use super::{HttpOptions, HEAD_TIMEOUT, MAX_BODY_BYTES, MAX_BUILDS, MAX_DELTAS, MAX_RESPONSES};
use crate::cpu::CpuProfiler;
use crate::profiles::{profile, with_symbolizer, ProfileKind};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use mapprof_profile::codec::encode_gzip;
use mapprof_profile::delta::delta;
use mapprof_profile::flame::{self, FlameOptions};
use mapprof_profile::kinds::{self, Spec};
use mapprof_profile::proto::Profile;
use mapprof_profile::top::{self, TopOptions};
use mapprof_profile::view::ProfileView;
use std::convert::Infallible;
use std::fmt::{Display, Write as _};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// An answer.
type Reply = Response<Payload>;

/// An error answer to be: status and text, written as Go's `serveError` does ([`error`]).
struct Problem {
    status: StatusCode,
    text: String,
}

fn fail(status: StatusCode, text: impl Display) -> Problem {
    Problem {
        status,
        text: text.to_string(),
    }
}

/// What the handlers share: settings and the bounds on work in progress.
pub(super) struct State {
    cpu_hz: u32,
    max_seconds: u64,
    /// Jobs on the blocking pool, queued or running.
    builds: Arc<Semaphore>,
    /// Built responses not yet handed to their connection.
    responses: Arc<Semaphore>,
    /// Delta profiles between their two snapshots.
    deltas: Arc<Semaphore>,
}

impl State {
    pub(super) fn new(options: &HttpOptions) -> State {
        State {
            cpu_hz: options.cpu_hz,
            max_seconds: options.max_seconds,
            builds: Arc::new(Semaphore::new(MAX_BUILDS)),
            responses: Arc::new(Semaphore::new(MAX_RESPONSES)),
            deltas: Arc::new(Semaphore::new(MAX_DELTAS)),
        }
    }

    /// Runs `job` on the blocking pool as the profiler's own work (unprofiled, its memory given
    /// back when it ends), once one of [`MAX_BUILDS`] slots is free; the slot is held until the
    /// job ends, even if the client has gone.
    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Problem> {
        let slot = self.builds.clone().acquire_owned().await.map_err(closing)?;
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            crate::memory::profiler_work(job)
        })
        .await
        .map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, format!("failed: {e}")))
    }

    /// One of [`MAX_RESPONSES`] slots, held by the response body until it is handed over.
    async fn responseslot(&self) -> Result<OwnedSemaphorePermit, Problem> {
        self.responses
            .clone()
            .acquire_owned()
            .await
            .map_err(closing)
    }
}

fn closing(_: tokio::sync::AcquireError) -> Problem {
    fail(
        StatusCode::SERVICE_UNAVAILABLE,
        "the server is shutting down",
    )
}

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
                _ => return Err(unknown_profile()),
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

fn bad_request(text: impl Display) -> Problem {
    fail(StatusCode::BAD_REQUEST, text)
}

/// What a profile endpoint serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Kind(ProfileKind),
    /// `profile`: CPU.
    Cpu,
}

impl Source {
    fn by_name(name: &str) -> Option<Source> {
        if name == kinds::CPU.name {
            return Some(Source::Cpu);
        }
        ProfileKind::named(name).map(Source::Kind)
    }

    fn spec(self) -> &'static Spec {
        match self {
            Source::Kind(kind) => kind.spec(),
            Source::Cpu => &kinds::CPU,
        }
    }

    fn name(self) -> &'static str {
        self.spec().name
    }
}

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
struct Taken {
    profile: Profile,
    /// The window of a delta or CPU profile.
    seconds: Option<u64>,
    slot: OwnedSemaphorePermit,
}

/// Takes the profile a request asks for: the current one, the delta over `seconds`, or a CPU
/// profile of `seconds`. With `sample_index`, refuses a name the profile will not have before
/// waiting out `seconds` (the caller checks it again on the profile taken).
async fn take(
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
fn check_sample_index(p: &Profile, name: &str) -> Result<usize, Problem> {
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

/// The profile as Go serves it: gzip `profile.proto`, an attachment named after the profile.
async fn encoded(state: &Arc<State>, taken: Taken, name: &'static str) -> Result<Reply, Problem> {
    let Taken {
        profile,
        seconds,
        slot,
    } = taken;
    let bytes = state
        .run(move || {
            let mut out = Vec::new();
            encode_gzip(&profile, &mut out).map(|()| out)
        })
        .await?
        .map_err(|e| {
            fail(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("failed to encode: {e}"),
            )
        })?;
    let mut reply = respond(
        StatusCode::OK,
        "application/octet-stream",
        bytes.into(),
        Some(slot),
    );
    // Go names a delta `<name>-delta`; its CPU profile is just `profile`.
    let delta = if seconds.is_some() && name != "profile" {
        "-delta"
    } else {
        ""
    };
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}{delta}\"")) {
        reply
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(reply)
}

/// `debug=N`: the `top` table of the profile, as `mapprof top` prints it.
async fn top_table(
    state: &Arc<State>,
    taken: Taken,
    sample_index: Option<&str>,
) -> Result<Reply, Problem> {
    let Taken { profile, slot, .. } = taken;
    let index = match sample_index {
        Some(name) => Some(check_sample_index(&profile, name)?),
        None => None,
    };
    let text = state
        .run(move || -> Result<Vec<u8>, String> {
            let view = ProfileView::new(&profile).map_err(|e| e.to_string())?;
            let index = index.unwrap_or_else(|| view.default_sample_index());
            let mut out = Vec::new();
            top::top(&view, index, &TopOptions::default())
                .render(&mut out)
                .map_err(|e| e.to_string())?;
            Ok(out)
        })
        .await?
        .map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    Ok(respond(
        StatusCode::OK,
        "text/plain; charset=utf-8",
        text.into(),
        Some(slot),
    ))
}

/// `flame/<profile>.svg`: the inferno flame graph, unpruned as `mapprof flame` draws it.
async fn flame_graph(
    state: &Arc<State>,
    source: Source,
    params: &Params,
) -> Result<Reply, Problem> {
    let sample_index = params.get("sample_index");
    let taken = take(state, source, params, sample_index).await?;
    let Taken {
        profile,
        seconds,
        slot,
    } = taken;
    let index = match sample_index {
        Some(name) => Some(check_sample_index(&profile, name)?),
        None => None,
    };
    let svg = state
        .run(move || -> Result<Vec<u8>, String> {
            let view = ProfileView::unpruned(&profile).map_err(|e| e.to_string())?;
            let index = index.unwrap_or_else(|| view.default_sample_index());
            let name = match source {
                Source::Cpu => "cpu",
                source => source.name(),
            };
            let mut title = flame::default_title(&view, index, Some(name));
            match (source, seconds) {
                (Source::Kind(_), Some(s)) => write!(title, ", delta over {s} s"),
                (Source::Cpu, Some(s)) => write!(title, ", {s} s"),
                _ => Ok(()),
            }
            .map_err(|e| e.to_string())?;
            let mut options = FlameOptions::default();
            options.title = Some(title);
            options.profile_name = Some(name.to_owned());
            let mut out = Vec::new();
            flame::render_svg(&view, index, &options, &mut out).map_err(|e| e.to_string())?;
            Ok(out)
        })
        .await?
        .map_err(|e| {
            fail(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("failed to render the flame graph: {e}"),
            )
        })?;
    Ok(respond(
        StatusCode::OK,
        "image/svg+xml",
        svg.into(),
        Some(slot),
    ))
}

/// `symbol`: Go's answer to `pprof`'s symbolz protocol. `num_symbols: 1` says symbols are
/// available; then, for each address of the request (the query of a GET, the body of a POST,
/// `+`-separated, hex with `0x`, octal with `0`, or decimal, as Go's `ParseUint(s, 0, 64)`),
/// `0xADDR name` when the address is in a known function: the function the address is in, the
/// outermost frame of an inlined chain. (Go's `runtime.FuncForPC` names the innermost one, but
/// symbolz has one name per address: `HashMap::insert` inlined into `Cache::update` would hide
/// `Cache::update`, and the profile's `drop_frames` then drops the location altogether.)
async fn symbol(request: Request<Incoming>, state: &Arc<State>) -> Result<Reply, Problem> {
    let input: Bytes = if request.method() == Method::POST {
        let too_large = || {
            fail(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body too large: at most {MAX_BODY_BYTES} bytes"),
            )
        };
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
            return Err(too_large());
        }
        let body = Limited::new(request.into_body(), MAX_BODY_BYTES).collect();
        match tokio::time::timeout(HEAD_TIMEOUT, body).await {
            Err(_) => {
                return Err(fail(
                    StatusCode::REQUEST_TIMEOUT,
                    "timed out reading the request body",
                ))
            }
            Ok(Err(e)) if e.is::<LengthLimitError>() => return Err(too_large()),
            Ok(Err(e)) => return Err(bad_request(format!("reading request: {e}"))),
            Ok(Ok(collected)) => collected.to_bytes(),
        }
    } else {
        Bytes::copy_from_slice(request.uri().query().unwrap_or("").as_bytes())
    };
    let slot = state.responseslot().await?;
    let text = state
        .run(move || {
            let mut out = String::from("num_symbols: 1\n");
            with_symbolizer(|symbolizer| {
                for word in input.split(|&b| b == b'+') {
                    let Some(pc) = std::str::from_utf8(word).ok().and_then(parse_address) else {
                        continue;
                    };
                    if let Some(function) = symbolizer.resolve(pc).last() {
                        let _ = writeln!(out, "{pc:#x} {}", function.name);
                    }
                }
                symbolizer.release_debug_info();
            });
            out
        })
        .await?;
    Ok(respond(
        StatusCode::OK,
        "text/plain; charset=utf-8",
        text.into(),
        Some(slot),
    ))
}

/// A non-zero address as Go's `strconv.ParseUint(s, 0, 64)` reads it.
fn parse_address(word: &str) -> Option<u64> {
    let word = word.trim();
    let (digits, radix) = if let Some(hex) = word.strip_prefix("0x").or(word.strip_prefix("0X")) {
        (hex, 16)
    } else if let Some(bin) = word.strip_prefix("0b").or(word.strip_prefix("0B")) {
        (bin, 2)
    } else if let Some(oct) = word.strip_prefix("0o").or(word.strip_prefix("0O")) {
        (oct, 8)
    } else if word.len() > 1 && word.starts_with('0') {
        (&word[1..], 8)
    } else {
        (word, 10)
    };
    let digits = digits.replace('_', "");
    u64::from_str_radix(&digits, radix)
        .ok()
        .filter(|&pc| pc != 0)
}

/// `cmdline`: the arguments, separated by NUL bytes.
fn cmdline() -> Reply {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    respond(
        StatusCode::OK,
        "text/plain; charset=utf-8",
        args.join("\0").into(),
        None,
    )
}

/// The HTML index: every profile with its links, as Go's with flame graphs added.
fn index() -> Reply {
    respond(
        StatusCode::OK,
        "text/html; charset=utf-8",
        index_html().into(),
        None,
    )
}

fn index_html() -> String {
    let mut html = String::from(
        "<html>\n<head>\n<title>/debug/pprof/</title>\n<style>\n\
         td { padding: 0.2em 1em 0.2em 0; vertical-align: top; }\n</style>\n</head>\n<body>\n\
         /debug/pprof/<br>\n<br>\nTypes of profiles available:\n<table>\n\
         <thead><td>Profile</td><td>Flame graphs</td><td>Description</td></thead>\n",
    );
    // Every kind, with the sample types its flame graphs show, default first
    // (`tests/http_endpoints.rs` follows every link).
    for spec in kinds::ALL {
        let name = spec.name;
        let seconds = match spec.source {
            kinds::Source::Window { default_seconds } => Some(default_seconds),
            _ => None,
        };
        match seconds {
            Some(s) => {
                let _ = write!(html, "<tr><td><a href='{name}?seconds={s}'>{name}</a>");
            }
            None => {
                let _ = write!(
                    html,
                    "<tr><td><a href='{name}'>{name}</a> (<a href='{name}?debug=1'>top</a>)"
                );
            }
        }
        html.push_str("</td><td>");
        let seconds = seconds.map_or(String::new(), |s| format!("&amp;seconds={s}"));
        for (i, sample_type) in spec.shown.iter().enumerate() {
            let _ = write!(
                html,
                "{}<a href='flame/{name}.svg?sample_index={sample_type}{seconds}'>{sample_type}</a>",
                if i == 0 { "" } else { " · " }
            );
        }
        let _ = writeln!(html, "</td><td>{}</td></tr>", spec.description);
    }
    html.push_str(
        "<tr><td><a href='cmdline'>cmdline</a></td><td></td>\
         <td>The command line invocation of the current program.</td></tr>\n\
         <tr><td><a href='symbol'>symbol</a></td><td></td>\
         <td>Function names of code addresses (POST <code>0xADDR+0xADDR</code>).</td></tr>\n\
         </table>\n<p>\n",
    );
    let _ = writeln!(html, "{}.\n</p>\n<p>", crate::memory::self_memory_comment());
    html.push_str(
        "Add <code>?seconds=N</code> to heap, allocs, mutex, block or resize (and \
         their flame graphs) for what changed over the next N seconds; \
         <code>go tool pprof http://HOST/debug/pprof/heap</code> reads every profile.\n</p>\n\
         </body>\n</html>\n",
    );
    html
}

/// A reply with the headers every answer has.
fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
    slot: Option<OwnedSemaphorePermit>,
) -> Reply {
    let big = body.len() > CHUNK;
    let mut reply = Response::new(Payload {
        rest: body,
        slot,
        big,
    });
    *reply.status_mut() = status;
    let headers = reply.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    reply
}

/// An error as Go's `serveError` writes it: the text and a newline, `X-Go-Pprof: 1`.
fn error(status: StatusCode, text: impl Display) -> Reply {
    let mut reply = respond(
        status,
        "text/plain; charset=utf-8",
        format!("{text}\n").into(),
        None,
    );
    reply
        .headers_mut()
        .insert("x-go-pprof", HeaderValue::from_static("1"));
    reply
}

/// A response body handed over in [`CHUNK`]-byte copies, holding its response slot until the
/// last one is taken: the connection never holds more than a chunk of it, however slowly the
/// client reads, and the whole body is freed with the slot. When a large one is done with, the
/// memory it and its connection's work freed goes back to the system
/// ([`crate::memory::release`]).
pub(super) struct Payload {
    rest: Bytes,
    slot: Option<OwnedSemaphorePermit>,
    /// Larger than a chunk (a profile or a graph): worth a release when dropped; small answers
    /// (errors, the index) are not, with `malloc_trim` walking all of glibc's heap.
    big: bool,
}

/// Bytes of a body handed to the connection at a time.
const CHUNK: usize = 16 << 10;

impl Drop for Payload {
    fn drop(&mut self) {
        self.rest = Bytes::new();
        if self.big {
            crate::memory::release();
        }
    }
}

impl Body for Payload {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.rest.is_empty() {
            self.slot = None;
            return Poll::Ready(None);
        }
        let n = self.rest.len().min(CHUNK);
        let chunk = Bytes::copy_from_slice(&self.rest[..n]);
        self.rest = self.rest.slice(n..);
        if self.rest.is_empty() {
            // Free the body and the slot now: the connection has all it needs.
            self.rest = Bytes::new();
            self.slot = None;
        }
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.rest.len() as u64)
    }
}

/// Query parameters, percent-decoded; the first of a repeated name wins, as Go's `FormValue`.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(query: &str) -> Params {
        Params(
            query
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `%XX` and `+` (a space) decoded; an invalid escape is kept as written.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_decoded_and_the_first_wins() {
        let p = Params::parse("seconds=5&sample_index=alloc%5Fspace&seconds=9&x&a+b=c%2");
        assert_eq!(p.get("seconds"), Some("5"));
        assert_eq!(p.get("sample_index"), Some("alloc_space"));
        assert_eq!(p.get("x"), Some(""));
        assert_eq!(p.get("a b"), Some("c%2"));
        assert_eq!(p.get("debug"), None);
    }

    #[test]
    fn addresses_are_read_as_go_reads_them() {
        assert_eq!(parse_address("0x4a3b"), Some(0x4a3b));
        assert_eq!(parse_address("0X4A3B"), Some(0x4a3b));
        assert_eq!(parse_address("010"), Some(8));
        assert_eq!(parse_address("0b11"), Some(3));
        assert_eq!(parse_address("1234"), Some(1234));
        assert_eq!(parse_address(" 0x10\n"), Some(16));
        for bad in ["", "0", "0x", "zz", "0x1g", "-1", "99999999999999999999"] {
            assert_eq!(parse_address(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn every_profile_is_in_the_index() {
        let html = index_html();
        for kind in ProfileKind::ALL {
            assert!(
                html.contains(&format!("href='{}'", kind.name())),
                "{kind:?}"
            );
        }
        assert!(html.contains("href='profile?seconds=30'"));
    }

    #[test]
    fn a_payload_hands_over_copies_and_frees_its_slot_with_the_last() {
        let semaphore = Arc::new(Semaphore::new(1));
        let slot = semaphore.clone().try_acquire_owned().unwrap();
        let body: Vec<u8> = (0..CHUNK * 2 + 10).map(|i| i as u8).collect();
        let mut payload = Payload {
            rest: Bytes::from(body.clone()),
            slot: Some(slot),
            big: true,
        };
        assert_eq!(payload.size_hint().exact(), Some(body.len() as u64));
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut received = Vec::new();
        while let Poll::Ready(Some(Ok(frame))) = Pin::new(&mut payload).poll_frame(&mut cx) {
            let data = frame.into_data().unwrap();
            assert!(data.len() <= CHUNK);
            received.extend_from_slice(&data);
            if received.len() < body.len() {
                assert_eq!(semaphore.available_permits(), 0);
            }
        }
        assert_eq!(received, body);
        assert_eq!(semaphore.available_permits(), 1);
        assert!(payload.is_end_stream());
    }
}
