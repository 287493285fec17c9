//! Everything mapprof does with a profile once it has left the hot path: the pprof wire format,
//! decoding (ours and Go's), symbolization, encoding, and rendering (`top` tables and inferno
//! flame graphs). Ordinary Rust: this crate may allocate, lock and take its time; it never runs
//! inside an allocation.

pub mod builder;
pub mod codec;
pub mod contention;
pub mod flame;
pub mod heap;
pub mod mappings;
pub mod proto;
pub mod symbolize;
pub mod top;
pub mod view;
