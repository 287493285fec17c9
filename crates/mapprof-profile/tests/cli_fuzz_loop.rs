//! The CLI's reading path as a fuzz loop (issue 18): valid profiles (mapprof's builder: heap,
//! allocs, mutex, unsymbolized, resize; Go's heap and mutex fixtures) mutated with a fixed-seed
//! generator (bit flips, byte writes, truncation, insertion, removal, duplication of a
//! top-level field, a varint set to an extreme, gzip or raw), each run through decode → view →
//! top → flame (SVG) → report in process, as `mapprof top|flame|report` do. No input may panic
//! or take more than `MAX_CPU_PER_INPUT` of this thread's CPU time.
//!
//! `MAPPROF_FUZZ_ITERATIONS=N` runs N inputs (default 20,000: a few seconds in debug);
//! `MAPPROF_FUZZ_SEED` changes the seed. The figures are printed (`--nocapture`).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use mapprof_profile::builder::{build, BuildOptions, Header, RawSample};
use mapprof_profile::codec::{decode, encode_gzip, DecodeError};
use mapprof_profile::contention::{self, ContentionRecord};
use mapprof_profile::flame::{render_svg, FlameOptions};
use mapprof_profile::heap::{self, HeapRecord, HeapView};
use mapprof_profile::report::{report, ReportOptions};
use mapprof_profile::resize::resize_profile;
use mapprof_profile::symbolize::Symbolizer;
use mapprof_profile::top::{top, TopOptions};
use mapprof_profile::view::ProfileView;
use prost::Message;

/// The bound: no input slower than 2 s (CPU time of the thread, not wall time).
const MAX_CPU_PER_INPUT: Duration = Duration::from_secs(2);

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn thread_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes into the timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

#[inline(never)]
fn stack_a() -> Vec<u64> {
    let mut v = Vec::new();
    backtrace::trace(|f| {
        v.push(f.ip() as u64);
        v.len() < 24
    });
    v
}

#[inline(never)]
fn stack_b() -> Vec<u64> {
    let v = stack_a();
    std::hint::black_box(v)
}

/// Valid profiles: mapprof's builder over real stacks of this binary, and Go's fixtures.
fn corpus() -> Vec<(&'static str, Vec<u8>)> {
    let (a, b) = (stack_a(), stack_b());
    let heap_records: Vec<HeapRecord> = [&a, &b]
        .iter()
        .enumerate()
        .map(|(i, s)| HeapRecord {
            stack: s.to_vec(),
            alloc_objects: 10.0 + i as f64,
            alloc_bytes: 4096.0 * (i + 1) as f64,
            free_objects: 3.0,
            free_bytes: 1024.0,
            lost: false,
            realloc: i == 1,
        })
        .collect();
    let contention_records = vec![ContentionRecord {
        stack: a.clone(),
        contentions: 7.0,
        delay_ns: 1.0e6,
        lost: false,
    }];
    let mut symbolizer = Symbolizer::new();
    let built = |header: &Header, samples: Vec<RawSample>, symbolize, s: &mut Symbolizer| {
        let p = build(header, samples, BuildOptions { symbolize }, s);
        p.encode_to_vec()
    };
    let heap_samples = heap::samples(&heap_records);
    let mut corpus = vec![
        (
            "mapprof heap",
            built(
                &heap::header(512 << 10, HeapView::Heap),
                heap_samples.clone(),
                true,
                &mut symbolizer,
            ),
        ),
        (
            "mapprof allocs, unsymbolized",
            built(
                &heap::header(512 << 10, HeapView::Allocs),
                heap_samples.clone(),
                false,
                &mut symbolizer,
            ),
        ),
        (
            "mapprof mutex",
            built(
                &contention::header(),
                contention::samples(&contention_records),
                true,
                &mut symbolizer,
            ),
        ),
    ];
    let allocs = decode(&corpus[0].1).unwrap();
    corpus.push(("mapprof resize", resize_profile(&allocs).encode_to_vec()));
    for (name, file) in [("go heap", "go-heap.pb.gz"), ("go mutex", "go-mutex.pb.gz")] {
        let gz = std::fs::read(common::data(file)).unwrap();
        corpus.push((name, decode(&gz).unwrap().encode_to_vec()));
    }
    corpus
}

/// The top-level fields of a message: (start, end) of each, key included.
fn fields(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    let varint = |at: &mut usize| -> Option<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = *bytes.get(*at)?;
            *at += 1;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    };
    while at < bytes.len() {
        let start = at;
        let Some(key) = varint(&mut at) else { break };
        let ok = match key & 7 {
            0 => varint(&mut at).is_some(),
            1 => {
                at += 8;
                true
            }
            5 => {
                at += 4;
                true
            }
            2 => match varint(&mut at) {
                Some(len) => {
                    at = at.saturating_add(len as usize);
                    true
                }
                None => false,
            },
            _ => false,
        };
        if !ok || at > bytes.len() {
            break;
        }
        out.push((start, at));
    }
    out
}

const MUTATIONS: [&str; 8] = [
    "bit flip",
    "byte write",
    "truncation",
    "insertion",
    "removal",
    "field duplication",
    "extreme varint",
    "field repeated many times",
];

fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) -> usize {
    let kind = rng.below(MUTATIONS.len());
    let len = bytes.len();
    match kind {
        0 => {
            let at = rng.below(len);
            bytes[at] ^= 1 << rng.below(8);
        }
        1 => {
            let at = rng.below(len);
            bytes[at] = rng.next() as u8;
        }
        2 => bytes.truncate(rng.below(len)),
        3 => {
            let at = rng.below(len + 1);
            let n = 1 + rng.below(16);
            let insert: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            bytes.splice(at..at, insert);
        }
        4 => {
            let at = rng.below(len);
            let n = (1 + rng.below(32)).min(len - at);
            bytes.drain(at..at + n);
        }
        5 | 7 => {
            let f = fields(bytes);
            if let Some(&(start, end)) = f.get(rng.below(f.len())) {
                let copy = bytes[start..end].to_vec();
                let times = if kind == 5 { 1 } else { 2 + rng.below(2000) };
                let at = f[rng.below(f.len())].0;
                bytes.splice(at..at, copy.repeat(times));
            }
        }
        _ => {
            // A varint value byte run replaced by an extreme (u64::MAX, i64::MIN, 2^63-1).
            let at = rng.below(len);
            let extreme: &[u8] = match rng.below(3) {
                0 => &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
                1 => &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
                _ => &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
            };
            bytes.splice(at..(at + 1).min(len), extreme.iter().copied());
        }
    }
    kind
}

/// What the CLI does with a file: decode, then every sample type through top, flame and the
/// report. Returns the decode error, if any.
fn exercise(bytes: &[u8]) -> Result<(), DecodeError> {
    let profile = decode(bytes)?;
    let view = ProfileView::new(&profile)?;
    let unpruned = ProfileView::unpruned(&profile)?;
    for index in 0..view.sample_types().len() {
        let mut sink = Vec::new();
        top(&view, index, &TopOptions::default())
            .render(&mut sink)
            .unwrap();
        render_svg(&unpruned, index, &FlameOptions::default(), std::io::sink()).unwrap();
    }
    let _ = report(&[("input", &profile)], &ReportOptions::default()).map(|r| r.to_text());
    Ok(())
}

#[test]
fn mutated_profiles_never_panic_and_each_is_bounded_in_cpu_time() {
    let iterations: usize = std::env::var("MAPPROF_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let seed: u64 = std::env::var("MAPPROF_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x005e_ed18);
    let corpus = corpus();
    // Positive control: every corpus entry goes through the whole path.
    for (name, bytes) in &corpus {
        exercise(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let mut rng = Rng(seed | 1);
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut per_mutation = [0usize; MUTATIONS.len()];
    let (mut worst, mut worst_at) = (Duration::ZERO, String::new());
    let total_started = thread_cpu();
    for i in 0..iterations {
        let (name, base) = &corpus[rng.below(corpus.len())];
        let mut bytes = base.clone();
        for _ in 0..1 + rng.below(3) {
            if bytes.is_empty() {
                break;
            }
            per_mutation[mutate(&mut rng, &mut bytes)] += 1;
        }
        if rng.below(4) == 0 {
            let p = mapprof_profile::proto::Profile::decode(bytes.as_slice());
            if let Ok(p) = p {
                // Re-encoded through gzip: reaches the decompressor with a parseable message.
                let mut gz = Vec::new();
                encode_gzip(&p, &mut gz).unwrap();
                bytes = gz;
            }
        }
        let started = thread_cpu();
        let outcome = match exercise(&bytes) {
            Ok(()) => "accepted".to_owned(),
            Err(DecodeError::Limit(e)) => format!("refused: {}", e.limit),
            Err(DecodeError::Malformed(_)) => "refused: malformed".to_owned(),
            Err(_) => "refused: not a profile".to_owned(),
        };
        let cpu = thread_cpu() - started;
        if cpu > worst {
            worst = cpu;
            worst_at = format!("input {i} (from {name}, {} bytes)", bytes.len());
        }
        assert!(
            cpu < MAX_CPU_PER_INPUT,
            "input {i} (seed {seed}, from {name}) took {cpu:?} of CPU"
        );
        *outcomes.entry(outcome).or_default() += 1;
    }
    let total = thread_cpu() - total_started;
    eprintln!(
        "fuzz loop: {iterations} inputs from {} profiles, seed {seed:#x}, 0 panics, \
         {total:?} CPU in all, worst {worst:?} ({worst_at})",
        corpus.len()
    );
    for (m, n) in MUTATIONS.iter().zip(per_mutation) {
        eprintln!("  mutation {m}: {n}");
    }
    for (o, n) in &outcomes {
        eprintln!("  {o}: {n}");
    }
    // The loop reaches both sides: some mutants are still profiles, some are refused.
    if iterations >= 500 {
        assert!(outcomes.get("accepted").copied().unwrap_or(0) > iterations / 20);
        assert!(outcomes.keys().any(|o| o.starts_with("refused")));
    }
}
