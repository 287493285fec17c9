//! `go tool pprof -http` serves the source view and the graph of a mapprof heap profile, with
//! the test binary (a position-independent executable) present at the path its mapping names:
//! the case where pprof's source view used to come out empty.
#![cfg(feature = "jemalloc")]

mod common;
mod http_client;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::jemalloc();

const UI_BUFFER_BYTES: usize = 1 << 20;

#[inline(never)]
fn allocate_for_the_source_view() -> Vec<Vec<u8>> {
    (0..32)
        .map(|_| Vec::with_capacity(UI_BUFFER_BYTES))
        .collect()
}

/// `go tool pprof -http` on a port of its own, killed when dropped.
struct PprofUi {
    child: Child,
    addr: SocketAddr,
}

impl PprofUi {
    fn start(profile: &std::path::Path) -> Option<PprofUi> {
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap();
        let child = Command::new("go")
            .args(["tool", "pprof", "-no_browser"])
            .arg(format!("-http={addr}"))
            .arg(profile)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let ui = PprofUi { child, addr };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "go tool pprof -http did not listen"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(ui)
    }
}

impl Drop for PprofUi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn source_view_lists_the_allocating_lines_and_the_graph_is_drawn() {
    let _p = mapprof::Profiler::builder()
        .heap_rate(4096)
        .start()
        .unwrap();
    let kept = common::on_new_thread(allocate_for_the_source_view);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("heap.pb.gz");
    mapprof::write_profile_to_path(mapprof::ProfileKind::Heap, &file).unwrap();

    let Some(ui) = PprofUi::start(&file) else {
        eprintln!("skipped: `go` not found (`make setup` installs it)");
        return;
    };
    // pprof's URL scheme: /ui/ the graph, /ui/source?f=REGEXP the source listing.
    let source = http_client::get(ui.addr, "/ui/source?f=allocate_for_the_source_view");
    assert_eq!(source.status, 200, "{}", source.text());
    let source = source.text();
    assert!(
        source.contains("Vec::with_capacity(UI_BUFFER_BYTES)"),
        "the source view lists the function's lines from its file:\n{source}"
    );
    assert!(source.contains("go_pprof_web_ui_shows_source_and_graph.rs"));

    let graph = http_client::get(ui.addr, "/ui/");
    assert_eq!(graph.status, 200);
    let graph = graph.text();
    assert!(
        !graph.contains("Could not execute dot"),
        "graphviz is missing: `make setup` installs it"
    );
    assert!(
        graph.contains("<svg") && graph.contains("allocate_for_the_source_view"),
        "the graph names the function:\n{graph}"
    );
    drop(kept);
}
