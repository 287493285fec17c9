//! `mapprof report`: what to fix, in plain words, from the profiles of one run.
//!
//! Every sample of every profile given (heap or allocs, resize, mutex, block, cpu; mapprof's or
//! Go's) is charged to its first application frame ([`crate::app`]), the function the user
//! can change. Per function the report gathers what it allocates, which containers it grows
//! and how often, the lock delay it causes while holding locks and the delay it suffers
//! waiting; ranks the functions by the largest share they have of any profile (a profile that
//! rests on fewer than [`MIN_EVIDENCE`] events counts in proportion, so that the one
//! contention of a quiet run does not lead with "100% of all lock delay"); and says for
//! each what happens and what to change, with the figures behind every statement and the
//! number of stacks (profile samples) each rests on.
//!
//! # Growth per call
//!
//! Heap samples are kept per call stack and per size class (powers of two, see
//! `mapprof_rt::table::size_class`), and a container that doubles as it grows makes one
//! allocation per class. So at one call site the resizes in the largest size class estimate how
//! many times the container reached its final size, the *calls*; all resizes divided by that is
//! the growths per call. From the growths per call and the container's growth rule the final
//! capacity follows: a `HashMap` or `HashSet` (hashbrown) starts at 4 buckets and doubles, with
//! room for 7/8 of its buckets; a `Vec` or `VecDeque` starts at 4 elements (a `String` at 8
//! bytes) and doubles. Two containers grown at the same site are counted as one; an estimate is
//! only as good as the samples it rests on, and the report says how many those are.
//!
//! A *rebuild* is a container grown from empty on every call by a function that also allocates,
//! per call, at least a quarter as many objects as the container ends up holding: it is filled
//! with copies (the incident's `Cache::update` cloned every entry into a new map).
//!
//! # Lock holders that allocate
//!
//! The mutex profile charges the delay that waiters suffered to the holder's stack at unlock.
//! A function that causes lock delay and also allocates or grows a container is reported as
//! doing that work while holding the lock: the profiles do not prove that the allocation is
//! inside the critical section, so the statement names both figures and the advice says what to
//! check.

use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};

use serde::Serialize;

use crate::app::{first_application_frame, AppFilter};
use crate::limits::group as group_digits;
use crate::proto::Profile;
use crate::resize::resize_profile;
use crate::top::format_value;
use crate::view::ProfileView;

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
    /// half, since waiters suffer what holders cause) is at least this. Default 0.05.
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
    /// Where: the source file and line of its costliest frame (empty / 0 when unknown).
    pub file: String,
    /// See `file`.
    pub line: i64,
    /// The largest share this function has of any profile (block delay counted at half, a
    /// profile of fewer than [`MIN_EVIDENCE`] events in proportion).
    pub score: f64,
    /// What it allocates (heap/allocs profile, `alloc_space`; events are objects).
    pub allocation: Option<Cost>,
    /// The containers it grows (resize profile), costliest first.
    pub growth: Vec<Growth>,
    /// The lock delay it causes while holding locks (mutex profile; events are contentions).
    pub lock_holding: Option<Cost>,
    /// The delay it suffers waiting for locks (block profile; events are contentions).
    pub lock_waiting: Option<Cost>,
    /// Its CPU time (cpu profile; events are samples).
    pub cpu: Option<Cost>,
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
    /// Average size of the resizes in the largest size class: the container's final size.
    pub largest_bytes: i64,
    /// Resizes in the largest size class: how many times it reached that size.
    pub calls: f64,
    /// `resizes / calls`.
    pub per_call: f64,
    /// The capacity (elements) that `per_call` doublings reach, for the containers whose
    /// growth rule is known.
    pub capacity: Option<u64>,
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
    best: i64,
    file: String,
    line: i64,
}

/// Events (objects, contentions, CPU samples) a profile must rest on for its shares to count in
/// full in a finding's score; with fewer, they count in proportion (one contention: a tenth).
pub const MIN_EVIDENCE: f64 = 10.0;

/// One profile's values per application function.
struct Charged {
    unit: String,
    total: i64,
    /// Events of the samples with a value, application frame or not.
    events: f64,
    by_function: HashMap<String, Acc>,
}

/// Per (function, container): resizes and bytes per size class.
type GrowthClasses = BTreeMap<(String, String), BTreeMap<u32, (f64, i64, usize)>>;

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
    let mut growth_classes = GrowthClasses::new();
    for (name, view, kind) in sources {
        profiles.push(charge(
            view,
            name,
            kind,
            opts,
            &mut charged,
            &mut growth_classes,
        )?);
    }
    Ok(Report {
        profiles,
        findings: findings(&charged, &growth_classes, opts),
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

/// Charges one profile to application functions; growth also per container and size class.
fn charge(
    view: &ProfileView<'_>,
    name: &str,
    kind: &str,
    opts: &ReportOptions,
    charged: &mut BTreeMap<&'static str, Charged>,
    growth_classes: &mut GrowthClasses,
) -> Result<ProfileSummary, ReportError> {
    // What the profile tells: (the role it plays, its value, its events).
    let (role, sample_type, events_type) = match kind {
        "heap" | "allocs" => ("allocation", "alloc_space", "alloc_objects"),
        "resize" => ("growth", "resize_space", "resizes"),
        "mutex" => ("lock_holding", "delay", "contentions"),
        "block" => ("lock_waiting", "delay", "contentions"),
        _ => ("cpu", "cpu", "samples"),
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
    let entry = charged.entry(role).or_insert_with(|| Charged {
        unit: unit.clone(),
        total: 0,
        events: 0.0,
        by_function: HashMap::new(),
    });
    let mut samples = 0;
    let mut total = 0i64;
    for sample in view.samples() {
        let value = sample.value(value_index);
        if value <= 0 {
            continue;
        }
        samples += 1;
        total = total.saturating_add(value);
        let events = sample.value(events_index).max(0) as f64;
        entry.events += events;
        let Some(frame) = first_application_frame(&sample, &opts.filter) else {
            continue;
        };
        let acc = entry
            .by_function
            .entry(frame.function.to_string())
            .or_default();
        acc.value = acc.value.saturating_add(value);
        acc.events += events;
        acc.samples += 1;
        if value > acc.best {
            acc.best = value;
            acc.file = frame.file.to_owned();
            acc.line = frame.line;
        }
        if role == "growth" {
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
            let slot = growth_classes
                .entry((frame.function.to_string(), container.to_owned()))
                .or_default()
                .entry(class)
                .or_insert((0.0, 0, 0));
            slot.0 += events;
            slot.1 = slot.1.saturating_add(value);
            slot.2 += 1;
        }
    }
    entry.total = entry.total.saturating_add(total);
    Ok(ProfileSummary {
        name: name.to_owned(),
        kind: kind.to_owned(),
        sample_type: sample_type.to_owned(),
        unit,
        total,
        samples,
    })
}

/// How fully the shares of the profile in `role` count: 1 from [`MIN_EVIDENCE`] events on.
fn evidence(charged: &BTreeMap<&'static str, Charged>, role: &str) -> f64 {
    let events = charged.get(role).map_or(0.0, |c| c.events);
    (events / MIN_EVIDENCE).min(1.0)
}

fn cost(charged: &BTreeMap<&'static str, Charged>, role: &str, function: &str) -> Option<Cost> {
    let c = charged.get(role)?;
    let acc = c.by_function.get(function)?;
    Some(Cost {
        value: acc.value,
        unit: c.unit.clone(),
        share: if c.total > 0 {
            acc.value as f64 / c.total as f64
        } else {
            0.0
        },
        events: acc.events,
        samples: acc.samples,
    })
}

/// The capacity `steps` doublings of `container` reach (see the module documentation).
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
        "Vec" | "VecDeque" => Some(4u64 << doublings),
        "String" => Some(8u64 << doublings),
        _ => None,
    }
}

fn findings(
    charged: &BTreeMap<&'static str, Charged>,
    growth_classes: &GrowthClasses,
    opts: &ReportOptions,
) -> Vec<Finding> {
    let growth_total = charged.get("growth").map_or(0, |c| c.total);
    // name -> (file, line, rank of that position)
    let mut functions: BTreeMap<&str, (String, i64, (bool, i64))> = BTreeMap::new();
    for c in charged.values() {
        for (name, acc) in &c.by_function {
            let e = functions
                .entry(name.as_str())
                .or_insert((String::new(), 0, (false, i64::MIN)));
            // The position of the frame with the largest single value across profiles, by
            // share of its profile so that bytes and nanoseconds compare; a known line first.
            let weight = if c.total > 0 {
                (acc.best as f64 / c.total as f64 * 1e9) as i64
            } else {
                0
            };
            let rank = (acc.line > 0, weight);
            if rank > e.2 && !acc.file.is_empty() {
                *e = (acc.file.clone(), acc.line, rank);
            }
        }
    }
    let mut out: Vec<Finding> = functions
        .into_iter()
        .map(|(function, (file, line, _))| {
            let growth = growth_of(function, growth_classes, growth_total);
            let allocation = cost(charged, "allocation", function);
            let lock_holding = cost(charged, "lock_holding", function);
            let lock_waiting = cost(charged, "lock_waiting", function);
            let cpu = cost(charged, "cpu", function);
            let growth_share: f64 = growth.iter().map(|g| g.share).sum();
            let weighed = |role: &str, cost: &Option<Cost>| {
                cost.as_ref()
                    .map_or(0.0, |c| c.share * evidence(charged, role))
            };
            let score = [
                weighed("allocation", &allocation),
                growth_share * evidence(charged, "growth"),
                weighed("lock_holding", &lock_holding),
                weighed("cpu", &cpu),
                weighed("lock_waiting", &lock_waiting) / 2.0,
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
                cpu,
                statements: Vec::new(),
                advice: Vec::new(),
            };
            explain(&mut finding, charged);
            finding
        })
        .filter(|f| f.score >= opts.min_share)
        .collect();
    out.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.function.cmp(&b.function))
    });
    out.truncate(opts.max_findings);
    out
}

fn growth_of(function: &str, classes: &GrowthClasses, total: i64) -> Vec<Growth> {
    let mut out: Vec<Growth> = classes
        .range((function.to_owned(), String::new())..)
        .take_while(|((f, _), _)| f == function)
        .map(|((_, container), by_class)| {
            let resizes: f64 = by_class.values().map(|c| c.0).sum();
            let bytes = by_class.values().fold(0i64, |t, c| t.saturating_add(c.1));
            let samples = by_class.values().map(|c| c.2).sum();
            let (_, &(calls, top_bytes, _)) =
                by_class.iter().next_back().expect("a class per entry");
            let per_call = if calls > 0.0 { resizes / calls } else { 0.0 };
            Growth {
                container: container.clone(),
                resizes,
                bytes,
                share: if total > 0 {
                    bytes as f64 / total as f64
                } else {
                    0.0
                },
                samples,
                largest_bytes: if calls > 0.0 {
                    (top_bytes as f64 / calls) as i64
                } else {
                    0
                },
                calls,
                per_call,
                capacity: capacity(container, per_call),
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.bytes
            .cmp(&a.bytes)
            .then_with(|| a.container.cmp(&b.container))
    });
    out
}

/// Writes the statements and advice of `f`.
fn explain(f: &mut Finding, charged: &BTreeMap<&'static str, Charged>) {
    let bytes = |v: i64| format_value(v, "bytes");
    let pct = |share: f64| format!("{:.1}%", share * 100.0);
    let count = |x: f64| group_digits(x.round() as u64);
    let mut rebuilt = false;
    for g in &f.growth {
        let size = g
            .capacity
            .map(|c| format!(", to a table for up to {} entries", group_digits(c)))
            .unwrap_or_default();
        f.statements.push(format!(
            "grows a {} about {:.0} times per call{size} ({} resizes ÷ {} calls that reached \
             its largest size, {}): {} in growth allocations, {} of all growth {}",
            g.container,
            g.per_call,
            count(g.resizes),
            count(g.calls),
            bytes(g.largest_bytes),
            bytes(g.bytes),
            pct(g.share),
            stacks(g.samples)
        ));
        let objects_per_call = match (&f.allocation, g.calls > 0.0) {
            (Some(a), true) => a.events / g.calls,
            _ => 0.0,
        };
        let rebuild = g.per_call >= 4.0
            && g.capacity
                .is_some_and(|c| objects_per_call >= c as f64 / 4.0);
        if rebuild && !rebuilt {
            rebuilt = true;
            let a = f.allocation.as_ref().expect("checked above");
            f.statements.push(format!(
                "rebuilds the {} on every call: it allocates about {} objects ({}) per call, \
                 as many as the {} holds, so every entry is copied into a new one ({} in all, \
                 {} of all allocation) {}",
                g.container,
                count(objects_per_call),
                bytes((a.value as f64 / g.calls) as i64),
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
        if g.per_call >= 2.0 {
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
            if a.share >= 0.05 {
                // Calls as estimated from its costliest growth (see the module documentation).
                let per_call = f
                    .growth
                    .first()
                    .map(|g| g.calls)
                    .filter(|&c| c > 0.0)
                    .map(|c| format!(", about {} per call", bytes((a.value as f64 / c) as i64)))
                    .unwrap_or_default();
                f.statements.push(format!(
                    "allocates {} ({} of all allocation{per_call}) {}",
                    bytes(a.value),
                    pct(a.share),
                    stacks(a.samples)
                ));
            }
        }
    }
    if let Some(h) = &f.lock_holding {
        if h.share >= 0.05 {
            let per = if h.events > 0.0 {
                format!(
                    ", {} per contention",
                    format_value((h.value as f64 / h.events) as i64, &h.unit)
                )
            } else {
                String::new()
            };
            let work = match (f.growth.first(), &f.allocation) {
                (Some(g), _) => format!(" while it allocates and grows a {}", g.container),
                (None, Some(a)) if a.share >= 0.05 => " while it allocates".to_owned(),
                _ => String::new(),
            };
            f.statements.push(format!(
                "holds a lock others wait for{work}: it made them wait {} ({} of all lock \
                 delay{per}) {}",
                format_value(h.value, &h.unit),
                pct(h.share),
                stacks(h.samples)
            ));
            f.advice.push(if work.is_empty() {
                "hold the lock for less time, or use an RwLock or shards so that readers do not \
                 wait for each other"
                    .to_owned()
            } else {
                "move the allocation out of the critical section (build outside the lock, swap \
                 under it), or use an RwLock or shards so that readers do not wait for writers"
                    .to_owned()
            });
        }
    }
    if let Some(w) = &f.lock_waiting {
        if w.share >= 0.05 {
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
    if let Some(c) = &f.cpu {
        if c.share >= 0.05 {
            f.statements.push(format!(
                "runs on the CPU for {} ({} of all CPU time) {}",
                format_value(c.value, &c.unit),
                pct(c.share),
                stacks(c.samples)
            ));
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
        assert_eq!(capacity("Vec", 19.4), Some(1 << 20));
        assert_eq!(capacity("String", 3.0), Some(32));
        assert_eq!(capacity("realloc", 5.0), None);
        assert_eq!(capacity("HashMap", 0.2), None);
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
