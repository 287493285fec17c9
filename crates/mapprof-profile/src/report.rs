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
//! A part under [`NOISE_FLOOR`] (1%) of its profile is not stated, and a function left with
//! nothing stated is not a finding: a container grown once in a run that grows others millions
//! of times is noise, whatever its per-call figures say. Every division is by a count of the
//! same measure: growths per call by the calls counted in the growth samples themselves, bytes
//! per object by the objects of the same samples.
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
//! When every class's count agrees with one number (within 3 standard errors of sampling and
//! [`SYSTEMATIC`]),
//! every call passed every class and ended at the same size (the incident's map of 2,000
//! entries): the classes' sampled counts pool into one estimate, `Σ sampled ÷ Σ p`, which the
//! large, always-sampled classes make precise where the first step alone is not (at 64 KiB, a
//! 244-byte first table is sampled once in 270); the growths per call are then the number of
//! classes.
//!
//! The calls *cannot be told*, and the report says so instead of a per-call figure, when a
//! larger class has more resizes than the smallest (beyond 3 standard errors: the containers
//! there do not all start from the same size, e.g. `reserve(n)` then growth), or when the
//! calls end at different sizes and the smallest class rests on so few sampled allocations
//! that its count is off by more than 20% (one standard error; a sample of `s` bytes at rate
//! `R` is taken with probability `1 - exp(-s/R)`, exact at `heap_rate=1`).
//!
//! Sizes are said in bytes. Entries follow only from a known element size: a `HashMap` or
//! `HashSet` (hashbrown) starts at 4 buckets and doubles, with room for 7/8 of its buckets, so
//! its growths give its capacity in entries; a `Vec`, `VecDeque` or `BinaryHeap` gets an
//! element count only when a frame names its element type (`RawVec<u64>`, `Vec<u8>`, a
//! primitive). Two containers grown at the same site are counted together.
//!
//! A *rebuild* is a container grown from empty on every call by a function that also allocates,
//! per container, at least a quarter as many objects as the container ends up holding: it is
//! filled with copies (the incident's `Cache::update` cloned every entry into a new map).
//!
//! # Objects
//!
//! A function can cost little in bytes and much in allocations: a CSV pass that allocates one
//! `String` per field. Its share of allocated objects ranks it like any other share, and the
//! report states the count and the average size, `allocated bytes ÷ allocated objects` of its
//! own samples.
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
//! hashbrown's rehash is). Advice for a Go function speaks Go
//! (`sync.RWMutex`, `make(map[K]V, n)`), for a Rust function Rust.

use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};

use serde::Serialize;

use crate::app::{first_application_frame, AppFilter};
use crate::limits::group as group_digits;
use crate::names::is_go;
use crate::proto::Profile;
use crate::resize::resize_profile;
use crate::top::format_value;
use crate::view::{ProfileView, SampleRef};

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
    /// One entry per profile read (and per resize profile derived from a heap profile).
    pub profiles: Vec<ProfileSummary>,
    /// The functions to look at, by [`Finding::score`] descending.
    pub findings: Vec<Finding>,
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

/// Accumulates one function's part of one profile.
#[derive(Default)]
struct Acc {
    value: i64,
    events: f64,
    samples: usize,
    /// Value per (file, line) of the function's frame.
    lines: HashMap<(String, i64), i64>,
}

impl Acc {
    /// The most-weighted (file, line) and its value, a known line first.
    fn place(&self) -> Option<(&str, i64, i64)> {
        self.lines
            .iter()
            .filter(|((file, _), _)| !file.is_empty())
            .max_by(|((fa, la), va), ((fb, lb), vb)| {
                (*la > 0, **va)
                    .cmp(&(*lb > 0, **vb))
                    .then_with(|| (fb, lb).cmp(&(fa, la)))
            })
            .map(|((file, line), value)| (file.as_str(), *line, *value))
    }
}

/// Events (objects, contentions, CPU samples) a profile must rest on for its shares to count in
/// full in a finding's score; with fewer, they count in proportion (one contention: a tenth).
pub const MIN_EVIDENCE: f64 = 10.0;

/// The noise floor: a part under this share of its profile (1%) is not stated, and a function
/// with nothing stated is not a finding. A container grown once in a run that grows others
/// thousands of times, or a few samples of a rarely taken path, would otherwise be reported
/// with per-call figures that rest on nothing.
pub const NOISE_FLOOR: f64 = 0.01;

/// A statement's part must be at least this share of its profile (5%) to be stated about
/// allocation, locks and CPU: smaller parts are not what to fix first.
const STATED_SHARE: f64 = 0.05;

/// The systematic error allowed between size classes' counts when testing that every call
/// passed every class (5%): at 64 KiB, the 57 kB tables of a 2,000-entry map read 3% fewer
/// than the 228 kB ones, more than sampling noise explains.
pub const SYSTEMATIC: f64 = 0.05;

/// Growth counts per call are told when the count of calls is within this relative standard
/// error (20%: about 25 sampled allocations).
const MAX_CALLS_ERROR: f64 = 0.2;

/// One profile's values per application function.
struct Charged {
    unit: String,
    total: i64,
    /// Events of the samples with a value, application frame or not.
    events: f64,
    by_function: HashMap<String, Acc>,
}

/// One size class of one growth site: resizes, bytes, samples.
#[derive(Default, Clone, Copy)]
struct Class {
    resizes: f64,
    bytes: i64,
    samples: usize,
}

/// Per (function, container): the size classes, the element size if known, the sampling rate.
#[derive(Default)]
struct Site {
    classes: BTreeMap<u32, Class>,
    element: Option<u64>,
    rate: f64,
}

type GrowthSites = BTreeMap<(String, String), Site>;

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

    let mut profiles = Vec::new();
    let mut charged: BTreeMap<&'static str, Charged> = BTreeMap::new();
    let mut sites = GrowthSites::new();
    for (name, view, kind) in sources {
        profiles.push(charge(view, name, kind, opts, &mut charged, &mut sites)?);
    }
    Ok(Report {
        profiles,
        findings: findings(&charged, &sites, opts),
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

/// Go's runtime functions in which a goroutine blocks on a channel or in `select`.
const CHANNEL_FRAMES: &[&str] = &[
    "runtime.selectgo",
    "runtime.chanrecv",
    "runtime.chanrecv1",
    "runtime.chanrecv2",
    "runtime.chansend",
    "runtime.chansend1",
    "runtime.block",
    "runtime.selectnbrecv",
    "runtime.selectnbsend",
];

/// Go's runtime functions of map growth (prefixes: `growWork_faststr`, `evacuate_fast64`).
const MAP_GROWTH_FRAMES: &[&str] = &["runtime.hashGrow", "runtime.growWork", "runtime.evacuate"];

/// Whether `function` is map growth machinery: Go's runtime, or hashbrown's rehash (by the
/// growth rules of [`crate::growth`]).
fn is_map_growth(function: &str) -> bool {
    use crate::growth::{role, Container, Role};
    use crate::names::frame_path;
    if MAP_GROWTH_FRAMES.iter().any(|p| function.starts_with(p)) {
        return true;
    }
    function.contains("hashbrown")
        && role(&frame_path(function)) == Some(Role::Grows(Container::HashMap))
}

/// Whether a frame before the application frame of `sample` satisfies `is`.
fn below_application(
    sample: &SampleRef<'_, '_>,
    filter: &AppFilter,
    is: impl Fn(&str) -> bool,
) -> bool {
    sample
        .frames()
        .take_while(|f| !filter.is_application(&f.function))
        .any(|f| is(f.function.trim()))
}

/// Charges one profile to application functions; growth also per container and size class.
fn charge(
    view: &ProfileView<'_>,
    name: &str,
    kind: &str,
    opts: &ReportOptions,
    charged: &mut BTreeMap<&'static str, Charged>,
    sites: &mut GrowthSites,
) -> Result<ProfileSummary, ReportError> {
    // What the profile tells: (the roles it plays, its value, its events). A block profile is
    // split into lock and channel waits, a CPU profile's map growth is also a role of its own;
    // their shares are of the whole profile.
    let (roles, sample_type, events_type): (&[&'static str], _, _) = match kind {
        "heap" | "allocs" => (&["allocation"], "alloc_space", "alloc_objects"),
        "resize" => (&["growth"], "resize_space", "resizes"),
        "mutex" => (&["lock_holding"], "delay", "contentions"),
        "block" => (&["lock_waiting", "channel_waiting"], "delay", "contentions"),
        _ => (&["cpu", "map_growth_cpu"], "cpu", "samples"),
    };
    let index = |t: &str| {
        view.sample_index_by_name(t).map_err(|e| ReportError {
            name: name.to_owned(),
            reason: e.to_string(),
        })
    };
    let value_index = index(sample_type)?;
    let events_index = index(events_type)?;
    let unit = view.sample_types()[value_index].unit.to_owned();
    for role in roles {
        charged.entry(role).or_insert_with(|| Charged {
            unit: unit.clone(),
            total: 0,
            events: 0.0,
            by_function: HashMap::new(),
        });
    }
    let rate = view.profile().period.max(1) as f64;
    let mut samples = 0;
    let mut total = 0i64;
    let mut events_total = 0.0;
    for sample in view.samples() {
        let value = sample.value(value_index);
        if value <= 0 {
            continue;
        }
        samples += 1;
        total = total.saturating_add(value);
        let events = sample.value(events_index).max(0) as f64;
        events_total += events;
        let Some(frame) = first_application_frame(&sample, &opts.filter) else {
            continue;
        };
        let mut add = |role: &'static str| {
            let acc = charged
                .get_mut(role)
                .expect("an entry per role")
                .by_function
                .entry(frame.function.to_string())
                .or_default();
            acc.value = acc.value.saturating_add(value);
            acc.events += events;
            acc.samples += 1;
            let at = acc
                .lines
                .entry((frame.file.to_owned(), frame.line))
                .or_default();
            *at = at.saturating_add(value);
        };
        match kind {
            "block" => {
                let channel =
                    below_application(&sample, &opts.filter, |f| CHANNEL_FRAMES.contains(&f));
                add(if channel {
                    "channel_waiting"
                } else {
                    "lock_waiting"
                });
            }
            "cpu" => {
                add("cpu");
                if below_application(&sample, &opts.filter, is_map_growth) {
                    add("map_growth_cpu");
                }
            }
            _ => add(roles[0]),
        }
        if kind == "resize" {
            let container = sample
                .raw()
                .label
                .iter()
                .find(|l| view.string(l.key) == crate::resize::CONTAINER_LABEL)
                .map_or("unknown", |l| view.string(l.str));
            // The size class of the sample's average size (see the module documentation): its
            // numeric `bytes` label where it has one (mapprof's and Go's heap samples), else
            // value ÷ events. The label is exact; the quotient is not when events were rounded
            // to a whole number, as for a sample of one large allocation (labelled samples,
            // one bucket per request, are often that): 1.22 allocations of 110 kB written as
            // one of 134 kB would land a class too high.
            let average = sample
                .raw()
                .label
                .iter()
                .find(|l| view.string(l.key) == "bytes" && l.str == 0)
                .map(|l| l.num as f64)
                .unwrap_or(if events > 0.0 {
                    value as f64 / events
                } else {
                    0.0
                });
            let class = 64 - (average as u64).leading_zeros();
            let site = sites
                .entry((frame.function.to_string(), container.to_owned()))
                .or_default();
            site.rate = rate;
            if site.element.is_none() {
                site.element = sample
                    .frames()
                    .take_while(|f| !opts.filter.is_application(&f.function))
                    .find_map(|f| element_size(&f.function));
            }
            let slot = site.classes.entry(class).or_default();
            slot.resizes += events;
            slot.bytes = slot.bytes.saturating_add(value);
            slot.samples += 1;
        }
    }
    for role in roles {
        let entry = charged.get_mut(role).expect("an entry per role");
        entry.total = entry.total.saturating_add(total);
        entry.events += events_total;
    }
    Ok(ProfileSummary {
        name: name.to_owned(),
        kind: kind.to_owned(),
        sample_type: sample_type.to_owned(),
        unit,
        total,
        samples,
    })
}

/// The size in bytes of the element type a container frame names, for primitive elements:
/// 8 for `<alloc::raw_vec::RawVec<u64>>::grow_one`, 1 for `alloc::vec::Vec<u8>::reserve`;
/// `None` for `Vec<T,A>` (legacy demangling names no type) or a type of unknown size.
fn element_size(function: &str) -> Option<u64> {
    for pattern in ["Vec<", "VecDeque<", "BinaryHeap<"] {
        let mut rest = function;
        while let Some(at) = rest.find(pattern) {
            rest = &rest[at + pattern.len()..];
            let end = rest.find([',', '>']).unwrap_or(rest.len());
            let size = match rest[..end].trim() {
                "u8" | "i8" | "bool" => 1,
                "u16" | "i16" => 2,
                "u32" | "i32" | "f32" | "char" => 4,
                "u64" | "i64" | "f64" | "usize" | "isize" => 8,
                "u128" | "i128" => 16,
                _ => continue,
            };
            return Some(size);
        }
    }
    None
}

/// How fully the shares of the profile in `role` count: 1 from [`MIN_EVIDENCE`] events on.
fn evidence(charged: &BTreeMap<&'static str, Charged>, role: &str) -> f64 {
    let events = charged.get(role).map_or(0.0, |c| c.events);
    (events / MIN_EVIDENCE).min(1.0)
}

fn cost(charged: &BTreeMap<&'static str, Charged>, role: &str, function: &str) -> Option<Cost> {
    let c = charged.get(role)?;
    let acc = c.by_function.get(function)?;
    let ratio = |part: f64, whole: f64| if whole > 0.0 { part / whole } else { 0.0 };
    Some(Cost {
        value: acc.value,
        unit: c.unit.clone(),
        share: ratio(acc.value as f64, c.total as f64),
        events: acc.events,
        events_share: ratio(acc.events, c.events),
        samples: acc.samples,
    })
}

/// The capacity `steps` doublings of `container` reach (see the module documentation), for the
/// containers whose growth rule gives entries without an element size.
fn capacity(container: &str, steps: f64) -> Option<u64> {
    let n = steps.round();
    if !(1.0..=40.0).contains(&n) {
        return None;
    }
    let doublings = n as u32 - 1;
    match container {
        "HashMap" | "HashSet" => {
            let buckets = 4u64 << doublings;
            Some(if buckets < 8 {
                buckets - 1
            } else {
                buckets / 8 * 7
            })
        }
        _ => None,
    }
}

fn findings(
    charged: &BTreeMap<&'static str, Charged>,
    sites: &GrowthSites,
    opts: &ReportOptions,
) -> Vec<Finding> {
    let growth_total = charged.get("growth").map_or(0, |c| c.total);
    // name -> (file, line, rank of that position: known line, allocating, weight)
    type Place = (String, i64, (bool, bool, i64));
    let mut functions: BTreeMap<&str, Place> = BTreeMap::new();
    for (&role, c) in charged {
        for (name, acc) in &c.by_function {
            let e = functions.entry(name.as_str()).or_insert((
                String::new(),
                0,
                (false, false, i64::MIN),
            ));
            let Some((file, line, value)) = acc.place() else {
                continue;
            };
            // The line that allocates most, else the most-weighted line of the profile where
            // the function has its largest share (shares, so that bytes and nanoseconds
            // compare); a known line first.
            let weight = if c.total > 0 {
                (value as f64 / c.total as f64 * 1e9) as i64
            } else {
                0
            };
            let rank = (line > 0, role == "allocation", weight);
            if rank > e.2 {
                *e = (file.to_owned(), line, rank);
            }
        }
    }
    let mut out: Vec<Finding> = functions
        .into_iter()
        .map(|(function, (file, line, _))| {
            let growth = growth_of(function, sites, growth_total);
            let allocation = cost(charged, "allocation", function);
            let lock_holding = cost(charged, "lock_holding", function);
            let lock_waiting = cost(charged, "lock_waiting", function);
            let channel_waiting = cost(charged, "channel_waiting", function);
            let cpu = cost(charged, "cpu", function);
            let map_growth_cpu = cost(charged, "map_growth_cpu", function);
            let growth_share: f64 = growth.iter().map(|g| g.share).sum();
            let weighed = |role: &str, cost: &Option<Cost>| {
                cost.as_ref()
                    .map_or(0.0, |c| c.share * evidence(charged, role))
            };
            let objects = allocation
                .as_ref()
                .map_or(0.0, |c| c.events_share * evidence(charged, "allocation"));
            let score = [
                weighed("allocation", &allocation),
                objects,
                growth_share * evidence(charged, "growth"),
                weighed("lock_holding", &lock_holding),
                weighed("cpu", &cpu),
                weighed("lock_waiting", &lock_waiting) / 2.0,
                weighed("channel_waiting", &channel_waiting) / 2.0,
            ]
            .into_iter()
            .fold(0.0, f64::max);
            let mut finding = Finding {
                function: function.to_owned(),
                file,
                line,
                score,
                allocation,
                growth,
                lock_holding,
                lock_waiting,
                channel_waiting,
                cpu,
                map_growth_cpu,
                statements: Vec::new(),
                advice: Vec::new(),
            };
            explain(&mut finding, charged);
            finding
        })
        .filter(|f| f.score >= opts.min_share && !f.statements.is_empty())
        .collect();
    out.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.function.cmp(&b.function))
    });
    out.truncate(opts.max_findings);
    out
}

/// The probability that an allocation of `size` bytes is sampled at `rate`.
fn sampled(size: f64, rate: f64) -> f64 {
    if rate <= 1.0 {
        1.0
    } else {
        -(-size / rate).exp_m1()
    }
}

/// The containers `function` grows, over the noise floor (see the module documentation).
fn growth_of(function: &str, sites: &GrowthSites, total: i64) -> Vec<Growth> {
    let mut out: Vec<Growth> = sites
        .range((function.to_owned(), String::new())..)
        .take_while(|((f, _), _)| f == function)
        .map(|((_, container), site)| grown(container, site, total))
        .filter(|g| g.share >= NOISE_FLOOR)
        .collect();
    out.sort_by(|a, b| {
        b.bytes
            .cmp(&a.bytes)
            .then_with(|| a.container.cmp(&b.container))
    });
    out
}

/// One site's growth: calls from the first growth step, final sizes from where the counts
/// drop (see the module documentation).
fn grown(container: &str, site: &Site, total: i64) -> Growth {
    let classes: Vec<(u32, Class)> = site.classes.iter().map(|(&k, &c)| (k, c)).collect();
    let resizes: f64 = classes.iter().map(|(_, c)| c.resizes).sum();
    let bytes = classes
        .iter()
        .fold(0i64, |t, (_, c)| t.saturating_add(c.bytes));
    let samples = classes.iter().map(|(_, c)| c.samples).sum();
    let average = |c: &Class| {
        if c.resizes > 0.0 {
            c.bytes as f64 / c.resizes
        } else {
            0.0
        }
    };
    // An estimate of n at probability p has variance n(1-p)/p.
    let variance = |c: &Class| {
        let p = sampled(average(c), site.rate);
        c.resizes * (1.0 - p) / p
    };
    let (first_class, first) = classes[0];
    let (last_class, last) = classes[classes.len() - 1];
    let error = variance(&first).sqrt() / first.resizes.max(f64::MIN_POSITIVE);
    let more = classes[1..].iter().find(|(_, c)| {
        c.resizes > first.resizes + 0.5 + 3.0 * (variance(&first) + variance(c)).sqrt()
    });
    // Every container passing every class once (all end at the same size): the classes'
    // sampled counts pool into one estimate, Σ sampled ÷ Σ p, precise where the first step
    // alone is not (its small allocations are rarely sampled at a large rate).
    let probability = |c: &Class| sampled(average(c), site.rate);
    let seen: f64 = classes
        .iter()
        .map(|(_, c)| c.resizes * probability(c))
        .sum();
    let pooled = seen / classes.iter().map(|(_, c)| probability(c)).sum::<f64>();
    let same_end = classes.iter().all(|(_, c)| {
        let p = probability(c);
        let slack = 0.5 + SYSTEMATIC * pooled;
        (c.resizes - pooled).abs() <= slack + 3.0 * (pooled * (1.0 - p) / p).sqrt()
    }) && seen.sqrt().recip() <= MAX_CALLS_ERROR;
    let size = |v: f64| format_value(v as i64, "bytes");
    let first_step = format!("its first growth step, {}", size(average(&first)));
    let by_first = first.resizes > 0.0 && error <= MAX_CALLS_ERROR;
    let (calls, counted_at, unknown_calls) = if let Some((_, c)) = more {
        let why = format!(
            "more resizes at {} ({}) than at {first_step} ({}): its containers do not all \
             start from the same size",
            size(average(c)),
            group_digits(c.resizes.round() as u64),
            group_digits(first.resizes.round() as u64)
        );
        (None, None, Some(why))
    } else if same_end {
        let at = format!(
            "over its {} size classes, {} to {}, which every call passes once: all end at the \
             same size, so the growths per call are the classes",
            last_class - first_class + 1,
            size(average(&first)),
            size(average(&last))
        );
        (Some(pooled), Some(at), None)
    } else if by_first {
        let at = format!("at {first_step}, which every call passes once");
        (Some(first.resizes), Some(at), None)
    } else {
        let why = format!(
            "{first_step} rests on about {:.0} sampled allocations, too few to count calls, \
             and the calls do not all end at the same size",
            first.resizes * probability(&first)
        );
        (None, None, Some(why))
    };
    // All ending alike, each call grows once per class: exact, where the quotient carries the
    // noise of the rarely sampled small classes.
    let per_call = match calls {
        Some(_) if same_end => Some((last_class - first_class + 1) as f64),
        Some(c) => Some(resizes / c),
        None => None,
    };
    // Containers that ended in a class: its count minus the next class's.
    let final_bytes = calls.map(|_| {
        if same_end {
            return average(&last) as i64; // all end in the largest class
        }
        let (mut ended, mut sum) = (0.0, 0.0);
        for (i, (_, c)) in classes.iter().enumerate() {
            let next = classes.get(i + 1).map_or(0.0, |(_, n)| n.resizes);
            let here = (c.resizes - next).max(0.0);
            ended += here;
            sum += here * average(c);
        }
        (sum / ended.max(f64::MIN_POSITIVE)) as i64
    });
    let largest_bytes = average(&last) as i64;
    // The largest containers' growths: one class per doubling from the first step.
    let steps = (last_class - first_class + 1) as f64;
    let capacity = match container {
        "HashMap" | "HashSet" => capacity(container, steps),
        "Vec" | "VecDeque" | "BinaryHeap" => site.element.map(|e| largest_bytes as u64 / e),
        _ => None,
    };
    Growth {
        container: container.to_owned(),
        resizes,
        bytes,
        share: if total > 0 {
            bytes as f64 / total as f64
        } else {
            0.0
        },
        samples,
        first_bytes: average(&first) as i64,
        largest_bytes,
        calls,
        per_call,
        final_bytes,
        element_bytes: site.element,
        capacity,
        counted_at,
        unknown_calls,
    }
}

/// Writes the statements and advice of `f`.
fn explain(f: &mut Finding, charged: &BTreeMap<&'static str, Charged>) {
    let bytes = |v: i64| format_value(v, "bytes");
    let pct = |share: f64| format!("{:.1}%", share * 100.0);
    let count = |x: f64| group_digits(x.round() as u64);
    let go = is_go(&f.function);
    let mut rebuilt = false;
    for g in &f.growth {
        let entries = match (g.capacity, g.element_bytes) {
            (Some(c), None) => format!(", a table for up to {} entries", group_digits(c)),
            (Some(c), Some(e)) => format!(", {} elements of {e} B", group_digits(c)),
            _ => String::new(),
        };
        match (g.calls, g.per_call, g.final_bytes, &g.counted_at) {
            (Some(calls), Some(per_call), Some(final_bytes), Some(at)) => {
                let ends = if final_bytes == g.largest_bytes {
                    bytes(final_bytes)
                } else {
                    format!(
                        "{} on average, the largest {}",
                        bytes(final_bytes),
                        bytes(g.largest_bytes)
                    )
                };
                f.statements.push(format!(
                "grows a {} about {per_call:.0} times per call ({} resizes in {} calls, counted \
                 {at}), to {ends}{entries}: {} in growth allocations, {} of all growth {}",
                g.container,
                count(g.resizes),
                count(calls),
                bytes(g.bytes),
                pct(g.share),
                stacks(g.samples)
            ))
            }
            _ => f.statements.push(format!(
                "grows a {} {} times ({} in growth allocations, {} of all growth) {}; how many \
                 times per call cannot be told: {}",
                g.container,
                count(g.resizes),
                bytes(g.bytes),
                pct(g.share),
                stacks(g.samples),
                g.unknown_calls.as_deref().unwrap_or("no first growth step")
            )),
        }
        let objects_per_call = match (&f.allocation, g.calls) {
            (Some(a), Some(calls)) if calls > 0.0 => a.events / calls,
            _ => 0.0,
        };
        let rebuild = g.per_call.is_some_and(|p| p >= 4.0)
            && g.element_bytes.is_none()
            && g.capacity
                .is_some_and(|c| objects_per_call >= c as f64 / 4.0);
        if rebuild && !rebuilt {
            rebuilt = true;
            let a = f.allocation.as_ref().expect("checked above");
            let calls = g.calls.expect("checked above");
            f.statements.push(format!(
                "rebuilds the {} on every call: it allocates about {} objects ({}) per call, \
                 as many as the {} holds, so every entry is copied into a new one ({} in all, \
                 {} of all allocation) {}",
                g.container,
                count(objects_per_call),
                bytes((a.value as f64 / calls) as i64),
                g.container,
                bytes(a.value),
                pct(a.share),
                stacks(a.samples)
            ));
            f.advice.push(format!(
                "update the {} in place instead of rebuilding it: insert into the existing one",
                g.container
            ));
        }
        let constructor = match g.container.as_str() {
            "HashMap" | "HashSet" | "Vec" | "VecDeque" | "String" => {
                format!("`{}::with_capacity(n)`", g.container)
            }
            _ => "a capacity up front (`reserve(n)`)".to_owned(),
        };
        if g.per_call.is_none_or(|p| p >= 2.0) {
            let upto = g
                .capacity
                .map(|c| format!(" (at most {})", group_digits(c)))
                .unwrap_or_default();
            f.advice.push(format!(
                "create the {} with {constructor} for the n entries it ends with{upto}, or keep \
                 one and reuse it",
                g.container
            ));
        }
    }
    if !rebuilt {
        if let Some(a) = &f.allocation {
            if a.share >= STATED_SHARE || a.events_share >= STATED_SHARE {
                let each = if a.events > 0.0 {
                    bytes((a.value as f64 / a.events).round() as i64)
                } else {
                    "?".to_owned()
                };
                f.statements.push(format!(
                    "allocates {} ({} of all allocated bytes) in {} objects of ~{each} each ({} \
                     of all allocated objects) {}",
                    bytes(a.value),
                    pct(a.share),
                    count(a.events),
                    pct(a.events_share),
                    stacks(a.samples)
                ));
                // Churn: many small objects, a larger share of the count than of the bytes.
                let small = a.events > 0.0 && a.value as f64 / a.events < 1024.0;
                if small && a.events_share >= STATED_SHARE && a.events_share > a.share {
                    f.advice.push(if go {
                        "make fewer small allocations: reuse a buffer (`buf = buf[:0]`) or a \
                         `sync.Pool`, or keep slices of the input instead of a copy per item"
                            .to_owned()
                    } else {
                        "make fewer small allocations: reuse a buffer (`clear()` it between \
                         items), or borrow (`&str` slices of the input) instead of an owned \
                         copy per item"
                            .to_owned()
                    });
                }
            }
        }
    }
    if let Some(h) = &f.lock_holding {
        if h.share >= STATED_SHARE {
            let per = if h.events > 0.0 {
                format!(
                    ", {} per contention",
                    format_value((h.value as f64 / h.events) as i64, &h.unit)
                )
            } else {
                String::new()
            };
            let allocates = f
                .allocation
                .as_ref()
                .is_some_and(|a| a.share >= STATED_SHARE);
            let work = match f.growth.first() {
                Some(g) => format!(" while it allocates and grows a {}", g.container),
                None if allocates => " while it allocates".to_owned(),
                None => String::new(),
            };
            f.statements.push(format!(
                "holds a lock others wait for{work}: it made them wait {} ({} of all lock \
                 delay{per}) {}",
                format_value(h.value, &h.unit),
                pct(h.share),
                stacks(h.samples)
            ));
            let shared = if go {
                "a `sync.RWMutex` (readers take `RLock`) or shards"
            } else {
                "an `RwLock` or shards"
            };
            f.advice.push(if work.is_empty() {
                format!(
                    "hold the lock for less time, or use {shared} so that readers do not wait \
                     for each other"
                )
            } else {
                format!(
                    "move the allocation out of the critical section (build outside the lock, \
                     swap under it), or use {shared} so that readers do not wait for writers"
                )
            });
        }
    }
    if let Some(w) = &f.lock_waiting {
        if w.share >= STATED_SHARE {
            let holder = charged
                .get("lock_holding")
                .and_then(|c| c.by_function.iter().max_by_key(|(_, a)| a.value))
                .map(|(name, _)| format!("; the top lock holder is {name}"))
                .unwrap_or_default();
            f.statements.push(format!(
                "waits for locks: {} ({} of all waiting){holder} {}",
                format_value(w.value, &w.unit),
                pct(w.share),
                stacks(w.samples)
            ));
        }
    }
    if let Some(w) = &f.channel_waiting {
        if w.share >= STATED_SHARE {
            f.statements.push(format!(
                "waits on channels or in `select`, not for a lock: {} ({} of all waiting) {}",
                format_value(w.value, &w.unit),
                pct(w.share),
                stacks(w.samples)
            ));
        }
    }
    if let Some(c) = &f.cpu {
        if c.share >= STATED_SHARE {
            f.statements.push(format!(
                "runs on the CPU for {} ({} of all CPU time) {}",
                format_value(c.value, &c.unit),
                pct(c.share),
                stacks(c.samples)
            ));
        }
    }
    if let Some(m) = &f.map_growth_cpu {
        let of_own = f
            .cpu
            .as_ref()
            .filter(|c| c.value > 0)
            .map_or(0.0, |c| m.value as f64 / c.value as f64);
        if m.share >= NOISE_FLOOR && of_own >= STATED_SHARE {
            let machinery = if go {
                "the runtime's map growth (`hashGrow`, `growWork`, `evacuate`)"
            } else {
                "hashbrown's rehash (`reserve_rehash`)"
            };
            f.statements.push(format!(
                "grows maps as it inserts: {} of CPU time in {machinery}, {} of its own CPU \
                 time and {} of all {}",
                format_value(m.value, &m.unit),
                pct(of_own),
                pct(m.share),
                stacks(m.samples)
            ));
            // The heap's growth finding may have said it already.
            if go {
                f.advice.push(
                    "create the map with `make(map[K]V, n)` for the n entries it ends with, or \
                     keep one and reuse it"
                        .to_owned(),
                );
            } else if !f.advice.iter().any(|a| a.contains("with_capacity")) {
                f.advice.push(
                    "create the map with `HashMap::with_capacity(n)` for the n entries it ends \
                     with, or keep one and reuse it"
                        .to_owned(),
                );
            }
        }
    }
}

/// `[1 sample]`, `[12 samples]`: how many profile samples (stacks) a statement rests on.
fn stacks(n: usize) -> String {
    if n == 1 {
        "[1 sample]".to_owned()
    } else {
        format!("[{n} samples]")
    }
}

impl Report {
    /// The report as text: the profiles read, then each finding with its statements and advice.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "mapprof report, from:");
        for p in &self.profiles {
            let _ = writeln!(
                s,
                "  {:<7} {} ({} {}, {} samples)",
                p.kind,
                p.name,
                format_value(p.total, &p.unit),
                p.sample_type,
                p.samples
            );
        }
        if self.findings.is_empty() {
            let _ = writeln!(
                s,
                "\nNo application function stands out: none has 5% of any profile (or the \
                 profiles have no symbols)."
            );
        }
        for (i, f) in self.findings.iter().enumerate() {
            let at = match (f.file.is_empty(), f.line > 0) {
                (true, _) => String::new(),
                (false, true) => format!(" ({}:{})", f.file, f.line),
                (false, false) => format!(" ({})", f.file),
            };
            let _ = writeln!(s, "\n{}. {}{at}", i + 1, f.function);
            for statement in &f.statements {
                let _ = writeln!(s, "   - {statement}");
            }
            if !f.advice.is_empty() {
                let _ = writeln!(s, "   What to change:");
                for advice in &f.advice {
                    let _ = writeln!(s, "   - {advice}");
                }
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacities_follow_the_growth_rules() {
        // hashbrown: 4, 8, 16 ... buckets; 7/8 of them usable from 8 on.
        assert_eq!(capacity("HashMap", 1.0), Some(3));
        assert_eq!(capacity("HashMap", 2.0), Some(7));
        assert_eq!(capacity("HashSet", 16.0), Some(114_688));
        // Entries of a Vec or String need the element size: bytes say nothing of them.
        assert_eq!(capacity("Vec", 19.4), None);
        assert_eq!(capacity("String", 3.0), None);
        assert_eq!(capacity("realloc", 5.0), None);
        assert_eq!(capacity("HashMap", 0.2), None);
    }

    #[test]
    fn element_sizes_come_from_concrete_primitive_types_only() {
        assert_eq!(
            element_size("<alloc::raw_vec::RawVec<u64>>::grow_one"),
            Some(8)
        );
        assert_eq!(
            element_size("<alloc::vec::Vec<u8>>::extend_from_slice"),
            Some(1)
        );
        assert_eq!(
            element_size("<alloc::collections::vec_deque::VecDeque<u32, Global>>::grow"),
            Some(4)
        );
        assert_eq!(element_size("alloc::vec::Vec<T,A>::push"), None);
        assert_eq!(
            element_size("<alloc::raw_vec::RawVecInner<A>>::finish_grow"),
            None
        );
        assert_eq!(element_size("alloc::vec::Vec<app::Item>::push"), None);
    }

    /// A site of (class, resizes, average bytes) at `rate`.
    fn site(rate: f64, classes: &[(f64, f64)]) -> Site {
        let classes = classes
            .iter()
            .map(|&(resizes, size)| {
                let class = 64 - (size as u64).leading_zeros();
                let c = Class {
                    resizes,
                    bytes: (resizes * size) as i64,
                    samples: 1,
                };
                (class, c)
            })
            .collect();
        Site {
            classes,
            element: None,
            rate,
        }
    }

    #[test]
    fn calls_are_counted_at_the_first_growth_step_whatever_size_containers_end_at() {
        // 10 vectors pass 32 B..256 B; 6 of them go on to 512 B, 2 to 1 kB.
        let s = site(
            1.0,
            &[
                (10.0, 32.0),
                (10.0, 64.0),
                (10.0, 128.0),
                (10.0, 256.0),
                (6.0, 512.0),
                (2.0, 1024.0),
            ],
        );
        let g = grown("Vec", &s, 1);
        assert_eq!(g.calls, Some(10.0), "{g:?}");
        assert!((g.per_call.unwrap() - 4.8).abs() < 1e-9, "{g:?}");
        // 4 end at 256 B, 4 at 512 B, 2 at 1 kB.
        assert_eq!(g.final_bytes, Some((4 * 256 + 4 * 512 + 2 * 1024) / 10));
        assert_eq!(g.largest_bytes, 1024);
        assert_eq!(g.capacity, None, "no element size, no entries");
        // The old estimate, from the largest class, would have said 24 per call.
    }

    #[test]
    fn calls_that_cannot_be_told_are_said_so() {
        // More containers at a larger class than at the first step: not all start empty.
        let g = grown(
            "Vec",
            &site(1.0, &[(2.0, 32.0), (50.0, 64.0), (50.0, 128.0)]),
            1,
        );
        assert_eq!(g.calls, None);
        assert!(
            g.unknown_calls
                .as_deref()
                .unwrap()
                .contains("do not all start"),
            "{g:?}"
        );
        // At a 512 KiB rate, 100 first steps of 32 B are about 0.006 sampled allocations.
        let g = grown("Vec", &site(524288.0, &[(100.0, 32.0), (90.0, 64.0)]), 1);
        assert_eq!(g.calls, None);
        assert!(
            g.unknown_calls.as_deref().unwrap().contains("too few"),
            "{g:?}"
        );
        // Sampling noise at a larger class is not taken for a different start.
        let g = grown(
            "Vec",
            &site(65536.0, &[(9000.0, 4096.0), (9400.0, 8192.0)]),
            1,
        );
        let calls = g.calls.expect("within sampling noise of one count");
        assert!((9000.0..=9400.0).contains(&calls), "{g:?}");
    }

    #[test]
    fn calls_that_all_end_alike_are_counted_over_every_class() {
        // 520 rebuilds of a map through 11 tables from 244 B, sampled at 64 KiB: the first
        // step is sampled about twice, the largest table every time.
        let rate = 65536.0;
        let classes: Vec<(f64, f64)> = (0..11)
            .map(|k| {
                let size = (244u64 << k) as f64;
                let p = sampled(size, rate);
                (((520.0 * p).round().max(1.0) / p).round(), size)
            })
            .collect();
        let g = grown("HashMap", &site(rate, &classes), 1);
        let calls = g.calls.expect("all end alike");
        assert!((calls - 520.0).abs() < 520.0 * 0.05, "{g:?}");
        assert!((g.per_call.unwrap() - 11.0).abs() < 1.5, "{g:?}");
        assert_eq!(g.final_bytes, Some(244 << 10));
        assert_eq!(g.capacity, Some(3584));
        assert!(g
            .counted_at
            .unwrap()
            .starts_with("over its 11 size classes"));
        // Files of different lengths at the same rate: neither rule holds.
        let mut files: Vec<(f64, f64)> = (0..14).map(|k| (64.0, (32u64 << k) as f64)).collect();
        files.extend([(62.0, 1 << 20), (48.0, 4 << 20)].map(|(n, s)| (n, s as f64)));
        let files: Vec<(f64, f64)> = files
            .into_iter()
            .map(|(n, size)| {
                let p = sampled(size, rate);
                (((n * p).round().max(1.0) / p).round(), size)
            })
            .collect();
        let g = grown("Vec", &site(rate, &files), 1);
        assert_eq!(g.calls, None, "{g:?}");
        assert!(g.unknown_calls.unwrap().contains("too few"));
    }

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
