//! Every setting at its boundary values (0, 1, the limit and either side of it, the type's
//! MAX), set in code and in `MAPPROF`: the profiler either starts and drops promptly, or is
//! refused with a message naming the setting and what it accepts, by the same rule both
//! ways. Before, `trace(Duration::ZERO)` spun a thread at 100% CPU and its drop never
//! returned, and `trace(Duration::MAX)` panicked the background thread.
#![cfg(feature = "jemalloc")]

use mapprof::{Config, Profiler, ProfilerBuilder};
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::jemalloc();

/// A builder method taking `T`.
type Setter<T> = fn(ProfilerBuilder, T) -> ProfilerBuilder;

/// A drop slower than this is a hang (what was measured is in RELIABILITY.md: milliseconds).
const HUNG: Duration = Duration::from_secs(5);

/// Starts `builder`: `Ok` and dropped, or the refusal's message.
fn try_start(builder: ProfilerBuilder) -> Result<Duration, String> {
    let profiler = builder.start().map_err(|e| e.to_string())?;
    // Let the background threads run a little first.
    std::thread::sleep(Duration::from_millis(30));
    let dropping = Instant::now();
    drop(profiler);
    Ok(dropping.elapsed())
}

/// Checks one value: `accepted` says whether it should start; `mapprof` is the same value as
/// a `MAPPROF` entry, when it can be written as one.
fn check(key: &str, builder: ProfilerBuilder, accepted: bool, mapprof: Option<&str>) {
    let label = format!("{key} ({})", mapprof.unwrap_or("in code only"));
    match try_start(builder) {
        Ok(drop_took) => {
            assert!(accepted, "{label}: started, should be refused");
            assert!(drop_took < HUNG, "{label}: the drop took {drop_took:?}");
        }
        Err(message) => {
            assert!(!accepted, "{label}: refused: {message}");
            assert!(message.contains("` set in code ("), "{label}: {message}");
            assert!(
                message.contains(&format!("`{key}` takes")),
                "{label}: {message}"
            );
        }
    }
    if let Some(entry) = mapprof {
        let parsed = Config::default().parse(entry);
        assert_eq!(
            parsed.is_ok(),
            accepted,
            "{entry}: MAPPROF and code disagree"
        );
        if let Err(e) = parsed {
            assert!(e.to_string().starts_with("MAPPROF entry `"), "{e}");
            assert!(e.to_string().contains(&format!("`{key}` takes")), "{e}");
        }
    }
}

#[test]
fn every_setting_at_its_bounds_starts_or_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let base = || Profiler::builder().dump_dir(dir.path());

    let counts: [(&str, Setter<u64>, u64); 3] = [
        (
            "heap_rate",
            ProfilerBuilder::heap_rate,
            mapprof::MAX_HEAP_RATE,
        ),
        (
            "mutex_fraction",
            ProfilerBuilder::mutex_fraction,
            mapprof::MAX_MUTEX_FRACTION,
        ),
        (
            "block_rate",
            ProfilerBuilder::block_rate,
            mapprof::MAX_BLOCK_RATE_NS,
        ),
    ];
    for (key, set, max) in counts {
        for (value, accepted) in [
            (0, true),
            (1, true),
            (max - 1, true),
            (max, true),
            (max + 1, false),
            (u64::MAX, false),
        ] {
            let entry = format!("{key}={value}");
            check(key, set(base(), value), accepted, Some(&entry));
        }
    }

    let (min, max) = (mapprof::MIN_INTERVAL, mapprof::MAX_INTERVAL);
    let intervals: [(&str, Setter<Duration>); 2] = [
        ("trace", ProfilerBuilder::trace),
        ("dump_every", ProfilerBuilder::dump_every),
    ];
    for (key, set) in intervals {
        for (value, accepted, written) in [
            (Duration::ZERO, false, None),
            (Duration::from_nanos(1), false, Some("0.000001ms")),
            (min - Duration::from_nanos(1), false, Some("9.999ms")),
            (min, true, Some("10ms")),
            (Duration::from_millis(50), true, Some("0.05")),
            (max, true, Some("10000000s")),
            (max + Duration::from_secs(1), false, Some("10000001s")),
            (Duration::MAX, false, None),
        ] {
            let entry = written.map(|w| format!("{key}={w}"));
            check(key, set(base(), value), accepted, entry.as_deref());
        }
    }

    for (hz, accepted) in [
        (0, false),
        (1, true),
        (1000, true),
        (1001, false),
        (u32::MAX, false),
    ] {
        let entry = format!("cpu_hz={hz}");
        let builder = base().http("127.0.0.1:0");
        // The builder has no `cpu_hz`: it is the HTTP endpoint's default, set through Config.
        let config = Config::default().parse(&entry);
        assert_eq!(config.is_ok(), accepted, "{entry}");
        check("cpu_hz", builder, true, None);
        let refused = mapprof::CpuProfiler::start(hz).map(|p| drop(p.finish()));
        assert_eq!(refused.is_ok(), accepted, "CpuProfiler::start({hz})");
        if let Err(e) = refused {
            assert!(e.to_string().contains("`cpu_hz` takes"), "{e}");
        }
    }

    for (signal, accepted, written) in [
        (0, false, None),
        (libc::SIGUSR1, true, Some("dump_signal=SIGUSR1")),
        (libc::SIGUSR2, true, Some("dump_signal=USR2")),
        (libc::SIGKILL, false, Some("dump_signal=SIGKILL")),
        (-1, false, None),
        (i32::MAX, false, None),
    ] {
        check("dump_signal", base().dump_signal(signal), accepted, written);
    }

    for (addr, accepted) in [
        ("127.0.0.1:0", true),
        ("127.0.0.1:65536", false),
        (":0", false),
        ("", false),
    ] {
        let entry = format!("http={addr}");
        check("http", base().http(addr), accepted, Some(&entry));
    }

    // Dumps without a directory: refused in code as in MAPPROF's documented rule.
    let e = Profiler::builder()
        .dump_every(Duration::from_secs(1))
        .start()
        .unwrap_err();
    assert!(e.to_string().contains("dumps need a directory"), "{e}");

    // The positive control: the defaults start, and the heap rate goes back to its default.
    check(
        "heap_rate",
        Profiler::builder(),
        true,
        Some("heap_rate=512k"),
    );
}
