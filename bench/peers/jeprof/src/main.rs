//! jemalloc's own sampling heap profiler. The binary is built with jemalloc's profiling
//! support; whether it is on comes from `_RJEM_MALLOC_CONF` (tikv-jemalloc-sys prefixes its
//! symbols and its environment variable with `_rjem_`). The `CHECK` line reads `opt.prof`,
//! `prof.active` and `opt.lg_prof_sample` back from jemalloc, so a run with profiling off is seen.

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let config = if std::env::var_os("_RJEM_MALLOC_CONF").is_some() {
        "jeprof"
    } else {
        "jeprof-built-off"
    };
    bench_workload::main(config, || {
        // SAFETY: these names are NUL-terminated and of the types jemalloc documents.
        let (prof, active, lg) = unsafe {
            (
                tikv_jemalloc_ctl::raw::read::<bool>(b"opt.prof\0"),
                tikv_jemalloc_ctl::raw::read::<bool>(b"prof.active\0"),
                tikv_jemalloc_ctl::raw::read::<usize>(b"opt.lg_prof_sample\0"),
            )
        };
        format!("opt.prof={prof:?} prof.active={active:?} opt.lg_prof_sample={lg:?}")
    });
}
