//! Everything mapprof does with a profile once it has left the hot path: the pprof wire format,
//! decoding (ours and Go's), symbolization, encoding, and rendering (`top` tables, inferno
//! flame graphs and differential flame graphs), the ranking of costs by the application
//! function they belong to ([`app`]), and container growth read from heap stacks ([`growth`],
//! [`resize`]). Ordinary Rust: this crate may allocate, lock and take its time; it never runs
//! inside an allocation.

pub mod app;
pub mod builder;
pub mod codec;
pub mod contention;
pub mod delta;
pub mod flame;
pub mod focus;
pub mod growth;
pub mod heap;
pub mod kinds;
pub mod limits;
pub mod mappings;
pub mod merge;
pub mod names;
pub mod offline;
#[cfg(feature = "otlp")]
pub mod otlp;
pub mod profiler_frames;
pub mod proto;
pub mod report;
pub mod resize;
pub mod symbolize;
pub mod tags;
#[doc(hidden)]
pub mod testing;
pub mod top;
pub mod view;
