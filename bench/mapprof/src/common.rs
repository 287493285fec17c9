/// Starts the profiler (at `rate`, or at its default rate when `None`) before any workload
/// thread exists, so every thread reads the rate at its first allocation; runs the workload;
/// then reports how many heap samples exist, which shows that sampling was on (or off).
pub fn run(config: &str, rate: Option<u64>) {
    let mut builder = mapprof::Profiler::builder();
    if let Some(rate) = rate {
        builder = builder.heap_rate(rate);
    }
    let profiler = builder.start().expect("mapprof failed to start");
    bench_workload::main(config, || {
        let p = mapprof::profile(mapprof::ProfileKind::Allocs);
        format!(
            "heap_rate={} samples={} (distinct stacks in the allocs profile)",
            profiler.config().heap_rate,
            p.sample.len()
        )
    });
    drop(profiler);
}
