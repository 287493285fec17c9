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
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::AlreadyStarted => None,
            Error::Config(e) => Some(e),
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
