//! The profiler's own frames, and the one rule that trims them from a stack's leaf end, as Go
//! trims `runtime.mallocgc` from heap profiles: a sample is charged to the code that allocated or
//! waited, not to the hooks that recorded it. [`crate::builder::build`] applies it to every
//! profile whose [`crate::builder::Header::keep_profiler_frames`] is false (all but CPU
//! profiles, where time in the hooks is the profiler's), and so does the facade's trace line
//! before it classifies growth.

use std::sync::Arc;

use crate::growth::is_library;
use crate::symbolize::SourceFrame;

/// Whether a frame belongs to the profiler or the allocator shims around it.
pub fn is_profiler_frame(name: &str) -> bool {
    // The lock shim's guards record from their `Drop`.
    let name = name
        .strip_prefix("core::ptr::drop_in_place<")
        .unwrap_or(name);
    let name = name.strip_prefix('<').unwrap_or(name);
    const PREFIXES: [&str; 7] = [
        "mapprof_rt::",
        "mapprof::",
        "backtrace::",
        "__rustc::",
        "__rust_",
        "__rg_",
        "__rdl_",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The frames of a leaf location that are not the profiler's: those outside its outermost
/// profiler frame (the hooks and allocator shims are often inlined into the caller's address)
/// up to the first frame that is neither the profiler's nor a library's. A profiler frame
/// further out is a wrapper that runs the code (a labelled future's poll, an async lock's
/// wait inlined into the task), and the code inside it stays. `None` when the whole location
/// is the profiler's.
pub fn strip_profiler_frames(frames: Arc<[SourceFrame]>) -> Option<Arc<[SourceFrame]>> {
    let hooks_end = frames
        .iter()
        .position(|f| !is_profiler_frame(&f.name) && !is_library(&f.name))
        .unwrap_or(frames.len());
    match frames[..hooks_end]
        .iter()
        .rposition(|f| is_profiler_frame(&f.name))
    {
        Some(i) if i + 1 == frames.len() => None,
        Some(i) => Some(frames[i + 1..].into()),
        None => Some(frames),
    }
}

/// Trims a stack's leaf end, fed its locations leaf first: each location is stripped of the
/// profiler's frames, and dropped when nothing is left, until one keeps something; the
/// locations after it are kept whole.
#[derive(Debug, Clone)]
pub struct LeafTrim {
    at_leaf: bool,
}

impl LeafTrim {
    /// A trim for one stack; `trim` false keeps every frame.
    pub fn new(trim: bool) -> LeafTrim {
        LeafTrim { at_leaf: trim }
    }

    /// The next location as it stays in the stack, `None` when it is dropped. `strip` gives a
    /// location's frames that are not the profiler's (`None`: all are), called only at the leaf
    /// end.
    pub fn next<L>(&mut self, location: L, strip: impl FnOnce(L) -> Option<L>) -> Option<L> {
        if !self.at_leaf {
            return Some(location);
        }
        let rest = strip(location)?;
        self.at_leaf = false;
        Some(rest)
    }
}

/// A stack of resolved locations (each its inlined chain of frames), leaf first, with the
/// profiler's frames trimmed from its leaf end.
pub fn trim_resolved(
    stack: impl IntoIterator<Item = Arc<[SourceFrame]>>,
) -> Vec<Arc<[SourceFrame]>> {
    let mut trim = LeafTrim::new(true);
    stack
        .into_iter()
        .filter_map(|frames| trim.next(frames, strip_profiler_frames))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(names: &[&str]) -> Arc<[SourceFrame]> {
        names
            .iter()
            .map(|&name| SourceFrame {
                name: name.into(),
                system_name: name.into(),
                file: "".into(),
                line: 0,
            })
            .collect()
    }

    fn names(stack: &[Arc<[SourceFrame]>]) -> Vec<Vec<&str>> {
        stack
            .iter()
            .map(|frames| frames.iter().map(|f| &*f.name).collect())
            .collect()
    }

    #[test]
    fn only_the_leaf_end_loses_the_profilers_frames() {
        let stack = [
            frames(&["mapprof_rt::heap::sample_alloc"]),
            frames(&["__rust_alloc", "app::f"]),
            frames(&["mapprof::sync::Mutex::lock", "app::g"]),
        ];
        assert_eq!(
            names(&trim_resolved(stack)),
            [vec!["app::f"], vec!["mapprof::sync::Mutex::lock", "app::g"]]
        );
        assert!(trim_resolved([frames(&["mapprof::x"])]).is_empty());
        // Positive control: without trimming every frame stays.
        let mut keep = LeafTrim::new(false);
        let only = frames(&["mapprof::x"]);
        assert_eq!(keep.next(only.clone(), strip_profiler_frames), Some(only));
    }

    /// An async lock's wait inlined into the task that awaits it, itself polled by a
    /// labelled future inlined into the same address: only the wait's frames go. Library
    /// frames between the hooks go with them.
    #[test]
    fn a_profiler_frame_outside_the_code_it_runs_stays() {
        let chain = frames(&[
            "mapprof::tokio::wait_for::{{closure}}",
            "core::future::poll",
            "mapprof::tokio::rwlock::RwLock<T>::read::{{closure}}",
            "app::Cache::get::{{closure}}",
            "mapprof::labels::task::Labelled<F>::poll",
            "app::route::{{closure}}",
        ]);
        assert_eq!(
            names(&trim_resolved([chain])),
            [vec![
                "app::Cache::get::{{closure}}",
                "mapprof::labels::task::Labelled<F>::poll",
                "app::route::{{closure}}"
            ]]
        );
    }

    #[test]
    fn guards_and_shims_are_the_profilers() {
        for name in [
            "core::ptr::drop_in_place<mapprof::sync::MutexGuard<u8>>",
            "<mapprof::Alloc as core::alloc::global::GlobalAlloc>::alloc",
            "__rustc::__rust_alloc",
            "__rdl_alloc",
            "backtrace::backtrace::trace",
        ] {
            assert!(is_profiler_frame(name), "{name}");
        }
        assert!(!is_profiler_frame("mapprof_profile_app::f"));
        assert!(!is_profiler_frame("app::mapprof::f"));
    }
}
