//! `go tool pprof` reads mapprof's heap profiles and names the allocating function and line.
#![cfg(feature = "jemalloc")]

mod common;
use common::*;
use mapprof::ProfileKind;

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::jemalloc();

const KEPT_LINE: u32 = line!() + 3;
#[inline(never)]
fn allocate_kept_buffers() -> Vec<Vec<u8>> {
    (0..64).map(|_| Vec::with_capacity(1 << 20)).collect()
}

#[inline(never)]
fn allocate_temporary_buffers() {
    for _ in 0..32 {
        let v: Vec<u8> = Vec::with_capacity(1 << 20);
        std::hint::black_box(&v);
    }
}

#[test]
fn go_tool_pprof_names_the_allocating_function_and_only_live_memory_in_inuse() {
    let _p = mapprof::Profiler::builder().heap_rate(4096).start(); // the other test may run it
    let kept = on_new_thread(|| {
        allocate_temporary_buffers();
        allocate_kept_buffers()
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("heap.pb.gz");
    mapprof::write_profile_to_path(ProfileKind::Heap, &file).unwrap();

    let alloc = go_pprof(&["-top", "-lines", "-sample_index=alloc_space"], &file);
    let first = top_rows(&alloc)[0];
    assert!(
        first.contains("allocate_kept_buffers")
            && first.contains(&format!("go_reads_heap_profiles.rs:{KEPT_LINE}")),
        "first row should be the kept allocation with its line:\n{alloc}"
    );
    assert!(alloc.contains("allocate_temporary_buffers"), "{alloc}");

    let inuse = go_pprof(&["-top", "-sample_index=inuse_space"], &file);
    assert!(
        top_rows(&inuse)[0].contains("allocate_kept_buffers"),
        "{inuse}"
    );
    assert!(
        !inuse.contains("allocate_temporary_buffers"),
        "freed memory must not be in use:\n{inuse}"
    );
    drop(kept);
}

#[test]
fn mapprof_top_agrees_with_go_on_the_pruned_leaf() {
    // Both apply the profile's drop_frames, so the first row names the same function.
    let _ = mapprof::Profiler::builder().heap_rate(4096).start();
    let kept = on_new_thread(allocate_kept_buffers);
    let profile = decoded(ProfileKind::Allocs);
    let view = mapprof_profile::view::ProfileView::new(&profile).unwrap();
    let index = view.sample_index_by_name("alloc_space").unwrap();
    let top = mapprof_profile::top::top(&view, index, &Default::default());
    assert!(
        top.rows[0].name.contains("allocate_kept_buffers"),
        "{:?}",
        &top.rows[..3]
    );
    drop(kept);
}
