//! CPU profiles: the `pprof` crate's SIGPROF sampler, re-encoded by mapprof's own builder so
//! that CPU profiles have one Location per address, Lines and Mappings like the others.
//!
//! # How a sample is taken
//!
//! `setitimer(ITIMER_PROF)` makes the kernel send SIGPROF each 1/hz s of CPU time the process
//! uses, to the thread that used it. pprof-rs's handler then (1) `try_write`s its global profiler
//! lock and returns at once when it is taken (a report being read, or the handler running on
//! another thread), (2) unwinds with `backtrace::trace_unsynchronized` (libgcc's
//! `_Unwind_Backtrace`, DWARF CFI) from inside the handler, through the signal frame, into the
//! interrupted code, at most 128 frames into a `SmallVec` on the stack, (3) reads the thread's
//! name with `prctl` and the time from the vDSO, (4) adds the stack to its collector: a
//! fixed-size hash table allocated when profiling starts, whose evicted entries go to a temporary
//! file with `write(2)`. We read the collector with `build_unresolved` (raw addresses), cut each
//! stack at the signal trampoline (everything before it is the handler's own frames), and build
//! the profile with `mapprof_profile::builder` like any other.
//!
//! # Signal safety
//!
//! A SIGPROF can land anywhere: inside jemalloc, inside mapprof's allocator wrapper (thread-local
//! countdown, the stack table's insert spin lock, the sampled-block set), inside the stack walk of
//! a sampled allocation (frame pointers, or libgcc's unwinder for the DWARF fallback), inside the
//! lock shim's spin or futex wait. It is safe there because the handlers share nothing with any of
//! them but the thread's label id:
//!
//! - they do not allocate (the stack buffer is inline, the collector preallocated, an eviction is
//!   a `write(2)`), so they never enter the allocator wrapper, jemalloc or their locks;
//! - mapprof's handler reads the thread's label set id (an atomic), and the first time a set is
//!   sampled interns it into the label table: atomics, and the table's spin lock with a bounded
//!   number of tries, so a handler that interrupted the lock's holder gives up and labels the
//!   sample `mapprof_labels=overflow`. It does not read a label buffer that the interrupted code
//!   is rewriting (`mapprof_rt::labels::signal_id`);
//! - they take no blocking lock: pprof's own lock is a `try_write` (the sample is dropped when it
//!   is busy), and they never touch the lock shim;
//! - the unwinder is reentrant here: on this platform (glibc >= 2.35 with libgcc_s from GCC >= 12;
//!   Debian 12 has 2.36 and 12.2) libgcc finds unwind tables with `_dl_find_object`, which is
//!   lock-free and documented async-signal-safe, instead of `dl_iterate_phdr` (the loader's lock
//!   and libgcc's unprotected FDE cache); its registered-frames path (a mutex) is skipped when no
//!   frames are registered, which is the case for Rust and C code linked with `--eh-frame-hdr`. Its
//!   one-time initialisation (`pthread_once`) has run before the handler is installed (pprof
//!   unwinds once when it starts). So a signal landing inside libgcc itself, e.g. in the DWARF
//!   fallback of a sampled allocation's stack walk, starts a second, independent unwind;
//! - everything it reads is either its own (the stack it unwinds, read through unwind tables that
//!   the compiler made asynchronous: rustc and GCC emit async unwind tables on x86_64, and the
//!   kernel's vDSO has them too) or atomic;
//! - interrupted system calls (the shim's `FUTEX_WAIT`) restart (`SA_RESTART`) or return EINTR,
//!   which the shim treats as a spurious wake-up and re-checks. A thread interrupted while holding
//!   a lock, or the table's insert spin, holds it a few microseconds longer: the handler's unwind
//!   (about 100-150 ns a frame). A spin that gives up counts its sample as lost, as always.
//!
//! What is not safe is still excluded: pprof-rs's `frame-pointer` unwinder is not used (it credits
//! a leaf's samples to its caller, and walks frame pointers through code built without them),
//! nor does the handler ever run before its lazily initialised state exists (`PROFILER` and
//! libgcc's tables are warmed up by pprof before `sigaction`).
//!
//! # Blocklist
//!
//! pprof-rs can skip samples whose interrupted address is in named libraries. Its documentation
//! suggests `libc`, `libgcc`, `pthread` and `vdso` to avoid the old unwinder's deadlocks and bad
//! vDSO unwind tables. Skipped samples are lost, not charged to a caller: blocklisting libc would
//! drop every sample taken in `memcpy`, `memmove` or a system call wrapper, and the vDSO every
//! `clock_gettime` (`Instant::now`). With the lock-free unwinder above neither hazard exists, so
//! the blocklist is empty on glibc >= 2.35; on an older glibc, where libgcc walks
//! `dl_iterate_phdr` and keeps an unprotected cache, it is pprof's suggested set
//! ([`blocklist`]).
//!
//! # Limits inherited from pprof-rs
//!
//! - Its collector keys a stack by the *functions* its frames are in (each frame's
//!   `_Unwind_FindEnclosingFunction`) and keeps the addresses of the first sample with that chain
//!   of functions. Locations are per address and carry lines and inlined frames, but within one
//!   chain of (non-inlined) functions every sample is filed under the first one's addresses: line
//!   numbers, and which inlined function inside a function got the time, are those of the first
//!   sample. Function-level figures are exact.
//! - The collector is 68 MB (4096 buckets × 4 entries × 4168 bytes: 128 inline frames each),
//!   allocated and touched when the first profile starts; pprof-rs allocates a fresh one when it
//!   stops (briefly twice that), so it stays resident afterwards. Starting also warms up
//!   `backtrace` (its debug-info cache, which symbolizing any profile loads anyway).
//! - It owns SIGPROF and `ITIMER_PROF` while it runs; when it stops SIGPROF is ignored.
//! - The kernel checks CPU timers at its scheduler tick and sends at most one signal per tick:
//!   above `CONFIG_HZ` (250 on Debian's kernels) samples per CPU-second, a profile has fewer
//!   samples than asked for, each still weighted 1/hz, so its CPU time is an underestimate.
//!
//! # Labels
//!
//! pprof-rs records only the interrupted stack and thread. mapprof chains its own SIGPROF
//! handler in front of pprof-rs's, which reads the thread's label set and passes it down as
//! three digit frames in the handler's part of the stack (`mapprof_rt::cpu_labels`); the
//! encoder reads them back and drops them with the rest of the handler's frames. The sample
//! thus carries the labels the thread had when the signal landed, like Go's. The few samples
//! taken between pprof-rs arming its timer and mapprof chaining its handler (microseconds,
//! unless the starting thread is descheduled) have no digit frames: they stay unlabelled and
//! a profile comment counts them.

use crate::config::config_error;
use crate::profiles::{self, label_pairs, labels_comment, unix_nanos};
use crate::Error;
use mapprof_profile::builder::{Header, LabelValue, RawSample};
use mapprof_profile::proto::Profile;
use mapprof_rt::{cpu_labels, labels as rt_labels, thread};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::{Duration, Instant, SystemTime};

/// The default sampling frequency of CPU profiles, in Hz: 99 rather than Go's 100 so that the
/// sampling does not beat with work done on 10 ms timers.
pub const DEFAULT_CPU_HZ: u32 = 99;

/// The highest sampling frequency accepted, in Hz. Each sample costs a DWARF unwind in a signal
/// handler (a few microseconds) and the kernel delivers at most one per scheduler tick per CPU.
pub const MAX_CPU_HZ: u32 = 1000;

/// Whether a CPU profile is being taken; only one at a time.
static BUSY: AtomicBool = AtomicBool::new(false);

/// Name of the frame standing for samples whose stack could not be unwound past the signal
/// frame.
const NOT_UNWOUND_FRAME: &str = "mapprof::cpu_stack_not_unwound";

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
pub struct CpuProfiler {
    guard: Option<pprof::ProfilerGuard<'static>>,
    hz: u32,
    /// The signal trampoline the kernel returns to from the handler: where a sample's own
    /// frames end.
    boundary: Boundary,
    started: Instant,
    start_time: SystemTime,
    /// Released after `guard`.
    _busy: BusyFlag,
}

impl std::fmt::Debug for CpuProfiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuProfiler")
            .field("hz", &self.hz)
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

struct BusyFlag;

impl Drop for BusyFlag {
    fn drop(&mut self) {
        BUSY.store(false, SeqCst);
    }
}

impl CpuProfiler {
    /// Starts sampling every thread of the process at `hz` (1 to [`MAX_CPU_HZ`]).
    pub fn start(hz: u32) -> Result<CpuProfiler, Error> {
        check_hz(hz)?;
        if BUSY.swap(true, SeqCst) {
            return Err(Error::CpuProfileBusy);
        }
        let busy = BusyFlag;
        // pprof-rs allocates its collector (and warms up `backtrace`) here: not the host's
        // allocations, so not sampled.
        let guard = thread::ignore(|| {
            pprof::ProfilerGuardBuilder::default()
                .frequency(hz as i32)
                .blocklist(blocklist(glibc_version()))
                .build()
        })
        .map_err(cpu_error)?;
        // Without it the profile is still right, only unlabelled; it fails only if pprof-rs's
        // handler is not there, which `build` just made sure of.
        let _ = cpu_labels::chain();
        Ok(CpuProfiler {
            guard: Some(guard),
            hz,
            boundary: Boundary::current(),
            started: Instant::now(),
            start_time: SystemTime::now(),
            _busy: busy,
        })
    }

    /// The sampling frequency, in Hz.
    pub fn hz(&self) -> u32 {
        self.hz
    }

    /// Stops sampling and returns the profile.
    pub fn finish(mut self) -> Result<Profile, Error> {
        let duration = self.started.elapsed();
        let Some(guard) = self.guard.take() else {
            return Err(cpu_error(pprof::Error::NotRunning));
        };
        let report = thread::ignore(|| {
            let report = guard.report().build_unresolved();
            drop(guard); // stops the timer, then ignores SIGPROF
            report
        })
        .map_err(cpu_error)?;
        Ok(thread::ignore(|| {
            let stacks = report
                .data
                .iter()
                .map(|(frames, &count)| {
                    let frames = frames
                        .frames
                        .iter()
                        .map(|f| (f.ip() as usize, f.symbol_address() as usize))
                        .collect();
                    (frames, count as i64)
                })
                .collect();
            self.encode(stacks, duration)
        }))
    }

    /// Builds the profile from pprof-rs's stacks: (address, function start) of each frame,
    /// innermost first, with their sample counts.
    fn encode(&self, stacks: Vec<(Vec<(usize, usize)>, i64)>, duration: Duration) -> Profile {
        let mut header = header(self.hz);
        let period = header.period;
        let mut total = 0i64;
        let mut not_unwound = 0i64;
        let mut labels_unread = 0i64;
        let mut label_sets: BTreeMap<u32, Vec<(String, LabelValue)>> = BTreeMap::new();
        let samples: Vec<RawSample> = stacks
            .into_iter()
            .filter(|(_, count)| *count > 0)
            .map(|(frames, count)| {
                total += count;
                let (set, stack) = match self.boundary.split(&frames) {
                    Some((handler, interrupted)) => {
                        let starts = handler.iter().map(|&(_, start)| start);
                        let set = cpu_labels::decode(starts).unwrap_or_else(|| {
                            labels_unread += count;
                            rt_labels::NONE
                        });
                        (set, interrupted_stack(interrupted))
                    }
                    None => {
                        not_unwound += count;
                        (rt_labels::NONE, Vec::new())
                    }
                };
                let labels = label_sets.entry(set).or_insert_with(|| label_pairs(set));
                RawSample {
                    synthetic: stack.is_empty().then(|| NOT_UNWOUND_FRAME.to_owned()),
                    stack,
                    values: vec![count, count.saturating_mul(period)],
                    labels: labels.clone(),
                }
            })
            .collect();
        header.time_nanos = unix_nanos(self.start_time);
        header.duration_nanos = duration.as_nanos() as i64;
        header.comments = vec![
            "mapprof cpu profile".to_owned(),
            format!(
                "sampling: {} Hz of CPU time (each sample stands for {period} ns); \
                 samples: {total}; not unwound past the signal frame: {not_unwound}",
                self.hz
            ),
        ];
        if labels_unread > 0 {
            header.comments.push(format!(
                "labels not read: {labels_unread} samples taken as the profile started, before \
                 mapprof's signal handler was chained in front of pprof-rs's"
            ));
        }
        header.comments.extend(labels_comment());
        profiles::build(&header, samples)
    }
}

impl Drop for CpuProfiler {
    fn drop(&mut self) {
        // pprof-rs allocates a new collector when it stops.
        if let Some(guard) = self.guard.take() {
            thread::ignore(|| drop(guard));
        }
    }
}

/// The CPU profile's header: `samples/count` and `cpu/nanoseconds`, period type
/// `cpu/nanoseconds`, period 1e9/hz, as Go writes it.
fn header(hz: u32) -> Header {
    let st = |t: &str, u: &str| (t.to_owned(), u.to_owned());
    Header {
        sample_types: vec![st("samples", "count"), st("cpu", "nanoseconds")],
        period_type: st("cpu", "nanoseconds"),
        period: i64::from(1_000_000_000 / hz),
        // Time spent in mapprof's hooks and lock shim is mapprof's, and shown as such.
        keep_profiler_frames: true,
        ..Header::default()
    }
}

/// The interrupted code's frames as the builder takes them: return addresses, of which it
/// looks up `address - 1` (the call). The first is no return address but the interrupted
/// instruction itself, so it goes in as `pc + 1`: a sample at a function's first instruction
/// stays in that function.
/// The unwinder's last frame, below the thread's entry (`clone3` marks its return address
/// undefined), may read 0: no code there, so it is left out.
fn interrupted_stack(frames: &[(usize, usize)]) -> Vec<u64> {
    frames
        .iter()
        .enumerate()
        .filter(|(_, &(ip, _))| ip != 0)
        .map(|(i, &(ip, _))| ip as u64 + u64::from(i == 0))
        .collect()
}

/// A sample's frames as (address, function start), innermost first.
type Frames<'a> = &'a [(usize, usize)];

/// Where the handler's frames end in a sample: the signal trampoline, the frame the handler
/// returns into.
#[derive(Clone, Copy, Debug)]
struct Boundary {
    /// `sa_restorer` of SIGPROF's action (glibc's `__restore_rt`): the trampoline's address,
    /// which the unwinder reports as that frame's address. 0 when unknown.
    trampoline: usize,
    /// The handler's address (pprof-rs's `perf_signal_handler`), used where the trampoline is
    /// unknown: the frame after the handler's last one is the trampoline. 0 when unknown.
    handler: usize,
}

impl Boundary {
    /// Reads SIGPROF's action, as pprof-rs just installed it.
    fn current() -> Boundary {
        let mut action = std::mem::MaybeUninit::<libc::sigaction>::zeroed();
        // SAFETY: with a null new action, `sigaction` only writes the current one into
        // `action`, a valid, zeroed `struct sigaction`.
        let r = unsafe { libc::sigaction(libc::SIGPROF, std::ptr::null(), action.as_mut_ptr()) };
        if r != 0 {
            return Boundary {
                trampoline: 0,
                handler: 0,
            };
        }
        // SAFETY: zero-initialised and then filled in by the kernel: every field is valid.
        let action = unsafe { action.assume_init() };
        Boundary {
            trampoline: trampoline_of(&action),
            handler: action.sa_sigaction,
        }
    }

    /// A sample's frames, given as (address, function start) innermost first, split into the
    /// handlers' (before the trampoline) and the interrupted code's (after it). `None` when
    /// the unwind did not get through the signal frame.
    fn split<'a>(&self, frames: Frames<'a>) -> Option<(Frames<'a>, Frames<'a>)> {
        let first = if self.trampoline != 0 {
            frames.iter().position(|&(ip, _)| ip == self.trampoline)? + 1
        } else if self.handler != 0 {
            // The handler's last frame, then the trampoline's.
            frames
                .iter()
                .rposition(|&(_, start)| start == self.handler)?
                + 2
        } else {
            return None;
        };
        let rest = frames.get(first..).filter(|rest| !rest.is_empty())?;
        Some((&frames[..first - 1], rest))
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trampoline_of(action: &libc::sigaction) -> usize {
    action.sa_restorer.map_or(0, |f| f as usize)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trampoline_of(_action: &libc::sigaction) -> usize {
    0
}

fn check_hz(hz: u32) -> Result<(), Error> {
    if (1..=MAX_CPU_HZ).contains(&hz) {
        Ok(())
    } else {
        Err(config_error(
            format!("cpu_hz={hz}"),
            format!(
                "`cpu_hz` takes a sampling frequency in Hz from 1 to {MAX_CPU_HZ}, e.g. cpu_hz=99"
            ),
        ))
    }
}

fn cpu_error(e: pprof::Error) -> Error {
    match e {
        // Someone else in the process uses pprof-rs directly.
        pprof::Error::Running => Error::CpuProfileBusy,
        e => Error::Cpu(std::io::Error::other(e)),
    }
}

/// The running glibc's (major, minor) version, if it is glibc.
fn glibc_version() -> Option<(u32, u32)> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `gnu_get_libc_version` returns a pointer to a static NUL-terminated string.
        let version = unsafe { std::ffi::CStr::from_ptr(libc::gnu_get_libc_version()) };
        let mut parts = version.to_str().ok()?.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some((major, minor))
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        None
    }
}

/// The libraries in which samples are skipped (see the module's documentation): none where
/// libgcc's unwinder is async-signal-safe (glibc >= 2.35: `_dl_find_object`), else pprof-rs's
/// suggested set.
fn blocklist(glibc: Option<(u32, u32)>) -> &'static [&'static str] {
    match glibc {
        Some(version) if version >= (2, 35) => &[],
        _ => &["libc.so", "libc-", "libgcc_s", "libpthread", "vdso"],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handler_frames_end_at_the_trampoline() {
        // (address, function start): two handler frames, the trampoline, the interrupted code.
        let frames = [
            (0x10, 0x8),
            (0x120, 0x100),
            (0x700, 0x6f0),
            (0x5000, 0x4f00),
            (0x6000, 0x5f00),
        ];
        let split = Some((&frames[..2], &frames[3..]));
        let interrupted = &frames[3..];
        let by_trampoline = Boundary {
            trampoline: 0x700,
            handler: 0x100,
        };
        assert_eq!(by_trampoline.split(&frames), split);
        assert_eq!(by_trampoline.split(&frames[..2]), None);
        assert_eq!(by_trampoline.split(&frames[..3]), None);
        let by_handler = Boundary {
            trampoline: 0,
            handler: 0x100,
        };
        assert_eq!(by_handler.split(&frames), split);
        let unknown = Boundary {
            trampoline: 0,
            handler: 0,
        };
        assert_eq!(unknown.split(&frames), None);
        // The interrupted instruction goes in as if it were a return address.
        assert_eq!(interrupted_stack(interrupted), vec![0x5001, 0x6000]);
        assert_eq!(interrupted_stack(&[(0x5000, 0), (0, 0)]), vec![0x5001]);
    }

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
    fn the_blocklist_is_empty_only_with_the_lock_free_unwinder() {
        assert!(blocklist(Some((2, 36))).is_empty());
        assert!(blocklist(Some((3, 0))).is_empty());
        assert!(blocklist(Some((2, 34))).contains(&"libgcc_s"));
        assert!(blocklist(None).contains(&"vdso"));
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
