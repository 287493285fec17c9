//! The scrape benchmark (bench/scrape.py runs it): 10,000 distinct live heap stacks sampled at
//! heap_rate=1, then N scrapes of `/debug/pprof/heap` over loopback, each timed from connect to
//! the last byte of the body, and the memory each takes.
//!
//! The stacks: `step` recurses DEPTH = 14 levels, at each level through `left` or `right` (both
//! `#[inline(never)]`, different bodies so that they are not merged, with work after the call so
//! that it is not a tail call) as the path's bit at that level says, and `leaf` allocates 64
//! bytes that are kept live. Paths 0..10,000 give 10,000 distinct stacks of 30 frames or more; the answer's samples through
//! `leaf` are counted by distinct location list (`leaf_stacks`).
//!
//! Memory: before each scrape the peak RSS is reset (`/proc/self/clear_refs` = 5, Linux >= 4.0);
//! after it, VmHWM - VmRSS(before) is the extra resident memory the scrape took at its peak
//! (the HTTP server's thread and symbolization included: same process). jemalloc's
//! `stats.allocated` before and after gives what the scrape kept (caches).
//!
//! Anonymous memory (the footprint targets: what mapprof holds above the program, its fixed
//! tables as touched included, and what it gives back): a thread of its own (`rss-sampler`,
//! under `mapprof::ignore`, allocating nothing in its loop) reads RssAnon and VmRSS from
//! /proc/self/status every millisecond and keeps their maxima; per scrape, RssAnon just before
//! it (`anon_before`), the sampled peak from then to the body's last byte (`anon_peak`), and
//! RssAnon 1 s after the last byte (`anon_1s`, read before the answer is decoded, so the
//! driver's own decoding is not counted).
//!
//! Output: one line `scrape i ms=... body=... peak_extra_rss=... allocated_delta=...` per
//! scrape and a final JSON line starting with `result: `.

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::jemalloc();

use std::hint::black_box;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

const DEPTH: u32 = 14;
const STACKS: u32 = 10_000;
const SIZE: usize = 64;

#[inline(never)]
fn leaf(out: &mut Vec<Box<[u8]>>) {
    out.push(black_box(vec![1u8; SIZE]).into_boxed_slice());
}

#[inline(never)]
fn left(level: u32, path: u32, out: &mut Vec<Box<[u8]>>) -> u32 {
    let r = step(level + 1, path, out);
    black_box(r.wrapping_mul(3).wrapping_add(1))
}

#[inline(never)]
fn right(level: u32, path: u32, out: &mut Vec<Box<[u8]>>) -> u32 {
    let r = step(level + 1, path, out);
    black_box(r.wrapping_mul(7).wrapping_add(2))
}

#[inline(never)]
fn step(level: u32, path: u32, out: &mut Vec<Box<[u8]>>) -> u32 {
    if level == DEPTH {
        leaf(out);
        return black_box(level);
    }
    let r = if (path >> level) & 1 == 0 {
        left(level, path, out)
    } else {
        right(level, path, out)
    };
    black_box(r ^ level)
}

fn status_kib(key: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    for line in s.lines() {
        if let Some(rest) = line.strip_prefix(key) {
            let v = rest
                .trim_start_matches(':')
                .trim()
                .trim_end_matches("kB")
                .trim();
            return v.parse().expect("a number of kB");
        }
    }
    panic!("{key} missing from /proc/self/status");
}

/// (VmRSS, RssAnon) in KiB from /proc/self/status, read into a buffer on the stack: no
/// allocation (std opens a short path through a stack buffer too), so the sampler thread
/// changes nothing it measures.
fn status_now() -> (u64, u64) {
    let mut buf = [0u8; 4096];
    let n = match std::fs::File::open("/proc/self/status") {
        Ok(mut f) => {
            let mut n = 0;
            while n < buf.len() {
                match f.read(&mut buf[n..]) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => n += k,
                }
            }
            n
        }
        Err(_) => 0,
    };
    let text = &buf[..n];
    let field = |key: &[u8]| -> u64 {
        let Some(at) = text.windows(key.len()).position(|w| w == key) else {
            return 0;
        };
        text[at + key.len()..]
            .iter()
            .skip_while(|c| !c.is_ascii_digit())
            .take_while(|c| c.is_ascii_digit())
            .fold(0, |v, &c| v * 10 + u64::from(c - b'0'))
    };
    (field(b"VmRSS:"), field(b"RssAnon:"))
}

static PEAK_RSS: AtomicU64 = AtomicU64::new(0);
static PEAK_ANON: AtomicU64 = AtomicU64::new(0);
static SAMPLING: AtomicBool = AtomicBool::new(true);

/// The sampler: every millisecond, the maxima of VmRSS and RssAnon since the last reset.
fn start_rss_sampler() -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("rss-sampler".into())
        .spawn(|| {
            mapprof::ignore(|| {
                while SAMPLING.load(Relaxed) {
                    let (rss, anon) = status_now();
                    PEAK_RSS.fetch_max(rss, Relaxed);
                    PEAK_ANON.fetch_max(anon, Relaxed);
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        })
        .expect("the sampler thread starts")
}

/// Resets the sampled maxima to the current values, which it returns (VmRSS, RssAnon in KiB).
fn reset_sampled_peaks() -> (u64, u64) {
    let (rss, anon) = status_now();
    PEAK_RSS.store(rss, Relaxed);
    PEAK_ANON.store(anon, Relaxed);
    (rss, anon)
}

fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn jemalloc_allocated() -> u64 {
    tikv_jemalloc_ctl::epoch::advance().expect("jemalloc epoch");
    tikv_jemalloc_ctl::stats::allocated::read().expect("stats.allocated") as u64
}

fn jemalloc_resident() -> u64 {
    tikv_jemalloc_ctl::epoch::advance().expect("jemalloc epoch");
    tikv_jemalloc_ctl::stats::resident::read().expect("stats.resident") as u64
}

/// GET `path` over HTTP/1.1 with `Connection: close`; returns (status, body).
fn get(addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .expect("status");
    let body = &raw[end + 4..];
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase().starts_with("transfer-encoding:")
            && l.to_ascii_lowercase().contains("chunked")
    });
    if !chunked {
        return (status, body.to_vec());
    }
    let (mut out, mut i) = (Vec::new(), 0);
    loop {
        let nl = i + body[i..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size");
        let size_text = String::from_utf8_lossy(&body[i..nl]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
            .expect("hex size");
        i = nl + 2;
        if size == 0 {
            break;
        }
        out.extend_from_slice(&body[i..i + size]);
        i += size + 2;
    }
    (status, out)
}

fn main() {
    let scrapes: usize = std::env::args()
        .nth(1)
        .map(|x| x.parse().expect("N scrapes"))
        .unwrap_or(5);
    let profiler = mapprof::Profiler::builder()
        .heap_rate(1)
        .http("127.0.0.1:0")
        .start()
        .expect("the profiler starts");
    let addr = profiler.http_addr().expect("the HTTP server's address");

    let mut live: Vec<Box<[u8]>> = Vec::with_capacity(STACKS as usize);
    let t = Instant::now();
    for path in 0..STACKS {
        black_box(step(0, path, &mut live));
    }
    let alloc_ms = t.elapsed().as_secs_f64() * 1e3;
    assert_eq!(live.len(), STACKS as usize);

    let sampler = start_rss_sampler();
    let hwm_resettable = reset_peak_rss();
    let (rss0, alloc0, resident0) = (
        status_kib("VmRSS"),
        jemalloc_allocated(),
        jemalloc_resident(),
    );
    println!(
        "stacks {STACKS} made in {alloc_ms:.1} ms; before scraping: VmRSS {rss0} KiB, \
         jemalloc allocated {alloc0} resident {resident0}; peak-RSS reset {}",
        if hwm_resettable {
            "works"
        } else {
            "UNAVAILABLE (VmHWM is the process's whole-life peak)"
        }
    );

    let mut results = Vec::new();
    for i in 0..scrapes {
        reset_peak_rss();
        let rss_before = status_kib("VmRSS");
        let alloc_before = jemalloc_allocated();
        let (_, anon_before) = reset_sampled_peaks();
        let t = Instant::now();
        let (status, body) = get(addr, "/debug/pprof/heap");
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let done = Instant::now();
        let hwm = status_kib("VmHWM");
        let rss_after = status_kib("VmRSS");
        let (rss_now, anon_now) = status_now();
        let anon_peak = PEAK_ANON.load(Relaxed).max(anon_now);
        let rss_peak = PEAK_RSS.load(Relaxed).max(rss_now);
        let alloc_after = jemalloc_allocated();
        let resident_after = jemalloc_resident();
        std::thread::sleep(Duration::from_secs(1).saturating_sub(done.elapsed()));
        let (rss_1s, anon_1s) = status_now();
        assert_eq!(
            status,
            200,
            "scrape {i}: status {status}: {}",
            String::from_utf8_lossy(&body)
        );
        let profile = mapprof_profile::codec::decode(&body).expect("the heap profile decodes");
        let samples = profile.sample.len();
        let distinct: std::collections::HashSet<&Vec<u64>> =
            profile.sample.iter().map(|s| &s.location_id).collect();
        // Distinct stacks through `leaf` (symbolized: the names are in the answer).
        let leaf_fns: std::collections::HashSet<u64> = profile
            .function
            .iter()
            .filter(|f| {
                let name = &profile.string_table[f.name as usize];
                name.ends_with("::leaf") || name == "leaf"
            })
            .map(|f| f.id)
            .collect();
        let leaf_locs: std::collections::HashSet<u64> = profile
            .location
            .iter()
            .filter(|l| l.line.iter().any(|ln| leaf_fns.contains(&ln.function_id)))
            .map(|l| l.id)
            .collect();
        let leaf_stacks: std::collections::HashSet<&Vec<u64>> = profile
            .sample
            .iter()
            .filter(|s| s.location_id.iter().any(|id| leaf_locs.contains(id)))
            .map(|s| &s.location_id)
            .collect();
        let peak_extra = hwm.saturating_sub(rss_before) * 1024;
        let alloc_delta = alloc_after as i64 - alloc_before as i64;
        println!(
            "scrape {} ms={ms:.2} body={} samples={samples} distinct_stacks={} leaf_stacks={} \
             peak_extra_rss={peak_extra} rss_after_delta={} allocated_delta={alloc_delta} resident={resident_after} \
             anon_before={} anon_peak={} anon_1s={}",
            i + 1,
            body.len(),
            distinct.len(),
            leaf_stacks.len(),
            (rss_after as i64 - rss_before as i64) * 1024,
            anon_before * 1024,
            anon_peak * 1024,
            anon_1s * 1024,
        );
        results.push(format!(
            "{{\"i\":{},\"ms\":{ms:.3},\"body\":{},\"samples\":{samples},\"distinct\":{},\"leaf_stacks\":{},\
             \"peak_extra_rss\":{peak_extra},\"allocated_delta\":{alloc_delta},\
             \"rss_before\":{},\"allocated_before\":{alloc_before},\"resident_after\":{resident_after},\
             \"anon_before\":{},\"anon_peak\":{},\"anon_1s\":{},\"rss_peak_sampled\":{},\"rss_1s\":{}}}",
            i + 1,
            body.len(),
            distinct.len(),
            leaf_stacks.len(),
            rss_before * 1024,
            anon_before * 1024,
            anon_peak * 1024,
            anon_1s * 1024,
            rss_peak * 1024,
            rss_1s * 1024,
        ));
    }
    let rss_end = status_kib("VmRSS");
    let alloc_end = jemalloc_allocated();
    println!(
        "result: {{\"stacks\":{STACKS},\"depth\":{DEPTH},\"hwm_reset\":{hwm_resettable},\
         \"rss0\":{},\"allocated0\":{alloc0},\"rss_end\":{},\"allocated_end\":{alloc_end},\"scrapes\":[{}]}}",
        rss0 * 1024,
        rss_end * 1024,
        results.join(",")
    );
    SAMPLING.store(false, Relaxed);
    sampler.join().expect("the sampler thread");
    black_box(&live);
    drop(profiler);
}
