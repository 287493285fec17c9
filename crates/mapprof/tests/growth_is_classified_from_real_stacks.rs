//! The resize profile finds container growth in the stacks the allocator wrapper records, on
//! unmodified code: every allocation sampled (heap_rate=1), each container grown at a call site
//! of its own, the expected number of growths counted there under the right `container` label,
//! and nothing where the capacity was given up front. `go tool pprof -tagfocus` selects by it.
//!
//! The tests share one run of the workload (one profiler per process).
#![cfg(feature = "jemalloc")]

mod common;
use common::*;
use mapprof::ProfileKind;
use mapprof_profile::proto::Profile;
use mapprof_profile::view::ProfileView;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hint::black_box;
use std::sync::OnceLock;

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::jemalloc();

const MAP_ENTRIES: u64 = 1 << 16;
const VEC_ELEMENTS: u64 = 1 << 20;

/// The insert site both maps are filled at.
#[inline(never)]
fn fill_map(map: &mut HashMap<u64, u64>) {
    for i in 0..MAP_ENTRIES {
        map.insert(i, i);
    }
}

#[inline(never)]
fn map_without_capacity() -> HashMap<u64, u64> {
    let mut map = HashMap::new();
    fill_map(&mut map);
    black_box(map)
}

#[inline(never)]
fn map_with_capacity() -> HashMap<u64, u64> {
    let mut map = HashMap::with_capacity(MAP_ENTRIES as usize);
    fill_map(&mut map);
    black_box(map)
}

#[inline(never)]
fn push_vec() -> Vec<u64> {
    let mut v = Vec::new();
    for i in 0..VEC_ELEMENTS {
        v.push(i);
    }
    black_box(v)
}

#[inline(never)]
fn push_vec_with_capacity() -> Vec<u64> {
    let mut v = Vec::with_capacity(VEC_ELEMENTS as usize);
    for i in 0..VEC_ELEMENTS {
        v.push(i);
    }
    black_box(v)
}

#[inline(never)]
fn grow_string() -> String {
    let mut s = String::new();
    for _ in 0..1 << 14 {
        s.push_str("0123456789abcdef");
    }
    black_box(s)
}

#[inline(never)]
fn grow_deque() -> VecDeque<u64> {
    let mut d = VecDeque::new();
    for i in 0..1 << 12 {
        d.push_back(i);
    }
    black_box(d)
}

#[inline(never)]
fn fill_set() -> HashSet<u64> {
    let mut s = HashSet::new();
    for i in 0..1 << 12 {
        s.insert(i);
    }
    black_box(s)
}

#[inline(never)]
fn raw_realloc() {
    let small = std::alloc::Layout::from_size_align(64, 8).unwrap();
    // SAFETY: `small` has a non-zero size; the block is reallocated with the layout it was
    // allocated with and freed with the layout of its new size.
    unsafe {
        let p = std::alloc::alloc(small);
        assert!(!p.is_null());
        let p = std::alloc::realloc(p, small, 4096);
        assert!(!p.is_null());
        black_box(p);
        std::alloc::dealloc(p, std::alloc::Layout::from_size_align(4096, 8).unwrap());
    }
}

struct Run {
    resize: Profile,
    allocs: Profile,
}

fn run() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| {
        let _p = mapprof::Profiler::builder()
            .heap_rate(1)
            .start()
            .expect("the only profiler of this process");
        on_new_thread(|| {
            // The thread's first allocation starts its countdown; every later one is sampled.
            black_box(vec![0u8; 64]);
            drop((map_without_capacity(), map_with_capacity()));
            drop((push_vec(), push_vec_with_capacity(), grow_string()));
            drop((grow_deque(), fill_set()));
            raw_realloc();
        });
        Run {
            resize: decoded(ProfileKind::Resize),
            allocs: decoded(ProfileKind::Allocs),
        }
    })
}

/// Resizes by `container` label, over the samples whose stack passes through `function`.
fn resizes_by_container(profile: &Profile, function: &str) -> BTreeMap<String, i64> {
    let view = ProfileView::new(profile).expect("valid profile");
    let index = view.sample_index_by_name("resizes").expect("resizes");
    let mut out = BTreeMap::new();
    for s in view.samples() {
        if !s.frames().any(|f| f.function.contains(function)) {
            continue;
        }
        let container = s
            .raw()
            .label
            .iter()
            .find(|l| view.string(l.key) == "container")
            .map_or("(none)", |l| view.string(l.str));
        *out.entry(container.to_owned()).or_insert(0) += s.value(index);
    }
    eprintln!("{function}: {out:?}");
    out
}

fn only(container: &str, resizes: i64) -> BTreeMap<String, i64> {
    BTreeMap::from([(container.to_owned(), resizes)])
}

#[test]
fn a_hash_map_filled_without_capacity_grows_sixteen_times_at_its_insert_site() {
    // hashbrown allocates a table of 4 buckets at the first insert and doubles it whenever 7/8
    // of the buckets are full: 4, 8, ..., 2^16 buckets hold at most 57,344 entries, so 2^16
    // entries end in 2^17 buckets: tables of 2^2 to 2^17 buckets, 16 allocations, all made by
    // `reserve_rehash` under `HashMap::insert` in `fill_map`.
    let run = run();
    assert_eq!(
        resizes_by_container(&run.resize, "map_without_capacity"),
        only("HashMap", 16)
    );
    assert_eq!(
        total_through(&run.resize, "resizes", "fill_map"),
        16,
        "the same site with a capacity adds no growth"
    );
}

#[test]
fn the_same_insert_site_with_capacity_does_not_grow() {
    let run = run();
    assert_eq!(
        resizes_by_container(&run.resize, "map_with_capacity"),
        BTreeMap::new()
    );
    // Its table was sampled (one allocation of 2^17 buckets), just not as growth.
    assert_eq!(
        total_through(&run.allocs, "alloc_objects", "map_with_capacity"),
        1
    );
    assert_eq!(
        resizes_by_container(&run.resize, "push_vec_with_capacity"),
        BTreeMap::new()
    );
}

#[test]
fn vectors_strings_deques_and_sets_are_named_by_their_container() {
    let run = run();
    // Capacities 4, 8, ..., 2^20 elements: one allocation and 18 reallocs.
    assert_eq!(
        resizes_by_container(&run.resize, "push_vec"),
        only("Vec", 19)
    );
    // 16 bytes at a time to 2^18 bytes: buffers of 2^4 to 2^18 bytes.
    assert_eq!(
        resizes_by_container(&run.resize, "grow_string"),
        only("String", 15)
    );
    // 4 to 2^12 elements.
    assert_eq!(
        resizes_by_container(&run.resize, "grow_deque"),
        only("VecDeque", 11)
    );
    // 2^12 entries need 2^13 buckets: tables of 2^2 to 2^13 buckets.
    assert_eq!(
        resizes_by_container(&run.resize, "fill_set"),
        only("HashSet", 12)
    );
}

#[test]
fn a_bare_realloc_is_classified_realloc() {
    let run = run();
    assert_eq!(
        resizes_by_container(&run.resize, "raw_realloc"),
        only("realloc", 1)
    );
    let view = ProfileView::new(&run.resize).unwrap();
    let space = view.sample_index_by_name("resize_space").unwrap();
    let bytes: i64 = view
        .samples()
        .filter(|s| s.frames().any(|f| f.function.contains("raw_realloc")))
        .map(|s| s.value(space))
        .sum();
    assert_eq!(bytes, 4096);
}

#[test]
fn go_tool_pprof_tagfocus_keeps_only_the_named_container() {
    let run = run();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("resize.pb.gz");
    let mut out = std::fs::File::create(&file).unwrap();
    mapprof_profile::codec::encode_gzip(&run.resize, &mut out).unwrap();
    drop(out);

    let all = go_pprof(&["-top", "-sample_index=resizes"], &file);
    for site in ["fill_map", "push_vec", "grow_string", "fill_set"] {
        assert!(all.contains(site), "{site} in\n{all}");
    }
    let maps = go_pprof(
        &[
            "-top",
            "-sample_index=resizes",
            "-tagfocus=container=HashMap",
        ],
        &file,
    );
    assert!(
        top_rows(&maps)[0].contains("fill_map"),
        "the insert site leads:\n{maps}"
    );
    for other in [
        "push_vec",
        "grow_string",
        "grow_deque",
        "fill_set",
        "raw_realloc",
    ] {
        assert!(!maps.contains(other), "{other} is not a HashMap:\n{maps}");
    }
    // "Showing nodes accounting for 16, 21.62% of 74 total": what the filter kept.
    let kept = |text: &str| -> i64 {
        let (_, after) = text
            .split_once("accounting for ")
            .unwrap_or_else(|| panic!("no totals in\n{text}"));
        after.split(',').next().unwrap().parse().unwrap()
    };
    let by_container = resizes_by_container(&run.resize, "");
    let count = |container: &str| by_container.get(container).copied().unwrap_or(0);
    assert_eq!(kept(&maps), count("HashMap"), "{maps}");

    // pprof matches a tag value as an unanchored regular expression: `Vec` also keeps the
    // `VecDeque`; anchored, only the vector.
    let vecs = go_pprof(
        &["-top", "-sample_index=resizes", "-tagfocus=container=^Vec$"],
        &file,
    );
    assert!(top_rows(&vecs)[0].contains("push_vec"), "{vecs}");
    assert!(!vecs.contains("grow_deque"), "{vecs}");
    // Every vector's growth, this test's and any other's in the process (a `CString` built to
    // spawn a command grows one), and no deque's.
    assert!(count("VecDeque") > 0, "{by_container:?}");
    assert_eq!(kept(&vecs), count("Vec"), "{vecs}");
}
