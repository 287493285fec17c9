//! The `/debug/pprof` server in an idle process: loopback unless asked otherwise; bad, oversized
//! and idle connections are refused or timed out without crashing it, stalling it, or growing
//! its threads; idle profiles are valid. The hostile set of issue 18 (garbage request lines,
//! slowloris heads, idle connections, a 4 MiB head, absurd `seconds=`, malformed query
//! strings): each gets a 4xx or a bounded close, normal requests are answered during and
//! after, and resident memory stays bounded. One test, run step by step, so that the thread counts
//! it reads are this server's alone.
#![cfg(feature = "http")]

mod common;
mod http_client;

use http_client::{get, request, send, thread_count};
use mapprof::http::{self, HttpOptions, HEAD_TIMEOUT, WORKER_THREADS};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::system();

#[test]
fn the_server_is_loopback_only_and_bounded_and_survives_bad_input() {
    let threads_before = thread_count();
    non_loopback_addresses_are_refused_without_the_flag();
    // A joined thread can linger in /proc for a moment on a loaded machine.
    let deadline = Instant::now() + Duration::from_secs(5);
    while thread_count() > threads_before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        thread_count(),
        threads_before,
        "a refused server left a thread"
    );

    let server = http::serve("127.0.0.1:0").expect("serve on loopback");
    let addr = server.addr();
    // Started first, checked last: a client that never finishes its request head.
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET /debug/pprof/heap HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let slow_since = Instant::now();
    let rss_at_start = rss_kib();
    // Slowloris: heads trickled a byte at a time, all cut off by HEAD_TIMEOUT too.
    let trickle = std::thread::spawn(move || slowloris(addr, 100));

    idle_profiles_are_valid(addr);
    malformed_and_oversized_requests_are_refused(addr);
    hostile_requests_get_a_4xx_or_a_bounded_close(addr);
    a_flood_of_idle_connections_grows_no_threads(addr, threads_before);
    connections_beyond_the_limit_are_turned_away();

    // The unfinished head is cut off after HEAD_TIMEOUT.
    slow.set_read_timeout(Some(HEAD_TIMEOUT * 3)).unwrap();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    let waited = slow_since.elapsed();
    assert!(
        waited >= HEAD_TIMEOUT && waited < HEAD_TIMEOUT * 2,
        "closed after {waited:?}"
    );
    assert_eq!(get(addr, "/debug/pprof/heap").status, 200);
    let (cut, longest) = trickle.join().unwrap();
    eprintln!("slowloris: {cut} of 100 trickled heads cut off, the last after {longest:?}");
    assert_eq!(
        cut,
        100,
        "trickled heads still open after {:?}",
        HEAD_TIMEOUT * 2
    );
    let grown = rss_kib().saturating_sub(rss_at_start);
    eprintln!("resident memory grew {grown} KiB over the hostile set");
    assert!(
        grown < 96 << 10,
        "the hostile set left {grown} KiB more resident"
    );

    server.stop();
    assert!(
        TcpStream::connect(addr).is_err(),
        "stopped, yet {addr} accepts"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while thread_count() > threads_before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(thread_count(), threads_before, "threads left after stop()");
}

fn non_loopback_addresses_are_refused_without_the_flag() {
    for addr in ["0.0.0.0:0", "[::]:0"] {
        let e = http::serve(addr).expect_err(addr);
        assert!(
            matches!(e, mapprof::Error::HttpNotLoopback { .. }),
            "{addr}: {e:?}"
        );
        let message = e.to_string();
        assert!(
            message.contains("not a loopback address") && message.contains("http_public=true"),
            "{message}"
        );
    }
    // The same through the profiler, which then is not left half-started.
    let e = mapprof::Profiler::builder()
        .http("0.0.0.0:0")
        .start()
        .expect_err("refused");
    assert!(matches!(e, mapprof::Error::HttpNotLoopback { .. }), "{e:?}");
    let e = mapprof::Config::default()
        .parse("http=0.0.0.0:6060,http_public=maybe")
        .unwrap_err();
    assert!(e.to_string().contains("http_public"), "{e}");
    drop(
        mapprof::Profiler::builder()
            .start()
            .expect("not left running"),
    );

    // Asked for explicitly, it is allowed.
    let mut options = HttpOptions::default();
    options.public = true;
    let public = http::serve_with("0.0.0.0:0", &options).expect("public when asked");
    assert!(public.addr().ip().is_unspecified());
    let local = SocketAddr::from(([127, 0, 0, 1], public.addr().port()));
    assert_eq!(get(local, "/debug/pprof/cmdline").status, 200);
    public.stop();
    // Names that resolve to loopback only are loopback.
    http::serve("localhost:0").expect("localhost").stop();
}

fn idle_profiles_are_valid(addr: SocketAddr) {
    for (path, filename) in [
        ("heap?seconds=1", "heap-delta"),
        ("mutex?seconds=1", "mutex-delta"),
        ("profile?seconds=1", "profile"),
    ] {
        let answer = get(addr, &format!("/debug/pprof/{path}"));
        assert_eq!(answer.status, 200, "{path}: {}", answer.text());
        assert_eq!(
            answer.header("content-disposition"),
            Some(format!("attachment; filename=\"{filename}\"").as_str())
        );
        mapprof_profile::codec::decode(&answer.body).expect("a valid, possibly empty profile");
    }
    let flame = get(addr, "/debug/pprof/flame/block.svg?seconds=1");
    assert_eq!(flame.status, 200);
    assert!(http_client::svg_title(&flame.body).starts_with("block profile"));
    let out = common::go_pprof(
        &["-top"],
        Path::new(&format!("http://{addr}/debug/pprof/block?seconds=1")),
    );
    assert!(out.contains("Type: delay"), "{out}");
}

fn malformed_and_oversized_requests_are_refused(addr: SocketAddr) {
    let long_line = format!(
        "GET /debug/pprof/heap?x={} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(64 << 10)
    );
    let many_headers = format!(
        "GET /debug/pprof/heap HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..400)
            .map(|i| format!("X-Pad-{i}: {}\r\n", "p".repeat(100)))
            .collect::<String>()
    );
    let cases: [(&str, &[u8]); 6] = [
        ("an oversized request line", long_line.as_bytes()),
        ("oversized headers", many_headers.as_bytes()),
        ("garbage", b"\x00\x01\x02\xff\xfe garbage \r\n\r\n"),
        ("no HTTP version", b"GET /debug/pprof/heap\r\n\r\n"),
        (
            "a bad header line",
            b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
        ),
        ("HTTP/2's preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
    ];
    for (what, raw) in cases {
        // The server answers 4xx and closes, or just closes: never 2xx, never a hang.
        let answer = send(addr, raw);
        eprintln!("{what}: {:?}", answer.as_ref().map(|a| a.status));
        match answer {
            Ok(answer) => assert!(
                (400..500).contains(&answer.status),
                "{what}: {} {}",
                answer.status,
                answer.text()
            ),
            Err(e) => assert!(!e.contains("timed out"), "{what}: {e}"),
        }
        assert_eq!(
            get(addr, "/debug/pprof/cmdline").status,
            200,
            "after {what}"
        );
    }
    // A body larger than allowed is refused by its declared length, unread.
    let mut big = TcpStream::connect(addr).unwrap();
    big.write_all(
        b"POST /debug/pprof/symbol HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n0x1+",
    )
    .unwrap();
    big.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = Vec::new();
    let _ = big.read_to_end(&mut answer);
    let answer = http_client::parse(&answer).expect("an answer");
    assert_eq!(answer.status, 413, "{}", answer.text());
    assert_eq!(request(addr, "PUT", "/debug/pprof/symbol", b"").status, 405);
}

/// Opens `n` connections and trickles a request head into each, one byte per connection every
/// 250 ms, until the server closes them or twice HEAD_TIMEOUT passed. Returns how many were
/// cut off, and when the last was.
fn slowloris(addr: SocketAddr, n: usize) -> (usize, Duration) {
    let head = b"GET /debug/pprof/heap HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    let started = Instant::now();
    let mut open: Vec<(TcpStream, usize)> = (0..n)
        .map(|_| {
            let s = TcpStream::connect(addr).unwrap();
            s.set_nonblocking(true).unwrap();
            (s, 0)
        })
        .collect();
    let (mut cut, mut longest) = (0, Duration::ZERO);
    while !open.is_empty() && started.elapsed() < HEAD_TIMEOUT * 2 {
        open.retain_mut(|(s, sent)| {
            let mut buf = [0u8; 512];
            let closed = match s.read(&mut buf) {
                Ok(_) => true, // EOF, or an answer (408/400) before the close
                Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
            };
            let byte = [*head.get(*sent).unwrap_or(&b'a')];
            if closed || s.write(&byte).is_err() {
                cut += 1;
                longest = started.elapsed();
                return false;
            }
            *sent += 1;
            true
        });
        std::thread::sleep(Duration::from_millis(250));
    }
    (cut, longest)
}

/// The rest of the hostile set: each request gets a 4xx, or is closed, within seconds; normal
/// requests are answered after each.
fn hostile_requests_get_a_4xx_or_a_bounded_close(addr: SocketAddr) {
    let answered = |what: &str| {
        let started = Instant::now();
        assert_eq!(
            get(addr, "/debug/pprof/cmdline").status,
            200,
            "after {what}"
        );
        assert!(started.elapsed() < Duration::from_secs(5), "after {what}");
    };
    let four_xx_or_close = |what: &str, raw: &[u8]| -> Option<u16> {
        let started = Instant::now();
        let answer = send(addr, raw);
        assert!(
            started.elapsed() < Duration::from_secs(HEAD_TIMEOUT.as_secs() + 5),
            "{what}: {:?}",
            started.elapsed()
        );
        match answer {
            Ok(a) => {
                assert!(
                    (400..500).contains(&a.status),
                    "{what}: {} {}",
                    a.status,
                    a.text()
                );
                Some(a.status)
            }
            Err(e) => {
                assert!(!e.contains("timed out"), "{what}: {e}");
                None
            }
        }
    };

    // Garbage request lines: fixed ones, then random bytes from a fixed seed.
    let fixed: [&[u8]; 8] = [
        b"GET\r\n\r\n",
        b"\r\n\r\n\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"G\x00T /debug/pprof/heap HTTP/1.1\r\n\r\n",
        b"GET /debug/pprof/heap HTTP/1.1 extra\r\n\r\n",
        b"GET http://[::1 HTTP/1.1\r\n\r\n",
        b"GET /debug/pprof/heap HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"GET /debug/pprof/heap HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    ];
    for (i, raw) in fixed.iter().enumerate() {
        four_xx_or_close(&format!("garbage line {i}"), raw);
    }
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..200 {
        let len = 1 + next() as usize % 200;
        let mut raw: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        raw.extend_from_slice(b"\r\n\r\n");
        four_xx_or_close(&format!("random request line {i}"), &raw);
    }
    answered("garbage request lines");

    // A 4 MiB head: refused once past MAX_HEAD_BYTES, the rest not read.
    let mut big = TcpStream::connect(addr).unwrap();
    big.set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    big.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    let _ = big.write_all(b"GET /debug/pprof/heap HTTP/1.1\r\nHost: x\r\n");
    let pad = format!("X-Pad: {}\r\n", "p".repeat(1000));
    let mut sent = 0;
    while sent < 4 << 20 {
        if big.write_all(pad.as_bytes()).is_err() {
            break; // closed (reset) by the server: a bounded close
        }
        sent += pad.len();
    }
    let mut rest = Vec::new();
    let _ = big.read_to_end(&mut rest);
    eprintln!(
        "4 MiB head: {sent} bytes written before the close, {:?}, answer {:?}",
        started.elapsed(),
        http_client::parse(&rest).map(|a| a.status)
    );
    if let Ok(a) = http_client::parse(&rest) {
        assert!((400..500).contains(&a.status), "{}", a.status);
    }
    assert!(started.elapsed() < Duration::from_secs(15));
    answered("a 4 MiB head");

    // Absurd `seconds=`: 400 with the reason, at once (nothing waited out).
    for seconds in [
        "0",
        "-1",
        "abc",
        "1e9",
        "1.5",
        "%00",
        "18446744073709551615",
        "18446744073709551616",
        "99999999999999999999999999999999",
        "100000",
        "+1%20",
    ] {
        for endpoint in ["heap", "profile", "mutex", "flame/heap.svg"] {
            let started = Instant::now();
            let a = get(addr, &format!("/debug/pprof/{endpoint}?seconds={seconds}"));
            assert_eq!(a.status, 400, "{endpoint}?seconds={seconds}: {}", a.text());
            assert!(
                a.text().contains("seconds"),
                "{endpoint}?seconds={seconds}: {}",
                a.text()
            );
            assert!(started.elapsed() < Duration::from_secs(5));
        }
    }
    answered("absurd seconds");

    // Malformed query strings: a 4xx or an answer, never a 5xx, never a hang.
    let long_query = "x=1&".repeat(3000);
    for query in [
        "%zz",
        "%",
        "&&&=&=",
        "debug=%ff%fe",
        "debug=99999999999999999999",
        "debug=1&debug=2&debug=x",
        "sample_index=%00",
        "sample_index=nonexistent&debug=1",
        "a=b=c",
        "=",
        "seconds",
        "seconds=",
        long_query.as_str(),
    ] {
        for endpoint in ["heap", "allocs", "mutex", "cmdline", "", "symbol"] {
            let started = Instant::now();
            let a = get(addr, &format!("/debug/pprof/{endpoint}?{query}"));
            let shown: String = query.chars().take(40).collect();
            assert!(
                a.status < 500,
                "{endpoint}?{shown}: {} {}",
                a.status,
                a.text()
            );
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{endpoint}?{shown}"
            );
        }
    }
    answered("malformed query strings");
}

fn a_flood_of_idle_connections_grows_no_threads(addr: SocketAddr, threads_before: usize) {
    let bound = threads_before + 1 + WORKER_THREADS;
    let rss_before = rss_kib();
    let idle: Vec<TcpStream> = (0..500)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    // Half of them start a request and stop mid-head.
    for stream in idle.iter().step_by(2) {
        let mut stream = stream;
        stream
            .write_all(b"GET /debug/pprof/heap HTTP/1.1\r\n")
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    let threads = thread_count();
    eprintln!("threads: {threads_before} before the server, {threads} with 500 idle connections");
    assert!(
        threads <= bound,
        "{threads} threads with 500 idle connections; at most {bound} expected"
    );
    // Still answering, while they are all open.
    let started = Instant::now();
    assert_eq!(get(addr, "/debug/pprof/heap").status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let grown = rss_kib().saturating_sub(rss_before);
    eprintln!("resident memory grew {grown} KiB with 500 idle connections");
    assert!(grown < 64 << 10, "500 idle connections took {grown} KiB");
    drop(idle);
}

fn connections_beyond_the_limit_are_turned_away() {
    let mut options = HttpOptions::default();
    options.max_connections = 8;
    let server = http::serve_with("127.0.0.1:0", &options).unwrap();
    let addr = server.addr();
    let held: Vec<TcpStream> = (0..8).map(|_| TcpStream::connect(addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let refused = get(addr, "/debug/pprof/cmdline");
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.header("x-go-pprof"), Some("1"));
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let answer = get(addr, "/debug/pprof/cmdline");
        if answer.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still refused: {}",
            answer.status
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server.stop();
}

fn rss_kib() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
