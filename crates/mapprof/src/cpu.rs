//! CPU profiles: `mapprof_rt::cpu`'s SIGPROF sampler (frame pointers from the signal context,
//! recorded into a fixed table of its own), built by the same builder as the heap and lock
//! profiles: one Location per address, with Lines and Mappings, labels from the table.
//!
//! Why not the `pprof` crate's sampler, which mapprof used before: its collector is 68 MB
//! (4096 × 4 × 4168-byte entries), allocated when a profile starts and again when it stops,
//! so that one profile left 166 MiB allocated and six took the process to 497 MiB; it cannot
//! be sized down. It keys stacks by function, so every sample of a chain of functions got the
//! addresses (lines, inlined frames) of the first one; it offers no hook for labels (mapprof
//! passed them through "digit frames" on the handler's stack); and it unwinds with DWARF in
//! the handler, 100–150 ns a frame. mapprof's sampler needs none of that: the handler and its
//! rules are at the top of `mapprof_rt::cpu`. `Unwinder::Dwarf` still unwinds CPU samples with
//! libgcc (as pprof-rs did) for binaries built without frame pointers.

use crate::memory::{profiler_work, self_memory_comment};
use crate::profiles::{self, label_pairs, labels_comment, unix_nanos};
use crate::Config;
use crate::Error;
use mapprof_profile::builder::{Header, RawSample, LOST_FRAME};
use mapprof_profile::kinds;
use mapprof_profile::proto::Profile;
use mapprof_rt::cpu::{self as rt_cpu, Sampling, StartError};
use std::time::{Duration, Instant, SystemTime};

/// The default sampling frequency of CPU profiles, in Hz: 99 rather than Go's 100 so that the
/// sampling does not beat with work done on 10 ms timers.
pub const DEFAULT_CPU_HZ: u32 = 99;

/// The highest sampling frequency accepted, in Hz. The kernel delivers at most one signal per
/// scheduler tick (250 Hz on Debian's kernels) per thread: above that, CPU time still adds up
/// (a signal counts the periods its timer overran), but stacks are taken at the tick's rate.
pub const MAX_CPU_HZ: u32 = 1000;

/// Takes a CPU profile of the whole process: samples every thread at `hz` for `duration`
/// (blocking the caller meanwhile) and returns the profile, symbolized or not per
/// [`crate::Config::symbolize`].
///
/// Fails with [`Error::CpuProfileBusy`] while another CPU profile is being taken, and with
/// [`Error::Config`] (key `cpu_hz`) when `hz` is not in 1..=[`MAX_CPU_HZ`].
pub fn cpu_profile(duration: Duration, hz: u32) -> Result<Profile, Error> {
    let profiler = CpuProfiler::start(hz)?;
    std::thread::sleep(duration);
    profiler.finish()
}

/// A CPU profile being taken: [`CpuProfiler::start`] → work → [`CpuProfiler::finish`].
/// Dropping it without finishing stops the sampling and discards the samples.
#[must_use = "dropping the CPU profiler stops it at once"]
#[derive(Debug)]
pub struct CpuProfiler {
    sampling: Sampling,
    hz: u32,
    started: Instant,
    start_time: SystemTime,
}

impl CpuProfiler {
    /// Starts sampling every thread of the process at `hz` (1 to [`MAX_CPU_HZ`]).
    pub fn start(hz: u32) -> Result<CpuProfiler, Error> {
        check_hz(hz)?;
        crate::fork::register();
        let sampling = rt_cpu::start(hz).map_err(|e| match e {
            StartError::Busy => Error::CpuProfileBusy,
            StartError::Io(e) => Error::Cpu(e),
        })?;
        Ok(CpuProfiler {
            sampling,
            hz,
            started: Instant::now(),
            start_time: SystemTime::now(),
        })
    }

    /// The sampling frequency, in Hz.
    pub fn hz(&self) -> u32 {
        self.hz
    }

    /// Stops sampling and returns the profile.
    pub fn finish(self) -> Result<Profile, Error> {
        let duration = self.started.elapsed();
        let (sampling, hz, start) = (self.sampling, self.hz, self.start_time);
        Ok(profiler_work(|| {
            encode(sampling.finish(), hz, start, duration)
        }))
    }
}

impl CpuProfiler {
    /// Ends this profile and starts the next at once (the pusher's intervals): the next is
    /// sampling again before this one is built, so the gap between them is only the table's
    /// reading. The next fails to start only if another CPU profile took the sampler in that
    /// gap.
    #[cfg(feature = "push")]
    pub(crate) fn next_interval(self) -> (Profile, Result<CpuProfiler, Error>) {
        let duration = self.started.elapsed();
        let (hz, start) = (self.hz, self.start_time);
        let samples = self.sampling.finish();
        let next = CpuProfiler::start(hz);
        let profile = profiler_work(|| encode(samples, hz, start, duration));
        (profile, next)
    }
}

/// Builds the profile from the CPU table's records.
fn encode(samples: rt_cpu::Samples, hz: u32, start: SystemTime, duration: Duration) -> Profile {
    let mut header = header(hz);
    let mut total = 0u64;
    let mut lost = 0u64;
    let raw: Vec<RawSample> = samples
        .records
        .into_iter()
        .map(|r| {
            let count = r.cpu_samples();
            total += count;
            if r.lost {
                lost += count;
            }
            // One profile, one period: the table is emptied between profiles.
            let count = count as i64;
            RawSample {
                synthetic: r.lost.then(|| LOST_FRAME.to_owned()),
                stack: r.stack.iter().map(|&a| a as u64).collect(),
                values: vec![count, count.saturating_mul(header.period)],
                labels: label_pairs(r.labels),
            }
        })
        .collect();
    header.time_nanos = unix_nanos(start);
    header.duration_nanos = duration.as_nanos() as i64;
    let capacity = rt_cpu::MAX_CPU_BUCKETS;
    header.comments = vec![
        "mapprof cpu profile".to_owned(),
        format!(
            "sampling: {hz} Hz of CPU time (each sample stands for {} ns); samples: {total}; \
             lost (table of {capacity} stacks full, or its insert lock busy): {lost}; \
             without any frame: {}; SIGPROFs from kill, not the timer, ignored: {}; \
             taken by the process-wide timer (the first of each thread started during the profile, or threads \
             without a timer of their own, past {} or refused by the kernel): {}",
            header.period,
            samples.not_unwound,
            samples.not_from_the_timer,
            rt_cpu::MAX_THREAD_TIMERS,
            samples.by_process_timer
        ),
    ];
    header.comments.extend(labels_comment());
    header.comments.push(self_memory_comment());
    profiles::build(&header, raw)
}

/// The CPU profile's header: `samples/count` and `cpu/nanoseconds`, period type
/// `cpu/nanoseconds`, period 1e9/hz, as Go writes it.
fn header(hz: u32) -> Header {
    kinds::CPU.header(i64::from(1_000_000_000 / hz))
}

/// `hz` checked by the configuration's rule for `cpu_hz`.
fn check_hz(hz: u32) -> Result<(), Error> {
    let config = Config {
        cpu_hz: hz,
        ..Config::default()
    };
    config.validate().map_err(Error::Config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frequencies_outside_1_to_1000_hz_are_refused_naming_the_key() {
        for hz in [0, MAX_CPU_HZ + 1, u32::MAX] {
            let e = check_hz(hz).unwrap_err().to_string();
            assert!(e.contains(&format!("cpu_hz={hz}")), "{e}");
            assert!(e.contains("from 1 to 1000"), "{e}");
        }
        for hz in [1, DEFAULT_CPU_HZ, MAX_CPU_HZ] {
            check_hz(hz).unwrap();
        }
    }

    #[test]
    fn the_header_is_gos() {
        let h = header(DEFAULT_CPU_HZ);
        assert_eq!(h.period, 10_101_010);
        assert_eq!(h.period_type, ("cpu".to_owned(), "nanoseconds".to_owned()));
        assert_eq!(
            h.sample_types[0],
            ("samples".to_owned(), "count".to_owned())
        );
        assert_eq!(
            h.sample_types[1],
            ("cpu".to_owned(), "nanoseconds".to_owned())
        );
    }
}
