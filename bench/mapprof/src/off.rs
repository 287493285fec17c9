//! mapprof over jemalloc with heap sampling off (heap_rate = 0).

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::jemalloc();

#[path = "common.rs"]
mod common;

fn main() {
    common::run("mapprof-off", Some(0));
}
