//! The profile kinds, in one table (Go's `pprof.Lookup` profiles): each kind's name, what it
//! shows, its sample types, its default sample type, its period type, and where its samples
//! come from. The builders ([`crate::heap`], [`crate::contention`], [`crate::resize`],
//! mapprof's CPU profiler), dumps, the HTTP index and endpoints and deltas read it, so a kind is
//! added or changed here only.

use crate::builder::Header;
use crate::proto::Profile;
use crate::resize::resize_profile;

/// What a profile of one kind is.
#[derive(Debug)]
pub struct Spec {
    /// The name Go uses (`heap`, `allocs`, `mutex`, `block`; `profile` for CPU), also in file
    /// names and URLs; `resize` is mapprof's own.
    pub name: &'static str,
    /// One sentence for the `/debug/pprof/` index.
    pub description: &'static str,
    /// (type, unit) of each sample's values, in order.
    pub sample_types: &'static [(&'static str, &'static str)],
    /// What viewers show by default; `None`: the last sample type (pprof's rule).
    pub default_sample_type: Option<&'static str>,
    /// The sample types worth a flame graph, the default first (the index links them).
    pub shown: &'static [&'static str],
    /// (type, unit) of the sampling period.
    pub period_type: (&'static str, &'static str),
    /// Whether the profiler's own frames at a stack's leaf stay (CPU: time spent in mapprof's
    /// hooks is mapprof's, shown as such) or are trimmed (as Go trims `runtime.mallocgc`).
    pub keeps_profiler_frames: bool,
    /// Where its samples come from.
    pub source: Source,
}

/// Where a kind's samples come from.
#[derive(Debug)]
pub enum Source {
    /// The stack table, read when asked; `?seconds=N` is the delta of two readings.
    Snapshot,
    /// Another kind's profile, through `derive`; its delta is derived from the other's delta.
    Derived {
        /// The name of the kind it is made from.
        from: &'static str,
        /// How.
        derive: fn(&Profile) -> Profile,
    },
    /// Sampled over a window of seconds (`?seconds=N`, by default `default_seconds`).
    Window {
        /// Go's default for a CPU profile: 30.
        default_seconds: u64,
    },
}

const HEAP_TYPES: &[(&str, &str)] = &[
    ("alloc_objects", "count"),
    ("alloc_space", "bytes"),
    ("inuse_objects", "count"),
    ("inuse_space", "bytes"),
];
const CONTENTION_TYPES: &[(&str, &str)] = &[("contentions", "count"), ("delay", "nanoseconds")];

/// Sampled allocations, viewed as what is live.
pub const HEAP: Spec = Spec {
    name: "heap",
    description: "A sampling of memory allocations of live objects (inuse_*) and of all past \
                  ones (alloc_*).",
    sample_types: HEAP_TYPES,
    default_sample_type: None,
    shown: &[
        "inuse_space",
        "inuse_objects",
        "alloc_space",
        "alloc_objects",
    ],
    period_type: ("space", "bytes"),
    keeps_profiler_frames: false,
    source: Source::Snapshot,
};

/// The same data as [`HEAP`], viewed as all past allocations.
pub const ALLOCS: Spec = Spec {
    name: "allocs",
    description: "A sampling of all past memory allocations (the heap profile's data, \
                  alloc_space by default).",
    default_sample_type: Some("alloc_space"),
    shown: &["alloc_space", "alloc_objects"],
    ..HEAP
};

/// Lock holders, charged with the time others waited for them.
pub const MUTEX: Spec = Spec {
    name: "mutex",
    description: "Stack traces of holders of contended mapprof::sync locks, charged with the \
                  time others waited for them.",
    sample_types: CONTENTION_TYPES,
    default_sample_type: None,
    shown: &["delay", "contentions"],
    period_type: ("contentions", "count"),
    keeps_profiler_frames: false,
    source: Source::Snapshot,
};

/// Lock waiters, charged with their own wait.
pub const BLOCK: Spec = Spec {
    name: "block",
    description: "Stack traces that waited for contended mapprof::sync locks, charged with \
                  their own wait.",
    ..MUTEX
};

/// The allocations that were container growth, classified from the allocs profile's stacks.
pub const RESIZE: Spec = Spec {
    name: "resize",
    description: "Sampled allocations that were container growth (HashMap rehash, Vec or \
                  String growth, realloc), labelled container.",
    sample_types: &[("resizes", "count"), ("resize_space", "bytes")],
    default_sample_type: Some("resize_space"),
    shown: &["resize_space", "resizes"],
    period_type: ("space", "bytes"),
    keeps_profiler_frames: false,
    source: Source::Derived {
        from: ALLOCS.name,
        derive: resize_profile,
    },
};

/// CPU samples (SIGPROF) over a window.
pub const CPU: Spec = Spec {
    name: "profile",
    description: "CPU profile. You can specify the duration in the seconds GET parameter \
                  (default 30). After you get the profile file, use the go tool pprof command \
                  to investigate the profile.",
    sample_types: &[("samples", "count"), ("cpu", "nanoseconds")],
    default_sample_type: None,
    shown: &["cpu", "samples"],
    period_type: ("cpu", "nanoseconds"),
    keeps_profiler_frames: true,
    source: Source::Window {
        default_seconds: 30,
    },
};

/// Every kind, in the order of the index (by name, as Go's). Kinds are told apart by name.
pub const ALL: [&Spec; 6] = [&ALLOCS, &BLOCK, &HEAP, &MUTEX, &CPU, &RESIZE];

/// The kind named `name`.
pub fn lookup(name: &str) -> Option<&'static Spec> {
    ALL.into_iter().find(|spec| spec.name == name)
}

impl Spec {
    /// The header of a profile of this kind sampled with `period`.
    pub fn header(&self, period: i64) -> Header {
        let owned = |(t, u): (&str, &str)| (t.to_owned(), u.to_owned());
        Header {
            sample_types: self.sample_types.iter().copied().map(owned).collect(),
            period_type: owned(self.period_type),
            period,
            default_sample_type: self.default_sample_type.map(str::to_owned),
            keep_profiler_frames: self.keeps_profiler_frames,
            ..Header::default()
        }
    }

    /// Whether `name` (a sample type, or its index) names one of this kind's sample types, as
    /// `sample_index` may.
    pub fn has_sample_type(&self, name: &str) -> bool {
        self.sample_types.iter().any(|(t, _)| *t == name)
            || name
                .parse::<usize>()
                .is_ok_and(|i| i < self.sample_types.len())
    }

    /// The kind this one is made from, if it is derived.
    pub fn derived_from(&self) -> Option<&'static Spec> {
        match self.source {
            Source::Derived { from, .. } => lookup(from),
            _ => None,
        }
    }

    /// This kind's profile from `source`, a profile of [`Spec::derived_from`] (itself when not
    /// derived).
    pub fn derive(&self, source: Profile) -> Profile {
        match self.source {
            Source::Derived { derive, .. } => derive(&source),
            _ => source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::ProfileView;

    #[test]
    fn names_are_unique_and_found() {
        for spec in ALL {
            assert_eq!(lookup(spec.name).unwrap().name, spec.name);
            assert!(spec.shown.iter().all(|s| spec.has_sample_type(s)));
            if let Some(default) = spec.default_sample_type {
                assert_eq!(spec.shown[0], default, "{}", spec.name);
            }
        }
        let mut names: Vec<&str> = ALL.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(
            names.len(),
            ALL.len(),
            "names are unique: kinds are told by name"
        );
        assert!(lookup("goroutine").is_none());
    }

    /// The resize profile's sample types are what `resize_profile` writes.
    #[test]
    fn derived_kinds_write_their_sample_types() {
        let derived = RESIZE.derive(Profile::default());
        let view = ProfileView::new(&derived).unwrap();
        let types: Vec<(&str, &str)> = view
            .sample_types()
            .iter()
            .map(|t| (t.name, t.unit))
            .collect();
        assert_eq!(types, RESIZE.sample_types);
        assert_eq!(RESIZE.derived_from().map(|s| s.name), Some("allocs"));
        assert!(RESIZE.has_sample_type("resizes") && RESIZE.has_sample_type("1"));
        assert!(!RESIZE.has_sample_type("2") && !RESIZE.has_sample_type("inuse_space"));
    }
}
