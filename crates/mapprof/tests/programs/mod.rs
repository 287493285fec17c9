//! Realistic programs nobody tuned for mapprof (issue 17), each with the facts a test can
//! check its profile and report against: what a whole-file reader, a CSV-style field splitter,
//! a presized map and a map grown per request allocate and grow. Each entry point is
//! `#[inline(never)]` so that it is a frame of its own in every stack it allocates from.
#![allow(dead_code)] // Each test binary uses a different subset.

use std::collections::HashMap;
use std::hint::black_box;
use std::io::Read;

/// Reads each of `lengths` bytes from a reader into a new `Vec<u8>` with `read_to_end`, as a
/// tool that slurps whole files does. The vector starts empty and grows as the data arrives,
/// so each file's buffer passes through the small capacities once and ends at a size of its
/// own: files of different lengths end in different size classes.
#[inline(never)]
pub(crate) fn read_whole_files(lengths: &[usize]) -> usize {
    let mut total = 0;
    for &length in lengths {
        let mut contents = Vec::new();
        Chunked::new(length).read_to_end(&mut contents).unwrap();
        total += black_box(contents).len();
    }
    total
}

/// Lengths for [`read_whole_files`]: `files` lengths spread evenly over `min..max` bytes.
pub(crate) fn file_lengths(files: usize, min: usize, max: usize) -> Vec<usize> {
    (0..files)
        .map(|i| min + (max - min) * i / files.max(1))
        .collect()
}

/// A reader of `remaining` bytes handing out at most 8 KiB per read, as a file or a pipe does.
struct Chunked {
    remaining: usize,
}

impl Chunked {
    fn new(length: usize) -> Chunked {
        Chunked { remaining: length }
    }
}

impl Read for Chunked {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.remaining).min(8 << 10);
        buf[..n].fill(b'x');
        self.remaining -= n;
        Ok(n)
    }
}

/// Splits `rows` CSV lines of `fields` fields each into owned `String`s, one allocation per
/// field (`split(',').map(str::to_owned)`), as a naive CSV pass does: the program's cost is
/// the count of small objects, not their bytes.
#[inline(never)]
pub(crate) fn split_csv_fields(rows: usize, fields: usize) -> usize {
    let line: String = (0..fields)
        .map(|i| format!("field{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut kept = 0;
    for _ in 0..rows {
        let parsed: Vec<String> = Vec::with_capacity(fields);
        let parsed = split_into(&line, parsed);
        kept += black_box(parsed).len();
    }
    kept
}

#[inline(never)]
fn split_into(line: &str, mut into: Vec<String>) -> Vec<String> {
    into.extend(line.split(',').map(str::to_owned));
    into
}

/// Fills a `HashMap<u64, u64>` made with room for `entries`: it never grows.
#[inline(never)]
pub(crate) fn fill_presized_map(entries: u64) -> HashMap<u64, u64> {
    let mut map = HashMap::with_capacity(entries as usize);
    for i in 0..entries {
        map.insert(i, i);
    }
    map
}

/// Handles `requests` requests, each building a new `HashMap<u64, u64>` of `entries` entries
/// from empty (a per-request index): every request grows its map from 4 buckets up.
#[inline(never)]
pub(crate) fn serve_requests_growing_a_map(requests: usize, entries: u64) -> usize {
    let mut answered = 0;
    for request in 0..requests {
        let mut index = HashMap::new();
        for i in 0..entries {
            index.insert(i ^ request as u64, i);
        }
        answered += black_box(index).len();
    }
    answered
}

/// The times a hashbrown table (Rust's `HashMap`) made empty grows while `entries` are
/// inserted one by one: from 4 buckets it doubles whenever it is 7/8 full (below 8 buckets,
/// when it holds one less than its buckets), so reaching `entries` takes one table per power
/// of two from 4 to the final bucket count.
pub(crate) fn hashmap_growths(entries: u64) -> u32 {
    let mut buckets: u64 = 4;
    let mut tables = 1;
    let room = |buckets: u64| {
        if buckets < 8 {
            buckets - 1
        } else {
            buckets / 8 * 7
        }
    };
    while room(buckets) < entries {
        buckets *= 2;
        tables += 1;
    }
    tables
}

/// The capacities [`read_whole_files`] ends its buffers at, one per file: the same reads,
/// returning what a test needs to check the final sizes a report states.
#[inline(never)]
pub(crate) fn read_to_end_capacities(lengths: &[usize]) -> Vec<usize> {
    lengths
        .iter()
        .map(|&length| {
            let mut contents = Vec::new();
            Chunked::new(length).read_to_end(&mut contents).unwrap();
            black_box(contents).capacity()
        })
        .collect()
}

/// Queues `jobs` job ids in a new `VecDeque` and runs them, as a scheduler's rarely used path
/// does: a few jobs fit in its first buffer, so it grows once, by a few dozen bytes.
#[inline(never)]
pub(crate) fn queue_a_few_jobs(jobs: u64) -> u64 {
    let mut queue = std::collections::VecDeque::new();
    for job in 0..jobs {
        queue.push_back(job);
    }
    let mut done = 0;
    while let Some(job) = queue.pop_front() {
        done += black_box(job) + 1;
    }
    done
}
