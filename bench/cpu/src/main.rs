//! mapprof's CPU profiler under the CPU benchmark (bench/cpu.py; usage in
//! `bench_workload::cpu_main`): `mapprof::Alloc::jemalloc()` with the profiler started at its
//! defaults (heap sampling at 524288, as a service runs it; the runs without a CPU profile
//! have it too, so it cancels out), each profile a `mapprof::CpuProfiler::start(hz)` ..
//! `finish()` (which builds and symbolizes the profile, as a scrape does). The SIGPROF handler
//! is timed from inside the process while the profile runs (handler_clock.rs).

mod handler_clock;

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::jemalloc();

struct Mapprof(Option<mapprof::CpuProfiler>);

impl bench_workload::CpuProfiler for Mapprof {
    fn start(&mut self, hz: u32) {
        self.0 = Some(mapprof::CpuProfiler::start(hz).expect("the CPU profiler starts"));
        handler_clock::wrap();
    }

    fn finish(&mut self) -> bench_workload::Finished {
        let (handler_calls, handler_mean_ns, handler_median_ns) = handler_clock::unwrap();
        let profile = self
            .0
            .take()
            .expect("started")
            .finish()
            .expect("the CPU profile");
        let ticks = profile
            .sample
            .iter()
            .map(|s| s.value.first().copied().unwrap_or(0) as u64)
            .sum();
        bench_workload::Finished {
            samples: ticks,
            stacks: profile.sample.len() as u64,
            handler_calls,
            handler_mean_ns,
            handler_median_ns,
        }
    }
}

fn main() {
    let profiler = mapprof::Profiler::builder()
        .start()
        .expect("mapprof starts");
    bench_workload::cpu_main("mapprof", &mut Mapprof(None));
    drop(profiler);
}
