//! Baseline: bare jemalloc, the allocator mapprof wraps, with no profiling.

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    bench_workload::main("jemalloc", || "no profiler".to_string());
}
