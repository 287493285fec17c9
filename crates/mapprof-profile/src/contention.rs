//! Mutex and block profiles, as Go's `runtime/pprof` writes them.

use crate::builder::{Header, RawSample, LOST_FRAME};
use crate::kinds;

/// One stack's contention, already unbiased by the collector.
#[derive(Clone, Debug, PartialEq)]
pub struct ContentionRecord {
    /// Return addresses, innermost first (empty for lost samples).
    pub stack: Vec<u64>,
    /// Estimated contention events.
    pub contentions: f64,
    /// Estimated delay in nanoseconds.
    pub delay_ns: f64,
    /// Events the collector could not file under their stack (table full).
    pub lost: bool,
}

/// How a mapprof mutex profile says its sampling, in a comment: `mutex_fraction: N (...)`.
pub const MUTEX_FRACTION_COMMENT: &str = "mutex_fraction: ";
/// How a mapprof block profile says its sampling, in a comment: `block_rate: N ns (...)`.
pub const BLOCK_RATE_COMMENT: &str = "block_rate: ";

/// The comment of a mutex profile sampled 1 in `fraction` events.
pub fn mutex_fraction_comment(fraction: u64) -> String {
    format!("{MUTEX_FRACTION_COMMENT}{fraction} (1 in N contention events recorded, each counted N times)")
}

/// The comment of a block profile sampled at `rate_ns`.
pub fn block_rate_comment(rate_ns: u64) -> String {
    format!("{BLOCK_RATE_COMMENT}{rate_ns} ns (shorter waits recorded with probability wait/rate)")
}

/// The header shared by mutex and block profiles: `contentions/count` and
/// `delay/nanoseconds`, period type `contentions/count`, period 1 (values are already scaled).
pub fn header() -> Header {
    Header {
        // `drop(guard)` is how Rust unlocks: charge the function that called it.
        drop_frames: Some(r"core::mem::drop(<.*>)?".to_owned()),
        // The mutex and block profiles have the same sample types.
        ..kinds::MUTEX.header(1)
    }
}

/// Turns records into samples `[contentions, delay]`.
pub fn samples(records: &[ContentionRecord]) -> Vec<RawSample> {
    records
        .iter()
        .filter(|r| r.contentions > 0.0)
        .map(|r| RawSample {
            stack: r.stack.clone(),
            synthetic: r.lost.then(|| LOST_FRAME.to_owned()),
            values: vec![r.contentions.round() as i64, r.delay_ns.round() as i64],
            labels: Vec::new(),
        })
        .collect()
}
