//! With `Alloc::system()` the profiler's blocks cannot be told from the host's: `self_memory`
//! reports its fixed tables and no heap figures rather than a guess, and says why in every
//! profile's comments; building profiles still works (and trims glibc's heap afterwards).

use mapprof::ProfileKind;
use mapprof_profile::codec::decode;

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::system();

#[test]
fn the_system_allocator_reports_tables_and_no_heap_guess() {
    let _profiler = mapprof::Profiler::builder()
        .heap_rate(256)
        .start()
        .expect("start");
    let keep: Vec<Vec<u8>> = (0..2000).map(|i| vec![1u8; 100 + i]).collect();
    let mut out = Vec::new();
    mapprof::write_profile(ProfileKind::Heap, &mut out).expect("write");
    let profile = decode(&out).expect("decode");
    let comments: Vec<&str> = profile
        .comment
        .iter()
        .map(|&i| profile.string_table[i as usize].as_str())
        .collect();
    assert!(
        comments
            .iter()
            .any(|c| c.starts_with("mapprof's own memory: ") && c.contains("system allocator")),
        "{comments:?}"
    );

    let m = mapprof::self_memory();
    assert_eq!((m.heap_allocated, m.heap_resident), (None, None), "{m:?}");
    assert!(
        m.tables_resident > 0 && m.tables_resident <= m.tables_reserved,
        "{m:?}"
    );
    assert_eq!(m.total, m.tables_resident);
    assert!(m.peak >= m.total);
    drop(keep);
}
