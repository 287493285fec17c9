//! Configuration, from code or from the `MAPPROF` environment variable (`key=value,...`).

use mapprof_rt::lock::{DEFAULT_BLOCK_RATE_NS, DEFAULT_MUTEX_FRACTION};
use mapprof_rt::sampler::DEFAULT_HEAP_RATE;
use mapprof_rt::stack::Unwinder;
use std::fmt;
use std::path::PathBuf;

/// Every setting, with its default. Build one with [`crate::Profiler::builder`] or parse one
/// with [`Config::parse`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Mean bytes between heap samples (`heap_rate`). Default 524288 (512 KiB, as Go);
    /// 0 turns heap profiling off; 1 samples every allocation.
    pub heap_rate: u64,
    /// Record 1 in this many lock contention events for the mutex profile (`mutex_fraction`,
    /// Go's `SetMutexProfileFraction`). Default 10; 0 turns it off; 1 records every event.
    pub mutex_fraction: u64,
    /// Waits of at least this many nanoseconds are always recorded in the block profile,
    /// shorter ones with probability wait/rate (`block_rate`, Go's `SetBlockProfileRate`).
    /// Default 10000 (10 µs); 0 turns it off; 1 records every wait.
    pub block_rate: u64,
    /// Where profiles are written when the profiler stops or the process exits (`dump_dir`).
    /// Default: none (no dumps).
    pub dump_dir: Option<PathBuf>,
    /// Symbolize in process (`symbolize`). Default true. When false, profiles keep raw
    /// addresses plus the mappings (path, build id) that `go tool pprof` needs to symbolize
    /// them offline against the same binary.
    pub symbolize: bool,
    /// How stacks are captured (`unwinder`: `auto`, `fp` or `dwarf`). Default `auto`: frame
    /// pointers, DWARF where a walk finds no frames.
    pub unwinder: Unwinder,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            heap_rate: DEFAULT_HEAP_RATE,
            mutex_fraction: DEFAULT_MUTEX_FRACTION,
            block_rate: DEFAULT_BLOCK_RATE_NS,
            dump_dir: None,
            symbolize: true,
            unwinder: Unwinder::Auto,
        }
    }
}

/// The keys `MAPPROF` accepts, with what each takes.
const KEYS: &[(&str, &str)] = &[
    (
        "heap_rate",
        "a byte count: mean bytes between heap samples (0 = off, 1 = every allocation), \
         e.g. heap_rate=524288 or heap_rate=512k",
    ),
    (
        "mutex_fraction",
        "a whole number N: record 1 in N lock contention events (0 = off, 1 = all), \
         e.g. mutex_fraction=10",
    ),
    (
        "block_rate",
        "nanoseconds: always record waits at least this long, shorter ones in proportion \
         (0 = off, 1 = all), e.g. block_rate=10000",
    ),
    (
        "dump_dir",
        "a directory to write profiles into at exit, e.g. dump_dir=/tmp/prof",
    ),
    ("symbolize", "true or false"),
    ("unwinder", "auto, fp or dwarf"),
];

/// A `MAPPROF` entry that was not understood.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The entry as written.
    pub entry: String,
    /// What was wrong and what is accepted.
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MAPPROF entry `{}`: {}", self.entry, self.problem)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Applies `MAPPROF`-style settings (`key=value,key=value`) on top of `self`. Stops at the
    /// first entry it does not understand, and says which and what it accepts.
    pub fn parse(mut self, settings: &str) -> Result<Config, ConfigError> {
        for entry in settings.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            self.apply(entry)?;
        }
        Ok(self)
    }

    /// Applies the `MAPPROF` environment variable, if set, on top of `self`.
    pub fn from_env(self) -> Result<Config, ConfigError> {
        match std::env::var("MAPPROF") {
            Ok(settings) => self.parse(&settings),
            Err(std::env::VarError::NotPresent) => Ok(self),
            Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError {
                entry: "MAPPROF".into(),
                problem: "the variable is not valid UTF-8".into(),
            }),
        }
    }

    fn apply(&mut self, entry: &str) -> Result<(), ConfigError> {
        let fail = |problem: String| ConfigError {
            entry: entry.to_owned(),
            problem,
        };
        let Some((key, value)) = entry.split_once('=') else {
            return Err(fail(format!(
                "expected key=value; accepted keys: {}",
                key_list()
            )));
        };
        let (key, value) = (key.trim(), value.trim());
        let Some(&(_, accepts)) = KEYS.iter().find(|(k, _)| *k == key) else {
            return Err(fail(format!(
                "unknown key `{key}`; accepted keys: {}",
                key_list()
            )));
        };
        let bad = || fail(format!("`{key}` takes {accepts}"));
        match key {
            "heap_rate" => self.heap_rate = parse_bytes(value).ok_or_else(bad)?,
            "mutex_fraction" => self.mutex_fraction = value.parse().map_err(|_| bad())?,
            "block_rate" => self.block_rate = value.parse().map_err(|_| bad())?,
            "dump_dir" if value.is_empty() => return Err(bad()),
            "dump_dir" => self.dump_dir = Some(PathBuf::from(value)),
            "symbolize" => {
                self.symbolize = match value {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return Err(bad()),
                }
            }
            "unwinder" => {
                self.unwinder = match value {
                    "auto" => Unwinder::Auto,
                    "fp" => Unwinder::FramePointer,
                    "dwarf" => Unwinder::Dwarf,
                    _ => return Err(bad()),
                }
            }
            _ => unreachable!("every key in KEYS is handled"),
        }
        Ok(())
    }
}

fn key_list() -> String {
    KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
}

/// Parses `524288`, `512k`, `512KiB`, `1m`, `1MiB`.
fn parse_bytes(value: &str) -> Option<u64> {
    let lower = value.to_ascii_lowercase();
    let (digits, multiplier) = [
        ("kib", 1 << 10),
        ("mib", 1 << 20),
        ("k", 1 << 10),
        ("m", 1 << 20),
    ]
    .iter()
    .find_map(|(suffix, m)| lower.strip_suffix(suffix).map(|d| (d.to_owned(), *m)))
    .unwrap_or((lower, 1));
    digits.trim().parse::<u64>().ok()?.checked_mul(multiplier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_key() {
        let c = Config::default()
            .parse("heap_rate=64k, dump_dir=/tmp/p,symbolize=false,unwinder=dwarf")
            .unwrap();
        assert_eq!(c.heap_rate, 65536);
        let c = c.parse("mutex_fraction=1,block_rate=0").unwrap();
        assert_eq!((c.mutex_fraction, c.block_rate), (1, 0));
        assert_eq!(c.dump_dir, Some(PathBuf::from("/tmp/p")));
        assert!(!c.symbolize);
        assert_eq!(c.unwinder, Unwinder::Dwarf);
        assert_eq!(Config::default().parse("").unwrap(), Config::default());
        assert_eq!(Config::default().parse("heap_rate=0").unwrap().heap_rate, 0);
    }

    #[test]
    fn an_unknown_key_is_named_with_the_accepted_ones() {
        let e = Config::default()
            .parse("heap_rate=1,heap_rtae=5")
            .unwrap_err();
        assert_eq!(e.entry, "heap_rtae=5");
        let msg = e.to_string();
        assert!(msg.contains("unknown key `heap_rtae`"), "{msg}");
        assert!(
            msg.contains("heap_rate, mutex_fraction, block_rate, dump_dir, symbolize, unwinder"),
            "{msg}"
        );
    }

    #[test]
    fn a_bad_value_says_what_the_key_takes() {
        for (entry, expect) in [
            ("heap_rate=lots", "`heap_rate` takes a byte count"),
            ("heap_rate=-1", "`heap_rate` takes a byte count"),
            (
                "heap_rate=99999999999999999999",
                "`heap_rate` takes a byte count",
            ),
            ("symbolize=maybe", "`symbolize` takes true or false"),
            (
                "mutex_fraction=0.5",
                "`mutex_fraction` takes a whole number",
            ),
            ("block_rate=10us", "`block_rate` takes nanoseconds"),
            ("unwinder=frames", "`unwinder` takes auto, fp or dwarf"),
            ("dump_dir=", "`dump_dir` takes a directory"),
            ("heap_rate", "expected key=value"),
        ] {
            let e = Config::default().parse(entry).unwrap_err();
            assert!(e.to_string().contains(expect), "{entry}: {e}");
            assert!(e.to_string().contains(entry), "{entry}: {e}");
        }
    }
}
