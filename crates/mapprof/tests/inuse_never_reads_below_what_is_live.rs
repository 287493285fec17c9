//! In-use figures while threads allocate, free, reallocate and free each other's blocks, and
//! snapshots and profiles are taken meanwhile (issue 17, point 2: a heap profile once read
//! `inuse_space` 0 in every sample while a 2,000-entry map was live).
//!
//! At `heap_rate=1` every allocation is sampled, so in-use is exact, and no snapshot may read
//! less than what stays live throughout: resident blocks kept from start to end, or the map
//! that each request rebuilds (into new buckets: new labels) and swaps in under a lock, as the
//! incident's regressed cache does. Once the workers are done, in-use is exact, and 0 after
//! everything is freed. A CPU profile runs meanwhile, as in `make flame`. Fixed operation
//! counts, no timing.
//!
//! Before the fix both failed at once: a snapshot read each bucket's frees then its
//! allocations, bucket after bucket, up to the count of buckets read at its start, so it saw
//! the old map's frees but not the new map, made meanwhile in buckets past that count
//! (`a_map_rebuilt...`: 136 bytes in use with 144,000 live; `inuse_never...`: a heap profile
//! with 3.0 of 4.95 MB). `mapprof_rt::table` now reads every bucket's frees before any
//! bucket's allocations.
#![cfg(feature = "jemalloc")]

use mapprof::ProfileKind;
use mapprof_rt::{table, Kind};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Mutex};

mod common;
use common::*;

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::jemalloc();

const WORKERS: usize = 4;
const RESIDENT: usize = 300;
const OPERATIONS: usize = 60_000;
/// The tests read process-wide counters: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// In-use bytes and objects of the labelled samples (the workers'), unclamped.
fn labelled_inuse() -> (i128, f64) {
    mapprof_rt::thread::ignore(|| {
        table::snapshot(Kind::Heap)
            .iter()
            .filter(|r| r.labels != 0)
            .fold((0, 0.0), |(bytes, objects), r| {
                let c = r.heap();
                (
                    bytes + c.allocated_bytes as i128 - c.freed_bytes as i128,
                    objects + c.allocated_objects - c.freed_objects,
                )
            })
    })
}

/// Builds heap profiles until `done`, each showing at least `floor` bytes in use in the samples
/// whose labels `selected` accepts; returns how many it built.
fn profiles_meanwhile(
    done: Arc<AtomicBool>,
    floor: i128,
    selected: fn(&[(&str, &str)]) -> bool,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut built = 0;
        while !done.load(SeqCst) {
            let profile = mapprof::profile(ProfileKind::Heap);
            let inuse = total_labelled(&profile, "inuse_space", "", selected);
            assert!(
                inuse as i128 >= floor,
                "a heap profile: {inuse} in use < {floor}"
            );
            built += 1;
        }
        built
    })
}

fn next(rng: &mut u64) -> u64 {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    *rng
}

#[test]
fn inuse_never_reads_below_the_resident_bytes_and_ends_exact() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _profiler = mapprof::Profiler::builder().heap_rate(1).start().unwrap();
    let cpu = mapprof::CpuProfiler::start(mapprof::MAX_CPU_HZ).unwrap();
    let floor = Arc::new(AtomicU64::new(0));
    let ready = Arc::new(Barrier::new(WORKERS + 1));
    let done = Arc::new(AtomicBool::new(false));
    // Blocks handed from one worker to another, freed by whoever takes them.
    let mailbox: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (floor, ready, mailbox) = (floor.clone(), ready.clone(), mailbox.clone());
            std::thread::spawn(move || {
                mapprof::labels(&[("stress", "worker")], || {
                    let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ (w as u64 + 1);
                    let resident: Vec<Vec<u8>> = (0..RESIDENT)
                        .map(|_| vec![1u8; 64 + (next(&mut rng) % 8192) as usize])
                        .collect();
                    let bytes: usize = resident.iter().map(Vec::capacity).sum();
                    // The vector holding them is live too.
                    let bytes = bytes + resident.capacity() * std::mem::size_of::<Vec<u8>>();
                    floor.fetch_add(bytes as u64, SeqCst);
                    ready.wait();
                    let mut mine: Vec<Vec<u8>> = Vec::with_capacity(64);
                    for _ in 0..OPERATIONS {
                        let r = next(&mut rng);
                        let size = 1 + (r >> 8) as usize % 4096;
                        match r % 6 {
                            0 | 1 if mine.len() < 64 => mine.push(Vec::with_capacity(size)),
                            2 if !mine.is_empty() => {
                                let i = (r >> 20) as usize % mine.len();
                                let v = &mut mine[i];
                                // A realloc: grow or shrink.
                                if size > v.capacity() {
                                    v.reserve_exact(size - v.len());
                                } else {
                                    v.shrink_to(size);
                                }
                            }
                            3 if !mine.is_empty() => {
                                let v = mine.swap_remove((r >> 20) as usize % mine.len());
                                mailbox.lock().unwrap().push(v);
                            }
                            4 => {
                                let taken = std::mem::take(&mut *mailbox.lock().unwrap());
                                drop(taken);
                            }
                            _ if !mine.is_empty() => {
                                mine.swap_remove((r >> 20) as usize % mine.len());
                            }
                            _ => {}
                        }
                    }
                    drop(mine);
                    resident
                })
            })
        })
        .collect();
    ready.wait();
    let floor = floor.load(SeqCst) as i128;
    // Snapshots and profiles while the workers run: never below the resident bytes.
    let watcher = {
        let done = done.clone();
        std::thread::spawn(move || {
            let (mut snapshots, mut lowest) = (0u64, i128::MAX);
            while !done.load(SeqCst) {
                let (bytes, _) = labelled_inuse();
                lowest = lowest.min(bytes);
                snapshots += 1;
            }
            (snapshots, lowest)
        })
    };
    let profiles = profiles_meanwhile(done.clone(), floor, |pairs| {
        label(pairs, "stress") == Some("worker")
    });
    let resident: Vec<Vec<Vec<u8>>> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    done.store(true, SeqCst);
    let (snapshots, lowest) = watcher.join().unwrap();
    let profiles = profiles.join().unwrap();
    drop(cpu.finish());
    drop(std::mem::take(&mut *mailbox.lock().unwrap()));
    eprintln!(
        "{snapshots} snapshots, {profiles} profiles; lowest in-use {lowest}, resident {floor}"
    );
    assert!(snapshots > 0);
    assert!(
        lowest >= floor,
        "a snapshot read {lowest} bytes in use while {floor} were live"
    );
    let (bytes, objects) = labelled_inuse();
    assert_eq!(bytes, floor, "in use once the workers are done");
    assert_eq!(objects, (WORKERS * (RESIDENT + 1)) as f64);
    drop(resident);
    assert_eq!(labelled_inuse(), (0, 0.0), "nothing in use at the end");
}

/// The incident's regressed cache: requests on several threads rebuild a 2,000-entry map (every
/// entry cloned, no capacity hint) under a `mapprof::sync::Mutex` and swap it in, each under
/// labels of its own, with a CPU profile running; snapshots and heap profiles meanwhile never
/// read less in use than the map's keys and values.
#[test]
fn a_map_rebuilt_and_swapped_under_a_lock_stays_in_use() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const KEYS: usize = 2000;
    const VALUE: usize = 64;
    const REBUILDS: usize = 40;
    let _profiler = mapprof::Profiler::builder()
        .heap_rate(1)
        .mutex_fraction(1)
        .start()
        .unwrap();
    let cpu = mapprof::CpuProfiler::start(mapprof::MAX_CPU_HZ).unwrap();
    let map = mapprof::labels(&[("stress", "preload")], || {
        let map: HashMap<String, String> = (0..KEYS)
            .map(|k| (format!("key-{k:04}"), format!("{k:0>VALUE$}")))
            .collect();
        Arc::new(mapprof::sync::Mutex::new(map))
    });
    // Keys of 8 bytes and values of 64: the least the map ever holds.
    let floor = (KEYS * (8 + VALUE)) as i128;
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        std::thread::spawn(move || {
            let (mut snapshots, mut lowest) = (0u64, i128::MAX);
            while !done.load(SeqCst) {
                lowest = lowest.min(labelled_inuse().0);
                snapshots += 1;
            }
            (snapshots, lowest)
        })
    };
    let profiles = profiles_meanwhile(done.clone(), floor, |pairs| {
        label(pairs, "stress").is_some()
    });
    let rebuilders: Vec<_> = (0..WORKERS)
        .map(|w| {
            let map = map.clone();
            std::thread::spawn(move || {
                for i in 0..REBUILDS {
                    let trace = format!("{w}-{i}");
                    mapprof::labels(&[("stress", "update"), ("trace_id", &trace)], || {
                        let mut current = map.lock().unwrap();
                        let mut rebuilt = HashMap::new();
                        for (k, v) in current.iter() {
                            rebuilt.insert(k.clone(), v.clone());
                        }
                        let key = format!("key-{:04}", (w * REBUILDS + i) % KEYS);
                        rebuilt.insert(key, "u".repeat(VALUE));
                        *current = rebuilt;
                    });
                }
            })
        })
        .collect();
    for r in rebuilders {
        r.join().unwrap();
    }
    done.store(true, SeqCst);
    let (snapshots, lowest) = watcher.join().unwrap();
    let profiles = profiles.join().unwrap();
    drop(cpu.finish());
    eprintln!(
        "{snapshots} snapshots, {profiles} profiles; lowest in-use {lowest}, at least {floor} live"
    );
    assert!(
        lowest >= floor,
        "a snapshot read {lowest} in use, {floor} live"
    );
    let live = {
        let m = map.lock().unwrap();
        let strings: usize = m.iter().map(|(k, v)| k.capacity() + v.capacity()).sum();
        strings as i128
    };
    let (bytes, _) = labelled_inuse();
    assert!(
        bytes >= live,
        "{bytes} in use, the map's strings alone are {live}"
    );
    drop(map);
    assert_eq!(
        labelled_inuse(),
        (0, 0.0),
        "nothing in use once the map is freed"
    );
}
