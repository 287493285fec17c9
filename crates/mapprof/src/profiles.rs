//! Turning what the hot path collected into profiles, and writing them.

use crate::memory::{profiler_work, self_memory_comment};
use crate::Error;
use mapprof_profile::builder::{self, BuildOptions, Header, LabelValue, RawSample};
use mapprof_profile::contention::{self, ContentionRecord};
use mapprof_profile::heap::{self, HeapRecord, HeapView};
use mapprof_profile::kinds;
use mapprof_profile::proto::Profile;
use mapprof_profile::symbolize::Symbolizer;
use mapprof_rt::labels as rt_labels;
use mapprof_rt::{sampler, table, Kind};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

/// The profiles mapprof writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProfileKind {
    /// Sampled allocations: allocated and in-use objects and bytes; viewers show `inuse_space`.
    Heap,
    /// The same data as `Heap`; viewers show `alloc_space`.
    Allocs,
    /// Lock holders (`mapprof::sync`), charged with the time others waited for them.
    Mutex,
    /// Lock waiters (`mapprof::sync`), charged with their own wait.
    Block,
    /// The sampled allocations that were container growth (a `HashMap` rehashing into a new
    /// table, a `Vec` or `String` reallocating its buffer, a bare `realloc`), labelled
    /// `container`; derived from the allocs data (`mapprof_profile::resize`).
    Resize,
}

impl ProfileKind {
    /// Every kind, in the order dumps write them.
    pub const ALL: [ProfileKind; 5] = [
        ProfileKind::Heap,
        ProfileKind::Allocs,
        ProfileKind::Mutex,
        ProfileKind::Block,
        ProfileKind::Resize,
    ];

    /// What the kind is: name, sample types, where its samples come from.
    pub fn spec(self) -> &'static kinds::Spec {
        match self {
            ProfileKind::Heap => &kinds::HEAP,
            ProfileKind::Allocs => &kinds::ALLOCS,
            ProfileKind::Mutex => &kinds::MUTEX,
            ProfileKind::Block => &kinds::BLOCK,
            ProfileKind::Resize => &kinds::RESIZE,
        }
    }

    /// The name Go uses (`heap`, `allocs`; `resize` is mapprof's own), also used in file names.
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// The kind named `name`.
    pub fn named(name: &str) -> Option<ProfileKind> {
        ProfileKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// Whether profiles are symbolized in process (see [`crate::Config::symbolize`]).
pub(crate) static SYMBOLIZE: AtomicBool = AtomicBool::new(true);

/// Symbolization results, kept for the life of the process: code addresses do not change.
static SYMBOLIZER: Mutex<Option<Symbolizer>> = Mutex::new(None);

/// The symbolizer, held: by profile building, and across a fork (`crate::fork`).
pub(crate) type SymbolizerGuard = MutexGuard<'static, Option<Symbolizer>>;

pub(crate) fn lock_symbolizer() -> SymbolizerGuard {
    SYMBOLIZER.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `f` with the process's symbolizer, made on first use.
pub(crate) fn with_symbolizer<R>(f: impl FnOnce(&mut Symbolizer) -> R) -> R {
    crate::fork::register();
    let mut cache = lock_symbolizer();
    f(cache.get_or_insert_with(|| {
        let mut symbolizer = Symbolizer::new();
        // Its cache lives from profile to profile: in the kept arena of its generation.
        symbolizer.set_keeper(|generation, allocate| {
            mapprof_rt::thread::keeping(generation as usize, allocate)
        });
        symbolizer
    }))
}

/// Builds a profile from raw samples, symbolized or not per the configuration.
pub(crate) fn build(header: &Header, samples: Vec<RawSample>) -> Profile {
    let options = BuildOptions {
        symbolize: SYMBOLIZE.load(Relaxed),
    };
    with_symbolizer(|symbolizer| builder::build(header, samples, options, symbolizer))
}

/// Builds the current profile of `kind`, symbolized or not per the configuration.
pub fn profile(kind: ProfileKind) -> Profile {
    // The profiler's own work: not sampled, allocated apart from the host's and given back.
    profiler_work(|| {
        // A derived kind (resize, classified from the symbolized stacks: without in-process
        // symbolization, empty) is made from its source's profile.
        if let Some(from) = kind
            .spec()
            .derived_from()
            .and_then(|s| ProfileKind::named(s.name))
        {
            return kind.spec().derive(profile(from));
        }
        let rate = sampler::heap_rate();
        let (header, samples) = match kind {
            ProfileKind::Heap => heap_samples(rate, HeapView::Heap),
            ProfileKind::Allocs => heap_samples(rate, HeapView::Allocs),
            ProfileKind::Mutex => contention_samples(Kind::Mutex, kind),
            ProfileKind::Block => contention_samples(Kind::Block, kind),
            ProfileKind::Resize => unreachable!("a derived kind, made above"),
        };
        build(&header, samples)
    })
}

/// How many stacks (with their labels) `kind` holds now, the count of Go's index: its buckets
/// in the stack table, read without their stacks. `None` for resize, known only once the
/// stacks are symbolized and classified.
#[cfg(feature = "http")]
pub(crate) fn stack_count(kind: ProfileKind) -> Option<usize> {
    let table_kind = match kind {
        ProfileKind::Heap | ProfileKind::Allocs => Kind::Heap,
        ProfileKind::Mutex => Kind::Mutex,
        ProfileKind::Block => Kind::Block,
        ProfileKind::Resize => return None,
    };
    Some(profiler_work(|| {
        table::snapshot_with(table_kind, |_| false).len()
    }))
}

fn heap_samples(rate: u64, view: HeapView) -> (Header, Vec<RawSample>) {
    let records: Vec<(u32, HeapRecord)> = table::snapshot(Kind::Heap)
        .into_iter()
        .map(|r| {
            let counts = r.heap();
            (
                r.labels,
                HeapRecord {
                    stack: r.stack.iter().map(|&a| a as u64).collect(),
                    alloc_objects: counts.allocated_objects,
                    alloc_bytes: counts.allocated_bytes as f64,
                    free_objects: counts.freed_objects,
                    free_bytes: counts.freed_bytes as f64,
                    lost: r.lost,
                    realloc: r.flags & table::FLAG_REALLOC != 0,
                },
            )
        })
        .collect();
    let mut header = heap::header(rate, view);
    header.time_nanos = unix_nanos(SystemTime::now());
    // A fold from +0.0: f64's `sum` starts at -0.0, which prints as "-0".
    let lost = records
        .iter()
        .filter(|(_, r)| r.lost)
        .fold(0.0, |total, (_, r)| total + r.alloc_objects);
    let (buckets, capacity) = table::usage();
    header.comments = vec![
        format!("mapprof {} profile", view.name()),
        format!("stack table: {buckets} of {capacity} buckets; allocations lost: {lost:.0}"),
        format!(
            "sampled blocks left out of the live set (line full): {}",
            mapprof_rt::live::overflow()
        ),
    ];
    header.comments.extend(labels_comment());
    header.comments.push(self_memory_comment());
    (header, labelled(records, heap::samples))
}

fn contention_samples(table_kind: Kind, kind: ProfileKind) -> (Header, Vec<RawSample>) {
    let records: Vec<(u32, ContentionRecord)> = table::snapshot(table_kind)
        .into_iter()
        .map(|r| {
            let counts = r.contention();
            (
                r.labels,
                ContentionRecord {
                    stack: r.stack.iter().map(|&a| a as u64).collect(),
                    contentions: counts.events,
                    delay_ns: counts.delay_ns as f64,
                    lost: r.lost,
                },
            )
        })
        .collect();
    let mut header = contention::header();
    header.time_nanos = unix_nanos(SystemTime::now());
    header.comments = vec![
        format!("mapprof {} profile", kind.name()),
        match table_kind {
            Kind::Mutex => {
                contention::mutex_fraction_comment(mapprof_rt::contention::mutex_fraction())
            }
            _ => contention::block_rate_comment(mapprof_rt::contention::block_rate()),
        },
    ];
    header.comments.extend(labels_comment());
    header.comments.push(self_memory_comment());
    (header, labelled(records, contention::samples))
}

/// Turns records, each with its label set id, into samples carrying the set's labels as string
/// labels (after their own, e.g. `bytes`): `samples` runs once per label set.
fn labelled<R>(records: Vec<(u32, R)>, samples: impl Fn(&[R]) -> Vec<RawSample>) -> Vec<RawSample> {
    let mut by_set: BTreeMap<u32, Vec<R>> = BTreeMap::new();
    for (set, record) in records {
        by_set.entry(set).or_default().push(record);
    }
    let mut out = Vec::new();
    for (set, records) in by_set {
        let pairs = label_pairs(set);
        out.extend(samples(&records).into_iter().map(|mut sample| {
            sample.labels.extend(pairs.iter().cloned());
            sample
        }));
    }
    out
}

/// The pairs of label set `set` as a sample's string labels.
pub(crate) fn label_pairs(set: u32) -> Vec<(String, LabelValue)> {
    let pairs = rt_labels::pairs(set).into_iter();
    pairs.map(|(k, v)| (k, LabelValue::Str(v))).collect()
}

/// The profile comment on label sets, when some labels did not fit (`mapprof::label_overflow`,
/// `mapprof::label_values_capped`).
pub(crate) fn labels_comment() -> Option<String> {
    let (overflow, capped) = (rt_labels::overflow(), rt_labels::capped());
    if overflow == 0 && capped == 0 {
        return None;
    }
    let (sets, capacity) = rt_labels::usage();
    let mut comment = format!("label sets: {sets} of {capacity}");
    if overflow > 0 {
        comment += &format!(
            "; labels overflowed {overflow} times, their samples labelled {}={}",
            rt_labels::OVERFLOW_KEY,
            rt_labels::OVERFLOW_VALUE
        );
    }
    if capped > 0 {
        comment += &format!(
            "; a value past a key's first {} recorded as {} {capped} times",
            rt_labels::MAX_VALUES_PER_KEY,
            rt_labels::OVERFLOW_VALUE,
        );
    }
    Some(comment)
}

/// `time` in nanoseconds since the Unix epoch, as profile.proto's `time_nanos`.
pub(crate) fn unix_nanos(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// Writes the current profile of `kind`, gzip-compressed `profile.proto`, to `out`.
pub fn write_profile(kind: ProfileKind, out: &mut impl Write) -> Result<(), Error> {
    // The profile is dropped inside the work too, so its blocks go back with it.
    profiler_work(|| mapprof_profile::codec::encode_gzip(&profile(kind), out)).map_err(Error::Io)
}

/// Writes the current profile of `kind` to `path`, replacing it. The file appears whole or not
/// at all: it is written beside the target and renamed.
pub fn write_profile_to_path(kind: ProfileKind, path: impl AsRef<Path>) -> Result<(), Error> {
    let path = path.as_ref();
    profiler_work(|| write_atomically(&profile(kind), path))
        .map(|_| ())
        .map_err(|source| Error::Write {
            path: path.to_owned(),
            source,
        })
}

/// Writes `profile` through a temporary file beside `path` (see [`temp_path`]) and renames it
/// over `path`.
fn write_atomically(profile: &Profile, path: &Path) -> std::io::Result<()> {
    let tmp = write_temp(profile, path)?;
    let result = std::fs::rename(&tmp, path);
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes `profile`, encoded and synced, into a new temporary file beside `path`; returns its
/// path. The caller renames or links it into place.
fn write_temp(profile: &Profile, path: &Path) -> std::io::Result<PathBuf> {
    let tmp = temp_path(path)?;
    let written = (|| {
        let mut out = BufWriter::new(File::create(&tmp)?);
        mapprof_profile::codec::encode_gzip(profile, &mut out)?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()
    })();
    match written {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// `.<file name>.<pid>.<n>.tmp` beside `path`: hidden, unique in the process, and naming the
/// process that writes it, so that one left by a process killed mid-write can be told and
/// removed ([`remove_stale_temp_files`]).
fn temp_path(path: &Path) -> std::io::Result<PathBuf> {
    static TMP_SEQ: AtomicU64 = AtomicU64::new(0);
    let file_name = path.file_name().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the path has no file name",
        )
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(
        ".{}.{}.tmp",
        std::process::id(),
        TMP_SEQ.fetch_add(1, Relaxed)
    ));
    Ok(path.with_file_name(tmp_name))
}

/// Removes from `dir` the temporary files ([`temp_path`]) of processes that no longer run:
/// what a process killed while writing a profile left. Those of running processes, this one
/// included, are theirs.
pub(crate) fn remove_stale_temp_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !(name.starts_with('.') && name.ends_with(".tmp")) {
            continue;
        }
        let writer = name
            .rsplit('.')
            .nth(2)
            .and_then(|pid| pid.parse::<i32>().ok());
        let Some(pid) = writer.filter(|&pid| pid > 0) else {
            continue;
        };
        // SAFETY: signal 0 only asks whether the process exists; nothing is sent.
        let gone = unsafe { libc::kill(pid, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Writes every profile into `dir` as `<kind>.<pid>.<n>.pb.gz`, one `n` per dump, counted up
/// through the process's life, so that no existing file is overwritten. Returns the paths
/// written.
pub fn dump(dir: impl AsRef<Path>) -> Result<Vec<PathBuf>, Error> {
    let dir = dir.as_ref();
    profiler_work(|| holding_debug_info(|| dump_into(dir)))
}

/// The `n` of the next dump of this process (see [`dump`]).
static NEXT_DUMP: AtomicU64 = AtomicU64::new(0);

/// Runs `f`, which builds several profiles, with one read of the executable's symbols and
/// DWARF for all of them rather than one per profile; released when `f` ends, however it ends.
pub(crate) fn holding_debug_info<R>(f: impl FnOnce() -> R) -> R {
    struct Held;
    impl Drop for Held {
        fn drop(&mut self) {
            with_symbolizer(|s| s.hold_debug_info(false));
        }
    }
    with_symbolizer(|s| s.hold_debug_info(true));
    let _held = Held;
    f()
}

fn dump_into(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let pid = std::process::id();
    let n = NEXT_DUMP.fetch_add(1, Relaxed);
    let mut written = Vec::new();
    // A derived kind is made from its source written alongside (earlier in `ALL`), not rebuilt.
    let mut built: Vec<(ProfileKind, Profile)> = Vec::new();
    for kind in ProfileKind::ALL {
        let spec = kind.spec();
        let source = spec
            .derived_from()
            .and_then(|from| built.iter().find(|(k, _)| k.name() == from.name));
        let profile = match source {
            Some((_, source)) => spec.derive(source.clone()),
            None => profile(kind),
        };
        let path = dir.join(format!("{}.{pid}.{n}.pb.gz", kind.name()));
        // Written once; linked under its name, which fails rather than overwrite.
        let linked = write_temp(&profile, &path).and_then(|tmp| {
            let linked = link_unused(&tmp, dir, kind, n);
            let _ = std::fs::remove_file(&tmp);
            linked
        });
        written.push(linked.map_err(|source| Error::Write { path, source })?);
        if ProfileKind::ALL.iter().any(|k| {
            k.spec()
                .derived_from()
                .is_some_and(|from| from.name == spec.name)
        }) {
            built.push((kind, profile));
        }
    }
    Ok(written)
}

/// Links `tmp` as `<kind>.<pid>.<n>.pb.gz` in `dir`, or, when a file has that name (an
/// earlier process with the same pid: a restarted container's pid 1), under the next number
/// after every one this pid has used there (one directory read) — which later dumps then go
/// on from.
fn link_unused(tmp: &Path, dir: &Path, kind: ProfileKind, n: u64) -> std::io::Result<PathBuf> {
    let pid = std::process::id();
    let name = |n: u64| dir.join(format!("{}.{pid}.{n}.pb.gz", kind.name()));
    match std::fs::hard_link(tmp, name(n)) {
        Ok(()) => return Ok(name(n)),
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
        Err(_) => {}
    }
    let prefix = format!(".{pid}.");
    let used = std::fs::read_dir(dir)?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let rest = name.strip_suffix(".pb.gz")?;
            let (_, number) = rest.split_once(&prefix)?;
            number.parse::<u64>().ok()
        })
        .max()
        .unwrap_or(0);
    let next = used.max(n) + 1;
    NEXT_DUMP.fetch_max(next + 1, Relaxed);
    std::fs::hard_link(tmp, name(next)).map(|()| name(next))
}

/// [`dump`]s into `dir` and says on stderr what was written, or why not: for dumps that have no
/// caller to return to (exit, timer, signal).
pub(crate) fn dump_and_report(dir: &Path) {
    // The report too is the profiler's work: its paths, its messages (and whatever stderr's
    // writer allocates, e.g. a test harness capturing it), never sampled as the host's.
    profiler_work(|| match dump_into(dir) {
        Ok(paths) => {
            for p in paths {
                eprintln!("mapprof: wrote {}", p.display());
            }
        }
        Err(e) => eprintln!("mapprof: {e}"),
    })
}
