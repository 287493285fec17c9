//! A client that shuts its write side once its request is sent (`nc -N`, issue 18 point 5) gets
//! the whole answer, as from Go's net/http/pprof: a profile that decodes, the index, the
//! command line, HTTP/1.0 and HTTP/1.1 alike.
#![cfg(feature = "http")]

mod http_client;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::system();

/// Writes the request, half-closes, reads until the server closes.
fn half_closed(addr: SocketAddr, version: &str, path: &str) -> http_client::Answer {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(stream, "GET {path} {version}\r\nHost: {addr}\r\n\r\n").unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("{version} {path}: {e} after {} bytes", raw.len()));
    assert!(!raw.is_empty(), "{version} {path}: no answer at all");
    http_client::parse(&raw).unwrap_or_else(|e| panic!("{version} {path}: {e}"))
}

#[test]
fn a_client_that_half_closes_after_its_request_gets_the_whole_answer() {
    let _profiler = mapprof::Profiler::builder()
        .heap_rate(1024)
        .start()
        .unwrap();
    let keep: Vec<Vec<u8>> = (0..200).map(|i| vec![i as u8; 4096]).collect();
    let server = mapprof::http::serve("127.0.0.1:0").unwrap();
    let addr = server.addr();
    for round in 0..5 {
        for version in ["HTTP/1.0", "HTTP/1.1"] {
            for path in [
                "/debug/pprof/heap",
                "/debug/pprof/allocs",
                "/debug/pprof/mutex",
            ] {
                let a = half_closed(addr, version, path);
                assert_eq!(a.status, 200, "{round} {version} {path}: {}", a.text());
                mapprof_profile::codec::decode(&a.body)
                    .unwrap_or_else(|e| panic!("{round} {version} {path}: {e}"));
            }
            let a = half_closed(addr, version, "/debug/pprof/heap?debug=1");
            assert_eq!(a.status, 200);
            assert!(a.text().contains("Type: inuse_space"), "{}", a.text());
            let a = half_closed(addr, version, "/debug/pprof/cmdline");
            assert_eq!(a.status, 200);
            assert!(!a.body.is_empty());
            let a = half_closed(addr, version, "/debug/pprof/");
            assert_eq!(a.status, 200);
            assert!(a.text().contains("heap"), "{}", a.text());
        }
    }
    drop(keep);
    server.stop();
}
