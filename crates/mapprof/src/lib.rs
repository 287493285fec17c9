//! mapprof: a runtime profiler for Rust services. It samples allocations through a global
//! allocator wrapper and writes Go-pprof profiles that `go tool pprof` reads unchanged.
//!
//! ```no_run
//! // In the binary, behind a cargo feature:
//! #[global_allocator]
//! static ALLOC: mapprof::Alloc = mapprof::Alloc::jemalloc();
//!
//! fn main() {
//!     // MAPPROF=heap_rate=64k,dump_dir=/tmp/prof ./service
//!     let _profiler = mapprof::start_from_env();
//!     // ... at any time:
//!     mapprof::write_profile_to_path(mapprof::ProfileKind::Heap, "/tmp/heap.pb.gz").unwrap();
//! }
//! ```
//!
//! Heap sampling runs from the first allocation at the default rate (one sample per 512 KiB on
//! average, as Go); [`Profiler`] changes the settings and dumps profiles when it stops.

mod alloc;
mod background;
mod config;
mod cpu;
mod error;
mod fork;
#[cfg(feature = "http")]
pub mod http;
mod labels;
mod memory;
mod profiler;
mod profiles;
#[cfg(feature = "push")]
pub mod push;
pub mod sync;
#[cfg(feature = "testing")]
pub mod testing;
mod threads;
#[cfg(feature = "tokio")]
pub mod tokio;

pub use alloc::Alloc;
pub use config::{
    Config, ConfigError, Origin, PushProtocol, Secret, DEFAULT_PUSH_INTERVAL, MAX_BLOCK_RATE_NS,
    MAX_HEAP_RATE, MAX_INTERVAL, MAX_MUTEX_FRACTION, MIN_INTERVAL, MIN_PUSH_INTERVAL,
    PUSHED_PROFILES,
};
pub use cpu::{cpu_profile, CpuProfiler, DEFAULT_CPU_HZ, MAX_CPU_HZ};
pub use error::Error;
#[cfg(feature = "tracing")]
pub use labels::MapprofLayer;
pub use labels::{
    current_labels, label_overflow, label_values_capped, labels, set_labels, LabelGuard, Labelled,
    Labels, WithLabels, MAX_LABEL_BYTES, MAX_LABEL_KEYS, MAX_LABEL_PAIRS, MAX_LABEL_SETS,
    MAX_LABEL_VALUES,
};
pub use mapprof_rt::stack::Unwinder;
pub use mapprof_rt::threads::{DEFAULT_ANSWER_TIMEOUT, MAX_DUMP_THREADS};
pub use memory::{self_memory, self_memory_comment, SelfMemory};
pub use profiler::{start_from_env, Profiler, ProfilerBuilder};
pub use profiles::{dump, profile, write_profile, write_profile_to_path, ProfileKind};
pub use threads::{
    dump_threads, thread_dump, thread_dump_within, DumpedThread, LockWait, ThreadDump,
    NOT_ANSWERED_FRAME,
};

/// Runs `f` without sampling the current thread's allocations; they stay the host's (same heap,
/// same arenas), e.g. a load generator sharing the process with the service it loads. The
/// profiler's own work runs differently, in a heap of its own ([`self_memory`]).
pub use mapprof_rt::thread::ignore;
