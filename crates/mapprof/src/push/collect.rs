//! The collector: at each interval's end, the interval's profiles, encoded as one request.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use mapprof_profile::delta::{delta, delta_keeping};
use mapprof_profile::proto::Profile;
use mapprof_rt::{contention, sampler};

use super::queue::{Queue, Request};
use super::{Protocol, Stop};
use crate::config::{Config, PUSHED_PROFILES};
use crate::cpu::CpuProfiler;
use crate::profiles::{holding_debug_info, profile, with_symbolizer, ProfileKind};

/// A profile pushed, under the name engines know it by (Pyroscope's `__name__`, as Grafana
/// Alloy names what it scrapes from Go's `/debug/pprof`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    Cpu,
    Heap,
    Resize,
    Mutex,
    Block,
}

impl Pushed {
    /// Every one, in the order of [`PUSHED_PROFILES`].
    const ALL: [Pushed; 5] = [
        Pushed::Cpu,
        Pushed::Heap,
        Pushed::Resize,
        Pushed::Mutex,
        Pushed::Block,
    ];

    /// The name in `push_profiles`.
    fn key(self) -> &'static str {
        PUSHED_PROFILES[self as usize]
    }

    /// The engine's name: `process_cpu` and `memory` as Pyroscope's; `resize` is mapprof's.
    pub(crate) fn engine_name(self) -> &'static str {
        match self {
            Pushed::Cpu => "process_cpu",
            Pushed::Heap => "memory",
            Pushed::Resize => "resize",
            Pushed::Mutex => "mutex",
            Pushed::Block => "block",
        }
    }
}

/// What one interval pushes: its profiles and the labels every one carries.
#[derive(Debug)]
pub(crate) struct Interval {
    pub(crate) profiles: Vec<(Pushed, Profile)>,
    pub(crate) service: String,
    pub(crate) labels: Vec<(String, String)>,
}

/// The last snapshots (deltas are taken against them) and the running CPU profile.
pub(crate) struct Collector {
    pushed: Vec<Pushed>,
    protocol: Protocol,
    service: String,
    labels: Vec<(String, String)>,
    hz: u32,
    cpu: Option<CpuProfiler>,
    heap: Option<Profile>,
    mutex: Option<Profile>,
    block: Option<Profile>,
}

impl Collector {
    pub(crate) fn new(config: &Config, protocol: Protocol) -> Collector {
        let pushed = Pushed::ALL
            .into_iter()
            .filter(|p| config.pushes(p.key()))
            .collect();
        Collector {
            pushed,
            protocol,
            service: config.service.clone().unwrap_or_else(default_service),
            labels: config.push_labels.clone(),
            hz: config.cpu_hz,
            cpu: None,
            heap: None,
            mutex: None,
            block: None,
        }
    }

    fn wants(&self, p: Pushed) -> bool {
        self.pushed.contains(&p)
    }

    /// Takes the snapshots the first interval's deltas start from, and starts the CPU profile.
    /// From here until the collector is dropped the symbolizer works continuously (keeps the
    /// DWARF's index, caches more): every interval symbolizes, and opening the DWARF again and
    /// resolving evicted addresses again were most of an interval's cost (BENCHMARKS.md, push).
    pub(crate) fn begin(&mut self) {
        with_symbolizer(|s| s.set_continuous(true));
        holding_debug_info(|| self.snapshot());
    }

    fn snapshot(&mut self) {
        if self.wants(Pushed::Heap) || self.wants(Pushed::Resize) {
            self.heap = Some(profile(ProfileKind::Heap));
        }
        if self.wants(Pushed::Mutex) {
            self.mutex = Some(profile(ProfileKind::Mutex));
        }
        if self.wants(Pushed::Block) {
            self.block = Some(profile(ProfileKind::Block));
        }
        if self.wants(Pushed::Cpu) {
            // Busy (a CPU profile is being taken over HTTP): tried again next interval.
            self.cpu = CpuProfiler::start(self.hz).ok();
        }
    }

    /// The interval that ends now, its profiles built with one read of the debug information.
    /// A profile whose sampling is off (its rate 0) is left out.
    fn collect(&mut self) -> Interval {
        holding_debug_info(|| self.build_interval())
    }

    fn build_interval(&mut self) -> Interval {
        let mut profiles = Vec::new();
        if self.wants(Pushed::Cpu) {
            match self.cpu.take() {
                Some(cpu) => {
                    let (profile, next) = cpu.next_interval();
                    profiles.push((Pushed::Cpu, profile));
                    self.cpu = next.ok();
                }
                None => self.cpu = CpuProfiler::start(self.hz).ok(),
            }
        }
        if let Some(start) = &mut self.heap {
            let end = profile(ProfileKind::Heap);
            let heap_on = sampler::heap_rate() > 0;
            if self.pushed.contains(&Pushed::Heap) && heap_on {
                let inuse = ["inuse_objects", "inuse_space"];
                if let Ok(window) = delta_keeping(start, &end, &inuse) {
                    profiles.push((Pushed::Heap, window));
                }
            }
            if self.pushed.contains(&Pushed::Resize) && heap_on {
                if let Ok(window) = delta(start, &end) {
                    profiles.push((Pushed::Resize, ProfileKind::Resize.spec().derive(window)));
                }
            }
            *start = end;
        }
        let contention = [
            (&mut self.mutex, ProfileKind::Mutex, Pushed::Mutex),
            (&mut self.block, ProfileKind::Block, Pushed::Block),
        ];
        let on = [
            contention::mutex_fraction() > 0,
            contention::block_rate() > 0,
        ];
        for ((last, kind, pushed), on) in contention.into_iter().zip(on) {
            if let Some(start) = last {
                let end = profile(kind);
                if let (true, Ok(window)) = (on, delta(start, &end)) {
                    profiles.push((pushed, window));
                }
                *start = end;
            }
        }
        Interval {
            profiles,
            service: self.service.clone(),
            labels: self.labels.clone(),
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        with_symbolizer(|s| s.set_continuous(false));
    }
}

/// The collector's thread: one request per `every`, the last when the profiler stops.
pub(crate) fn run(mut collector: Collector, every: Duration, queue: &Queue, stop: &Stop) {
    let mut next = Instant::now() + every;
    loop {
        let stopping = stop.sleep_until(next);
        // A panic (a bug) loses this interval, not pushing: reported, and the next one comes.
        let encode = collector.protocol.encode;
        match catch_unwind(AssertUnwindSafe(|| encode(&collector.collect()))) {
            Ok(body) => queue.push(Request::new(body)),
            Err(_) => eprintln!("mapprof: push: collecting an interval's profiles panicked"),
        }
        crate::memory::release();
        if stopping {
            queue.close();
            return;
        }
        // A slow interval (the first symbolization) skips ahead rather than bunching.
        next += every;
        while next <= Instant::now() {
            next += every;
        }
    }
}

/// The executable's file name, as a service name (characters a name cannot hold as `_`).
fn default_service() -> String {
    let exe = std::env::current_exe().ok();
    let name = exe
        .as_deref()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "rust-service".to_owned());
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}
