//! mapprof over jemalloc at its default heap rate (`Profiler::builder().start()`: 524288 bytes, one sample per 512 KiB).

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::jemalloc();

#[path = "common.rs"]
mod common;

fn main() {
    common::run("mapprof", None);
}
