//! The profiler's background work, on threads of its own that the running [`crate::Profiler`]
//! owns and joins when it is dropped:
//!
//! - the **memory trace line** (`trace=1s`), mapprof's `GODEBUG=gctrace=1`: one line per
//!   interval on stderr, see [`trace_line`] for its format;
//! - **periodic dumps** (`dump_every=60s`) into `dump_dir`;
//! - **dumps on a signal** (`dump_signal=SIGUSR2`) into `dump_dir`: every profile and a thread
//!   dump (`threads.<pid>.<n>.txt`, [`crate::dump_threads`]'s text). The handler only writes
//!   to a pipe (signal-hook's self-pipe); the dumps happen on the listening thread.
//!
//! Each schedule has a thread of its own (a slow dump does not delay the trace line), and a
//! job that panics is reported and made again ([`every`]). The threads run as the profiler's own work ([`crate::memory::profiler_thread`]): their
//! allocations are not profiled, and go to the profiler's own heap, given back after each line
//! and dump. They never hold a lock that the allocator or lock hooks take.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mapprof_profile::growth;
use mapprof_profile::profiler_frames::trim_resolved;
use mapprof_rt::table::{self, BucketId, Kind, FLAG_REALLOC};
use signal_hook::iterator::{Handle, Signals};

use crate::config::{Config, MIN_INTERVAL};
use crate::memory::{profiler_thread, release, self_memory, SelfMemory};
use crate::profiles::{dump_and_report, with_symbolizer};
use crate::Error;

/// The background threads of a running profiler; dropping it stops and joins them.
#[derive(Debug)]
pub(crate) struct Background {
    stop: Arc<(Mutex<bool>, Condvar)>,
    /// One thread per schedule (trace line, periodic dumps), so that a slow dump does not
    /// delay the trace line.
    schedules: Vec<JoinHandle<()>>,
    signals: Option<(Handle, JoinHandle<()>)>,
    /// The process that started the threads (see `crate::fork`).
    pid: u32,
}

/// Starts what `config` asks for: nothing when it asks for nothing.
pub(crate) fn start(config: &Config) -> Result<Option<Background>, Error> {
    let dump_every = config.dump_every.zip(config.dump_dir.clone());
    if config.trace.is_none() && dump_every.is_none() && config.dump_signal.is_none() {
        return Ok(None);
    }
    // From here on, dropping `background` stops what was started.
    let mut background = Background {
        stop: Arc::new((Mutex::new(false), Condvar::new())),
        schedules: Vec::new(),
        signals: None,
        pid: std::process::id(),
    };
    if let (Some(signal), Some(dir)) = (config.dump_signal, &config.dump_dir) {
        background.signals = Some(listen(signal, dir.clone())?);
    }
    if let Some(interval) = config.trace {
        let start = Instant::now();
        let thread = every("mapprof-trace", interval, &background.stop, move || {
            let mut tracer = Tracer::new(start);
            move || eprintln!("{}", tracer.line())
        })?;
        background.schedules.push(thread);
    }
    if let Some((interval, dir)) = dump_every {
        let thread = every("mapprof-dump", interval, &background.stop, move || {
            let dir = dir.clone();
            move || dump_and_report(&dir)
        })?;
        background.schedules.push(thread);
    }
    Ok(Some(background))
}

impl Drop for Background {
    fn drop(&mut self) {
        if self.pid != std::process::id() {
            // In a forked child the threads do not exist: joining them would wait forever.
            std::mem::forget(std::mem::take(&mut self.schedules));
            std::mem::forget(self.signals.take());
            return;
        }
        let (stopped, wake) = &*self.stop;
        *stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
        wake.notify_all();
        for thread in self.schedules.drain(..) {
            let _ = thread.join();
        }
        if let Some((handle, thread)) = self.signals.take() {
            handle.close();
            let _ = thread.join();
        }
    }
}

/// Dumps into `dir` each time `signal` arrives.
fn listen(signal: i32, dir: PathBuf) -> Result<(Handle, JoinHandle<()>), Error> {
    let mut signals = Signals::new([signal]).map_err(Error::Io)?;
    let handle = signals.handle();
    let thread = std::thread::Builder::new()
        .name("mapprof-dump-signal".into())
        .spawn(move || {
            profiler_thread(|| {
                for _ in signals.forever() {
                    dump_and_report(&dir);
                    match crate::threads::write_thread_dump_into(&dir) {
                        Ok(path) => eprintln!("mapprof: wrote {}", path.display()),
                        Err(e) => eprintln!("mapprof: {e}"),
                    }
                    release();
                }
            })
        })
        .map_err(Error::Io)?;
    Ok((handle, thread))
}

/// Runs a job every `interval` on a thread named `name` until `stop`. The job is made by
/// `make` when the thread starts; one that panics is reported on stderr and made again, to
/// run from the next interval on (never silently gone; with `panic = "abort"` the host
/// aborts, as it would for a panic of its own).
fn every<J: FnMut()>(
    name: &'static str,
    interval: Duration,
    stop: &Arc<(Mutex<bool>, Condvar)>,
    make: impl Fn() -> J + Send + 'static,
) -> Result<JoinHandle<()>, Error> {
    let stop = stop.clone();
    let run = move || {
        let report = |what: &str, panic: Box<dyn std::any::Any + Send>| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|m| m.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            eprintln!(
                "mapprof: {name} panicked {what} ({message}); it goes on at the next interval"
            );
        };
        let fresh = || {
            catch_unwind(AssertUnwindSafe(&make))
                .map_err(|p| report("starting", p))
                .ok()
        };
        let mut job = fresh();
        let mut due = Instant::now().checked_add(interval);
        while wait_until(&stop, due) {
            match job.as_mut() {
                Some(job_now) => {
                    if let Err(panic) = catch_unwind(AssertUnwindSafe(&mut *job_now)) {
                        report("", panic);
                        job = None;
                    }
                }
                None => job = fresh(),
            }
            release();
            due = due.and_then(|at| later(at, interval, Instant::now()));
        }
    };
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || profiler_thread(run))
        .map_err(Error::Io)
}

/// Waits until `due` (forever when `None`) or until told to stop; whether it is still to go on.
fn wait_until(stop: &(Mutex<bool>, Condvar), due: Option<Instant>) -> bool {
    let (stopped, wake) = stop;
    let mut stopped = stopped.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        if *stopped {
            return false;
        }
        let now = Instant::now();
        stopped = match due {
            Some(due) if now >= due => return true,
            Some(due) => {
                wake.wait_timeout(stopped, due - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
            None => wake.wait(stopped).unwrap_or_else(PoisonError::into_inner),
        };
    }
}

/// The first `at + k * every` (k ≥ 1) after `now`: a slow interval skips ticks instead of
/// bunching. `None` past what the clock can hold. Never more often than `MIN_INTERVAL`.
fn later(at: Instant, every: Duration, now: Instant) -> Option<Instant> {
    let every = every.max(MIN_INTERVAL);
    let next = at.checked_add(every)?;
    if next > now {
        return Some(next);
    }
    let ticks = now.duration_since(at).as_nanos() / every.as_nanos() + 1;
    at.checked_add(every.checked_mul(u32::try_from(ticks).ok()?)?)
}

/// Totals since the start, read from the stack table and jemalloc.
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    alloc_bytes: u64,
    alloc_objects: f64,
    growth_bytes: u64,
    growth_objects: f64,
    delay_ns: u64,
    contentions: f64,
}

/// Keeps what the trace line needs between lines: the last totals, and which heap buckets are
/// container growth (classified once per bucket, from its symbolized stack).
struct Tracer {
    start: Instant,
    last_at: Instant,
    last: Totals,
    is_growth: HashMap<BucketId, bool>,
}

impl Tracer {
    fn new(start: Instant) -> Tracer {
        let mut tracer = Tracer {
            start,
            last_at: start,
            last: Totals::default(),
            is_growth: HashMap::new(),
        };
        (tracer.last, tracer.last_at) = tracer.totals();
        tracer
    }

    /// The totals now, and when they were read (before classifying new buckets, which can
    /// take a while the first time: symbolization).
    fn totals(&mut self) -> (Totals, Instant) {
        // Stacks only of buckets not yet classified: the table can hold tens of thousands.
        let heap = table::snapshot_with(Kind::Heap, |id| !self.is_growth.contains_key(&id));
        let mutex = table::snapshot_with(Kind::Mutex, |_| false);
        let at = Instant::now();
        let mut t = Totals::default();
        for r in heap {
            let counts = r.heap();
            t.alloc_bytes += counts.allocated_bytes;
            t.alloc_objects += counts.allocated_objects;
            let growth = *self
                .is_growth
                .entry(r.id)
                .or_insert_with(|| is_growth(&r.stack, r.flags & FLAG_REALLOC != 0));
            if growth {
                t.growth_bytes += counts.allocated_bytes;
                t.growth_objects += counts.allocated_objects;
            }
        }
        // What classifying opened is not kept until the next line (about 20 MiB of DWARF for
        // the fixture): reopening costs tens of milliseconds, keeping it costs the host.
        with_symbolizer(|symbolizer| symbolizer.release_debug_info());
        for r in mutex {
            let counts = r.contention();
            t.contentions += counts.events;
            t.delay_ns += counts.delay_ns;
        }
        (t, at)
    }

    /// The line for the interval that ends now. The totals are read first: classifying new
    /// buckets can take a while, and the rates must cover the time the totals do.
    fn line(&mut self) -> String {
        let (totals, now) = self.totals();
        let seconds = now.duration_since(self.last_at).as_secs_f64().max(1e-9);
        let line = trace_line(
            now.duration_since(self.start),
            jemalloc_stats(),
            self_memory(),
            &totals,
            &self.last,
            seconds,
        );
        (self.last, self.last_at) = (totals, now);
        line
    }
}

/// Whether a heap bucket's stack is container growth, as the resize profile would say.
fn is_growth(stack: &[usize], realloc: bool) -> bool {
    // The profiler's own frames at the leaf are left out, as the profile builder does.
    let frames = with_symbolizer(|symbolizer| {
        trim_resolved(
            stack
                .iter()
                .map(|&ret| symbolizer.resolve((ret as u64).saturating_sub(1))),
        )
    });
    let names = frames.iter().flat_map(|f| f.iter().map(|s| &*s.name));
    growth::classify(names, realloc).is_some()
}

/// jemalloc's allocated, active, resident, mapped and retained bytes; `None` where jemalloc
/// cannot say (all of them, built without the `jemalloc` feature).
#[cfg(not(feature = "jemalloc"))]
fn jemalloc_stats() -> [Option<usize>; 5] {
    [None; 5]
}

/// jemalloc's allocated, active, resident, mapped and retained bytes; `None` where jemalloc
/// cannot say.
#[cfg(feature = "jemalloc")]
fn jemalloc_stats() -> [Option<usize>; 5] {
    use tikv_jemalloc_ctl::stats;
    crate::memory::advance_epoch();
    [
        stats::allocated::read().ok(),
        stats::active::read().ok(),
        stats::resident::read().ok(),
        stats::mapped::read().ok(),
        stats::retained::read().ok(),
    ]
}

/// One trace line, `key=value` fields separated by spaces, so that it greps and splits:
///
/// ```text
/// mapprof: t=12.0s allocated=118.3MiB active=121.0MiB resident=130.5MiB mapped=160.2MiB retained=12.0MiB self=9.1MiB self_peak=14.0MiB alloc=45.6MiB/s objects=12034/s growth=120/s growth_space=3.4MiB/s lock_delay=12.3ms/s contentions=45/s
/// ```
///
/// - `t`: seconds since the profiler started;
/// - `allocated` ... `retained`: jemalloc's `stats.*` now (`?` when unavailable), the whole
///   process's;
/// - `self`, `self_peak`: what mapprof itself holds now and its peak ([`crate::self_memory`]'s
///   `total` and `peak`: its fixed tables' resident pages, plus its own heap where it can be
///   told apart, i.e. with `Alloc::jemalloc()`);
/// - `alloc`, `objects`: bytes and objects allocated per second over the interval, estimated
///   from the heap samples (0 when heap sampling is off);
/// - `growth`, `growth_space`: container growths (as in the resize profile) per second and
///   their bytes per second;
/// - `lock_delay`, `contentions`: delay that lock holders caused per second (mutex profile,
///   0 when mutex profiling is off), and contentions per second;
/// - when pushing (`push`), `push_sent`, `push_failed`, `push_refused`, `push_dropped` and
///   `push_queued`: [`crate::push::PushStats`]' counts since the start.
fn trace_line(
    elapsed: Duration,
    jemalloc: [Option<usize>; 5],
    own: SelfMemory,
    now: &Totals,
    before: &Totals,
    seconds: f64,
) -> String {
    let mib = |bytes: f64| format!("{:.1}MiB", bytes / (1 << 20) as f64);
    let per_second = |now: f64, before: f64| (now - before).max(0.0) / seconds;
    let mut line = format!("mapprof: t={:.1}s", elapsed.as_secs_f64());
    let names = ["allocated", "active", "resident", "mapped", "retained"];
    for (name, value) in names.iter().zip(jemalloc) {
        let value = value.map_or("?".to_owned(), |v| mib(v as f64));
        let _ = write!(line, " {name}={value}");
    }
    let _ = write!(
        line,
        " self={} self_peak={}",
        mib(own.total as f64),
        mib(own.peak as f64)
    );
    let _ = write!(
        line,
        " alloc={}/s objects={:.0}/s growth={:.0}/s growth_space={}/s lock_delay={:.1}ms/s \
         contentions={:.0}/s",
        mib(per_second(
            now.alloc_bytes as f64,
            before.alloc_bytes as f64
        )),
        per_second(now.alloc_objects, before.alloc_objects),
        per_second(now.growth_objects, before.growth_objects),
        mib(per_second(
            now.growth_bytes as f64,
            before.growth_bytes as f64
        )),
        per_second(now.delay_ns as f64, before.delay_ns as f64) / 1e6,
        per_second(now.contentions, before.contentions),
    );
    #[cfg(feature = "push")]
    line.push_str(&crate::push::trace_fields());
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trace_line_has_every_field_as_rates() {
        let before = Totals::default();
        let now = Totals {
            alloc_bytes: 4 << 20,
            alloc_objects: 1000.0,
            growth_bytes: 1 << 20,
            growth_objects: 20.0,
            delay_ns: 30_000_000,
            contentions: 6.0,
        };
        let jemalloc = [Some(1 << 20), Some(2 << 20), None, Some(8 << 20), Some(0)];
        let own = SelfMemory {
            tables_reserved: 18 << 20,
            tables_resident: 1 << 20,
            heap_allocated: Some(1 << 20),
            heap_resident: Some(2 << 20),
            total: 3 << 20,
            peak: 5 << 20,
        };
        let line = trace_line(Duration::from_secs(4), jemalloc, own, &now, &before, 2.0);
        assert_eq!(
            line,
            "mapprof: t=4.0s allocated=1.0MiB active=2.0MiB resident=? mapped=8.0MiB \
             retained=0.0MiB self=3.0MiB self_peak=5.0MiB alloc=2.0MiB/s objects=500/s growth=10/s growth_space=0.5MiB/s \
             lock_delay=15.0ms/s contentions=3/s"
        );
    }

    #[test]
    fn late_ticks_are_skipped_not_bunched() {
        let at = Instant::now();
        let every = Duration::from_millis(100);
        assert_eq!(later(at, every, at), Some(at + every));
        assert_eq!(
            later(at, every, at + Duration::from_millis(350)),
            Some(at + 4 * every)
        );
        assert_eq!(later(at, Duration::MAX, at), None, "past the clock: never");
        let never_faster = later(at, Duration::ZERO, at + every);
        assert_eq!(never_faster, Some(at + 11 * MIN_INTERVAL));
    }

    #[test]
    fn a_job_that_panics_is_made_again_and_goes_on() {
        use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
        static MADE: AtomicU32 = AtomicU32::new(0);
        static RAN: AtomicU32 = AtomicU32::new(0);
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let thread = every("mapprof-test", Duration::from_millis(10), &stop, || {
            let made = MADE.fetch_add(1, Relaxed);
            move || {
                RAN.fetch_add(1, Relaxed);
                // The first job panics at its first run; the one made after it does not.
                assert!(made > 0, "a job's panic");
            }
        })
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while RAN.load(Relaxed) < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        *stop.0.lock().unwrap() = true;
        stop.1.notify_all();
        thread.join().expect("the thread survived the panic");
        assert_eq!(MADE.load(Relaxed), 2, "made again once, after the panic");
        assert!(RAN.load(Relaxed) >= 3, "and it went on running");
    }
}
