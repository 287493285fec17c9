//! Configuration, from code or from the `MAPPROF` environment variable (`key=value,...`).

use mapprof_rt::contention::{DEFAULT_BLOCK_RATE_NS, DEFAULT_MUTEX_FRACTION};
use mapprof_rt::sampler::{DEFAULT_HEAP_RATE, DEFAULT_SEED};
use mapprof_rt::stack::Unwinder;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Every setting, with its default. Build one with [`crate::Profiler::builder`] or parse one
/// with [`Config::parse`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Mean bytes between heap samples (`heap_rate`). Default 524288 (512 KiB, as Go);
    /// 0 turns heap profiling off; 1 samples every allocation.
    pub heap_rate: u64,
    /// Seeds the samplers' generators (`seed`): every thread's heap sampling steps and lock
    /// sampling draws come from a stream of this seed (the thread's own: threads are numbered
    /// in the order they first draw). Default [`DEFAULT_SEED`], fixed, so that a deterministic
    /// program samples the same allocations in every run; another seed samples others, with
    /// the same expectations, which is how the spread of the estimates can be checked.
    pub seed: u64,
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
    /// Sampling frequency of CPU profiles taken without one given, e.g. by the HTTP endpoint
    /// (`cpu_hz`, 1 to [`crate::MAX_CPU_HZ`]). Default 99 ([`crate::DEFAULT_CPU_HZ`]). CPU
    /// profiling runs only while a CPU profile is being taken.
    pub cpu_hz: u32,
    /// Print the memory trace line to stderr at this interval (`trace=1s`; see the README for
    /// its format). Default: none.
    pub trace: Option<Duration>,
    /// Dump every profile into `dump_dir` at this interval (`dump_every=60s`). Default: none.
    pub dump_every: Option<Duration>,
    /// Dump every profile, and a thread dump (`threads.<pid>.<n>.txt`), into `dump_dir` when
    /// this signal arrives (`dump_signal=SIGUSR2`; SIGUSR1 or SIGUSR2). Default: none.
    pub dump_signal: Option<i32>,
    /// Serve `/debug/pprof` on this address while the profiler runs (`http=127.0.0.1:6060`,
    /// `host:port`; port 0 picks one). Default: none (no server). Needs the `http` feature.
    pub http: Option<String>,
    /// Let `http` be an address other than loopback (`http_public=true`). Default false.
    pub http_public: bool,
    /// Push profiles to this engine every `push_every` (`push=http://pyroscope:4040`; `http`
    /// or `https`, the base URL the protocol's path is added to). Default: none. Needs the
    /// `push` feature; see [`crate::push`].
    pub push: Option<String>,
    /// The protocol of `push` (`push_protocol`): Pyroscope's `push.v1` (default) or OTLP
    /// profiles (the `otlp` feature).
    pub push_protocol: PushProtocol,
    /// The interval between pushes (`push_every=15s`, from 1 s). Default 15 s.
    pub push_every: Duration,
    /// The `service_name` of pushed profiles (`service=checkout`). Default: the executable's
    /// file name.
    pub service: Option<String>,
    /// Labels added to every pushed profile (`push_labels=env:prod;version:1.2`).
    pub push_labels: Vec<(String, String)>,
    /// The profiles pushed (`push_profiles=cpu;heap;mutex`): any of `cpu`, `heap`, `resize`,
    /// `mutex`, `block`. Default (`None`): all of them. (A default that allocates nothing:
    /// a builder is made on the host's thread, where its allocations are sampled.)
    pub push_profiles: Option<Vec<String>>,
    /// Basic authentication: the user (`push_user`), with `push_password`.
    pub push_user: Option<String>,
    /// Basic authentication: the password (`push_password`), never shown.
    pub push_password: Option<Secret>,
    /// A bearer token (`push_token`), never shown.
    pub push_token: Option<Secret>,
    /// The tenant of a multi-tenant engine, sent as `X-Scope-OrgID` (`push_tenant`).
    pub push_tenant: Option<String>,
}

/// The protocol profiles are pushed with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushProtocol {
    /// Pyroscope's `push.v1.PusherService/Push` (Connect over HTTP), which Pyroscope and
    /// Grafana Alloy's `pyroscope.receive_http` accept.
    #[default]
    Pyroscope,
    /// OTLP/HTTP profiles (`/v1development/profiles`), the OpenTelemetry Collector's.
    Otlp,
}

/// A secret setting (a password or token): compared and kept, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Keeps `value` as a secret.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the request that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

/// The profiles `push_profiles` may name, in push order.
pub const PUSHED_PROFILES: [&str; 5] = ["cpu", "heap", "resize", "mutex", "block"];
/// The shortest `push_every`: engines keep a profile per interval and instance.
pub const MIN_PUSH_INTERVAL: Duration = Duration::from_secs(1);
/// The default `push_every`, Grafana Alloy's default scrape interval.
pub const DEFAULT_PUSH_INTERVAL: Duration = Duration::from_secs(15);

impl Default for Config {
    fn default() -> Self {
        Config {
            heap_rate: DEFAULT_HEAP_RATE,
            seed: DEFAULT_SEED,
            mutex_fraction: DEFAULT_MUTEX_FRACTION,
            block_rate: DEFAULT_BLOCK_RATE_NS,
            dump_dir: None,
            symbolize: true,
            unwinder: Unwinder::Auto,
            cpu_hz: crate::DEFAULT_CPU_HZ,
            trace: None,
            dump_every: None,
            dump_signal: None,
            http: None,
            http_public: false,
            push: None,
            push_protocol: PushProtocol::Pyroscope,
            push_every: DEFAULT_PUSH_INTERVAL,
            service: None,
            push_labels: Vec::new(),
            push_profiles: None,
            push_user: None,
            push_password: None,
            push_token: None,
            push_tenant: None,
        }
    }
}

/// The shortest interval of the trace line and of periodic dumps: shorter, the profiler's
/// own work would be most of what the process does.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// The longest (about 115 days): a clock cannot always add more.
pub const MAX_INTERVAL: Duration = Duration::from_secs(10_000_000);
/// The largest `heap_rate` (1 TiB between samples, nearly off): one sample's weight in fixed
/// point (objects × `COUNT_UNIT`, about rate ÷ size) must leave a counter room to add.
pub const MAX_HEAP_RATE: u64 = 1 << 40;
/// The largest `mutex_fraction`, for the same reason (each event recorded counts N times).
pub const MAX_MUTEX_FRACTION: u64 = 1 << 32;
/// The largest `block_rate`, one hour in nanoseconds (a wait of `w` ns counts `rate ÷ w`).
pub const MAX_BLOCK_RATE_NS: u64 = 3_600_000_000_000;

/// The keys `MAPPROF` accepts, with what each takes.
const KEYS: &[(&str, &str)] = &[
    (
        "heap_rate",
        "a byte count up to 1 TiB: mean bytes between heap samples (0 = off, 1 = every \
         allocation), e.g. heap_rate=524288 or heap_rate=512k",
    ),
    (
        "seed",
        "a whole number from 0 to 18446744073709551615 that seeds the samplers \
         (default: a fixed seed, the same samples in every run), e.g. seed=42",
    ),
    (
        "mutex_fraction",
        "a whole number N up to 2^32: record 1 in N lock contention events (0 = off, \
         1 = all), e.g. mutex_fraction=10",
    ),
    (
        "block_rate",
        "nanoseconds up to an hour: always record waits at least this long, shorter ones in \
         proportion (0 = off, 1 = all), e.g. block_rate=10000",
    ),
    (
        "dump_dir",
        "a directory to write profiles into at exit, e.g. dump_dir=/tmp/prof",
    ),
    ("symbolize", "true or false"),
    ("unwinder", "auto, fp or dwarf"),
    (
        "trace",
        "an interval for the memory trace line on stderr, from 10ms to 10000000s, or off, \
         e.g. trace=1s or trace=500ms",
    ),
    (
        "dump_every",
        "an interval between dumps into dump_dir, from 10ms to 10000000s, or off, \
         e.g. dump_every=60s",
    ),
    (
        "dump_signal",
        "the signal that dumps every profile and a thread dump into dump_dir: SIGUSR1 or \
         SIGUSR2 (the others belong to the program), or off, e.g. dump_signal=SIGUSR2",
    ),
    (
        "cpu_hz",
        "a CPU profile sampling frequency in Hz from 1 to 1000, e.g. cpu_hz=99",
    ),
    (
        "http",
        "host:port to serve /debug/pprof on (loopback unless http_public=true), or off, \
         e.g. http=127.0.0.1:6060",
    ),
    (
        "http_public",
        "true or false: allow http on an address other than loopback",
    ),
    (
        "push",
        "the http:// or https:// base URL of an engine to push profiles to, without a user or \
         password (see push_user), or off, e.g. push=http://pyroscope:4040",
    ),
    (
        "push_protocol",
        "pyroscope (push.v1, the default) or otlp (OTLP/HTTP profiles)",
    ),
    (
        "push_every",
        "an interval between pushes from 1s to 10000000s, e.g. push_every=15s",
    ),
    (
        "service",
        "the service_name of pushed profiles: letters, digits and ._-/, e.g. service=checkout",
    ),
    (
        "push_labels",
        "name:value pairs separated by `;`, names of letters, digits and _ not starting with \
         __ or being service_name, values not empty, e.g. push_labels=env:prod;version:1.2",
    ),
    (
        "push_profiles",
        "profiles separated by `;` among cpu, heap, resize, mutex and block, \
         e.g. push_profiles=cpu;heap",
    ),
    (
        "push_user",
        "the user of basic authentication (with push_password)",
    ),
    (
        "push_password",
        "the password of basic authentication (with push_user)",
    ),
    ("push_token", "a bearer token (not with push_user)"),
    (
        "push_tenant",
        "the tenant sent as X-Scope-OrgID, e.g. push_tenant=team-a",
    ),
];

/// A setting refused: a `MAPPROF` entry not understood, or a value out of its range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The entry as written in `MAPPROF`, or `key=value` for a value set in code.
    pub entry: String,
    /// What was wrong and what is accepted.
    pub problem: String,
    /// Where the setting came from.
    pub origin: Origin,
}

/// Where a setting came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The `MAPPROF` environment variable (or [`Config::parse`]).
    Mapprof,
    /// The program: a [`crate::ProfilerBuilder`] call, or the `hz` of
    /// [`crate::CpuProfiler::start`].
    Code,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (entry, problem) = (&self.entry, &self.problem);
        match self.origin {
            Origin::Mapprof => write!(f, "MAPPROF entry `{entry}`: {problem}"),
            Origin::Code => {
                let call = call_setting(entry);
                write!(f, "`{entry}` set in code ({call}): {problem}")
            }
        }
    }
}

/// The call that sets the keys of `entry` (`key=value`, or keys joined by ` / `) in code.
fn call_setting(entry: &str) -> String {
    let keys = entry.split_once('=').map_or(entry, |(key, _)| key);
    let call = |key: &str| match key {
        // The builder has no `cpu_hz`: in code, only CPU profiling's own argument sets it.
        "cpu_hz" => "the `hz` of `cpu_profile` or `CpuProfiler::start`".to_owned(),
        key => format!("`ProfilerBuilder::{key}`"),
    };
    keys.split(" / ").map(call).collect::<Vec<_>>().join(" / ")
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
                origin: Origin::Mapprof,
            }),
        }
    }

    /// Checks every setting against its range, and the settings that need another (dumps
    /// need `dump_dir`): the same rules and messages as `MAPPROF`'s, for values set in code.
    /// [`crate::ProfilerBuilder::start`] refuses to start with an invalid configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_as(Origin::Code)
    }

    /// [`Self::validate`], saying that the dump triggers came from `dumps` (the values out of
    /// range can only be code's: `MAPPROF`'s are checked as they are parsed).
    pub(crate) fn validate_as(&self, dumps: Origin) -> Result<(), ConfigError> {
        for &(key, accepts) in KEYS {
            if !self.in_range(key) {
                return Err(ConfigError {
                    entry: self.entry(key),
                    problem: format!("`{key}` takes {accepts}"),
                    origin: Origin::Code,
                });
            }
        }
        if let Some(problem) = self.push_problem() {
            return Err(ConfigError {
                entry: "push_user / push_password / push_token".into(),
                problem: problem.into(),
                origin: dumps,
            });
        }
        if self.dump_dir.is_none() && (self.dump_every.is_some() || self.dump_signal.is_some()) {
            return Err(ConfigError {
                entry: "dump_every / dump_signal".into(),
                problem: "dumps need a directory: set dump_dir too, e.g. dump_dir=/tmp/prof".into(),
                origin: dumps,
            });
        }
        Ok(())
    }

    /// Whether `profile` (one of [`PUSHED_PROFILES`]) is pushed.
    #[cfg_attr(not(feature = "push"), allow(dead_code))]
    pub(crate) fn pushes(&self, profile: &str) -> bool {
        self.push_profiles
            .as_ref()
            .is_none_or(|p| p.iter().any(|p| p == profile))
    }

    /// What is wrong with the authentication settings taken together.
    fn push_problem(&self) -> Option<&'static str> {
        match (&self.push_user, &self.push_password, &self.push_token) {
            (Some(_), None, _) | (None, Some(_), _) => {
                Some("basic authentication needs both push_user and push_password")
            }
            (Some(_), Some(_), Some(_)) => {
                Some("push_token and push_user are two ways to authenticate: choose one")
            }
            _ => None,
        }
    }

    /// Whether the setting of `key` is one its key accepts (see [`KEYS`]).
    fn in_range(&self, key: &str) -> bool {
        let interval =
            |i: Option<Duration>| i.is_none_or(|i| (MIN_INTERVAL..=MAX_INTERVAL).contains(&i));
        match key {
            "heap_rate" => self.heap_rate <= MAX_HEAP_RATE,
            "mutex_fraction" => self.mutex_fraction <= MAX_MUTEX_FRACTION,
            "block_rate" => self.block_rate <= MAX_BLOCK_RATE_NS,
            "dump_dir" => self
                .dump_dir
                .as_ref()
                .is_none_or(|d| !d.as_os_str().is_empty()),
            "cpu_hz" => (1..=crate::MAX_CPU_HZ).contains(&self.cpu_hz),
            "trace" => interval(self.trace),
            "dump_every" => interval(self.dump_every),
            "dump_signal" => self
                .dump_signal
                .is_none_or(|s| s == libc::SIGUSR1 || s == libc::SIGUSR2),
            "http" => self.http.as_deref().is_none_or(is_host_port),
            "push" => self.push.as_deref().is_none_or(is_push_url),
            "push_every" => (MIN_PUSH_INTERVAL..=MAX_INTERVAL).contains(&self.push_every),
            "service" => self.service.as_deref().is_none_or(is_service_name),
            "push_labels" => self
                .push_labels
                .iter()
                .all(|(name, value)| is_label_name(name) && !value.is_empty()),
            "push_profiles" => self
                .push_profiles
                .iter()
                .flatten()
                .all(|p| PUSHED_PROFILES.contains(&p.as_str())),
            "push_user" => self.push_user.as_deref().is_none_or(|u| !u.is_empty()),
            "push_tenant" => self.push_tenant.as_deref().is_none_or(is_header_value),
            "push_token" | "push_password" => [&self.push_token, &self.push_password]
                .iter()
                .all(|s| s.as_ref().is_none_or(|s| is_header_value(s.expose()))),
            _ => true,
        }
    }

    /// The setting of `key` as `key=value`, for messages.
    fn entry(&self, key: &str) -> String {
        let off = || "off".to_owned();
        let interval = |i: Option<Duration>| i.map_or_else(off, |i| format!("{i:?}"));
        let value = match key {
            "heap_rate" => self.heap_rate.to_string(),
            "mutex_fraction" => self.mutex_fraction.to_string(),
            "block_rate" => self.block_rate.to_string(),
            "dump_dir" => self
                .dump_dir
                .as_ref()
                .map_or_else(off, |d| d.display().to_string()),
            "cpu_hz" => self.cpu_hz.to_string(),
            "trace" => interval(self.trace),
            "dump_every" => interval(self.dump_every),
            "dump_signal" => self.dump_signal.map_or_else(off, |s| s.to_string()),
            "http" => self.http.clone().unwrap_or_else(off),
            "push" => self.push.clone().unwrap_or_else(off),
            "push_protocol" => format!("{:?}", self.push_protocol).to_lowercase(),
            "push_every" => format!("{:?}", self.push_every),
            "service" => self.service.clone().unwrap_or_default(),
            "push_labels" => self
                .push_labels
                .iter()
                .map(|(n, v)| format!("{n}:{v}"))
                .collect::<Vec<_>>()
                .join(";"),
            "push_profiles" => self
                .push_profiles
                .as_ref()
                .map_or_else(|| PUSHED_PROFILES.join(";"), |p| p.join(";")),
            "push_user" => self.push_user.clone().unwrap_or_default(),
            "push_tenant" => self.push_tenant.clone().unwrap_or_default(),
            // Secrets are never written out, not even in an error message.
            "push_token" | "push_password" => "<secret>".to_owned(),
            _ => String::new(),
        };
        format!("{key}={value}")
    }

    fn apply(&mut self, entry: &str) -> Result<(), ConfigError> {
        // A secret's value is not repeated in a message, even under a misspelt key.
        let shown = match entry.split_once('=') {
            Some((key, _))
                if ["token", "password", "secret"]
                    .iter()
                    .any(|s| key.contains(s)) =>
            {
                format!("{}=<secret>", key.trim())
            }
            // A URL's user and password (refused: they belong in push_user/push_password).
            Some(("push", url)) if url.contains('@') => {
                let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
                let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
                format!("push={scheme}://<secret>@{host}")
            }
            _ => entry.to_owned(),
        };
        let fail = |problem: String| ConfigError {
            entry: shown.clone(),
            problem,
            origin: Origin::Mapprof,
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
            "seed" => self.seed = value.parse().map_err(|_| bad())?,
            "mutex_fraction" => self.mutex_fraction = value.parse().map_err(|_| bad())?,
            "block_rate" => self.block_rate = value.parse().map_err(|_| bad())?,
            "dump_dir" if value.is_empty() => return Err(bad()),
            "dump_dir" => self.dump_dir = Some(PathBuf::from(value)),
            "symbolize" => self.symbolize = parse_bool(value).ok_or_else(bad)?,
            "unwinder" => {
                self.unwinder = match value {
                    "auto" => Unwinder::Auto,
                    "fp" => Unwinder::FramePointer,
                    "dwarf" => Unwinder::Dwarf,
                    _ => return Err(bad()),
                }
            }
            "cpu_hz" => self.cpu_hz = value.parse().map_err(|_| bad())?,
            "trace" => self.trace = parse_interval(value).ok_or_else(bad)?,
            "dump_every" => self.dump_every = parse_interval(value).ok_or_else(bad)?,
            "dump_signal" => {
                self.dump_signal = match value.to_ascii_uppercase().as_str() {
                    "SIGUSR1" | "USR1" => Some(libc::SIGUSR1),
                    "SIGUSR2" | "USR2" => Some(libc::SIGUSR2),
                    "OFF" => None,
                    _ => return Err(bad()),
                }
            }
            "http" if value == "off" => self.http = None,
            "http" => self.http = Some(value.to_owned()),
            "http_public" => self.http_public = parse_bool(value).ok_or_else(bad)?,
            "push" if value == "off" => self.push = None,
            "push" => self.push = Some(value.to_owned()),
            "push_protocol" => {
                self.push_protocol = match value {
                    "pyroscope" => PushProtocol::Pyroscope,
                    "otlp" => PushProtocol::Otlp,
                    _ => return Err(bad()),
                }
            }
            "push_every" => self.push_every = parse_interval(value).flatten().ok_or_else(bad)?,
            "service" => self.service = Some(value.to_owned()),
            "push_labels" => self.push_labels = parse_pairs(value).ok_or_else(bad)?,
            "push_profiles" => {
                self.push_profiles = Some(value.split(';').map(|p| p.trim().to_owned()).collect())
            }
            "push_user" => self.push_user = Some(value.to_owned()),
            "push_password" => self.push_password = Some(Secret::new(value)),
            "push_token" => self.push_token = Some(Secret::new(value)),
            "push_tenant" => self.push_tenant = Some(value.to_owned()),
            _ => unreachable!("every key in KEYS is handled"),
        }
        // Parsed: now the range, by the rule values set in code meet too.
        if !self.in_range(key) {
            return Err(bad());
        }
        Ok(())
    }
}

/// `host:port`, the host possibly a bracketed IPv6 address; resolved at start.
fn is_host_port(value: &str) -> bool {
    value
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

/// An `http://` or `https://` URL with a host and no user or password (those go in
/// `push_user`/`push_password`, which are never printed; a URL is).
fn is_push_url(value: &str) -> bool {
    let Some(rest) = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"))
    else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    !authority.is_empty() && !authority.contains('@') && !value.contains(char::is_whitespace)
}

/// A Prometheus-style label name that is the user's to set: not reserved (`__`) and not the
/// service name (the `service` key's).
fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
        && name != "service_name"
}

fn is_service_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
}

/// What an HTTP header value can hold: visible ASCII and spaces.
fn is_header_value(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// `name:value;name:value`.
fn parse_pairs(value: &str) -> Option<Vec<(String, String)>> {
    value
        .split(';')
        .filter(|p| !p.trim().is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once(':')?;
            Some((name.trim().to_owned(), value.trim().to_owned()))
        })
        .collect()
}

fn key_list() -> String {
    KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
}

/// `true`/`1` or `false`/`0`.
fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// Parses `off` (None) or an interval: `1s`, `500ms`, `2m`, or plain seconds (its range is
/// checked apart, as for values set in code).
fn parse_interval(value: &str) -> Option<Option<Duration>> {
    if value == "off" || value == "0" {
        return Some(None);
    }
    let (number, unit) = [("ms", 1e-3), ("s", 1.0), ("m", 60.0)]
        .iter()
        .find_map(|(suffix, unit)| value.strip_suffix(suffix).map(|n| (n, *unit)))
        .unwrap_or((value, 1.0));
    let seconds = number.trim().parse::<f64>().ok()? * unit;
    Duration::try_from_secs_f64(seconds).ok().map(Some)
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

    /// What `KEYS` says is accepted spells the limits out for people; it must say what the
    /// constants, which own them, hold.
    #[test]
    fn accepted_ranges_are_the_constants() {
        let accepts = |key: &str| KEYS.iter().find(|(k, _)| *k == key).unwrap().1;
        let tib = format!("up to {} TiB", MAX_HEAP_RATE >> 40);
        assert!(MAX_HEAP_RATE.is_power_of_two() && accepts("heap_rate").contains(&tib));
        let power = format!("up to 2^{}", MAX_MUTEX_FRACTION.trailing_zeros());
        assert!(MAX_MUTEX_FRACTION.is_power_of_two());
        assert!(accepts("mutex_fraction").contains(&power));
        assert_eq!(
            Duration::from_nanos(MAX_BLOCK_RATE_NS),
            Duration::from_secs(3600)
        );
        assert!(accepts("block_rate").contains("up to an hour"));
        let interval = format!(
            "from {}ms to {}s",
            MIN_INTERVAL.as_millis(),
            MAX_INTERVAL.as_secs()
        );
        assert!(accepts("trace").contains(&interval));
        assert!(accepts("dump_every").contains(&interval));
        let hz = format!("from 1 to {}", crate::MAX_CPU_HZ);
        assert!(accepts("cpu_hz").contains(&hz));
    }

    #[test]
    fn messages_say_where_the_value_came_from() {
        let env = Config::default().parse("heap_rate=often").unwrap_err();
        assert!(
            env.to_string()
                .starts_with("MAPPROF entry `heap_rate=often`: `heap_rate` takes"),
            "{env}"
        );
        let code = Config {
            trace: Some(Duration::ZERO),
            ..Config::default()
        };
        let code = code.validate().unwrap_err();
        assert!(
            code.to_string()
                .starts_with("`trace=0ns` set in code (`ProfilerBuilder::trace`): `trace` takes"),
            "{code}"
        );
        let dumps = Config {
            dump_every: Some(Duration::from_secs(1)),
            ..Config::default()
        };
        let env = dumps.validate_as(Origin::Mapprof).unwrap_err();
        assert!(
            env.to_string()
                .starts_with("MAPPROF entry `dump_every / dump_signal`: dumps need"),
            "{env}"
        );
        let code = dumps.validate().unwrap_err();
        assert!(
            code.to_string().contains(
                "set in code (`ProfilerBuilder::dump_every` / `ProfilerBuilder::dump_signal`)"
            ),
            "{code}"
        );
    }

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
        assert_eq!(Config::default().cpu_hz, 99);
        assert_eq!(c.parse("cpu_hz=250").unwrap().cpu_hz, 250);
        assert_eq!(Config::default().parse("").unwrap(), Config::default());
        assert_eq!(Config::default().parse("heap_rate=0").unwrap().heap_rate, 0);
    }

    #[test]
    fn parses_the_seed_as_the_sampler_reads_it_at_the_first_allocation() {
        assert_eq!(Config::default().seed, DEFAULT_SEED);
        assert_eq!(Config::default().parse("seed=42").unwrap().seed, 42);
        assert_eq!(Config::default().parse("seed=0").unwrap().seed, 0);
        // mapprof_rt reads `heap_rate` and `seed` from MAPPROF before the profiler starts
        // (without allocating): it must read them as the profiler will.
        for settings in [
            "heap_rate=64k,seed=7",
            "seed = 18446744073709551615, heap_rate=1",
            "heap_rate=512KiB,heap_rate=2m",
            "dump_dir=/tmp/x,heap_rate=1MiB,seed=+3",
            "heap_rate=4096, seed=1, seed=2",
        ] {
            let config = Config::default().parse(settings).unwrap();
            let early = mapprof_rt::sampler::env_settings(settings.as_bytes());
            assert_eq!(early.heap_rate, Some(config.heap_rate), "{settings}");
            assert_eq!(
                early.seed.unwrap_or(DEFAULT_SEED),
                config.seed,
                "{settings}"
            );
        }
    }

    #[test]
    fn parses_background_intervals_and_the_dump_signal() {
        let c = Config::default()
            .parse("trace=500ms,dump_every=2m,dump_signal=SIGUSR2")
            .unwrap();
        assert_eq!(c.trace, Some(Duration::from_millis(500)));
        assert_eq!(c.dump_every, Some(Duration::from_secs(120)));
        assert_eq!(c.dump_signal, Some(libc::SIGUSR2));
        let c = c.parse("trace=off,dump_every=1.5,dump_signal=off").unwrap();
        assert_eq!((c.trace, c.dump_signal), (None, None));
        assert_eq!(c.dump_every, Some(Duration::from_millis(1500)));
        for bad in [
            "trace=1ms",
            "trace=soon",
            "dump_every=-1s",
            "dump_signal=SIGKILL",
        ] {
            let e = Config::default().parse(bad).unwrap_err();
            assert!(e.problem.contains("e.g."), "{bad}: {e}");
        }
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
            msg.contains(
                "heap_rate, seed, mutex_fraction, block_rate, dump_dir, symbolize, unwinder"
            ),
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
                "seed=-1",
                "`seed` takes a whole number from 0 to 18446744073709551615",
            ),
            ("seed=0x2a", "`seed` takes a whole number"),
            ("seed=18446744073709551616", "e.g. seed=42"),
            (
                "mutex_fraction=0.5",
                "`mutex_fraction` takes a whole number",
            ),
            ("block_rate=10us", "`block_rate` takes nanoseconds"),
            ("unwinder=frames", "`unwinder` takes auto, fp or dwarf"),
            (
                "cpu_hz=0",
                "`cpu_hz` takes a CPU profile sampling frequency",
            ),
            ("cpu_hz=1001", "from 1 to 1000"),
            ("dump_dir=", "`dump_dir` takes a directory"),
            ("heap_rate", "expected key=value"),
        ] {
            let e = Config::default().parse(entry).unwrap_err();
            assert!(e.to_string().contains(expect), "{entry}: {e}");
            assert!(e.to_string().contains(entry), "{entry}: {e}");
        }
    }

    #[test]
    fn parses_the_http_address() {
        let c = Config::default().parse("http=127.0.0.1:6060").unwrap();
        assert_eq!(c.http.as_deref(), Some("127.0.0.1:6060"));
        assert!(!c.http_public);
        let c = c.parse("http=[::1]:0,http_public=true").unwrap();
        assert_eq!((c.http.as_deref(), c.http_public), (Some("[::1]:0"), true));
        assert_eq!(c.parse("http=off").unwrap().http, None);
        for bad in [
            "http=6060",
            "http=:6060",
            "http=localhost:port",
            "http=h:70000",
        ] {
            let e = Config::default().parse(bad).unwrap_err();
            let message = e.to_string();
            assert!(message.contains("`http` takes host:port"), "{bad}: {e}");
        }
        let e = Config::default().parse("http_public=yes").unwrap_err();
        let message = e.to_string();
        assert!(message.contains("`http_public` takes true"), "{e}");
    }
}
