//! Stress: CPU profiling at 1000 Hz (as many SIGPROFs as the kernel delivers) runs for 3 × 10 s
//! back to back while four threads allocate and free varied sizes with every allocation sampled
//! (heap_rate=1: a stack walk and a table insert each time) and contend on `mapprof::sync`'s
//! `Mutex` and `RwLock` with every contention recorded (mutex_fraction=1, block_rate=1), and a
//! fifth thread takes heap and mutex profiles meanwhile. Signals thus land inside the allocator
//! wrapper, inside sampled allocations' stack walks and table inserts, inside jemalloc and inside
//! the lock shim. Each round runs under its own labels (the worker and one of 256 round ids), so
//! signals also land while labels are set and dropped, and while the handler interns a set that a
//! sampled allocation interns on another thread. The last capture runs with the heap sampler on
//! the DWARF unwinder, so that signals also land inside libgcc's unwinder halfway through a walk.
//! Everything runs on a thread waited for with a timeout, so a deadlock fails the test instead of
//! hanging it. Afterwards the locks' data is consistent, the heap, mutex, block
//! and CPU profiles decode, the CPU profiles name the stress functions among their eight leading
//! application functions (the fifth thread's profile building competes), show samples taken
//! inside the profiler's hooks and the lock shim, and their samples carry the workers' labels.
#![cfg(feature = "jemalloc")]

mod common;
use common::*;
use mapprof::sync::{Mutex, RwLock};
use mapprof::ProfileKind;
use mapprof_profile::app::{app_top, AppFilter};
use mapprof_profile::proto::Profile;
use mapprof_profile::view::ProfileView;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::jemalloc();

const WORKERS: u64 = 4;
const CAPTURES: usize = 3;
const CAPTURE: Duration = Duration::from_secs(10);
const HZ: u32 = 1000;
/// Far more than the stress needs (about 32 s): reaching it means something hangs.
const TIMEOUT: Duration = Duration::from_secs(120);

struct Shared {
    stop: AtomicBool,
    map: Mutex<(u64, HashMap<u64, Vec<u8>>)>,
    list: RwLock<Vec<u64>>,
    ops: AtomicU64,
}

fn next(rng: &mut u64) -> u64 {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    *rng
}

/// Varied sizes: vectors, strings, a map that grows, boxes; most freed at once.
#[inline(never)]
fn stress_allocate(rng: &mut u64, keep: &mut [Vec<u8>]) {
    let size = 1 + (next(rng) % 8192) as usize;
    let slot = next(rng) as usize % keep.len();
    keep[slot] = vec![7; size];
    let mut grown: HashMap<u64, u64> = HashMap::new();
    for k in 0..(next(rng) % 64) {
        grown.insert(k, k);
    }
    let s: String = (0..(next(rng) % 200))
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let b = Box::new([size as u64; 16]);
    std::hint::black_box((grown, s, b));
}

/// Contends on the mutex and allocates while holding it.
#[inline(never)]
fn stress_mutex(shared: &Shared, rng: &mut u64) {
    let key = next(rng) % 1024;
    let value = vec![1; (next(rng) % 512) as usize];
    let mut guard = shared.map.lock().unwrap();
    guard.0 += 1;
    guard.1.insert(key, value);
    for _ in 0..(next(rng) % 64) {
        std::hint::black_box(guard.1.get(&(next(rng) % 1024)));
    }
}

/// Reads mostly; writes (and grows the vector) one time in eight.
#[inline(never)]
fn stress_rwlock(shared: &Shared, rng: &mut u64) {
    if next(rng).is_multiple_of(8) {
        let mut list = shared.list.write().unwrap();
        if list.len() > 4096 {
            *list = Vec::new();
        }
        list.push(*rng);
    } else {
        let list = shared.list.read().unwrap();
        std::hint::black_box(list.iter().take(256).fold(0u64, |a, &b| a.wrapping_add(b)));
    }
}

fn worker(shared: &Shared, seed: u64) -> u64 {
    let mut rng = seed | 1;
    let mut keep: Vec<Vec<u8>> = (0..64).map(|_| Vec::new()).collect();
    let worker = format!("w{seed}");
    let rounds: Vec<String> = (0..256).map(|i| format!("r{i}")).collect();
    let mut ops = 0;
    while !shared.stop.load(Relaxed) {
        let round = &rounds[ops as usize % rounds.len()];
        mapprof::labels(&[("worker", &worker), ("round", round)], || {
            stress_allocate(&mut rng, &mut keep);
            stress_mutex(shared, &mut rng);
            stress_rwlock(shared, &mut rng);
        });
        ops += 1;
    }
    shared.ops.fetch_add(ops, Relaxed);
    ops
}

struct Outcome {
    cpu: Vec<Profile>,
    took: Duration,
    ops: u64,
    mutex_count: u64,
    snapshots: usize,
}

fn stress() -> Outcome {
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        map: Mutex::new((0, HashMap::new())),
        list: RwLock::new(Vec::new()),
        ops: AtomicU64::new(0),
    });
    let workers: Vec<_> = (0..WORKERS)
        .map(|i| {
            let shared = shared.clone();
            std::thread::spawn(move || worker(&shared, 0x9e37_79b9 * (i + 1)))
        })
        .collect();
    let snapshotter = {
        let shared = shared.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            while !shared.stop.load(Relaxed) {
                std::hint::black_box(mapprof::profile(ProfileKind::Heap));
                std::hint::black_box(mapprof::profile(ProfileKind::Mutex));
                n += 1;
                std::thread::sleep(Duration::from_millis(500));
            }
            n
        })
    };
    let t = Instant::now();
    let cpu = (0..CAPTURES)
        .map(|i| {
            if i + 1 == CAPTURES {
                mapprof_rt::stack::set_unwinder(mapprof::Unwinder::Dwarf);
            }
            mapprof::cpu_profile(CAPTURE, HZ).expect("cpu profile")
        })
        .collect();
    let took = t.elapsed();
    shared.stop.store(true, Relaxed);
    let ops: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    let snapshots = snapshotter.join().unwrap();
    let mutex_count = shared.map.lock().unwrap().0;
    Outcome {
        cpu,
        took,
        ops,
        mutex_count,
        snapshots,
    }
}

fn samples(profile: &Profile) -> i64 {
    profile.sample.iter().map(|s| s.value[0]).sum()
}

#[test]
fn cpu_heap_and_locks_together_survive_a_stress() {
    let _p = mapprof::Profiler::builder()
        .heap_rate(1)
        .mutex_fraction(1)
        .block_rate(1)
        .start()
        .unwrap();
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || done_tx.send(stress()).unwrap());
    let outcome = match done_rx.recv_timeout(TIMEOUT) {
        Ok(outcome) => outcome,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("the stress hung for {TIMEOUT:?}: CPU, heap and lock profiling deadlocked")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the stress failed (see above)"),
    };

    // The lock shim kept its data consistent through the signals.
    assert_eq!(outcome.mutex_count, outcome.ops);
    assert!(outcome.took >= CAPTURE * CAPTURES as u32);
    assert!(outcome.snapshots > 0, "the fifth thread took no profiles");
    eprintln!(
        "stress: {:.1} s, {} rounds of the three stress functions, {} snapshot pairs",
        outcome.took.as_secs_f64(),
        outcome.ops,
        outcome.snapshots
    );

    // Every CPU profile names the stress functions, and has samples taken inside the
    // allocator wrapper's sampling path and inside the lock shim.
    let mut in_hooks = 0;
    let mut in_shim = 0;
    for (i, profile) in outcome.cpu.iter().enumerate() {
        let mut bytes = Vec::new();
        mapprof_profile::codec::encode_gzip(profile, &mut bytes).unwrap();
        let profile = mapprof_profile::codec::decode(&bytes).expect("cpu profile decodes");
        let view = ProfileView::new(&profile).unwrap();
        assert_eq!(view.kind_name(), "cpu");
        let cpu = view.sample_index_by_name("cpu").unwrap();
        let app = app_top(&view, cpu, &AppFilter::default());
        let leaders: Vec<&str> = app
            .rows
            .iter()
            .take(8)
            .map(|r| r.function.as_str())
            .collect();
        let hooks = total_through(&profile, "samples", "mapprof_rt::");
        let shim = total_through(&profile, "samples", "mapprof::sync::");
        eprintln!(
            "cpu profile {i}: {} samples, {hooks} through mapprof_rt (sampling), {shim} through \
             mapprof::sync, {} in jemalloc, {} in libgcc's unwinder; leaders: {leaders:?}; {}",
            samples(&profile),
            total_through(&profile, "samples", "_rjem_"),
            total_through(&profile, "samples", "_Unwind_"),
            profile.string_table[profile.comment[1] as usize]
        );
        assert!(samples(&profile) > 0);
        for stress in ["stress_allocate", "stress_mutex", "stress_rwlock"] {
            assert!(
                leaders.iter().any(|l| l.contains(stress)),
                "capture {i}: {stress} not among {leaders:?}"
            );
        }
        // Samples that found the CPU table's insert lock taken, or had no frame at all.
        let lost = total_through(&profile, "samples", "mapprof::lost_samples");
        assert!(lost * 100 <= samples(&profile), "{lost} lost");
        if i + 1 == CAPTURES {
            // Signals landed inside the heap sampler's DWARF walk, and unwound out of it.
            assert!(total_through(&profile, "samples", "_Unwind_") > 0);
        }
        // Samples in the stress functions carry their worker's labels (one in a hundred may
        // read overflow: a signal that caught a guard being made or dropped, or that found the
        // label table's insert lock held).
        let through = total_through(&profile, "samples", "stress_");
        let labelled = total_labelled(&profile, "samples", "stress_", |l| {
            label(l, "worker").is_some_and(|w| w.starts_with('w'))
                && label(l, "round").is_some_and(|r| r.starts_with('r'))
        });
        eprintln!("  {labelled} of {through} samples in the stress functions labelled");
        assert!(
            labelled * 100 >= through * 99,
            "capture {i}: {labelled} of {through} stress samples labelled"
        );
        in_hooks += hooks;
        in_shim += shim;
    }
    assert!(in_hooks > 0, "no sample landed in the sampling hooks");
    assert!(in_shim > 0, "no sample landed in the lock shim");

    // And the other profiles still decode and name the same functions.
    let heap = decoded(ProfileKind::Heap);
    assert!(total_through(&heap, "alloc_space", "stress_allocate") > 0);
    let mutex = decoded(ProfileKind::Mutex);
    assert!(total_through(&mutex, "contentions", "stress_mutex") > 0);
    let block = decoded(ProfileKind::Block);
    assert!(total_through(&block, "contentions", "stress_") > 0);
}
