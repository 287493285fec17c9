//! dhat's heap profiler (dhat::Alloc over the system allocator, every allocation recorded with
//! its backtrace). Its report goes to $DHAT_OUT (default: the temporary directory).

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn main() {
    let out = std::env::var_os("DHAT_OUT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("bench-dhat-heap.json"));
    let profiler = dhat::Profiler::builder().file_name(&out).build();
    bench_workload::main("dhat", || {
        let s = dhat::HeapStats::get();
        format!(
            "dhat total_blocks={} total_bytes={}",
            s.total_blocks, s.total_bytes
        )
    });
    drop(profiler);
}
