//! With `symbolize=false` profiles keep raw addresses plus the mappings (path, build id) that
//! offline symbolizers need, and `go tool pprof` symbolizes them against the binary.
#![cfg(feature = "jemalloc")]

mod common;
use common::*;
use mapprof::ProfileKind;

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::jemalloc();

#[inline(never)]
fn allocate_for_offline_symbolization() -> Vec<u8> {
    let v = Vec::with_capacity(1 << 20);
    std::hint::black_box(v)
}

#[test]
fn unsymbolized_profiles_name_the_binary_and_its_build_id() {
    let _p = mapprof::Profiler::builder()
        .heap_rate(4096)
        .symbolize(false)
        .start()
        .unwrap();
    let kept: Vec<Vec<u8>> = on_new_thread(|| {
        (0..32)
            .map(|_| allocate_for_offline_symbolization())
            .collect()
    });
    let profile = decoded(ProfileKind::Heap);
    let string = |i: i64| profile.string_table[i as usize].as_str();

    let main = &profile.mapping[0];
    let exe = std::env::current_exe().unwrap();
    assert_eq!(string(main.filename), exe.display().to_string());
    assert_eq!(string(main.build_id).len(), 40, "a GNU build id in hex");
    assert!(!main.has_functions && !main.has_line_numbers);
    assert!(profile.function.is_empty());
    let in_main = profile
        .location
        .iter()
        .filter(|l| l.mapping_id == main.id)
        .inspect(|l| assert!(l.line.is_empty() && l.address >= main.memory_start))
        .count();
    assert!(in_main > 0);

    // go tool pprof finds the binary by its path and symbolizes the addresses itself.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("heap.pb.gz");
    mapprof::write_profile_to_path(ProfileKind::Heap, &file).unwrap();
    let top = go_pprof(&["-top", "-sample_index=alloc_space"], &file);
    assert!(top.contains("allocate_for_offline_symbolization"), "{top}");
    drop(kept);
}
