//! mapprof's own memory, with `Alloc::jemalloc()`: what building, encoding and serving profiles
//! allocates lands in mapprof's own arena, not the host's, goes back after each profile and
//! scrape (RssAnon plateaus under a fixed bound), and `mapprof::self_memory` shows it.
//! Allocations under `mapprof::ignore` stay the host's.
#![cfg(feature = "jemalloc")]

#[cfg(feature = "http")]
mod http_client;

use mapprof::{ProfileKind, SelfMemory};
use std::hint::black_box;
use std::io::Write;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::jemalloc();

/// The tests read process-wide counters: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const MIB: usize = 1 << 20;

/// A field of /proc/self/status in bytes (`RssAnon`, `VmRSS`).
fn status(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    let kib: usize = line[field.len() + 1..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .expect("a number of kB");
    kib * 1024
}

fn own_heap(m: &SelfMemory) -> usize {
    m.heap_allocated
        .expect("jemalloc: the profiler's heap is its own arena")
}

/// Bytes allocated in the host's arenas: jemalloc's total minus mapprof's arena.
fn host_allocated() -> usize {
    let own = own_heap(&mapprof::self_memory()); // advances jemalloc's epoch
    tikv_jemalloc_ctl::stats::allocated::read().expect("stats") - own
}

/// A host workload with many distinct stacks (so the stack table and the symbolizer have work)
/// and some memory kept live.
fn host_workload(keep: &mut Vec<Vec<u8>>) {
    #[inline(never)]
    fn nest(depth: u32, size: usize, keep: &mut Vec<Vec<u8>>) {
        if depth == 0 {
            let v = black_box(vec![1u8; size]);
            if size.is_multiple_of(4) {
                keep.push(v);
            }
        } else {
            nest(black_box(depth - 1), size, keep);
        }
    }
    for depth in 0..24 {
        for size in [24, 100, 1000, 5000, 40_000] {
            nest(depth, size + depth as usize, keep);
        }
    }
}

/// A writer that looks at mapprof's memory while a profile is being encoded into it.
struct Observing {
    during: Option<SelfMemory>,
    bytes: usize,
}

impl Write for Observing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.during.is_none() {
            self.during = Some(mapprof::self_memory());
        }
        self.bytes += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Builds and encodes every profile kind once; returns what mapprof held during the first.
fn build_every_profile() -> SelfMemory {
    let mut during = None;
    for kind in ProfileKind::ALL {
        let mut out = Observing {
            during: None,
            bytes: 0,
        };
        mapprof::write_profile(kind, &mut out).expect("write the profile");
        assert!(out.bytes > 0, "{kind:?}");
        during = during.or(out.during);
    }
    during.expect("observed while encoding")
}

/// Scrapes every endpoint through the server and checks it answered.
#[cfg(feature = "http")]
fn scrape_every_endpoint(addr: std::net::SocketAddr) {
    for path in [
        "/debug/pprof/",
        "/debug/pprof/heap",
        "/debug/pprof/allocs",
        "/debug/pprof/mutex",
        "/debug/pprof/block",
        "/debug/pprof/resize",
        "/debug/pprof/heap?debug=1",
        "/debug/pprof/flame/heap.svg?sample_index=alloc_space",
        "/debug/pprof/flame/resize.svg?sample_index=resize_space",
        "/debug/pprof/cmdline",
    ] {
        let answer = http_client::get(addr, path);
        assert_eq!(answer.status, 200, "{path}: {}", answer.text());
    }
}

/// What mapprof's heap holds once the server's threads have finished the responses the client
/// has already read (they give their memory back as each response is dropped): waits, bounded,
/// until two looks agree.
fn settled() -> SelfMemory {
    let mut last = mapprof::self_memory();
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(20));
        let now = mapprof::self_memory();
        if own_heap(&now) == own_heap(&last) {
            return now;
        }
        last = now;
    }
    last
}

/// One round: every profile built and encoded, every endpoint scraped (with `http`); checks
/// that the work's memory was the profiler's, not the host's. Returns (during, after).
fn round(profiler: &mapprof::Profiler, n: usize) -> (SelfMemory, SelfMemory) {
    let host_before = host_allocated();
    let during = build_every_profile();
    #[cfg(feature = "http")]
    scrape_every_endpoint(profiler.http_addr().expect("serving"));
    #[cfg(not(feature = "http"))]
    let _ = profiler;
    let after = settled();
    let host_after = host_allocated();
    // Positive control: the work held memory in mapprof's heap, and the tables are in use.
    assert!(own_heap(&during) > 64 << 10, "{during:?}");
    assert!(during.tables_resident > 0 && during.total >= during.tables_resident);
    assert!(during.peak >= during.total && during.tables_reserved > 12 * MIB);
    // The work's allocations were not the host's: the host's arenas hold what they held.
    assert!(
        host_after.abs_diff(host_before) < MIB,
        "round {n}: host arenas {host_before} → {host_after} bytes"
    );
    eprintln!(
        "round {n}: RssAnon {:.1} MiB, VmRSS {:.1} MiB; during: {during:?}; after: {after:?}",
        status("RssAnon") as f64 / MIB as f64,
        status("VmRSS") as f64 / MIB as f64,
    );
    (during, after)
}

fn start(symbolize: bool) -> mapprof::Profiler {
    let builder = mapprof::Profiler::builder()
        .heap_rate(64)
        .mutex_fraction(1)
        .block_rate(1)
        .symbolize(symbolize);
    #[cfg(feature = "http")]
    let builder = builder.http("127.0.0.1:0");
    builder.start().expect("start the profiler")
}

#[test]
fn profiles_and_scrapes_give_their_memory_back_and_stay_out_of_the_hosts_arenas() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let mut keep = Vec::new();
    host_workload(&mut keep);
    let bare_rss = status("RssAnon");
    eprintln!("bare: RssAnon {:.1} MiB", bare_rss as f64 / MIB as f64);

    // Unsymbolized, the profiler keeps nothing between profiles: its heap goes back to
    // (near) zero after each round.
    let profiler = start(false);
    for n in 0..4 {
        let (during, after) = round(&profiler, n);
        // The footprint's bound on transient memory: 16 MiB while a profile is made ...
        assert!(own_heap(&during) < 16 * MIB, "round {n}: {during:?}");
        // ... and next to nothing once it is done.
        assert!(own_heap(&after) < MIB, "round {n}: {after:?}");
        assert!(
            after.heap_resident.unwrap() < 4 * MIB,
            "round {n}: {after:?}"
        );
        host_workload(&mut keep);
        keep.truncate(64);
    }
    drop(profiler);

    // Symbolized, it keeps its symbol cache: that stops growing once every stack was seen, and
    // the process's anonymous memory plateaus under a fixed bound.
    let profiler = start(true);
    const ROUNDS: usize = 10;
    let mut rss = Vec::new();
    let mut heap_after = Vec::new();
    for n in 0..ROUNDS {
        let (_, after) = round(&profiler, n);
        rss.push(status("RssAnon"));
        heap_after.push(own_heap(&after));
        host_workload(&mut keep);
        keep.truncate(64);
    }
    let settled = heap_after[ROUNDS / 2];
    assert!(
        heap_after[ROUNDS / 2..].iter().all(|&h| h <= settled + MIB),
        "the profiler's heap after each round: {heap_after:?}"
    );
    let middle = rss[ROUNDS / 2];
    assert!(
        rss[ROUNDS / 2..].iter().all(|&r| r <= middle + MIB),
        "RssAnon after each round: {rss:?}"
    );
    assert!(
        *rss.iter().max().unwrap() < bare_rss + 128 * MIB,
        "RssAnon after each round: {rss:?}, {bare_rss} before"
    );
    drop(profiler);
}

#[test]
fn host_allocations_under_ignore_stay_in_the_hosts_arenas() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    // Makes mapprof's arena exist; every profile says what mapprof holds.
    let mut out = Vec::new();
    mapprof::write_profile(ProfileKind::Mutex, &mut out).expect("write");
    let profile = mapprof_profile::codec::decode(&out).expect("decode");
    let says = profile.comment.iter().any(|&i| {
        let c = &profile.string_table[i as usize];
        c.starts_with("mapprof's own memory: ") && c.contains("own jemalloc arena")
    });
    assert!(says, "{:?}", profile.comment);
    let own = || own_heap(&mapprof::self_memory());

    // 8 MiB under ignore: the host's. (`allocated` is the whole process's: 7 allow for what
    // other threads free meanwhile, as below; two helpers' full runs saw 7.7 and 8.07 MB.)
    let (own_before, host_before) = (own(), host_allocated());
    let ignored = mapprof::ignore(|| black_box(vec![7u8; 8 * MIB]));
    let (own_ignored, host_ignored) = (own(), host_allocated());
    assert!(
        own_ignored < own_before + MIB && host_ignored >= host_before + 7 * MIB,
        "under ignore: own {own_before} → {own_ignored}, host {host_before} → {host_ignored}"
    );

    // The same under as_profiler is the profiler's, and a host block it grows moves there;
    // freed by the host outside, it leaves the profiler's arena. (16 MiB in all; 15 allow for
    // small blocks that jemalloc's cache flushes return meanwhile.)
    let mut grown = vec![1u8; 4096];
    let profilers = mapprof_rt::thread::as_profiler(|| {
        grown.resize(8 * MIB, 2);
        black_box(vec![7u8; 8 * MIB])
    });
    let own_profiler = own();
    assert!(
        own_profiler >= own_ignored + 15 * MIB,
        "under as_profiler: own {own_ignored} → {own_profiler}"
    );
    drop((grown, profilers, ignored));
    let own_freed = own();
    assert!(
        own_freed + 15 * MIB <= own_profiler,
        "freed by the host: own {own_profiler} → {own_freed}"
    );
}
