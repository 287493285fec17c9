//! A short command-line run (~50 ms of work) for timing the at-exit dump:
//! `MAPPROF=dump_dir=/tmp/prof target/release/examples/short_cli` against the same run without
//! `MAPPROF` (BENCHMARKS.md, "At-exit dump of a short run"). It prints its own work time.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Instant;

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::jemalloc();

#[inline(never)]
fn split_rows(rows: usize) -> usize {
    let line = "alpha,beta,gamma,delta,epsilon,zeta,eta,theta";
    (0..rows)
        .map(|_| {
            let fields: Vec<String> = line.split(',').map(str::to_owned).collect();
            black_box(fields).len()
        })
        .sum()
}

#[inline(never)]
fn index_words(words: u64) -> usize {
    let mut index = HashMap::new();
    for i in 0..words {
        *index.entry(i % 50_000).or_insert(0u64) += i;
    }
    black_box(index).len()
}

#[inline(never)]
fn slurp(files: usize) -> usize {
    (0..files)
        .map(|i| black_box(vec![b'x'; 4096 + i * 997]).len())
        .sum()
}

fn main() {
    let _profiler = mapprof::start_from_env();
    let started = Instant::now();
    let n = split_rows(60_000) + index_words(400_000) + slurp(300);
    eprintln!("work {:.1} ms ({n})", started.elapsed().as_secs_f64() * 1e3);
    // SHORT_CLI_BREAKDOWN=1: where a dump's time goes, profile by profile, cold then warm.
    if std::env::var_os("SHORT_CLI_BREAKDOWN").is_some() {
        for pass in ["cold", "warm"] {
            for kind in mapprof::ProfileKind::ALL {
                let t = Instant::now();
                let mut bytes = Vec::new();
                mapprof::write_profile(kind, &mut bytes).unwrap();
                let ms = t.elapsed().as_secs_f64() * 1e3;
                eprintln!("{pass} {kind:?}: {ms:.1} ms, {} bytes", bytes.len());
            }
        }
    }
}
