//! `/debug/pprof` over HTTP in a process under load: `go tool pprof` reads every endpoint
//! (concurrent scrapes included), the index links every profile and flame graph, and errors
//! are the ones Go's `net/http/pprof` gives.
#![cfg(all(feature = "http", feature = "jemalloc"))]

mod common;
mod http_client;

use common::go_pprof;
use http_client::{get, request, svg_title, Answer};
use mapprof_profile::codec::decode;
use mapprof_profile::view::ProfileView;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::jemalloc();

/// Serializes the tests that take CPU profiles: one at a time per process.
static CPU: Mutex<()> = Mutex::new(());

const PROFILES: [&str; 5] = ["heap", "allocs", "mutex", "block", "resize"];

/// The server of this process, started once with a workload running beside it.
fn server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let profiler = mapprof::Profiler::builder()
            .heap_rate(4096)
            .mutex_fraction(1)
            .block_rate(1)
            .http("127.0.0.1:0")
            .start()
            .expect("start the profiler with its server");
        let addr = profiler.http_addr().expect("serving");
        assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
        // Runs for the rest of the process, as in a service.
        std::mem::forget(profiler);
        start_load();
        std::thread::sleep(Duration::from_millis(500));
        addr
    })
}

/// Threads that grow maps (labelled `worker=maps`) and contend on a lock, forever.
fn start_load() {
    std::thread::spawn(|| loop {
        mapprof::labels(&[("worker", "maps")], grow_maps);
        std::thread::sleep(Duration::from_millis(2));
    });
    let lock = Arc::new(mapprof::sync::Mutex::new(0u64));
    for _ in 0..2 {
        let lock = lock.clone();
        std::thread::spawn(move || loop {
            hold_lock(&lock);
        });
    }
}

#[inline(never)]
fn grow_maps() {
    let mut map = HashMap::new();
    for i in 0..5_000u64 {
        map.insert(i, i * 3);
    }
    std::hint::black_box(&map);
}

#[inline(never)]
fn hold_lock(lock: &mapprof::sync::Mutex<u64>) {
    let mut guard = lock.lock().unwrap();
    *guard += 1;
    std::thread::sleep(Duration::from_micros(300));
    drop(guard);
    // Not a tail call: the unlock's stack keeps this frame.
    std::hint::black_box(lock);
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}/debug/pprof/{path}")
}

/// `go tool pprof -top URL`, returning its output.
fn go_top(addr: SocketAddr, path: &str) -> String {
    go_pprof(&["-top"], Path::new(&url(addr, path)))
}

fn assert_profile(answer: &Answer, filename: &str) -> mapprof_profile::proto::Profile {
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        answer.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(
        answer.header("content-disposition"),
        Some(format!("attachment; filename=\"{filename}\"").as_str())
    );
    assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));
    decode(&answer.body).expect("a valid profile")
}

fn assert_go_error(answer: &Answer, status: u16, body: &str) {
    assert_eq!(answer.status, status, "{}", answer.text());
    assert_eq!(answer.header("x-go-pprof"), Some("1"));
    assert_eq!(
        answer.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));
    assert!(answer.text().ends_with('\n'), "{:?}", answer.text());
    assert!(answer.text().contains(body), "{:?}", answer.text());
}

#[test]
fn go_tool_pprof_reads_every_profile_over_http() {
    let addr = server();
    for (name, expect) in [
        ("heap", "Type: inuse_space"),
        ("allocs", "grow_maps"),
        ("mutex", "hold_lock"),
        ("block", "hold_lock"),
        ("resize", "grow_maps"),
        ("allocs?seconds=1", "grow_maps"),
        ("mutex?seconds=1", "Type: delay"),
    ] {
        let out = go_top(addr, name);
        assert!(out.contains(expect), "{name}: no {expect:?} in\n{out}");
    }
    let _cpu = CPU.lock().unwrap_or_else(PoisonError::into_inner);
    // The CPU profile carries the labels: -tagfocus keeps the map-growing thread's samples.
    let out = go_pprof(
        &["-top", "-tagfocus=worker=maps"],
        Path::new(&url(addr, "profile?seconds=2")),
    );
    assert!(out.contains("Type: cpu"), "{out}");
    assert!(out.contains("grow_maps"), "{out}");
    assert!(!out.contains("hold_lock"), "{out}");
}

#[test]
fn eight_concurrent_scrapes_all_succeed() {
    let addr = server();
    let scrapes: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                let name = PROFILES[i % PROFILES.len()];
                if i % 2 == 0 {
                    let profile = assert_profile(&get(addr, &format!("/debug/pprof/{name}")), name);
                    assert!(!profile.sample_type.is_empty());
                    let svg = get(addr, &format!("/debug/pprof/flame/{name}.svg"));
                    assert_eq!(svg.status, 200, "{}", svg.text());
                    svg_title(&svg.body);
                } else {
                    let out = go_top(addr, name);
                    assert!(
                        out.contains("Showing nodes") || out.contains("Type:"),
                        "{out}"
                    );
                }
            })
        })
        .collect();
    for scrape in scrapes {
        scrape.join().expect("every scrape succeeds");
    }
}

#[test]
fn profiles_come_with_gos_headers_and_deltas_cover_their_window() {
    let addr = server();
    for name in PROFILES {
        let profile = assert_profile(&get(addr, &format!("/debug/pprof/{name}")), name);
        assert!(
            !profile.sample.is_empty(),
            "{name}: the workload recorded nothing"
        );
    }
    let delta = assert_profile(&get(addr, "/debug/pprof/allocs?seconds=1"), "allocs-delta");
    let seconds = delta.duration_nanos as f64 / 1e9;
    assert!((0.9..3.0).contains(&seconds), "{seconds} s");
    let view = ProfileView::new(&delta).unwrap();
    let space = view.sample_index_by_name("alloc_space").unwrap();
    let total: i64 = view.samples().map(|s| s.value(space)).sum();
    let cumulative = decode(&get(addr, "/debug/pprof/allocs").body).unwrap();
    let view = ProfileView::new(&cumulative).unwrap();
    let cumulative: i64 = view.samples().map(|s| s.value(space)).sum();
    assert!(
        total > 0 && total < cumulative,
        "one second's allocations ({total}) are some of all of them ({cumulative})"
    );
    let comments: Vec<&str> = delta
        .comment
        .iter()
        .map(|&c| delta.string_table[c as usize].as_str())
        .collect();
    assert!(
        comments.iter().any(|c| c.starts_with("delta")),
        "{comments:?}"
    );
    assert_profile(&get(addr, "/debug/pprof/resize?seconds=1"), "resize-delta");

    let text = get(
        addr,
        "/debug/pprof/allocs?debug=1&sample_index=alloc_objects",
    );
    assert_eq!(text.status, 200);
    assert_eq!(
        text.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert!(text.text().contains("flat%"), "{}", text.text());
}

#[test]
fn the_index_lists_every_profile_with_links_that_answer() {
    let addr = server();
    let index = get(addr, "/debug/pprof/");
    assert_eq!(index.status, 200);
    assert_eq!(
        index.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = index.text();
    // A count per profile, as Go's index: the heap's stacks, which the load has made.
    let heap_row = html
        .split("<tr>")
        .find(|r| r.contains("href='heap'"))
        .unwrap();
    let heap_count = heap_row
        .strip_prefix("<td>")
        .and_then(|r| r.split_once("</td>"))
        .and_then(|(n, _)| n.parse::<usize>().ok());
    assert!(heap_count.is_some_and(|n| n > 0), "{heap_row}");
    let links: Vec<String> = html
        .split("href='")
        .skip(1)
        .filter_map(|s| s.split('\'').next())
        .map(|s| s.replace("&amp;", "&"))
        .collect();
    for name in PROFILES.iter().chain(&["profile", "cmdline", "symbol"]) {
        assert!(
            links
                .iter()
                .any(|l| l == name || l.starts_with(&format!("{name}?"))),
            "no link to {name} in {links:?}"
        );
    }
    for name in PROFILES.iter().chain(&["profile"]) {
        assert!(
            links
                .iter()
                .any(|l| l.starts_with(&format!("flame/{name}.svg"))),
            "no flame graph of {name} in {links:?}"
        );
    }
    let _cpu = CPU.lock().unwrap_or_else(PoisonError::into_inner);
    for link in &links {
        // 30 seconds of CPU profile are too long for a test: 1 is the same code.
        let link = link.replace("seconds=30", "seconds=1");
        let answer = get(addr, &format!("/debug/pprof/{link}"));
        assert_eq!(answer.status, 200, "{link}: {}", answer.text());
        if let Some(rest) = link.strip_prefix("flame/") {
            let (name, query) = rest.split_once(".svg").unwrap();
            assert_eq!(answer.header("content-type"), Some("image/svg+xml"));
            let title = svg_title(&answer.body);
            let name = if name == "profile" { "cpu" } else { name };
            let sample_type = query
                .trim_start_matches('?')
                .split('&')
                .find_map(|p| p.strip_prefix("sample_index="))
                .unwrap();
            assert!(
                title.starts_with(&format!("{name} profile — {sample_type}")),
                "{link}: title {title:?}"
            );
        }
    }
}

#[test]
fn errors_are_the_ones_go_gives() {
    let addr = server();
    assert_go_error(&get(addr, "/nope"), 404, "404 page not found");
    for absent in ["threadcreate", "trace"] {
        let answer = get(addr, &format!("/debug/pprof/{absent}?debug=2"));
        assert_go_error(&answer, 404, "Unknown profile: mapprof does not serve");
        assert!(answer.text().contains(absent), "{}", answer.text());
    }
    let threadcreate = get(addr, "/debug/pprof/threadcreate").text();
    assert!(threadcreate.contains("thread creation"), "{threadcreate}");
    // The goroutine profile is served: a thread dump (tests/thread_dump_*.rs).
    for name in ["goroutine", "threads"] {
        let full = get(addr, &format!("/debug/pprof/{name}?debug=2"));
        assert_eq!(full.status, 200, "{}", full.text());
        assert!(full.text().contains("thread "), "{}", full.text());
    }
    let top = go_pprof(
        &["-top"],
        Path::new(&format!("http://{addr}/debug/pprof/goroutine")),
    );
    assert!(top.contains("Type: threads"), "{top}");
    assert_go_error(&get(addr, "/debug/pprof/heap/"), 404, "Unknown profile");
    assert_go_error(
        &get(addr, "/debug/pprof/flame/nope.svg"),
        404,
        "Unknown profile",
    );
    assert_go_error(
        &get(addr, "/debug/pprof/flame/heap"),
        404,
        "Unknown profile",
    );
    for seconds in ["abc", "0", "-1", "1.5", "99999999999999999999999"] {
        for path in ["heap", "profile", "flame/mutex.svg"] {
            assert_go_error(
                &get(addr, &format!("/debug/pprof/{path}?seconds={seconds}")),
                400,
                "invalid value for \"seconds\" - must be a positive integer",
            );
        }
    }
    assert_go_error(
        &get(addr, "/debug/pprof/block?seconds=100000"),
        400,
        "profile duration exceeds server's WriteTimeout",
    );
    assert_go_error(
        &get(addr, "/debug/pprof/heap?seconds=1&debug=1"),
        400,
        "seconds and debug params are incompatible",
    );
    for path in [
        "flame/heap.svg?sample_index=bogus",
        "heap?debug=1&sample_index=bogus",
        // Refused at once, not after 30 seconds of profiling.
        "flame/profile.svg?sample_index=bogus",
        "flame/allocs.svg?sample_index=bogus&seconds=1",
    ] {
        assert_go_error(
            &get(addr, &format!("/debug/pprof/{path}")),
            400,
            "invalid value for \"sample_index\"",
        );
    }
    let wrong_method = request(addr, "POST", "/debug/pprof/heap", b"");
    assert_go_error(&wrong_method, 405, "Method Not Allowed");
    assert_eq!(wrong_method.header("allow"), Some("GET, HEAD"));
    let redirect = get(addr, "/debug/pprof");
    assert_eq!(redirect.status, 301);
    assert_eq!(redirect.header("location"), Some("/debug/pprof/"));

    // One CPU profile at a time, as in Go.
    let _cpu = CPU.lock().unwrap_or_else(PoisonError::into_inner);
    let running = mapprof::CpuProfiler::start(mapprof::DEFAULT_CPU_HZ).unwrap();
    assert_go_error(
        &get(addr, "/debug/pprof/profile?seconds=1"),
        500,
        "Could not enable CPU profiling: ",
    );
    drop(running);
    let answer = get(addr, "/debug/pprof/profile?seconds=1");
    assert_profile(&answer, "profile");
}

/// Always inlined: its instructions are at its caller's addresses.
#[inline(always)]
fn inlined_into_its_caller(x: u64) -> u64 {
    std::hint::black_box(x).wrapping_mul(31)
}

#[inline(never)]
fn calls_an_inlined_function(x: u64) -> u64 {
    inlined_into_its_caller(std::hint::black_box(x)).wrapping_add(1)
}

/// symbolz has one name per address: for an address inside an inlined call it is the function
/// the address is in (the outermost frame), so that the caller does not vanish behind what it
/// inlined.
#[test]
fn symbol_names_the_function_an_inlined_call_is_in() {
    let addr = server();
    assert_eq!(calls_an_inlined_function(1), 32);
    let start = calls_an_inlined_function as *const () as usize as u64;
    let mut symbolizer = mapprof_profile::symbolize::Symbolizer::new();
    let inside_inlined_call = (start..start + 256)
        .find(|&pc| {
            let frames = symbolizer.resolve(pc);
            let inlined = &frames[..frames.len().saturating_sub(1)];
            inlined
                .iter()
                .any(|f| f.name.ends_with("::inlined_into_its_caller"))
        })
        .expect("the inlined call has addresses of its own in its caller");
    let frames = symbolizer.resolve(inside_inlined_call);
    assert!(
        frames
            .last()
            .unwrap()
            .name
            .ends_with("::calls_an_inlined_function"),
        "{frames:?}"
    );

    let answer = get(
        addr,
        &format!("/debug/pprof/symbol?{inside_inlined_call:#x}"),
    );
    assert_eq!(answer.status, 200);
    let text = answer.text();
    let (_, name) = text.lines().nth(1).unwrap().split_once(' ').unwrap();
    assert!(name.ends_with("::calls_an_inlined_function"), "{text}");
}

#[test]
fn symbol_and_cmdline_answer_as_go_does() {
    let addr = server();
    let answer = get(addr, "/debug/pprof/symbol");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), "num_symbols: 1\n");
    assert_eq!(
        answer.header("content-type"),
        Some("text/plain; charset=utf-8")
    );

    let pc = grow_maps as *const () as usize as u64 + 1;
    let body = format!("{pc:#x}+0x0+nonsense+{pc}");
    for answer in [
        request(addr, "POST", "/debug/pprof/symbol", body.as_bytes()),
        get(addr, &format!("/debug/pprof/symbol?{body}")),
    ] {
        assert_eq!(answer.status, 200, "{}", answer.text());
        let text = answer.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0], "num_symbols: 1");
        for line in &lines[1..] {
            let (address, name) = line.split_once(' ').unwrap();
            assert_eq!(address, format!("{pc:#x}"));
            assert!(name.ends_with("grow_maps"), "{line}");
        }
    }
    let too_large = vec![b'1'; 100 << 10];
    assert_go_error(
        &request(addr, "POST", "/debug/pprof/symbol", &too_large),
        413,
        "request body too large",
    );

    let cmdline = get(addr, "/debug/pprof/cmdline");
    assert_eq!(cmdline.status, 200);
    assert_eq!(
        cmdline.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    let args: Vec<String> = std::env::args().collect();
    assert_eq!(cmdline.text(), args.join("\0"));
}

/// `flame/<profile>.svg?from_app=N` draws as `mapprof flame --from-app=N`, and a bad N is a
/// 400 before anything is taken.
#[test]
fn flame_graphs_start_at_the_application_with_from_app() {
    let addr = server();
    let answer = get(addr, "/debug/pprof/flame/allocs.svg?from_app=0");
    assert_eq!(answer.status, 200, "{}", answer.text());
    let svg = answer.text();
    assert!(svg.contains("stacks start 0 frames below"), "{svg}");
    assert!(svg.contains("grow_maps"), "{svg}");
    let answer = get(addr, "/debug/pprof/flame/allocs.svg?from_app");
    assert!(answer.text().contains("stacks start 2 frames below"));
    assert_go_error(
        &get(addr, "/debug/pprof/flame/profile.svg?from_app=x&seconds=30"),
        400,
        "invalid value for \"from_app\"",
    );
}
