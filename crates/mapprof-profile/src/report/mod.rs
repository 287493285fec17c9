//! `mapprof report`: what to fix, in plain words, from the profiles of one run.
//!
//! Every sample of every profile given (heap or allocs, resize, mutex, block, cpu; mapprof's or
//! Go's) is charged to its first application frame ([`crate::app`]), the function the user
//! can change. Per function the report gathers what it allocates (bytes and objects), which
//! containers it grows and how often, the lock delay it causes while holding locks and the
//! delay it suffers waiting (for locks, or on channels and `select` in Go); ranks the functions
//! by the largest share they have of any profile (allocated bytes and allocated objects count
//! as two; a profile that rests on fewer than [`MIN_EVIDENCE`] events counts in proportion, so
//! that the one contention of a quiet run does not lead with "100% of all lock delay"); and says
//! for each what happens and what to change, with the figures behind every statement and the
//! number of stacks (profile samples) each rests on. A function's place (`file:line`) is the
//! line of its frame that carries the most allocation, else the most of the profile where it
//! has its largest share: an allocating line, not the closing brace where a deferred unlock
//! runs.
//!
//! # Noise floor
//!
//! A part is stated only when it is at least [`NOISE_FLOOR`] (1%) of its profile and its value
//! is known within [`MAX_ERROR`] (a relative standard error of 50%, which a count of 4 sampled
//! events has). Sampling sets the error: `n` allocations of `s` bytes, each taken with
//! probability `p = 1 - exp(-s/R)` at rate `R` and counted `1/p` times, estimate `n·s` with a
//! variance of `n·s²·(1-p)/p` (exact at `heap_rate=1`, and for an allocation much larger than
//! the rate); CPU samples are counted, Poisson, a relative error of `1/√n`, and so are Go's
//! contentions; mapprof's name their sampling in the profile's comments, and `n` events kept
//! with probability `p` and counted `1/p` times have a relative error of `√((1-p)/(p·n))`: exact
//! at `mutex_fraction=1`, or for waits as long as `block_rate`. So
//! one sampled 64-byte resize of a `VecDeque` at 512 KiB, unbiased to 512 kB, is no finding,
//! and one sampled 40 MB buffer is. Allocation, locks and CPU are stated from [`STATED_SHARE`]
//! (5%) of their profile. A function left with nothing stated is not a finding: a container grown once in a
//! run that grows others millions of times is noise, whatever its per-call figures say. Every
//! division is by a count of the same measure: growths per call by the calls counted at that
//! site's own growth samples, bytes per object by the objects of the same samples.
//!
//! # Growth per call
//!
//! Heap samples are kept per call stack and per size class (powers of two, see
//! `mapprof_rt::table::size_class`), and a container that doubles as it grows makes one
//! allocation per class. A container grown from empty passes its *first growth step*, the
//! smallest class at its site, exactly once, whatever size it ends at (files of different
//! lengths read with `read_to_end` end in different classes, all pass through 32 bytes). So
//! the resizes in the smallest class count the *calls* (containers grown there); all resizes
//! divided by that is the growths per call. Each class's count minus the next one's is how
//! many containers ended there, which gives the average final size.
//!
//! When every class's count agrees with one number (within 4 standard errors of sampling and
//! [`SYSTEMATIC`]),
//! every call passed every class and ended at the same size (the incident's map of 2,000
//! entries): the classes' sampled counts pool into one estimate, `Σ sampled ÷ Σ p`, which the
//! large, always-sampled classes make precise where the first step alone is not (at 64 KiB, a
//! 244-byte first table is sampled once in 270); the growths per call are then the number of
//! classes.
//!
//! Either count needs the smallest class seen to be the first growth step. At a large rate a
//! small first step may never be sampled (a read buffer's 32 bytes at 512 KiB: once in 16,000),
//! and the classes seen then start later: read_to_end over 64 files would say 6 growths per
//! call of 45 calls, not 13 of 64. So the calls are counted only when a class half the
//! smallest's size, passed by as many containers, would have been sampled with a chance of
//! missing it under [`MAX_MISSED`] (2%), or when the smallest class is hashbrown's first
//! table (see `sites::is_first_table`).
//!
//! The calls *cannot be told*, and the report says so instead of a per-call figure, when the
//! first growth step may be unseen (above), when a larger class has more resizes than the
//! smallest (beyond 3 standard errors: the containers
//! there do not all start from the same size, e.g. `reserve(n)` then growth), or when the
//! calls end at different sizes and the smallest class rests on so few sampled allocations
//! that its count is off by more than 20% (one standard error; a sample of `s` bytes at rate
//! `R` is taken with probability `1 - exp(-s/R)`, exact at `heap_rate=1`).
//!
//! Sizes are said in bytes; entries never follow from bytes alone. A `Vec`, `VecDeque` or
//! `BinaryHeap` gets an element count only when a frame names its element type
//! (`RawVec<u64>`, `Vec<u8>`, a primitive). A `HashMap` or `HashSet` (hashbrown) gets its
//! capacity from its growth rule, not from its bytes: it starts at 4 buckets and doubles, with
//! room for 7/8 of its buckets, so the number of tables from its first gives the entries, told
//! only when the smallest class is that first table, which its size shows (see
//! `sites::is_first_table`). Two containers grown at the same site are counted together.
//!
//! A *rebuild* is a container grown from empty on every call by a function that also allocates,
//! besides the growth, at least a quarter as many objects for each container it grows as the
//! container ends up holding: it is filled with copies (the incident's `Cache::update` cloned
//! every entry into a new map).
//!
//! # Objects
//!
//! A function can cost little in bytes and much in allocations: a CSV pass that allocates one
//! `String` per field. Its share of allocated objects ranks it like any other share, and the
//! report states the count and the average size, `allocated bytes ÷ allocated objects` of its
//! own samples; when its share of the objects is the larger, the count leads the statement
//! and the advice is to reuse a buffer.
//!
//! # Lock holders that allocate
//!
//! The mutex profile charges the delay that waiters suffered to the holder's stack at unlock.
//! A function that causes lock delay and also allocates or grows a container is reported as
//! doing that work while holding the lock: the profiles do not prove that the allocation is
//! inside the critical section, so the statement names both figures and the advice says what to
//! check.
//!
//! # Go
//!
//! Go's block profile also records goroutines blocked on channels and in `select`
//! (`runtime.chanrecv*`, `runtime.chansend*`, `runtime.selectgo`): those are stated as channel
//! waits, not lock waits. Go's heap stacks show no container growth, but its CPU profile does:
//! time in `runtime.hashGrow`, `runtime.growWork*` and `runtime.evacuate*` is map growth,
//! charged to the application function that inserted (in a Rust CPU profile, time in
//! hashbrown's rehash is); so is Go 1.24's swiss maps' `internal/runtime/maps` growth
//! (`(*table).grow`, `rehash`, `split`, `(*Map).growToTable`). The program's language is told
//! from its profiles (Go's have `runtime.` frames such as `runtime.goexit`, `runtime.main` or
//! `runtime.mallocgc`): the advice to a Go program speaks Go (`sync.RWMutex`,
//! `make(map[K]V, n)`), to a Rust one Rust.
//!
//! Go's mutex profile charges the holder where its deferred `Unlock` runs, the closing brace.
//! A line reached through a lock release (`sync.(*Mutex).Unlock`, `runtime.deferreturn`, a
//! `deferwrap`, a Rust guard's drop) is cited only when the function has no other line.

mod charge;
mod explain;
mod rank;
mod sites;
mod text;

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::app::AppFilter;
use crate::proto::Profile;
use crate::resize::resize_profile;
use crate::view::ProfileView;

use charge::{charge, Charged, GrowthSites};
use rank::findings;

/// What [`report`] reads: profiles with the names (file paths) they are reported under.
pub type Input<'a> = (&'a str, &'a Profile);

/// Options of [`report`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReportOptions {
    /// Which frames are the application's. Default: [`AppFilter::default`].
    pub filter: AppFilter,
    /// At most this many findings. Default 5.
    pub max_findings: usize,
    /// A function is reported when its largest share of a profile (block delay counted at
    /// half, since waiters suffer what holders cause) is at least this. Default 0.05. Whatever
    /// it is, nothing under [`NOISE_FLOOR`] is stated.
    pub min_share: f64,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            filter: AppFilter::default(),
            max_findings: 5,
            min_share: 0.05,
        }
    }
}

/// The report: what was read, and the findings, most costly first.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The program's language as its profiles show it, which the advice speaks.
    pub language: Language,
    /// One entry per profile read (and per resize profile derived from a heap profile).
    pub profiles: Vec<ProfileSummary>,
    /// The functions to look at, by [`Finding::score`] descending.
    pub findings: Vec<Finding>,
}

/// The language of the profiled program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// Go: a profile has Go runtime frames (`runtime.goexit`, `runtime.mallocgc`, ...).
    Go,
    /// Rust, or anything else.
    Rust,
}

impl Language {
    /// Go when a frame of any of `views` is Go's runtime, else Rust.
    fn of<'v, 'p: 'v>(views: impl IntoIterator<Item = &'v ProfileView<'p>>) -> Language {
        let go_runtime = |f: &str| f.starts_with("runtime.") && crate::names::is_go(f);
        let go = views.into_iter().any(|v| {
            v.samples()
                .any(|s| s.frames().any(|f| go_runtime(&f.function)))
        });
        if go {
            Language::Go
        } else {
            Language::Rust
        }
    }
}

/// One profile the report rests on.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileSummary {
    /// The name it was given (its file), with ` (derived)` for a resize profile computed from
    /// a heap profile.
    pub name: String,
    /// `heap`, `allocs`, `resize`, `mutex`, `block` or `cpu`.
    pub kind: String,
    /// The sample type the report uses, e.g. `alloc_space`.
    pub sample_type: String,
    /// Its unit.
    pub unit: String,
    /// Its total.
    pub total: i64,
    /// How many samples (stacks) have a value.
    pub samples: usize,
}

/// A function to look at, with everything the profiles say about it.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// The application function.
    pub function: String,
    /// Where: the source file and line of its frame that carries the most allocation, else the
    /// most of the profile where it has its largest share (empty / 0 when unknown).
    pub file: String,
    /// See `file`.
    pub line: i64,
    /// The largest share this function has of any profile (allocated objects counted as a
    /// profile of their own, block delay at half, a profile of fewer than [`MIN_EVIDENCE`]
    /// events in proportion).
    pub score: f64,
    /// What it allocates (heap/allocs profile, `alloc_space`; events are objects).
    pub allocation: Option<Cost>,
    /// The containers it grows (resize profile), costliest first; none under [`NOISE_FLOOR`].
    pub growth: Vec<Growth>,
    /// The lock delay it causes while holding locks (mutex profile; events are contentions).
    pub lock_holding: Option<Cost>,
    /// The delay it suffers waiting for locks (block profile; events are contentions).
    pub lock_waiting: Option<Cost>,
    /// The delay it suffers blocked on channels or in `select` (Go's block profile; shares
    /// are of the whole block profile).
    pub channel_waiting: Option<Cost>,
    /// Its CPU time (cpu profile; events are samples).
    pub cpu: Option<Cost>,
    /// The part of its CPU time spent growing maps (Go's `runtime.hashGrow`, `growWork`,
    /// `evacuate`; hashbrown's `reserve_rehash`; shares are of all CPU time).
    pub map_growth_cpu: Option<Cost>,
    /// What happens, in plain words, each with its figures.
    pub statements: Vec<String>,
    /// What to change.
    pub advice: Vec<String>,
}

/// One function's part of one profile.
#[derive(Debug, Clone, Serialize)]
pub struct Cost {
    /// Its value, in `unit`.
    pub value: i64,
    /// The unit, e.g. `bytes`, `nanoseconds`.
    pub unit: String,
    /// `value` as a fraction of the profile's total.
    pub share: f64,
    /// The events behind the value: objects, contentions or samples (already unbiased).
    pub events: f64,
    /// `events` as a fraction of the profile's events (for an allocation: of all objects).
    pub events_share: f64,
    /// The relative standard error of `value` from sampling (see the noise floor).
    pub error: f64,
    /// How many profile samples (stacks) it rests on.
    pub samples: usize,
}

/// One container a function grows.
#[derive(Debug, Clone, Serialize)]
pub struct Growth {
    /// `HashMap`, `Vec`, ... as the resize profile's `container` label says.
    pub container: String,
    /// Resizes (unbiased).
    pub resizes: f64,
    /// Bytes allocated by them.
    pub bytes: i64,
    /// `bytes` as a fraction of all growth.
    pub share: f64,
    /// How many profile samples (stacks × size classes) it rests on.
    pub samples: usize,
    /// The relative standard error of `bytes` from sampling (see the noise floor).
    pub error: f64,
    /// Average size of the resizes in the smallest size class: the first growth step.
    pub first_bytes: i64,
    /// Average size of the resizes in the largest size class: the largest containers' size.
    pub largest_bytes: i64,
    /// Containers grown here: the resizes of the first growth step, which each passes once.
    /// `None` when that cannot be told ([`Growth::unknown_calls`] says why).
    pub calls: Option<f64>,
    /// `resizes / calls`.
    pub per_call: Option<f64>,
    /// The average size the containers end at (the last growth of each).
    pub final_bytes: Option<i64>,
    /// The element size, when a frame names the element type (`RawVec<u64>`).
    pub element_bytes: Option<u64>,
    /// The capacity in entries of the largest containers, when it follows from the growth
    /// rule (hashbrown) or the element size.
    pub capacity: Option<u64>,
    /// Where the calls were counted: the first growth step, or all size classes when every
    /// container passes all of them.
    pub counted_at: Option<String>,
    /// Why the calls cannot be told, when they cannot.
    pub unknown_calls: Option<String>,
}

/// A profile [`report`] cannot use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportError {
    name: String,
    reason: String,
}

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.reason)
    }
}

impl std::error::Error for ReportError {}

/// Events (objects, contentions, CPU samples) a profile must rest on for its shares to count in
/// full in a finding's score; with fewer, they count in proportion (one contention: a tenth).
pub const MIN_EVIDENCE: f64 = 10.0;

/// The noise floor: a part under this share of its profile (1%) is not stated, and a function
/// with nothing stated is not a finding. A container grown once in a run that grows others
/// thousands of times, or a few samples of a rarely taken path, would otherwise be reported
/// with per-call figures that rest on nothing.
pub const NOISE_FLOOR: f64 = 0.01;

/// The largest relative standard error of a stated part (50%, that of a count of 4 sampled
/// events): one sampled resize of a `VecDeque` is no finding, whatever share its unbiased bytes
/// reach.
pub const MAX_ERROR: f64 = 0.5;

/// The largest chance that a first growth step went unsampled for the calls to be counted
/// (2%: a class sampled about 4 times on average, `e^-4`).
pub const MAX_MISSED: f64 = 0.02;

/// Whether a part of `share` of its profile, known within `error`, is over the noise floor.
fn above_noise_floor(share: f64, error: f64) -> bool {
    share >= NOISE_FLOOR && error <= MAX_ERROR
}

/// Whether `cost` is large enough to be stated about allocation, locks or CPU.
fn stated(cost: &Cost) -> bool {
    cost.share >= STATED_SHARE && above_noise_floor(cost.share, cost.error)
}

/// A statement's part must be at least this share of its profile (5%) to be stated about
/// allocation, locks and CPU: smaller parts are not what to fix first.
pub(super) const STATED_SHARE: f64 = 0.05;

/// The systematic error allowed between size classes' counts when testing that every call
/// passed every class (5%): at 64 KiB, the 57 kB tables of a 2,000-entry map read 3% fewer
/// than the 228 kB ones, more than sampling noise explains.
pub const SYSTEMATIC: f64 = 0.05;

/// Growth counts per call are told when the count of calls is within this relative standard
/// error (20%: about 25 sampled allocations).
pub(super) const MAX_CALLS_ERROR: f64 = 0.2;

/// Reads `inputs` and writes the findings. Errors name the profile that could not be used.
pub fn report(inputs: &[Input<'_>], opts: &ReportOptions) -> Result<Report, ReportError> {
    let view_of = |name: &str, profile| {
        ProfileView::new(profile).map_err(|e| ReportError {
            name: name.to_owned(),
            reason: format!("not a valid profile: {e}"),
        })
    };
    let is_heap = |k: &str| k == "heap" || k == "allocs";
    let mut views: Vec<(ProfileView<'_>, &'static str)> = Vec::with_capacity(inputs.len());
    for &(name, profile) in inputs {
        let view = view_of(name, profile)?;
        let kind = kind_of(&view, name)?;
        // One run, one profile of each kind: two would be added up as if they were one, and
        // heap and allocs are the same samples.
        let same = |k: &str| k == kind || (is_heap(k) && is_heap(kind));
        if let Some(j) = views.iter().position(|&(_, k)| same(k)) {
            return Err(ReportError {
                name: name.to_owned(),
                reason: format!(
                    "a {kind} profile, and {} is a {} profile: the report reads one run's \
                     profiles, one of each kind (heap and allocs hold the same samples: give \
                     one of them)",
                    inputs[j].0, views[j].1
                ),
            });
        }
        views.push((view, kind));
    }
    // Without a resize profile, one is derived from the heap profile.
    let first_heap = views.iter().position(|(_, kind)| is_heap(kind));
    let derived = match first_heap {
        Some(i) if !views.iter().any(|&(_, kind)| kind == "resize") => Some((
            format!("{} (derived)", inputs[i].0),
            resize_profile(inputs[i].1),
        )),
        _ => None,
    };
    let derived_view = match &derived {
        Some((name, profile)) => Some((name.as_str(), view_of(name, profile)?)),
        None => None,
    };
    let sources = inputs
        .iter()
        .zip(&views)
        .map(|(&(name, _), (view, kind))| (name, view, *kind))
        .chain(
            derived_view
                .iter()
                .map(|(name, view)| (*name, view, "resize")),
        );

    let language = Language::of(
        views
            .iter()
            .map(|(view, _)| view)
            .chain(derived_view.iter().map(|(_, view)| view)),
    );
    let mut profiles = Vec::new();
    let mut charged: BTreeMap<&'static str, Charged> = BTreeMap::new();
    let mut sites = GrowthSites::new();
    for (name, view, kind) in sources {
        profiles.push(charge(view, name, kind, opts, &mut charged, &mut sites)?);
    }
    Ok(Report {
        language,
        profiles,
        findings: findings(&charged, &sites, language, opts),
    })
}

/// The kind of profile `view` is, by its sample types and comments; a Go contention profile
/// (mutex and block look alike) by its file name.
fn kind_of(view: &ProfileView<'_>, name: &str) -> Result<&'static str, ReportError> {
    match view.kind_name() {
        k @ ("heap" | "allocs" | "resize" | "mutex" | "block" | "cpu") => Ok(k),
        "contention" if name.contains("mutex") => Ok("mutex"),
        "contention" => Ok("block"),
        other => Err(ReportError {
            name: name.to_owned(),
            reason: format!(
                "a {other} profile: the report reads heap, allocs, resize, mutex, block and cpu \
                 profiles"
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::group as group_digits;

    /// A profile of one stack per sample, each a synthetic application function.
    fn profile_of(header: crate::builder::Header, samples: &[(&str, Vec<i64>)]) -> Profile {
        let raw = samples
            .iter()
            .map(|(function, values)| crate::builder::RawSample {
                stack: Vec::new(),
                synthetic: Some((*function).to_owned()),
                values: values.clone(),
                labels: Vec::new(),
            })
            .collect();
        let mut symbolizer = crate::symbolize::Symbolizer::new();
        crate::builder::build(&header, raw, Default::default(), &mut symbolizer)
    }

    #[test]
    fn a_profile_of_few_samples_counts_in_proportion() {
        // `app::alloc` has 60% of an allocs profile of 20 objects; `app::hold` 100% of a mutex
        // profile of `contentions` contentions.
        let allocs = profile_of(
            crate::heap::header(1, crate::heap::HeapView::Allocs),
            &(0..20)
                .map(|i| {
                    (
                        if i < 12 { "app::alloc" } else { "app::other" },
                        vec![1, 100, 0, 0],
                    )
                })
                .collect::<Vec<_>>(),
        );
        let leader = |contentions: usize| {
            let mutex = profile_of(
                crate::contention::header(),
                &vec![("app::hold", vec![1, 1000]); contentions],
            );
            let inputs = [("allocs", &allocs), ("mutex", &mutex)];
            let r = report(&inputs, &ReportOptions::default()).unwrap();
            (r.findings[0].function.clone(), r.findings[0].score)
        };
        let (first, score) = leader(1);
        assert_eq!(first, "app::alloc");
        assert!((score - 0.6).abs() < 1e-9, "{score}");
        // Positive control: with enough contentions the lock holder leads at its full share.
        assert_eq!(leader(MIN_EVIDENCE as usize), ("app::hold".to_owned(), 1.0));
    }

    #[test]
    fn digits_are_grouped() {
        assert_eq!(group_digits(0), "0");
        assert_eq!(group_digits(999), "999");
        assert_eq!(group_digits(1000), "1,000");
        assert_eq!(group_digits(1_234_567), "1,234,567");
    }
}
