//! Charging: each sample of a profile to its first application frame, per role (allocation,
//! growth, lock holding and waiting, channel waiting, CPU, map growth), and resize samples per
//! growth site and size class.

use std::collections::{BTreeMap, HashMap};

use super::sites::sample_probability;
use super::{ProfileSummary, ReportError, ReportOptions};
use crate::app::split_at_application;
use crate::contention;
use crate::names::is_go_defer_wrapper;
use crate::view::ProfileView;

/// Accumulates one function's part of one profile.
#[derive(Default)]
pub(super) struct Acc {
    pub(super) value: i64,
    pub(super) events: f64,
    /// The variance of `value` from sampling.
    pub(super) variance: f64,
    pub(super) samples: usize,
    /// Value per (file, line, reached through a lock release) of the function's frame.
    pub(super) lines: HashMap<(String, i64, bool), i64>,
}

/// Where a function's cost is: a source line, whether it is only where the function releases a
/// lock (see [`is_release`]), and the value there.
pub(super) struct Place<'a> {
    pub(super) file: &'a str,
    pub(super) line: i64,
    pub(super) release: bool,
    pub(super) value: i64,
}

impl Acc {
    /// The most-weighted (file, line): a known line first, then one that is not a release.
    pub(super) fn place(&self) -> Option<Place<'_>> {
        self.lines
            .iter()
            .filter(|((file, _, _), _)| !file.is_empty())
            .max_by(|((fa, la, ra), va), ((fb, lb, rb), vb)| {
                (*la > 0, !ra, **va)
                    .cmp(&(*lb > 0, !rb, **vb))
                    .then_with(|| (fb, lb).cmp(&(fa, la)))
            })
            .map(|((file, line, release), &value)| Place {
                file,
                line: *line,
                release: *release,
                value,
            })
    }
}

/// One profile's values per application function.
pub(super) struct Charged {
    pub(super) unit: String,
    pub(super) total: i64,
    /// Events of the samples with a value, application frame or not.
    pub(super) events: f64,
    pub(super) by_function: HashMap<String, Acc>,
}

/// One size class of one growth site: resizes, bytes, samples.
#[derive(Default, Clone, Copy)]
pub(super) struct Class {
    pub(super) resizes: f64,
    pub(super) bytes: i64,
    /// The variance of `bytes` from sampling.
    pub(super) variance: f64,
    pub(super) samples: usize,
    /// The smallest and largest allocation size of its samples.
    pub(super) sizes: Option<(u64, u64)>,
}

/// Per (function, container): the size classes, the element size if known, the sampling rate.
#[derive(Default)]
pub(super) struct Site {
    pub(super) classes: BTreeMap<u32, Class>,
    pub(super) element: Option<u64>,
    pub(super) rate: f64,
}

pub(super) type GrowthSites = BTreeMap<(String, String), Site>;

/// Go's runtime functions in which a goroutine blocks on a channel or in `select`.
pub(super) const CHANNEL_FRAMES: &[&str] = &[
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

/// Go's runtime functions of map growth (prefixes: `growWork_faststr`, `evacuate_fast64`), and
/// those of Go 1.24's swiss maps (a small map becoming a table, a table doubling or splitting).
pub(super) const MAP_GROWTH_FRAMES: &[&str] = &[
    "runtime.hashGrow",
    "runtime.growWork",
    "runtime.evacuate",
    "internal/runtime/maps.(*Map).growToSmall",
    "internal/runtime/maps.(*Map).growToTable",
    "internal/runtime/maps.(*table).grow",
    "internal/runtime/maps.(*table).rehash",
    "internal/runtime/maps.(*table).split",
];

/// Functions through which a function releases a lock as it ends: Go runs a deferred `Unlock`
/// at the closing brace (open-coded, or through `deferreturn` or a `deferwrap`), and the mutex
/// profile charges the holder there. That line says where the function ends, not where its
/// work is.
const RELEASE_FRAMES: &[&str] = &[
    "sync.(*Mutex).Unlock",
    "sync.(*RWMutex).Unlock",
    "sync.(*RWMutex).RUnlock",
    "runtime.deferreturn",
];

/// Whether `function` releases a lock (see [`RELEASE_FRAMES`]; in Rust, a guard's drop).
fn is_release(function: &str) -> bool {
    RELEASE_FRAMES.contains(&function)
        || is_go_defer_wrapper(function)
        || (function.contains("Guard") && function.contains("drop"))
}

/// Whether `function` is map growth machinery: Go's runtime, or hashbrown's rehash (by the
/// growth rules of [`crate::growth`]).
pub(super) fn is_map_growth(function: &str) -> bool {
    use crate::growth::{role, Container, Role};
    use crate::names::frame_path;
    if MAP_GROWTH_FRAMES.iter().any(|p| function.starts_with(p)) {
        return true;
    }
    function.contains("hashbrown")
        && role(&frame_path(function)) == Some(Role::Grows(Container::HashMap))
}

/// How a contention profile was sampled, from the comment mapprof writes with it
/// (`mutex_fraction: N ...`, `block_rate: N ns ...`). Go's profiles say nothing, and their
/// events are taken as sampled (Poisson); so are CPU samples.
enum ContentionSampling {
    Poisson,
    /// 1 event in N kept and counted N times.
    Fraction(f64),
    /// Waits of at least this many ns kept, shorter ones with probability wait / rate.
    Rate(f64),
}

impl ContentionSampling {
    fn of(view: &ProfileView<'_>, kind: &str) -> ContentionSampling {
        let setting = |key: &str| {
            view.profile().comment.iter().find_map(|&c| {
                let rest = view.string(c).strip_prefix(key)?;
                rest.split_whitespace().next()?.parse::<f64>().ok()
            })
        };
        match kind {
            "mutex" => {
                setting(contention::MUTEX_FRACTION_COMMENT).map_or(Self::Poisson, Self::Fraction)
            }
            "block" => setting(contention::BLOCK_RATE_COMMENT).map_or(Self::Poisson, Self::Rate),
            _ => Self::Poisson,
        }
    }

    /// A sample's variance from sampling over its Poisson one (`value² / events`), for
    /// events of `average` value each: `(1 - p) / p` for events kept with probability `p` and
    /// counted `1/p` times (the counts are already scaled), 0 where every event was recorded
    /// (a fraction of 1, waits as long as the rate), so one contention at `mutex_fraction=1` is
    /// exact.
    fn unsampled(&self, average: f64) -> f64 {
        match *self {
            Self::Poisson => 1.0,
            Self::Fraction(n) => n.max(1.0) - 1.0,
            Self::Rate(rate) => (rate / average.max(1.0) - 1.0).max(0.0),
        }
    }
}

/// Charges one profile to application functions; growth also per container and size class.
pub(super) fn charge(
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
    let contention = ContentionSampling::of(view, kind);
    let mut samples = 0;
    let mut total = 0i64;
    let mut events_total = 0.0;
    let heap_like = matches!(kind, "heap" | "allocs" | "resize");
    for sample in view.samples() {
        let value = sample.value(value_index);
        if value <= 0 {
            continue;
        }
        samples += 1;
        total = total.saturating_add(value);
        let events = sample.value(events_index).max(0) as f64;
        events_total += events;
        let Some((frame, below)) = split_at_application(&sample, &opts.filter) else {
            continue;
        };
        let below_is = |is: &dyn Fn(&str) -> bool| below.iter().any(|f| is(f.function.trim()));
        // The average allocation size: its numeric `bytes` label where it has one (mapprof's
        // and Go's heap samples), else value ÷ events. The label is exact; the quotient is not
        // when events were rounded to a whole number, as for a sample of one large allocation
        // (labelled samples, one bucket per request, are often that): 1.22 allocations of
        // 110 kB written as one of 134 kB would land a size class too high.
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
        // The variance of the value from sampling: n allocations of s bytes, each sampled with
        // probability p and counted 1/p times, have n·s²·(1-p)/p (value·s·(1-p)/p); counted
        // events (contentions, CPU samples) are Poisson, value²/events.
        let variance = if heap_like {
            let p = sample_probability(average, rate);
            value as f64 * average * (1.0 - p) / p
        } else if events > 0.0 {
            (value as f64).powi(2) / events * contention.unsampled(average)
        } else {
            0.0
        };
        let release = below.last().is_some_and(|f| is_release(f.function.trim()));
        let mut add = |role: &'static str| {
            let acc = charged
                .get_mut(role)
                .expect("an entry per role")
                .by_function
                .entry(frame.function.to_string())
                .or_default();
            acc.value = acc.value.saturating_add(value);
            acc.events += events;
            acc.variance += variance;
            acc.samples += 1;
            let at = acc
                .lines
                .entry((frame.file.to_owned(), frame.line, release))
                .or_default();
            *at = at.saturating_add(value);
        };
        match kind {
            "block" => {
                let channel = below_is(&|f| CHANNEL_FRAMES.contains(&f));
                add(if channel {
                    "channel_waiting"
                } else {
                    "lock_waiting"
                });
            }
            "cpu" => {
                add("cpu");
                if below_is(&is_map_growth) {
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
            // The size class of the sample's average size (see the module documentation).
            let class = 64 - (average as u64).leading_zeros();
            let site = sites
                .entry((frame.function.to_string(), container.to_owned()))
                .or_default();
            site.rate = rate;
            if site.element.is_none() {
                site.element = below.iter().find_map(|f| element_size(&f.function));
            }
            let slot = site.classes.entry(class).or_default();
            let size = average.round() as u64;
            slot.sizes = Some(
                slot.sizes
                    .map_or((size, size), |(lo, hi)| (lo.min(size), hi.max(size))),
            );
            slot.resizes += events;
            slot.variance += variance;
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
pub(super) fn element_size(function: &str) -> Option<u64> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
