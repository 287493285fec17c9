//! Starting and stopping the profiler: builder → `start()` → guard.

use crate::background::{self, Background};
use crate::config::{Config, Origin};
use crate::memory::profiler_work;
use crate::profiles::{dump_and_report, SYMBOLIZE};
use crate::Error;
use mapprof_rt::stack::{self, Unwinder};
use mapprof_rt::{contention, sampler};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Whether a [`Profiler`] is running; only one at a time.
static RUNNING: AtomicBool = AtomicBool::new(false);
/// Where to dump when the running profiler stops or the process exits.
static DUMP_DIR: Mutex<Option<PathBuf>> = Mutex::new(None);

/// The dump directory, held across a fork (`crate::fork`).
pub(crate) type DumpDirGuard = MutexGuard<'static, Option<PathBuf>>;

pub(crate) fn lock_dump_dir() -> DumpDirGuard {
    DUMP_DIR.lock().unwrap_or_else(PoisonError::into_inner)
}

/// In a child just forked: the parent's profiler is not running here, so the child may
/// start one.
pub(crate) fn after_fork_in_child() {
    RUNNING.store(false, SeqCst);
}

/// The running profiler. Dropping it writes the dumps (if a dump directory is set) and ends
/// it; heap sampling itself goes on at the configured rate, as in Go.
#[derive(Debug)]
#[must_use = "dropping the profiler stops it at once"]
pub struct Profiler {
    config: Config,
    /// The trace line and dump triggers; joined when the profiler is dropped.
    _background: Option<Background>,
    /// The `/debug/pprof` server (`http`); stopped when the profiler is dropped.
    http: Option<HttpServer>,
    /// Pushing to an engine (`push`): the last interval is pushed when the profiler is
    /// dropped.
    _pusher: Option<Pusher>,
    /// The process that started it: in a child forked since, dropping it does nothing.
    pid: u32,
}

/// Configures a [`Profiler`]; see [`Config`] for every setting and its default.
#[derive(Debug, Default)]
pub struct ProfilerBuilder {
    config: Config,
    /// `MAPPROF` set a dump trigger ([`Self::env`]): a missing `dump_dir` is then reported as
    /// `MAPPROF`'s.
    dumps_from_env: bool,
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

    /// Where `/debug/pprof` is served (the port chosen when `http` asked for port 0), if it is.
    pub fn http_addr(&self) -> Option<std::net::SocketAddr> {
        http_addr(self.http.as_ref()?)
    }
}

impl ProfilerBuilder {
    /// Mean bytes between heap samples: 0 = off, 1 = every allocation.
    pub fn heap_rate(mut self, bytes: u64) -> Self {
        self.config.heap_rate = bytes;
        self
    }

    /// Seeds the samplers (see [`Config::seed`]): another seed, other samples with the same
    /// expectations; the default is fixed, so that runs repeat.
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
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

    /// Prints the memory trace line to stderr every `interval` (see the README for its format).
    pub fn trace(mut self, interval: std::time::Duration) -> Self {
        self.config.trace = Some(interval);
        self
    }

    /// Dumps every profile into the dump directory every `interval`.
    pub fn dump_every(mut self, interval: std::time::Duration) -> Self {
        self.config.dump_every = Some(interval);
        self
    }

    /// Dumps every profile, and a thread dump (`threads.<pid>.<n>.txt`, the text of
    /// [`crate::dump_threads`]), into the dump directory when `signal` (`libc::SIGUSR1` or
    /// `libc::SIGUSR2`) arrives.
    pub fn dump_signal(mut self, signal: i32) -> Self {
        self.config.dump_signal = Some(signal);
        self
    }

    /// Serves `/debug/pprof` on `addr` (`host:port`, loopback unless [`Self::http_public`])
    /// while the profiler runs; see [`crate::http`] (the `http` feature).
    pub fn http(mut self, addr: impl Into<String>) -> Self {
        self.config.http = Some(addr.into());
        self
    }

    /// Lets [`Self::http`] listen on an address other than loopback.
    pub fn http_public(mut self, public: bool) -> Self {
        self.config.http_public = public;
        self
    }

    /// Pushes profiles to the engine at `url` (`http://` or `https://`) every
    /// [`Self::push_every`]; see [`crate::push`] (the `push` feature).
    pub fn push(mut self, url: impl Into<String>) -> Self {
        self.config.push = Some(url.into());
        self
    }

    /// The protocol of [`Self::push`]: Pyroscope's (default) or OTLP (the `otlp` feature).
    pub fn push_protocol(mut self, protocol: crate::PushProtocol) -> Self {
        self.config.push_protocol = protocol;
        self
    }

    /// The interval between pushes (at least [`crate::MIN_PUSH_INTERVAL`]).
    pub fn push_every(mut self, interval: std::time::Duration) -> Self {
        self.config.push_every = interval;
        self
    }

    /// The `service_name` of pushed profiles (default: the executable's name).
    pub fn service(mut self, name: impl Into<String>) -> Self {
        self.config.service = Some(name.into());
        self
    }

    /// Labels every pushed profile carries, e.g. `[("env", "prod")]`.
    pub fn push_labels<N: Into<String>, V: Into<String>>(
        mut self,
        labels: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        self.config.push_labels = labels
            .into_iter()
            .map(|(n, v)| (n.into(), v.into()))
            .collect();
        self
    }

    /// The profiles pushed, among [`crate::PUSHED_PROFILES`] (default: all).
    pub fn push_profiles<P: Into<String>>(mut self, profiles: impl IntoIterator<Item = P>) -> Self {
        self.config.push_profiles = Some(profiles.into_iter().map(Into::into).collect());
        self
    }

    /// Basic authentication's user, with [`Self::push_password`].
    pub fn push_user(mut self, user: impl Into<String>) -> Self {
        self.config.push_user = Some(user.into());
        self
    }

    /// Basic authentication's password, with [`Self::push_user`].
    pub fn push_password(mut self, password: impl Into<String>) -> Self {
        self.config.push_password = Some(crate::Secret::new(password));
        self
    }

    /// A bearer token sent with every push.
    pub fn push_token(mut self, token: impl Into<String>) -> Self {
        self.config.push_token = Some(crate::Secret::new(token));
        self
    }

    /// The tenant of a multi-tenant engine (`X-Scope-OrgID`).
    pub fn push_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.config.push_tenant = Some(tenant.into());
        self
    }

    /// Applies the `MAPPROF` environment variable on top of what was set in code. (Its
    /// `heap_rate` and `seed` already apply from the process's first allocation, so that what
    /// is allocated before the profiler starts is sampled at that rate too; see
    /// `mapprof_rt::sampler`.)
    pub fn env(mut self) -> Result<Self, Error> {
        let (every, signal) = (self.config.dump_every, self.config.dump_signal);
        self.config = self.config.from_env()?;
        let (new_every, new_signal) = (self.config.dump_every, self.config.dump_signal);
        self.dumps_from_env |= (new_every.is_some() && new_every != every)
            || (new_signal.is_some() && new_signal != signal);
        Ok(self)
    }

    /// Applies the settings and starts the profiler. Fails when one is already running, the
    /// dump directory cannot be created or a setting is refused; a failed start changes nothing.
    pub fn start(self) -> Result<Profiler, Error> {
        let config = self.config;
        let dumps = if self.dumps_from_env {
            Origin::Mapprof
        } else {
            Origin::Code
        };
        config.validate_as(dumps).map_err(Error::Config)?;
        crate::fork::register();
        // The profiler's own work (its threads, its server, its copy of the dump directory):
        // never sampled as the host's, and kept apart, as what it keeps across profiles.
        let (http, background, pusher) = profiler_work(|| {
            mapprof_rt::thread::keeping(0, || -> Result<_, Error> {
                if let Some(dir) = &config.dump_dir {
                    check_dump_dir(dir)?;
                }
                if RUNNING.swap(true, SeqCst) {
                    return Err(Error::AlreadyStarted);
                }
                // What can fail comes before any setting is applied.
                let started = start_http(&config).and_then(|http| {
                    let pusher = start_push(&config)?;
                    Ok((http, background::start(&config)?, pusher))
                });
                if started.is_err() {
                    RUNNING.store(false, SeqCst);
                    return started;
                }
                *lock_dump_dir() = config.dump_dir.clone();
                if config.dump_dir.is_some() {
                    register_exit_dump();
                }
                started
            })
        })?;
        // Outside the work, so that the calling thread's own countdown restarts at the new
        // rate at once (`mapprof_rt::sampler::set_heap_rate`).
        sampler::set_heap_rate(config.heap_rate);
        sampler::set_seed(config.seed);
        contention::set_mutex_fraction(config.mutex_fraction);
        contention::set_block_rate(config.block_rate);
        stack::set_unwinder(config.unwinder);
        SYMBOLIZE.store(config.symbolize, Relaxed);
        Ok(Profiler {
            config,
            _background: background,
            http,
            _pusher: pusher,
            pid: std::process::id(),
        })
    }
}

/// Starts a profiler configured by `MAPPROF` alone. A bad `MAPPROF` is reported on stderr,
/// naming the entry and what it accepts, and nothing is started; the program goes on, with
/// heap sampling at its default rate and seed (undoing the `heap_rate` and `seed` that the
/// sampler took from `MAPPROF` at the first allocation).
pub fn start_from_env() -> Option<Profiler> {
    let builder = Profiler::builder().env().inspect_err(|_| {
        if !RUNNING.load(SeqCst) {
            sampler::set_heap_rate(sampler::DEFAULT_HEAP_RATE);
            sampler::set_seed(sampler::DEFAULT_SEED);
        }
    });
    match builder.and_then(ProfilerBuilder::start) {
        Ok(profiler) => Some(profiler),
        Err(e) => {
            eprintln!("mapprof: {e}");
            None
        }
    }
}

impl Drop for Profiler {
    fn drop(&mut self) {
        // A forked child's copy was not started there (`crate::fork`); the background threads
        // and the server see to themselves.
        if self.pid != std::process::id() {
            return;
        }
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
    crate::profiles::remove_stale_temp_files(dir);
    Ok(())
}

/// Writes the dumps if a dump directory is set and they have not been written yet. Errors go
/// to stderr: at exit there is no caller to return them to.
fn dump_once() {
    let dir = lock_dump_dir().take();
    if let Some(dir) = dir {
        dump_and_report(&dir);
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

#[cfg(feature = "push")]
use crate::push::Pusher;
/// Without the `push` feature there is never a pusher.
#[cfg(not(feature = "push"))]
#[derive(Debug)]
enum Pusher {}

#[cfg(feature = "push")]
fn start_push(config: &Config) -> Result<Option<Pusher>, Error> {
    crate::push::start(config)
}

#[cfg(not(feature = "push"))]
fn start_push(config: &Config) -> Result<Option<Pusher>, Error> {
    match &config.push {
        None => Ok(None),
        Some(url) => Err(Error::Push {
            url: url.clone(),
            problem: "mapprof was built without its `push` feature; enable it \
                      (features = [\"push\"]) to push profiles"
                .into(),
        }),
    }
}

#[cfg(feature = "http")]
use crate::http::HttpServer;
/// Without the `http` feature there is never a server.
#[cfg(not(feature = "http"))]
type HttpServer = std::convert::Infallible;

/// Starts the `/debug/pprof` server if `config` asks for one.
#[cfg(feature = "http")]
fn start_http(config: &Config) -> Result<Option<HttpServer>, Error> {
    let Some(addr) = &config.http else {
        return Ok(None);
    };
    let options = crate::http::HttpOptions {
        public: config.http_public,
        cpu_hz: config.cpu_hz,
        ..Default::default()
    };
    let server = crate::http::serve_with(addr.as_str(), &options).map_err(|e| match e {
        // Name the address as configured, not as "the address given".
        Error::Http { source, .. } => Error::Http {
            addr: addr.clone(),
            source,
        },
        e => e,
    })?;
    Ok(Some(server))
}

#[cfg(not(feature = "http"))]
fn start_http(config: &Config) -> Result<Option<HttpServer>, Error> {
    match &config.http {
        None => Ok(None),
        Some(addr) => Err(Error::Http {
            addr: addr.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "mapprof was built without its `http` feature",
            ),
        }),
    }
}

#[cfg(feature = "http")]
fn http_addr(server: &HttpServer) -> Option<std::net::SocketAddr> {
    Some(server.addr())
}

#[cfg(not(feature = "http"))]
fn http_addr(server: &HttpServer) -> Option<std::net::SocketAddr> {
    match *server {}
}
