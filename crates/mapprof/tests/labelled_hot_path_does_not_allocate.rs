//! Labels add no allocation: making and dropping guards (new labels, nested ones) allocates
//! nothing, and with labels set and every allocation sampled (so that new label sets are
//! interned on the sampling path) the inner allocator sees exactly the program's own calls;
//! every sample carries the labels.

mod common;
mod counting;
use common::*;
use counting::calls_in;
use mapprof::ProfileKind;
#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::new(&counting::INNER);

const N: u64 = 20_000;

#[inline(never)]
fn labelled_allocations() {
    for i in 0..N {
        // Sizes vary so that new buckets are inserted, not only found.
        let v: Vec<u8> = Vec::with_capacity(1 + (i as usize % 500));
        std::hint::black_box(&v);
    }
}

#[test]
fn labelled_sampling_makes_no_allocation_of_its_own() {
    let _p = mapprof::Profiler::builder().heap_rate(1).start().unwrap();
    let (sampling, guards) = on_new_thread(|| {
        // The thread's first sample looks up its stack bounds; do it before counting.
        std::hint::black_box(Vec::<u8>::with_capacity(8));
        let pairs = [("trace_id", "abc"), ("route", "/item GET")];
        let guards = calls_in(|| {
            let outer = mapprof::set_labels(&pairs);
            drop(mapprof::set_labels(&[("tenant", "t"), ("trace_id", "def")]));
            drop(outer);
        });
        // Sampled under the outer labels, then under nested ones, then under the outer again.
        let sampling = calls_in(|| {
            let _labels = mapprof::set_labels(&pairs);
            labelled_allocations();
            mapprof::labels(&[("tenant", "t")], labelled_allocations);
            labelled_allocations();
        });
        (sampling, guards)
    });
    assert_eq!(guards, 0, "making label guards allocated");
    assert_eq!(
        sampling,
        3 * N,
        "the inner allocator saw calls the program did not make"
    );
    let allocs = decoded(ProfileKind::Allocs);
    let with = |tenant: Option<&'static str>| {
        total_labelled(&allocs, "alloc_objects", "labelled_allocations", move |l| {
            label(l, "trace_id") == Some("abc")
                && label(l, "route") == Some("/item GET")
                && label(l, "tenant") == tenant
        })
    };
    assert_eq!(with(None), 2 * N as i64);
    assert_eq!(with(Some("t")), N as i64);
    assert_eq!(mapprof::label_overflow(), 0);
}
