//! What symbolizing costs in heap and time: resolves many distinct addresses of this binary
//! (every `STEP`-th byte of its text, so every compilation unit is touched: the worst case for
//! a lazy parser) and prints the heap held (a counting allocator: live bytes and peak) and
//! `RssAnon` from `/proc/self/status`, during and after.
//!
//! ```text
//! cargo run --example symbolizer_footprint -p mapprof-profile -- new [STEP]
//! cargo run --example symbolizer_footprint -p mapprof-profile -- backtrace [STEP]
//! ```
//! `new` is mapprof's symbolizer (cold pass, warm pass, after `release_debug_info`);
//! `backtrace` is `backtrace::resolve`, the symbolizer before it, for comparison. Run each in
//! a process of its own: `backtrace` keeps what it loaded for the life of the process.
//! `build` builds heap profiles of 10,000 stacks of 30 of those addresses (a scrape), with and
//! without symbolization, twice, and measures the same.

use mapprof_profile::mappings;
use mapprof_profile::symbolize::{SourceFrame, Symbolizer};
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

#[path = "counting/mod.rs"]
mod counting;
use counting::{mib, Counting, LIVE, PEAK};

#[global_allocator]
static ALLOC: Counting = Counting;

/// `RssAnon` in MiB.
fn rss_anon() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Heap held now (above `base`), its peak since the last call, and RssAnon.
fn report(what: &str, base: usize) {
    let (live, peak) = (LIVE.load(Relaxed), PEAK.swap(LIVE.load(Relaxed), Relaxed));
    println!(
        "{what:<40} heap {:7.2} MiB (peak {:7.2} MiB)  RssAnon {:7.2} MiB",
        mib(live.saturating_sub(base)),
        mib(peak.saturating_sub(base)),
        rss_anon()
    );
}

fn backtrace_frames(pc: u64) -> Vec<SourceFrame> {
    let mut frames = Vec::new();
    backtrace::resolve((pc + 1) as usize as *mut std::ffi::c_void, |symbol| {
        let Some(name) = symbol.name() else { return };
        let demangled = format!("{name:#}");
        frames.push(SourceFrame {
            system_name: name.as_str().unwrap_or(&demangled).into(),
            name: demangled.into(),
            file: symbol
                .filename()
                .map_or_else(String::new, |f| f.display().to_string())
                .into(),
            line: symbol.lineno().unwrap_or(0),
        });
    });
    frames
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "new".to_owned());
    let step: u64 = match mode.as_str() {
        "open" => 64,
        _ => args.next().and_then(|s| s.parse().ok()).unwrap_or(64),
    };
    let main = &mappings::current()[0];
    let addresses: Vec<u64> = (main.start..main.limit).step_by(step as usize).collect();
    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    println!(
        "{} distinct addresses in {:.1} MiB of text; {mode}",
        addresses.len(),
        mib((main.limit - main.start) as usize)
    );
    report("before", base);
    match mode.as_str() {
        "build" => build_profiles(&addresses, base),
        "open" => {
            // `open PATH BUILD_ID`: the cost of opening another binary's DWARF.
            let path = args.next().expect("open PATH BUILD_ID");
            let build_id = args.next().expect("open PATH BUILD_ID");
            // Addresses are file offsets: the first one asked opens the DWARF.
            let mapping = mappings::ObjectMapping {
                start: 0,
                limit: u64::MAX,
                file_offset: 0,
                path: path.clone(),
                build_id,
            };
            let t = Instant::now();
            let mut opened = Symbolizer::offline(vec![mapping], &path).expect("the binary");
            opened.resolve(0x1000);
            println!("open {path}: {:.0} ms", t.elapsed().as_secs_f64() * 1e3);
            report("debug info opened", base);
            drop(opened);
        }
        "backtrace" => {
            // As the old symbolizer did: backtrace::resolve, every answer kept.
            let mut cache: HashMap<u64, Vec<SourceFrame>> = HashMap::new();
            let t = Instant::now();
            for &pc in &addresses {
                cache.insert(pc, backtrace_frames(pc));
            }
            println!("cold pass: {:.0} ms", t.elapsed().as_secs_f64() * 1e3);
            report("after resolving (answers kept)", base);
            drop(cache);
            report("answers dropped (backtrace's cache stays)", base);
            let t = Instant::now();
            for &pc in &addresses {
                std::hint::black_box(backtrace_frames(pc));
            }
            println!("warm pass: {:.0} ms", t.elapsed().as_secs_f64() * 1e3);
            report("after a warm pass", base);
        }
        _ => {
            let t = Instant::now();
            let exe = std::env::current_exe().unwrap();
            let opened = Symbolizer::offline(mappings::current(), exe.to_str().unwrap()).unwrap();
            println!("open: {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
            report("debug info opened", base);
            drop(opened);
            let mut symbolizer = Symbolizer::new();
            let t = Instant::now();
            std::hint::black_box(symbolizer.resolve(addresses[addresses.len() / 2]));
            println!(
                "open and one address: {:.1} ms",
                t.elapsed().as_secs_f64() * 1e3
            );
            report("after one address", base);
            let t = Instant::now();
            for &pc in &addresses {
                std::hint::black_box(symbolizer.resolve(pc));
            }
            println!("cold pass: {:.0} ms", t.elapsed().as_secs_f64() * 1e3);
            report("after resolving, debug info open", base);
            let t = Instant::now();
            for &pc in &addresses {
                std::hint::black_box(symbolizer.resolve(pc));
            }
            println!(
                "warm pass (debug info open): {:.0} ms",
                t.elapsed().as_secs_f64() * 1e3
            );
            report("after a warm pass", base);
            symbolizer.release_debug_info();
            report("after release_debug_info", base);
            println!("{:#?}", symbolizer.stats());
            let t = Instant::now();
            for &pc in addresses.iter().rev().take(2000) {
                std::hint::black_box(symbolizer.resolve(pc));
            }
            println!(
                "2,000 most recent again, released (cache hits): {:.1} ms",
                t.elapsed().as_secs_f64() * 1e3
            );
            drop(symbolizer);
            report("symbolizer dropped", base);
        }
    }
}

/// Heap profiles of 10,000 stacks, as a scrape of a large heap profile builds them.
fn build_profiles(addresses: &[u64], base: usize) {
    use mapprof_profile::builder::{build, BuildOptions};
    use mapprof_profile::heap::{self, HeapRecord, HeapView};
    // xorshift: the same stacks at every run.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    // Stacks share their outer frames, as real ones do: 2,000 distinct leaves and callers,
    // 200 distinct outer frames.
    let leaves: Vec<u64> = (0..2000)
        .map(|_| addresses[next() as usize % addresses.len()])
        .collect();
    let outer: Vec<u64> = (0..200)
        .map(|_| addresses[next() as usize % addresses.len()])
        .collect();
    let records: Vec<HeapRecord> = (0..10_000)
        .map(|_| {
            let mut stack: Vec<u64> = (0..10)
                .map(|_| leaves[next() as usize % leaves.len()] + 1)
                .collect();
            stack.extend((0..20).map(|_| outer[next() as usize % outer.len()] + 1));
            HeapRecord {
                stack,
                alloc_objects: 3.0,
                alloc_bytes: 3.0 * 4096.0,
                free_objects: 1.0,
                free_bytes: 4096.0,
                lost: false,
                realloc: false,
            }
        })
        .collect();
    let header = heap::header(4096, HeapView::Heap);
    let samples = heap::samples(&records);
    drop(records);
    report("10,000 stacks of 30 frames", base);
    let mut symbolizer = Symbolizer::new();
    for (what, symbolize) in [
        ("symbolized, cold", true),
        ("symbolized, warm", true),
        ("unsymbolized", false),
    ] {
        let t = Instant::now();
        let profile = build(
            &header,
            samples.clone(),
            BuildOptions { symbolize },
            &mut symbolizer,
        );
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let mut encoded = Vec::new();
        mapprof_profile::codec::encode_gzip(&profile, &mut encoded).unwrap();
        println!(
            "build {what}: {ms:.0} ms, {} locations, {} functions, {:.2} MiB encoded",
            profile.location.len(),
            profile.function.len(),
            mib(encoded.len())
        );
        drop(profile);
        report("  after the build, profile dropped", base);
    }
    println!("{:#?}", symbolizer.stats());
}
