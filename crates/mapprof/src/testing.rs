//! Allocation, growth and contention assertions for `cargo test` (cargo feature `testing`).
//!
//! ```no_run
//! #[global_allocator]
//! static ALLOC: mapprof::Alloc = mapprof::Alloc::system();
//!
//! use mapprof::testing::{measure, Container};
//! use std::collections::HashMap;
//!
//! let m = measure(|| {
//!     let mut map = HashMap::with_capacity(1000);
//!     for i in 0..1000u64 {
//!         map.insert(i, i);
//!     }
//! });
//! m.assert_no_growth(Container::HashMap);
//! m.assert_allocations_at_most(1);
//! m.assert_nothing_leaked();
//! ```
//!
//! [`measure`] counts **exactly** (every call, not sampled) what the closure does on the
//! calling thread: allocations and their bytes, reallocs, frees, peak live bytes, what it left
//! allocated, container growths by kind (the resize profile's classification:
//! [`mapprof_profile::growth`]) with their call sites, and contended acquisitions of
//! `mapprof::sync` locks and of `mapprof::tokio` locks (feature `tokio`; by the tasks the
//! measuring thread polls: a current-thread runtime run inside the closure), with the waiters'
//! and holders' stacks. Counting is per thread: tests measuring at the same time on other
//! threads (cargo's parallel tests) see only their own figures, and the other threads keep being
//! sampled for the heap profile meanwhile.
//!
//! Only the calling thread is counted by [`measure`]; [`measure_threads`] counts the threads
//! the closure spawns too, those that run their work in [`Threads::run`]. Calls of `measure`
//! do not nest: a nested call panics saying so.
//!
//! Counts can vary from one run to the next (a lazy static's first use, a thread-local's
//! first access, a buffer kept for later): [`measure_min`] is Go's answer
//! (`testing.AllocsPerRun`), one warm-up run and then the minimum over a number of runs.
//!
//! Failing assertions panic with the figure against the limit and the call sites responsible,
//! symbolized, the profiler's frames trimmed. With `MAPPROF_TEST_ARTIFACTS=dir` in the
//! environment, a failing assertion first writes the measurement's profiles into `dir` for CI
//! to keep ([`Measurement::write_artifacts`], named after the test: the thread name `cargo
//! test` gives) and its message names the files.

use mapprof_profile::growth;
use mapprof_profile::profiler_frames::{is_profiler_frame, trim_resolved};
use mapprof_rt::scope::{self, EnterError, Scope, SiteKind};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use mapprof_profile::growth::Container;

/// How to install the allocator `measure` needs.
pub const INSTALL: &str = "mapprof::testing::measure needs mapprof::Alloc as the global \
allocator of the test binary: add `#[global_allocator] static ALLOC: mapprof::Alloc = \
mapprof::Alloc::system();` (or `mapprof::Alloc::jemalloc()`) to the test file";

/// Why [`try_measure`] could not measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeasureError {
    /// `mapprof::Alloc` is not the global allocator; the message says how to install it.
    NotInstalled,
    /// `measure` was called inside another `measure` on the same thread.
    Nested,
    /// The thread is exiting: its thread-local state is gone.
    ThreadExiting,
}

impl std::fmt::Display for MeasureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MeasureError::NotInstalled => f.write_str(INSTALL),
            MeasureError::Nested => f.write_str(
                "mapprof::testing::measure calls do not nest: this thread is already measuring",
            ),
            MeasureError::ThreadExiting => {
                f.write_str("mapprof::testing::measure: the thread is exiting")
            }
        }
    }
}

impl std::error::Error for MeasureError {}

/// One call site of a measurement: a distinct stack and what was allocated there.
#[derive(Debug, Clone)]
pub struct Site {
    /// Function names, leaf first, inlined frames expanded, the profiler's frames trimmed.
    pub frames: Vec<String>,
    /// Whether these were reallocs.
    pub realloc: bool,
    /// Calls made here.
    pub count: u64,
    /// Bytes asked for here (a realloc's new size).
    pub bytes: u64,
    /// The container whose growth these calls were, if any.
    pub growth: Option<Container>,
    /// The return addresses of the stack, innermost first, as captured (for the profiles of
    /// [`Measurement::write_artifacts`]).
    pub addresses: Vec<u64>,
}

impl Site {
    /// The site as a failure message lists it: the frames from the first one outside the
    /// standard library (and hashbrown), the caller, up to four of them, after the library
    /// function it called.
    pub fn caller(&self) -> String {
        caller(&self.frames)
    }
}

/// One stack of a measurement's lock contention: a waiter's, or a holder's that made threads
/// of the measurement wait.
#[derive(Debug, Clone)]
pub struct LockSite {
    /// Function names, leaf first, inlined frames expanded, the profiler's frames trimmed.
    pub frames: Vec<String>,
    /// A holder's stack (at the unlock that woke waiters), else a waiter's (where it locked).
    pub holder: bool,
    /// Contended acquisitions (a waiter), or unlocks that woke waiters (a holder).
    pub count: u64,
    /// The time waited (a waiter), or the time its waiters waited for it (a holder: the mutex
    /// profile's charge).
    pub wait: Duration,
    /// The return addresses of the stack, innermost first, as captured.
    pub addresses: Vec<u64>,
}

impl LockSite {
    /// The site as a failure message lists it, as [`Site::caller`].
    pub fn caller(&self) -> String {
        caller(&self.frames)
    }
}

fn caller(frames: &[String]) -> String {
    let from = frames.iter().position(|f| !is_library(f)).unwrap_or(0);
    // Up to the measuring machinery (`mapprof::testing::measure`) at the root end.
    let mut names: Vec<&str> = frames[from..]
        .iter()
        .take_while(|f| !is_profiler_frame(f))
        .take(4)
        .map(String::as_str)
        .collect();
    if let Some(entry) = from.checked_sub(1).and_then(|i| frames.get(i)) {
        // The library function the caller called: `HashMap::insert`, `Vec::push`.
        names.insert(0, entry);
    }
    names.join(" <- ")
}

fn is_library(name: &str) -> bool {
    let name = name.trim_start_matches('<');
    ["std::", "core::", "alloc::", "hashbrown::"]
        .iter()
        .any(|p| name.starts_with(p))
}

/// What [`measure`] counted.
#[derive(Debug, Clone, Default)]
pub struct Measurement {
    /// `alloc` and `alloc_zeroed` calls.
    pub allocations: u64,
    /// Bytes they asked for.
    pub bytes: u64,
    /// `realloc` calls.
    pub reallocs: u64,
    /// Their new sizes, summed.
    pub realloc_bytes: u64,
    /// Frees of any block (allocated in the closure or before it).
    pub frees: u64,
    /// Bytes freed (frees, and the old sizes of reallocs).
    pub freed_bytes: u64,
    /// The highest number of bytes live at once among the blocks the closure allocated.
    pub peak_live_bytes: u64,
    /// Bytes the closure allocated and did not free (what it returned or leaked).
    pub live_bytes: u64,
    /// Blocks the closure allocated and did not free.
    pub live_blocks: u64,
    /// Blocks too many to follow (over 65,536 live at once): their frees were not matched, so
    /// the live and peak figures are lower bounds. Normally 0.
    pub untracked_blocks: u64,
    /// Contended acquisitions of `mapprof::sync` and `mapprof::tokio` locks.
    pub contentions: u64,
    /// Time waited in them.
    pub wait: Duration,
    /// Growths by container kind (each an allocation or realloc of container growth).
    pub growths: BTreeMap<Container, u64>,
    /// Calls whose stack did not fit the site table (over 1,024 distinct stacks).
    pub unattributed: u64,
    /// Every call site, most calls first.
    pub sites: Vec<Site>,
    /// The stacks of lock contention, waiters' and holders', most time first. A holder outside
    /// the measurement (another thread's) has none.
    pub lock_sites: Vec<LockSite>,
}

/// Counts exactly what `f` allocates on the calling thread (see the module documentation).
///
/// # Panics
///
/// Without `mapprof::Alloc` as the global allocator (the message says how to install it), and
/// when called inside another `measure` on the same thread.
pub fn measure<R>(f: impl FnOnce() -> R) -> Measurement {
    match try_measure(f) {
        Ok((_, m)) => m,
        Err(e) => panic!("{e}"),
    }
}

/// [`measure`] that returns what `f` returned, and an error instead of panicking.
pub fn try_measure<R>(f: impl FnOnce() -> R) -> Result<(R, Measurement), MeasureError> {
    let mut result = None;
    let raw = try_measure_raw(|| result = Some(f()))?;
    let result = result.expect("the closure ran");
    Ok((result, read_all(vec![raw])))
}

fn try_measure_raw(f: impl FnOnce()) -> Result<Raw, MeasureError> {
    if scope::in_scope() {
        // Before allocating the scope's tables, which the outer scope would count.
        return Err(MeasureError::Nested);
    }
    let scope = Scope::new();
    let probe_ok = {
        // SAFETY: `scope` outlives the guard, dropped at the end of this block on this thread.
        let entered = unsafe { scope::enter(&scope) }.map_err(|e| match e {
            EnterError::Nested => MeasureError::Nested,
            EnterError::NoThreadState => MeasureError::ThreadExiting,
        })?;
        // One allocation that mapprof::Alloc, if installed, counts.
        drop(std::hint::black_box(Box::new(0u64)));
        let ok = scope.allocations.get() == 1;
        drop(entered);
        ok
    };
    if !probe_ok {
        return Err(MeasureError::NotInstalled);
    }
    let scope = Scope::new();
    {
        // SAFETY: as above; the guard is dropped when this block ends or unwinds.
        let _entered = unsafe { scope::enter(&scope) }.map_err(|_| MeasureError::Nested)?;
        f();
    }
    Ok(raw(&scope))
}

/// Go's `testing.AllocsPerRun`: runs `f` once to warm up (lazy statics, thread-locals, caches
/// filled on first use), then `runs` times measured, and keeps the run with the fewest
/// allocations (and reallocs). `runs` of 0 counts as 1.
pub fn measure_min(runs: usize, mut f: impl FnMut()) -> Measurement {
    f();
    (0..runs.max(1))
        .map(|_| measure(&mut f))
        .min_by_key(|m| (m.allocations + m.reallocs, m.bytes))
        .expect("at least one run")
}

/// What one thread's scope counted, before symbolization.
#[derive(Debug, Default)]
struct Raw {
    counts: [u64; 13],
    sites: Vec<scope::SiteRecord>,
}

fn raw(scope: &Scope) -> Raw {
    Raw {
        counts: [
            scope.allocations.get(),
            scope.bytes.get(),
            scope.reallocs.get(),
            scope.realloc_bytes.get(),
            scope.frees.get(),
            scope.freed_bytes.get(),
            scope.peak_bytes.get(),
            scope.live_bytes.get(),
            scope.live_blocks.get(),
            scope.lost_blocks.get(),
            scope.contentions.get(),
            scope.wait_ns.get(),
            scope.lost_sites.get(),
        ],
        sites: scope.sites(),
    }
}

/// A merged stack of the scopes, symbolized.
struct Symbolized {
    frames: Vec<String>,
    kind: SiteKind,
    count: u64,
    amount: u64,
    addresses: Vec<u64>,
}

/// Sums the threads' figures (peaks too: the sum of each thread's peak, an upper bound of
/// the peak of all) and merges their sites.
fn read_all(raws: Vec<Raw>) -> Measurement {
    let mut counts = [0u64; 13];
    let mut merged: BTreeMap<(Vec<usize>, SiteKind), (u64, u64)> = BTreeMap::new();
    for raw in raws {
        for (sum, n) in counts.iter_mut().zip(raw.counts) {
            *sum += n;
        }
        for site in raw.sites {
            let entry = merged.entry((site.frames, site.kind)).or_default();
            entry.0 += site.count;
            entry.1 += site.amount;
        }
    }
    // The profiler's own work: unsampled, and on the profiler's heap.
    let symbolized: Vec<Symbolized> = mapprof_rt::thread::as_profiler(|| {
        crate::profiles::with_symbolizer(|symbolizer| {
            merged
                .iter()
                .map(|((stack, kind), &(count, amount))| {
                    let frames: Vec<String> = trim_resolved(
                        stack
                            .iter()
                            .map(|&ret| symbolizer.resolve((ret as u64).saturating_sub(1))),
                    )
                    .iter()
                    .flat_map(|loc| loc.iter().map(|f| f.name.to_string()))
                    .collect();
                    let addresses = stack.iter().map(|&ret| ret as u64).collect();
                    Symbolized {
                        frames,
                        kind: *kind,
                        count,
                        amount,
                        addresses,
                    }
                })
                .collect()
        })
    });
    let mut sites = Vec::new();
    let mut lock_sites = Vec::new();
    for Symbolized {
        frames,
        kind,
        count,
        amount,
        addresses,
    } in symbolized
    {
        match kind {
            SiteKind::Alloc | SiteKind::Realloc => {
                let realloc = kind == SiteKind::Realloc;
                let growth = growth::classify(frames.iter().map(String::as_str), realloc);
                sites.push(Site {
                    frames,
                    realloc,
                    count,
                    bytes: amount,
                    growth,
                    addresses,
                });
            }
            SiteKind::Wait | SiteKind::Hold => lock_sites.push(LockSite {
                frames,
                holder: kind == SiteKind::Hold,
                count,
                wait: Duration::from_nanos(amount),
                addresses,
            }),
        }
    }
    lock_sites.sort_by(|a, b| b.wait.cmp(&a.wait).then(b.count.cmp(&a.count)));
    sites.sort_by(|a, b| b.count.cmp(&a.count).then(b.bytes.cmp(&a.bytes)));
    let mut growths = BTreeMap::new();
    for site in &sites {
        if let Some(c) = site.growth {
            *growths.entry(c).or_insert(0) += site.count;
        }
    }
    let [allocations, bytes, reallocs, realloc_bytes, frees, freed_bytes, peak_live_bytes, live_bytes, live_blocks, untracked_blocks, contentions, wait_ns, unattributed] =
        counts;
    Measurement {
        allocations,
        bytes,
        reallocs,
        realloc_bytes,
        frees,
        freed_bytes,
        peak_live_bytes,
        live_bytes,
        live_blocks,
        untracked_blocks,
        contentions,
        wait: Duration::from_nanos(wait_ns),
        growths,
        unattributed,
        sites,
        lock_sites,
    }
}

/// The threads of a [`measure_threads`] closure: work passed to [`Threads::run`] on a thread
/// the closure spawned is counted in the same measurement.
#[derive(Debug, Default)]
pub struct Threads {
    raws: std::sync::Mutex<Vec<Raw>>,
}

impl Threads {
    /// Runs `f` on the current thread counted in the measurement: call it first thing in a
    /// thread the closure spawns (`std::thread::scope(|s| s.spawn(|| threads.run(work)))`).
    /// On a thread already measuring (the closure's own), `f` simply runs, counted there.
    ///
    /// A block allocated on one thread and freed on another stays live in the first one's
    /// figures, and each thread's peak is its own: [`Measurement::peak_live_bytes`] is their
    /// sum.
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        if scope::in_scope() {
            return f();
        }
        let scope = Scope::new();
        let result = {
            // SAFETY: `scope` outlives the guard, dropped at the end of this block (or when it
            // unwinds) on this thread.
            let entered = unsafe { scope::enter(&scope) };
            let result = f();
            drop(entered);
            result
        };
        let raw = raw(&scope);
        self.raws
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(raw);
        result
    }
}

/// [`measure`] for a closure that spawns threads: what they do inside [`Threads::run`] is
/// counted too, what other threads do is not. The closure must join them before it returns
/// (`std::thread::scope` does).
///
/// # Panics
///
/// As [`measure`].
pub fn measure_threads<R>(f: impl FnOnce(&Threads) -> R) -> Measurement {
    let threads = Threads::default();
    let own = match try_measure_raw(|| {
        f(&threads);
    }) {
        Ok(raw) => raw,
        Err(e) => panic!("{e}"),
    };
    let mut raws = threads
        .raws
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    raws.push(own);
    read_all(raws)
}

/// Call sites listed in a failure message.
const TOP_SITES: usize = 5;

impl Measurement {
    /// Growths of `container` (a `String`'s growth is not a `Vec`'s: each is its own kind).
    pub fn growths_of(&self, container: Container) -> u64 {
        self.growths.get(&container).copied().unwrap_or(0)
    }

    /// The top call sites among those `keep` selects, as failure messages list them.
    pub fn top_sites(&self, keep: impl Fn(&Site) -> bool) -> String {
        let mut out = String::new();
        let mut kept: Vec<&Site> = self.sites.iter().filter(|s| keep(s)).collect();
        kept.sort_by(|a, b| b.count.cmp(&a.count).then(b.bytes.cmp(&a.bytes)));
        for site in kept.iter().take(TOP_SITES) {
            let what = match (site.growth, site.realloc) {
                (Some(c), _) => format!("{} growth", c.name()),
                (None, true) => "reallocs".to_string(),
                (None, false) => "allocations".to_string(),
            };
            let _ = writeln!(
                out,
                "  {} {what}, {} bytes: {}",
                site.count,
                site.bytes,
                site.caller()
            );
        }
        if kept.len() > TOP_SITES {
            let _ = writeln!(out, "  ... and {} more sites", kept.len() - TOP_SITES);
        }
        out
    }

    /// The top waiters' (or holders') stacks, as [`Measurement::assert_no_contention`] lists
    /// them.
    pub fn top_lock_sites(&self, holders: bool) -> String {
        let mut out = String::new();
        let kept: Vec<&LockSite> = self
            .lock_sites
            .iter()
            .filter(|s| s.holder == holders)
            .collect();
        let what = if holders { "unlocks" } else { "waits" };
        for site in kept.iter().take(TOP_SITES) {
            let _ = writeln!(
                out,
                "  {} {what}, {:?}: {}",
                site.count,
                site.wait,
                site.caller()
            );
        }
        if kept.len() > TOP_SITES {
            let _ = writeln!(out, "  ... and {} more sites", kept.len() - TOP_SITES);
        }
        out
    }

    /// Fails unless the closure made at most `n` allocations (`alloc` calls; reallocs are
    /// checked by [`Measurement::assert_reallocs_at_most`]).
    #[track_caller]
    pub fn assert_allocations_at_most(&self, n: u64) {
        if self.allocations > n {
            self.fail(format!(
                "expected at most {n} allocations, measured {} ({} bytes); top sites:\n{}",
                self.allocations,
                self.bytes,
                self.top_sites(|s| !s.realloc)
            ));
        }
    }

    /// Fails unless the closure made at most `n` reallocs.
    #[track_caller]
    pub fn assert_reallocs_at_most(&self, n: u64) {
        if self.reallocs > n {
            self.fail(format!(
                "expected at most {n} reallocs, measured {} ({} bytes); top sites:\n{}",
                self.reallocs,
                self.realloc_bytes,
                self.top_sites(|s| s.realloc)
            ));
        }
    }

    /// Fails if any container of kind `container` grew.
    ///
    /// A value, not a type parameter (`assert_no_growth::<HashMap<_, _>>()`): the kinds are
    /// the resize profile's labels, some of which are no type (`Container::Realloc`), and one
    /// kind stands for every key, value and hasher type.
    #[track_caller]
    pub fn assert_no_growth(&self, container: Container) {
        let n = self.growths_of(container);
        if n > 0 {
            self.fail(format!(
                "expected no {name} growth, measured {n} {name} growths; sites:\n{}",
                self.top_sites(|s| s.growth == Some(container)),
                name = container.name(),
            ));
        }
    }

    /// Fails if any container grew.
    #[track_caller]
    pub fn assert_no_growth_at_all(&self) {
        let n: u64 = self.growths.values().sum();
        if n > 0 {
            let kinds: Vec<String> = self
                .growths
                .iter()
                .map(|(c, n)| format!("{n} {}", c.name()))
                .collect();
            self.fail(format!(
                "expected no container growth, measured {n} ({}); sites:\n{}",
                kinds.join(", "),
                self.top_sites(|s| s.growth.is_some()),
            ));
        }
    }

    /// Fails if the closure left blocks allocated (what it returned counts: drop it inside).
    #[track_caller]
    pub fn assert_nothing_leaked(&self) {
        if self.live_blocks > 0 {
            self.fail(format!(
                "expected nothing left allocated, measured {} blocks, {} bytes still live; \
                 sites that allocated:\n{}",
                self.live_blocks,
                self.live_bytes,
                self.top_sites(|s| !s.realloc)
            ));
        }
    }

    /// Fails if the closure waited for a `mapprof::sync` or `mapprof::tokio` lock.
    #[track_caller]
    pub fn assert_no_contention(&self) {
        if self.contentions > 0 {
            let mut message = format!(
                "expected no lock contention, measured {} contended acquisitions, {:?} waited; \
                 waiters:\n{}",
                self.contentions,
                self.wait,
                self.top_lock_sites(false)
            );
            if self.lock_sites.iter().any(|s| s.holder) {
                message += "holders (charged at unlock with their waiters' time):\n";
                message += &self.top_lock_sites(true);
            } else {
                message += "holders: outside the measurement (other threads)\n";
            }
            self.fail(message);
        }
    }

    /// Fails unless this measurement made at most `numerator / denominator` of `other`'s
    /// allocations and reallocs: `fixed.assert_allocations_at_most_fraction_of(&regressed, 1,
    /// 10)`.
    #[track_caller]
    pub fn assert_allocations_at_most_fraction_of(
        &self,
        other: &Measurement,
        numerator: u64,
        denominator: u64,
    ) {
        let mine = self.allocations + self.reallocs;
        let theirs = other.allocations + other.reallocs;
        if mine * denominator > theirs * numerator {
            self.fail(format!(
                "expected at most {numerator}/{denominator} of the other's {theirs} allocations \
                 and reallocs, measured {mine}; top sites:\n{}",
                self.top_sites(|_| true)
            ));
        }
    }
}

/// The environment variable naming the directory failing assertions write their profiles to.
pub const ARTIFACTS_ENV: &str = "MAPPROF_TEST_ARTIFACTS";

/// A profile file [`Measurement::write_artifacts`] could not write: which, and why.
#[derive(Debug)]
pub struct ArtifactError {
    /// The file or directory that could not be written.
    pub path: PathBuf,
    /// Why.
    pub source: std::io::Error,
}

impl std::fmt::Display for ArtifactError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot write {}: {}", self.path.display(), self.source)
    }
}

impl std::error::Error for ArtifactError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl Measurement {
    /// Panics with `message`, after writing the profiles into `$MAPPROF_TEST_ARTIFACTS` (if
    /// set) and naming them, or saying why they could not be written, at its end.
    #[track_caller]
    fn fail(&self, mut message: String) -> ! {
        // Empty counts as unset, rather than the current directory.
        if let Some(dir) = std::env::var_os(ARTIFACTS_ENV).filter(|d| !d.is_empty()) {
            if !message.ends_with('\n') {
                message.push('\n');
            }
            match self.write_artifacts(Path::new(&dir), &test_name()) {
                Ok(paths) => {
                    let paths: Vec<String> =
                        paths.iter().map(|p| p.display().to_string()).collect();
                    let _ = write!(message, "profiles written: {}", paths.join(", "));
                }
                Err(e) => {
                    let _ = write!(message, "profiles not written ({ARTIFACTS_ENV}): {e}");
                }
            }
        }
        panic!("{message}")
    }

    /// Writes the measurement's profiles into `dir` (made if missing), each as gzipped pprof
    /// (`go tool pprof`, `mapprof top`) and as an inferno SVG flame graph:
    /// `<name>.allocs.pb.gz` and `<name>.allocs.svg` (every allocation and realloc, exact:
    /// `alloc_objects` and `alloc_space`; in-use figures are not kept per site and are 0), and
    /// when there was container growth `<name>.resize.*` (the resize profile of it), when there
    /// was lock contention `<name>.block.*` (waiters) and, for holders inside the measurement,
    /// `<name>.mutex.*`. Returns
    /// the paths written. `name` is used as given, except characters outside `[A-Za-z0-9_.-]`
    /// (a test path's `::`), which become `_`.
    pub fn write_artifacts(&self, dir: &Path, name: &str) -> Result<Vec<PathBuf>, ArtifactError> {
        let name: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        std::fs::create_dir_all(dir).map_err(|source| ArtifactError {
            path: dir.to_owned(),
            source,
        })?;
        let profiles = crate::memory::profiler_work(|| {
            let allocs = self.allocs_profile(&name);
            let resize = mapprof_profile::resize::resize_profile(&allocs);
            let mut profiles = vec![("allocs", allocs)];
            if !resize.sample.is_empty() {
                profiles.push(("resize", resize));
            }
            for (kind, holders) in [("mutex", true), ("block", false)] {
                if self.lock_sites.iter().any(|s| s.holder == holders) {
                    profiles.push((kind, self.contention_profile(&name, kind, holders)));
                }
            }
            profiles
        });
        let mut written = Vec::new();
        for (kind, profile) in profiles {
            let (pprof, svg) = crate::memory::profiler_work(|| encode(&profile, &name, kind));
            for (ext, bytes) in [("pb.gz", pprof), ("svg", svg)] {
                let path = dir.join(format!("{name}.{kind}.{ext}"));
                std::fs::write(&path, bytes).map_err(|source| ArtifactError {
                    path: path.clone(),
                    source,
                })?;
                written.push(path);
            }
        }
        Ok(written)
    }

    /// The holders' (`mutex`) or waiters' (`block`) stacks as a contention profile.
    fn contention_profile(
        &self,
        name: &str,
        kind: &str,
        holders: bool,
    ) -> mapprof_profile::proto::Profile {
        use mapprof_profile::contention::{self, ContentionRecord};
        let records: Vec<ContentionRecord> = self
            .lock_sites
            .iter()
            .filter(|s| s.holder == holders)
            .map(|s| ContentionRecord {
                stack: s.addresses.clone(),
                contentions: s.count as f64,
                delay_ns: s.wait.as_nanos() as f64,
                lost: false,
            })
            .collect();
        let mut header = contention::header();
        header.comments = vec![
            format!("mapprof {kind} profile"),
            format!("mapprof::testing measurement of {name}: exact (every event)"),
        ];
        crate::profiles::build(&header, contention::samples(&records))
    }

    /// The allocation sites as an allocs profile (`heap_rate` 1: exact counts).
    fn allocs_profile(&self, name: &str) -> mapprof_profile::proto::Profile {
        use mapprof_profile::heap::{self, HeapRecord, HeapView};
        let records: Vec<HeapRecord> = self
            .sites
            .iter()
            .map(|s| HeapRecord {
                stack: s.addresses.clone(),
                alloc_objects: s.count as f64,
                alloc_bytes: s.bytes as f64,
                // Frees are counted per scope, not per site.
                free_objects: s.count as f64,
                free_bytes: s.bytes as f64,
                lost: false,
                realloc: s.realloc,
            })
            .collect();
        let mut header = heap::header(1, HeapView::Allocs);
        header.comments = vec![
            "mapprof allocs profile".to_owned(),
            format!(
                "mapprof::testing measurement of {name}: exact counts (every call); in-use \
                 figures not kept per site (0)"
            ),
        ];
        crate::profiles::build(&header, heap::samples(&records))
    }
}

/// A profile encoded as gzipped pprof, and its flame graph of the default sample type.
fn encode(profile: &mapprof_profile::proto::Profile, name: &str, kind: &str) -> (Vec<u8>, Vec<u8>) {
    use mapprof_profile::flame::{self, FlameOptions};
    use mapprof_profile::view::ProfileView;
    let mut pprof = Vec::new();
    mapprof_profile::codec::encode_gzip(profile, &mut pprof).expect("writes to a Vec");
    let mut svg = Vec::new();
    // A profile built here is valid, so the view is made; an SVG is always written.
    if let Ok(view) = ProfileView::unpruned(profile) {
        let index = view.default_sample_index();
        let mut opts = FlameOptions::default();
        opts.title = Some(format!(
            "{name}: {}",
            flame::default_title(&view, index, Some(kind))
        ));
        let _ = flame::render_svg(&view, index, &opts, &mut svg);
    }
    (pprof, svg)
}

/// The current test's name: the thread's, which `cargo test` names after the test.
fn test_name() -> String {
    std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .unwrap_or("measurement")
        .to_owned()
}
