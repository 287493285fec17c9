//! pprof-rs 0.15's CPU profiler under the CPU benchmark (bench/cpu.py; usage in
//! `bench_workload::cpu_main`), over bare jemalloc: each profile a
//! `ProfilerGuardBuilder::default().frequency(hz).build()` .. `guard.report().build()` (which
//! symbolizes, as a scrape does), then the guard dropped. The SIGPROF handler is timed from
//! inside the process while the profile runs (bench/cpu/src/handler_clock.rs, shared).

#[path = "../../../cpu/src/handler_clock.rs"]
mod handler_clock;

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

struct Pprof(Option<pprof::ProfilerGuard<'static>>);

impl bench_workload::CpuProfiler for Pprof {
    fn start(&mut self, hz: u32) {
        let guard = pprof::ProfilerGuardBuilder::default()
            .frequency(hz as i32)
            .build()
            .expect("pprof-rs's profiler starts");
        self.0 = Some(guard);
        handler_clock::wrap();
    }

    fn finish(&mut self) -> bench_workload::Finished {
        let (handler_calls, handler_mean_ns, handler_median_ns) = handler_clock::unwrap();
        let guard = self.0.take().expect("started");
        let report = guard.report().build().expect("pprof-rs's report");
        let ticks = report.data.values().map(|&n| n as u64).sum();
        let stacks = report.data.len() as u64;
        drop(report);
        drop(guard);
        bench_workload::Finished {
            samples: ticks,
            stacks,
            handler_calls,
            handler_mean_ns,
            handler_median_ns,
        }
    }
}

fn main() {
    bench_workload::cpu_main("pprof-rs", &mut Pprof(None));
}
