//! mapprof's error type.

use crate::config::ConfigError;
use std::path::PathBuf;
use std::{fmt, io};

/// What went wrong, with the path or setting involved.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A profiler is already running in this process.
    AlreadyStarted,
    /// A setting was not understood.
    Config(ConfigError),
    /// The dump directory cannot be created or written.
    DumpDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A profile could not be written to a file.
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A profile could not be written to a caller's writer.
    Io(io::Error),
    /// A CPU profile is already being taken in this process (only one at a time).
    CpuProfileBusy,
    /// The CPU profiler could not start: `setitimer` or `sigaction` refused.
    Cpu(io::Error),
    /// A thread dump could not be taken (no real-time signal free, `/proc/self/task`
    /// unreadable).
    ThreadDump(io::Error),
    /// The `/debug/pprof` HTTP server could not start (address, bind, thread), or mapprof was
    /// built without its `http` feature.
    Http {
        /// The address asked for.
        addr: String,
        /// Why.
        source: io::Error,
    },
    /// The HTTP server was asked to listen on an address that is not loopback, without
    /// `http_public=true` (`HttpOptions::public`, `ProfilerBuilder::http_public`).
    HttpNotLoopback {
        /// The address refused.
        addr: std::net::SocketAddr,
    },
    /// Pushing profiles (`push`) cannot start: mapprof was built without the feature it
    /// needs, or its thread could not start.
    Push {
        /// The URL asked for.
        url: String,
        /// Why, and what would work.
        problem: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::AlreadyStarted => f.write_str("a mapprof profiler is already running"),
            Error::Config(e) => write!(f, "{e}"),
            Error::DumpDir { path, source } => {
                write!(f, "cannot use dump directory {}: {source}", path.display())
            }
            Error::Write { path, source } => {
                write!(f, "cannot write profile to {}: {source}", path.display())
            }
            Error::Io(source) => write!(f, "cannot write profile: {source}"),
            Error::CpuProfileBusy => f.write_str("a CPU profile is already being taken"),
            Error::Cpu(source) => write!(f, "the CPU profiler failed: {source}"),
            Error::ThreadDump(source) => write!(f, "no thread dump: {source}"),
            Error::Http { addr, source } => {
                write!(f, "cannot serve /debug/pprof on {addr}: {source}")
            }
            Error::Push { url, problem } => {
                write!(f, "cannot push profiles to {url}: {problem}")
            }
            Error::HttpNotLoopback { addr } => write!(
                f,
                "refusing to serve /debug/pprof on {addr}: not a loopback address, and profiles \
                 show code addresses, call paths and timings to whoever connects; set \
                 http_public=true (MAPPROF), ProfilerBuilder::http_public(true) or \
                 HttpOptions::public to allow it"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::AlreadyStarted
            | Error::CpuProfileBusy
            | Error::HttpNotLoopback { .. }
            | Error::Push { .. } => None,
            Error::Config(e) => Some(e),
            Error::Cpu(source) | Error::ThreadDump(source) | Error::Http { source, .. } => {
                Some(source)
            }
            Error::DumpDir { source, .. } | Error::Write { source, .. } | Error::Io(source) => {
                Some(source)
            }
        }
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(e)
    }
}
