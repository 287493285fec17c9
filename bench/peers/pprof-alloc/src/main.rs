//! pprof-alloc's wrapper sampler over jemalloc, one sample per 512 KiB as mapprof's default.
//! Run with PPROF_ALLOC_ALLOCATOR=jemalloc PPROF_ALLOC_BACKEND=wrapper: without the second,
//! pprof-alloc hands profiling to jemalloc's native profiler instead of its own sampler.

#[global_allocator]
static ALLOC: pprof_alloc::PprofAlloc = pprof_alloc::PprofAlloc::new()
    .with_default(pprof_alloc::Allocator::Jemalloc)
    .with_pprof_sample_rate(512 * 1024);

fn main() {
    bench_workload::main("pprof-alloc", || {
        let backend = std::env::var("PPROF_ALLOC_BACKEND").unwrap_or_default();
        let allocator = std::env::var("PPROF_ALLOC_ALLOCATOR").unwrap_or_default();
        match pprof_alloc::generate_pprof() {
            Ok(p) => format!(
                "allocator={allocator} backend={backend} profile_bytes={}",
                p.len()
            ),
            Err(e) => format!("allocator={allocator} backend={backend} profile error: {e}"),
        }
    });
}
