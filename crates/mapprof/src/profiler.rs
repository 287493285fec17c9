//! Starting and stopping the profiler: builder → `start()` → guard.

use crate::config::Config;
use crate::profiles::{dump, SYMBOLIZE};
use crate::Error;
use mapprof_rt::stack::{self, Unwinder};
use mapprof_rt::{lock, sampler};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Mutex, PoisonError};

/// Whether a [`Profiler`] is running; only one at a time.
static RUNNING: AtomicBool = AtomicBool::new(false);
/// Where to dump when the running profiler stops or the process exits.
static DUMP_DIR: Mutex<Option<PathBuf>> = Mutex::new(None);

/// The running profiler. Dropping it writes the dumps (if a dump directory is set) and ends
/// it; heap sampling itself goes on at the configured rate, as in Go.
#[derive(Debug)]
#[must_use = "dropping the profiler stops it at once"]
pub struct Profiler {
    config: Config,
}

/// Configures a [`Profiler`]; see [`Config`] for every setting and its default.
#[derive(Debug, Default)]
pub struct ProfilerBuilder {
    config: Config,
}

impl Profiler {
    /// Starts configuring a profiler.
    pub fn builder() -> ProfilerBuilder {
        ProfilerBuilder::default()
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }
}

impl ProfilerBuilder {
    /// Mean bytes between heap samples: 0 = off, 1 = every allocation.
    pub fn heap_rate(mut self, bytes: u64) -> Self {
        self.config.heap_rate = bytes;
        self
    }

    /// Records 1 in `n` lock contention events for the mutex profile: 0 = off, 1 = all.
    pub fn mutex_fraction(mut self, n: u64) -> Self {
        self.config.mutex_fraction = n;
        self
    }

    /// Always records waits of at least `ns` nanoseconds in the block profile, shorter ones
    /// in proportion: 0 = off, 1 = all.
    pub fn block_rate(mut self, ns: u64) -> Self {
        self.config.block_rate = ns;
        self
    }

    /// Writes every profile into `dir` when the profiler stops or the process exits.
    pub fn dump_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.dump_dir = Some(dir.into());
        self
    }

    /// Symbolize in process (default) or keep raw addresses for offline symbolization.
    pub fn symbolize(mut self, symbolize: bool) -> Self {
        self.config.symbolize = symbolize;
        self
    }

    /// How stacks are captured.
    pub fn unwinder(mut self, unwinder: Unwinder) -> Self {
        self.config.unwinder = unwinder;
        self
    }

    /// Applies the `MAPPROF` environment variable on top of what was set in code.
    pub fn env(mut self) -> Result<Self, Error> {
        self.config = self.config.from_env()?;
        Ok(self)
    }

    /// Applies the settings and starts the profiler. Fails when one is already running or the
    /// dump directory cannot be created.
    pub fn start(self) -> Result<Profiler, Error> {
        let config = self.config;
        if let Some(dir) = &config.dump_dir {
            check_dump_dir(dir)?;
        }
        if RUNNING.swap(true, SeqCst) {
            return Err(Error::AlreadyStarted);
        }
        sampler::set_heap_rate(config.heap_rate);
        lock::set_mutex_fraction(config.mutex_fraction);
        lock::set_block_rate(config.block_rate);
        stack::set_unwinder(config.unwinder);
        SYMBOLIZE.store(config.symbolize, Relaxed);
        *DUMP_DIR.lock().unwrap_or_else(PoisonError::into_inner) = config.dump_dir.clone();
        if config.dump_dir.is_some() {
            register_exit_dump();
        }
        Ok(Profiler { config })
    }
}

/// Starts a profiler configured by `MAPPROF` alone. A bad `MAPPROF` is reported on stderr,
/// naming the entry and what it accepts, and nothing is started; the program goes on, with
/// heap sampling at its default rate.
pub fn start_from_env() -> Option<Profiler> {
    match Profiler::builder().env().and_then(ProfilerBuilder::start) {
        Ok(profiler) => Some(profiler),
        Err(e) => {
            eprintln!("mapprof: {e}");
            None
        }
    }
}

impl Drop for Profiler {
    fn drop(&mut self) {
        dump_once();
        RUNNING.store(false, SeqCst);
    }
}

fn check_dump_dir(dir: &Path) -> Result<(), Error> {
    let fail = |source| Error::DumpDir {
        path: dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    // Creating a file is the only reliable test of writability (permissions, read-only mounts).
    let probe = dir.join(format!(".mapprof-probe-{}", std::process::id()));
    std::fs::File::create(&probe).map_err(fail)?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// Writes the dumps if a dump directory is set and they have not been written yet. Errors go
/// to stderr: at exit there is no caller to return them to.
fn dump_once() {
    let dir = DUMP_DIR
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    if let Some(dir) = dir {
        match dump(&dir) {
            Ok(paths) => {
                for p in paths {
                    eprintln!("mapprof: wrote {}", p.display());
                }
            }
            Err(e) => eprintln!("mapprof: {e}"),
        }
    }
}

/// Dumps at process exit too, for programs that leave through `std::process::exit` without
/// dropping the profiler.
fn register_exit_dump() {
    static REGISTERED: AtomicBool = AtomicBool::new(false);
    extern "C" fn at_exit() {
        // A panic must not unwind into libc.
        let _ = std::panic::catch_unwind(dump_once);
    }
    if !REGISTERED.swap(true, SeqCst) {
        // SAFETY: `at_exit` is an `extern "C" fn()` that lives for the whole program and
        // never unwinds.
        unsafe {
            libc::atexit(at_exit);
        }
    }
}
