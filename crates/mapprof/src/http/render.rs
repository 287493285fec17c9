//! The answers that render a profile taken (encoded, a `top` table, a flame graph) and the
//! pages that need none (the index, `cmdline`).

use super::absent;
use super::params::Params;
use super::reply::{bad_request, fail, respond, Problem, Reply};
use super::routes::Source;
use super::state::State;
use super::take::{check_sample_index, take, Taken};
use crate::profiles::ProfileKind;
use hyper::header::{self, HeaderValue};
use hyper::StatusCode;
use mapprof_profile::codec::encode_gzip;
use mapprof_profile::flame::{self, FlameOptions, FromApp};
use mapprof_profile::kinds;
use mapprof_profile::top::{self, TopOptions};
use mapprof_profile::view::ProfileView;
use std::fmt::Write as _;
use std::sync::Arc;

/// The profile as Go serves it: gzip `profile.proto`, an attachment named after the profile.
pub(super) async fn encoded(
    state: &Arc<State>,
    taken: Taken,
    name: &'static str,
) -> Result<Reply, Problem> {
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
pub(super) async fn top_table(
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

/// `goroutine` (and `threads`): a thread dump ([`crate::ThreadDump`]), as Go's goroutine
/// profile: the gzipped profile, or with `debug=1` the grouped text and `debug=2` every
/// thread in full.
pub(super) async fn thread_dump(state: &Arc<State>, params: &Params) -> Result<Reply, Problem> {
    let debug = params
        .get("debug")
        .map(|d| {
            d.parse::<i64>()
                .map_err(|_| bad_request("debug must be an integer"))
        })
        .transpose()?
        .unwrap_or(0);
    let slot = state.responseslot().await?;
    let body = state
        .run(move || -> Result<Vec<u8>, String> {
            let dump = crate::thread_dump().map_err(|e| e.to_string())?;
            Ok(match debug {
                0 => {
                    let mut out = Vec::new();
                    encode_gzip(dump.profile(), &mut out).map_err(|e| e.to_string())?;
                    out
                }
                1 => dump.grouped_text().into_bytes(),
                _ => dump.text().into_bytes(),
            })
        })
        .await?
        .map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    if debug != 0 {
        return Ok(respond(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            body.into(),
            Some(slot),
        ));
    }
    let mut reply = respond(
        StatusCode::OK,
        "application/octet-stream",
        body.into(),
        Some(slot),
    );
    reply.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"goroutine\""),
    );
    Ok(reply)
}

/// `flame/<profile>.svg`: the inferno flame graph, unpruned as `mapprof flame` draws it;
/// `from_app=N` (or empty: the default) starts stacks as `mapprof flame --from-app=N`.
pub(super) async fn flame_graph(
    state: &Arc<State>,
    source: Source,
    params: &Params,
) -> Result<Reply, Problem> {
    let sample_index = params.get("sample_index");
    // Checked before taking: a CPU profile takes its seconds.
    let from_app = match params.get("from_app") {
        None => None,
        Some("") => Some(flame::DEFAULT_FROM_APP_FRAMES),
        Some(n) => Some(n.parse::<usize>().map_err(|_| {
            bad_request(r#"invalid value for "from_app" - must be a number of frames"#)
        })?),
    };
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
            options.from_app = from_app.map(|keep| FromApp {
                keep,
                ..FromApp::default()
            });
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

/// `cmdline`: the arguments, separated by NUL bytes.
pub(super) fn cmdline() -> Reply {
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
pub(super) fn index() -> Reply {
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
         <thead><td>Count</td><td>Profile</td><td>Flame graphs</td><td>Description</td></thead>\n",
    );
    // Every kind, with the sample types its flame graphs show, default first
    // (`tests/http_endpoints.rs` follows every link).
    for spec in kinds::ALL {
        let name = spec.name;
        let seconds = match spec.source {
            kinds::Source::Window { default_seconds } => Some(default_seconds),
            _ => None,
        };
        let count = ProfileKind::named(name)
            .and_then(crate::profiles::stack_count)
            .map_or(String::new(), |n| n.to_string());
        let _ = write!(html, "<tr><td>{count}</td>");
        match seconds {
            Some(s) => {
                let _ = write!(html, "<td><a href='{name}?seconds={s}'>{name}</a>");
            }
            None => {
                let _ = write!(
                    html,
                    "<td><a href='{name}'>{name}</a> (<a href='{name}?debug=1'>top</a>)"
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
    let threads = std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count());
    let _ = writeln!(
        html,
        "<tr><td>{threads}</td><td><a href='goroutine'>goroutine</a> \
         (<a href='goroutine?debug=1'>grouped</a>, <a href='goroutine?debug=2'>full</a>)</td>\
         <td></td><td>A dump of every thread's current stack, with its name and the \
         mapprof::sync lock it waits for, that lock's holder, and lock cycles (deadlocks) \
         first; also at <code>threads</code>.</td></tr>"
    );
    html.push_str(
        "<tr><td></td><td><a href='cmdline'>cmdline</a></td><td></td>\
         <td>The command line invocation of the current program.</td></tr>\n\
         <tr><td></td><td><a href='symbol'>symbol</a></td><td></td>\
         <td>Function names of code addresses (POST <code>0xADDR+0xADDR</code>).</td></tr>\n\
         </table>\n<p>\nNot served (Go's <code>net/http/pprof</code> has them):\n</p>\n<table>\n",
    );
    for (name, why) in absent::ABSENT {
        let _ = writeln!(html, "<tr><td>{name}</td><td>{why}.</td></tr>");
    }
    html.push_str("</table>\n<p>\n");
    let _ = writeln!(html, "{}.\n</p>\n<p>", crate::memory::self_memory_comment());
    #[cfg(feature = "push")]
    if let Some(push) = crate::push::push_stats() {
        let _ = writeln!(
            html,
            "Pushing to {}: {} requests sent ({:.1} MiB), {} failed attempts, {} refused, \
             {} dropped (queue full), {} queued{}.\n</p>\n<p>",
            escape(&push.target),
            push.sent,
            push.sent_bytes as f64 / (1 << 20) as f64,
            push.failed,
            push.refused,
            push.dropped,
            push.queued,
            push.last_error
                .map_or(String::new(), |e| format!("; last error: {}", escape(&e)))
        );
    }
    html.push_str(
        "Add <code>?seconds=N</code> to heap, allocs, mutex, block or resize (and \
         their flame graphs) for what changed over the next N seconds; \
         <code>go tool pprof http://HOST/debug/pprof/heap</code> reads every profile.\n</p>\n\
         </body>\n</html>\n",
    );
    html
}

/// `text` safe inside HTML.
#[cfg(feature = "push")]
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_counts_stacks_and_says_what_is_not_served() {
        let html = index_html();
        for kind in [ProfileKind::Heap, ProfileKind::Mutex, ProfileKind::Block] {
            let row = html
                .split("<tr>")
                .find(|r| r.contains(&format!("href='{}'", kind.name())))
                .unwrap();
            let count = row.strip_prefix("<td>").and_then(|r| r.split_once("</td>"));
            assert!(
                count.is_some_and(|(n, _)| n.parse::<usize>().is_ok()),
                "{row}"
            );
        }
        for name in ["threadcreate", "trace"] {
            assert!(html.contains(&format!("<tr><td>{name}</td><td>")), "{html}");
            assert!(
                !html.contains(&format!("href='{name}")),
                "no link to {name}"
            );
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
}
