//! `mapprof report` on profiles that Go's own runtime wrote (issue 17): a Go program
//! (`tests/go/cache_service.go`, run with `go run` into a temporary directory) whose
//! `(*Cache).Update` rebuilds a map under a mutex with a deferred `Unlock`, whose readers take
//! the same mutex, and whose workers wait for jobs on channels and in `select`.
//!
//! What must hold: channel and `select` waits are not called lock waits (and the readers'
//! waits, through `sync.(*Mutex).Lock`, are); the line cited for `(*Cache).Update` is one that
//! allocates (marked `// allocates` in the source), not the closing brace where the deferred
//! `Unlock` runs and where the mutex profile puts it; map growth in the CPU profile is reported;
//! and the advice speaks Go.

use std::process::Command;
use std::sync::OnceLock;

use mapprof_profile::codec::read_file;
use mapprof_profile::proto::Profile;
use mapprof_profile::report::{report, Finding, Report, ReportOptions};
use mapprof_profile::view::ProfileView;

const SOURCE: &str = include_str!("go/cache_service.go");
const KINDS: [&str; 4] = ["allocs", "mutex", "block", "cpu"];

/// Runs the Go program once (in a directory removed afterwards) and returns its profiles.
fn profiles() -> Vec<(String, Profile)> {
    static PROFILES: OnceLock<Vec<(String, Profile)>> = OnceLock::new();
    PROFILES
        .get_or_init(|| {
            let dir =
                std::env::temp_dir().join(format!("mapprof-go-report-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("main.go"), SOURCE).unwrap();
            let out = Command::new("go")
                .args(["run", "main.go"])
                .arg(&dir)
                .current_dir(&dir)
                .env("GO111MODULE", "off")
                .output()
                .unwrap_or_else(|e| {
                    panic!("cannot run `go` ({e}); run `make setup` to install Go")
                });
            let read = out.status.success().then(|| {
                KINDS
                    .iter()
                    .map(|kind| {
                        let name = format!("go-{kind}.pb.gz");
                        let profile = read_file(dir.join(&name)).unwrap();
                        (name, profile)
                    })
                    .collect()
            });
            let _ = std::fs::remove_dir_all(&dir);
            read.unwrap_or_else(|| {
                panic!("go run failed:\n{}", String::from_utf8_lossy(&out.stderr))
            })
        })
        .clone()
}

fn report_of(profiles: &[(String, Profile)]) -> Report {
    let inputs: Vec<_> = profiles.iter().map(|(n, p)| (n.as_str(), p)).collect();
    let mut opts = ReportOptions::default();
    opts.max_findings = 50;
    opts.min_share = 0.0;
    report(&inputs, &opts).unwrap()
}

fn finding<'r>(report: &'r Report, function: &str) -> &'r Finding {
    report
        .findings
        .iter()
        .find(|f| f.function == function)
        .unwrap_or_else(|| panic!("no finding for {function}:\n{}", report.to_text()))
}

/// The source line `line` (1-based) of the Go program.
fn source_line(line: i64) -> &'static str {
    SOURCE.lines().nth(line as usize - 1).unwrap_or("")
}

/// The lines at which `profile` has a frame of `function`, by the value at `sample_type`.
fn lines_of(profile: &Profile, sample_type: &str, function: &str) -> Vec<(i64, i64)> {
    let view = ProfileView::new(profile).unwrap();
    let index = view.sample_index_by_name(sample_type).unwrap();
    let mut lines = std::collections::BTreeMap::new();
    for s in view.samples() {
        if let Some(f) = s.frames().find(|f| f.function == function) {
            *lines.entry(f.line).or_insert(0) += s.value(index);
        }
    }
    lines.into_iter().collect()
}

#[test]
fn channel_and_select_waits_are_not_called_lock_waits() {
    let profiles = profiles();
    let report = report_of(&profiles);
    let text = report.to_text();
    // The workers blocked in `select` and on a receive: channel waits, stated as such.
    for function in ["main.waitForJobs", "main.collect"] {
        let f = finding(&report, function);
        assert!(f.lock_waiting.is_none(), "{function}: {f:#?}");
        let waited = f.channel_waiting.as_ref().expect(&text);
        assert!(waited.value > 0, "{f:#?}");
        assert!(
            f.statements
                .iter()
                .any(|s| s.starts_with("waits on channels or in `select`, not for a lock")),
            "{text}"
        );
        assert!(
            !f.statements.iter().any(|s| s.contains("waits for locks")),
            "{text}"
        );
    }
    // Positive control: the readers wait in sync.(*Mutex).Lock, and that is a lock wait.
    let get = finding(&report, "main.(*Cache).Get");
    assert!(get.lock_waiting.is_some(), "{text}");
    assert!(
        get.statements.iter().any(|s| s.contains("waits for locks")),
        "{text}"
    );
    // Lock and channel waits are parts of one block profile: together they are all of it.
    let block = &profiles[2].1;
    let view = ProfileView::new(block).unwrap();
    let total = view.total(view.sample_index_by_name("delay").unwrap());
    let parts: i64 = report
        .findings
        .iter()
        .flat_map(|f| [&f.lock_waiting, &f.channel_waiting])
        .flatten()
        .map(|c| c.value)
        .sum();
    assert!(
        parts <= total && parts * 10 >= total * 9,
        "{parts} of {total}"
    );
}

#[test]
fn the_line_cited_for_update_is_an_allocating_line() {
    let profiles = profiles();
    let report = report_of(&profiles);
    let update = finding(&report, "main.(*Cache).Update");
    assert!(update.file.ends_with("main.go"), "{update:#?}");
    assert!(
        source_line(update.line).contains("// allocates"),
        "line {} is `{}`:\n{}",
        update.line,
        source_line(update.line).trim(),
        report.to_text()
    );
    // The allocs profile's most-weighted line of Update is the one cited.
    let allocs = lines_of(&profiles[0].1, "alloc_space", "main.(*Cache).Update");
    let heaviest = allocs.iter().max_by_key(|(_, v)| *v).unwrap().0;
    assert_eq!(update.line, heaviest, "{allocs:?}");
    // What makes this a test: the mutex profile puts Update where the deferred Unlock runs,
    // a line that allocates nothing.
    let mutex = lines_of(&profiles[1].1, "delay", "main.(*Cache).Update");
    assert!(!mutex.is_empty(), "Update holds the lock the readers want");
    for (line, _) in &mutex {
        assert!(!source_line(*line).contains("// allocates"), "{mutex:?}");
    }
}

#[test]
fn map_growth_in_the_cpu_profile_is_reported_and_the_advice_speaks_go() {
    let report = report_of(&profiles());
    let text = report.to_text();
    eprintln!("{text}");
    let update = finding(&report, "main.(*Cache).Update");
    let growth = update.map_growth_cpu.as_ref().expect(&text);
    let cpu = update.cpu.as_ref().expect(&text);
    assert!(growth.value > 0 && growth.value <= cpu.value, "{update:#?}");
    assert!(
        update
            .statements
            .iter()
            .any(|s| s.starts_with("grows maps as it inserts")),
        "{text}"
    );
    let advice = update.advice.join("\n");
    assert!(advice.contains("make(map[K]V, n)"), "{text}");
    assert!(advice.contains("sync.RWMutex"), "{text}");
    for rust in ["with_capacity", "`RwLock`", "&str", "clear()"] {
        assert!(
            !report
                .findings
                .iter()
                .flat_map(|f| &f.advice)
                .any(|a| a.contains(rust)),
            "Rust advice {rust:?} for a Go program:\n{text}"
        );
    }
}
