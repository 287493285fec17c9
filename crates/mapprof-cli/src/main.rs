//! `mapprof`: top tables, flame graphs and differential flame graphs from pprof profiles
//! (mapprof's own or Go's).
//!
//! ```text
//! mapprof top SOURCE... [--sample-index NAME] [-n N] [--lines] [--cum] [FILTERS]
//! mapprof top SOURCE... --app [--library CRATE]... [--sample-index NAME] [-n N] [FILTERS]
//! mapprof flame SOURCE... -o OUT.svg [--sample-index NAME] [--title T] [FILTERS]
//!               [--from-app[=N] [--library CRATE]...]
//! mapprof diff BASE NEW -o OUT.svg [--sample-index NAME] [--title T] [--no-normalize]
//!              [--base-label L] [--new-label L] [--from-app[=N]]
//! mapprof report FILE... [--json] [-n N] [--library CRATE]... [TAGS]
//! mapprof symbolize IN OUT --binary PATH
//! ```
//!
//! SOURCE: a profile file, or an `http(s)://` URL such as
//! `http://127.0.0.1:6060/debug/pprof/heap` (`--seconds N` asks for a window of N seconds, as
//! pprof's `-seconds`); several of one kind are merged, as `go tool pprof a b` does.
//! FILTERS: `--focus REGEX` keeps only samples with a frame whose function matches,
//! `--ignore REGEX` drops them (pprof's `-focus`/`-ignore`); `--tagfocus KEY=REGEX` keeps only
//! samples with a value of label KEY matching one of the comma-separated expressions,
//! `--tagignore KEY=REGEX` drops them; a bare REGEX must match a label read as `key:value`
//! (pprof's `-tagfocus`/`-tagignore`, see `mapprof_profile::tags`; numeric ranges are not
//! supported).
//!
//! `flame --from-app` (and `diff --from-app`) starts each stack N frames (default 2) below its
//! outermost application frame, hiding the runtime's root frames; the profile keeps them.
//!
//! `top --app` ranks *application* functions instead of leaf functions: each sample is charged
//! to its first frame, from the leaf, outside std, the async runtime and HTTP stack, Go's
//! standard library and mapprof (see `mapprof_profile::app`). `diff` draws NEW's flame graph
//! with frames red where they grew since BASE and blue where they shrank, BASE scaled to NEW's
//! total unless `--no-normalize`. `report` reads the profiles of one run (heap or allocs,
//! resize, mutex, block, cpu; a resize profile is derived from the heap profile when none is
//! given) and says which application functions to fix and how, with the figures behind each
//! statement (see `mapprof_profile::report`). `symbolize` turns a profile taken with
//! `symbolize=false` into the one the process would have written had it symbolized, from the
//! binary it was taken from (same build id), as `mapprof_profile::offline` does.
//!
//! Errors are printed as `mapprof: <message>: <cause>...` with exit code 1; a closed stdout (as
//! in `mapprof top f | head`) ends the program quietly with exit code 0.

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use mapprof_profile::focus::FrameFilter;
use mapprof_profile::proto::Profile;
use mapprof_profile::tags::{TagFilter, TagMatches};
use mapprof_profile::view::ProfileView;
use mapprof_profile::{app, codec, flame, merge, offline, report, top};

mod source;

/// `--from-app` without a number: [`flame::DEFAULT_FROM_APP_FRAMES`].
const DEFAULT_FROM_APP: &str = "2";

/// Top tables and flame graphs from pprof profiles.
#[derive(Debug, Parser)]
#[command(name = "mapprof", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Samples kept by their labels, as `go tool pprof -tagfocus/-tagignore`.
#[derive(Debug, Args)]
struct Tags {
    /// Keep only samples whose labels match: KEY=REGEX (a value of label KEY matches one of
    /// the comma-separated expressions) or a bare REGEX (every expression matches some label,
    /// read as key:value), unanchored, as pprof's -tagfocus. Numeric ranges (bytes=1kb:4kb)
    /// are not supported.
    #[arg(long = "tagfocus", id = "tagfocus", value_name = "KEY=REGEX")]
    focus: Option<String>,
    /// Drop samples whose labels match, in the same form (pprof's -tagignore), e.g.
    /// role=load-generator.
    #[arg(long = "tagignore", id = "tagignore", value_name = "KEY=REGEX")]
    ignore: Option<String>,
}

impl Tags {
    fn filter(&self) -> Result<TagFilter> {
        Ok(TagFilter::new(
            self.focus.as_deref(),
            self.ignore.as_deref(),
        )?)
    }
}

/// Says so, as pprof does, when an expression matched no sample.
fn warn_unmatched(matched: TagMatches) {
    for (option, hit) in [
        ("--tagfocus", matched.focus),
        ("--tagignore", matched.ignore),
    ] {
        if !hit {
            eprintln!("mapprof: {option} matched no samples");
        }
    }
}

/// The profiles read, and which of their samples are kept (pprof's sources and filters).
#[derive(Debug, Args)]
struct Input {
    /// Profiles (.pb.gz or raw profile.proto) or http(s):// URLs, e.g.
    /// http://127.0.0.1:6060/debug/pprof/heap; several of one kind are merged.
    #[arg(required = true, value_name = "SOURCE")]
    sources: Vec<String>,
    /// For URLs: the profile of the next N seconds (sets the URL's `seconds`, as pprof's
    /// -seconds).
    #[arg(long, value_name = "N")]
    seconds: Option<u64>,
    /// Keep only samples with a frame whose function name matches REGEX (pprof's -focus).
    #[arg(long, value_name = "REGEX")]
    focus: Option<String>,
    /// Drop samples with a frame whose function name matches REGEX (pprof's -ignore).
    #[arg(long, value_name = "REGEX")]
    ignore: Option<String>,
    #[command(flatten)]
    tags: Tags,
}

impl Input {
    /// The sources as named in messages.
    fn name(&self) -> String {
        self.sources.join(" + ")
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the functions with the highest flat values, like `go tool pprof -top`.
    Top {
        #[command(flatten)]
        input: Input,
        /// The sample type to show, e.g. alloc_space or delay [default: the profile's default].
        #[arg(long, value_name = "NAME")]
        sample_index: Option<String>,
        /// Show at most N rows.
        #[arg(short = 'n', long = "nodecount", value_name = "N")]
        max_rows: Option<usize>,
        /// One row per function and source line of the leaf frame.
        #[arg(long, conflicts_with = "app")]
        lines: bool,
        /// Rank application functions: charge each sample to its first frame outside std,
        /// runtimes, HTTP stack and mapprof, and show value, share, samples and file:line.
        #[arg(long)]
        app: bool,
        /// With --app, also treat this crate (or Go package path) as a library; `name*`
        /// matches a prefix. Repeatable.
        #[arg(long = "library", value_name = "CRATE", requires = "app")]
        libraries: Vec<String>,
        /// Sort by cumulative value (the function and everything it calls) instead of flat.
        #[arg(long, conflicts_with = "app")]
        cum: bool,
    },
    /// Render an inferno flame graph as SVG.
    Flame {
        #[command(flatten)]
        input: Input,
        /// Where to write the SVG; `-` for standard output.
        #[arg(short, long, value_name = "OUT.svg")]
        output: PathBuf,
        /// The sample type to show, e.g. alloc_space or delay [default: the profile's default].
        #[arg(long, value_name = "NAME")]
        sample_index: Option<String>,
        /// The graph's title [default: "<kind> profile — <sample type> (<unit>)"].
        #[arg(long)]
        title: Option<String>,
        /// Start each stack N frames below its outermost application frame (default 2),
        /// hiding the runtime's root frames (thread start, tokio's scheduler, hyper) so that
        /// the application is not pushed below the fold; stacks without application frames
        /// stay whole. Only the drawing changes, not the profile. Written `--from-app=N`.
        #[arg(long, value_name = "N", num_args = 0..=1, require_equals = true,
              default_missing_value = DEFAULT_FROM_APP)]
        from_app: Option<usize>,
        /// With --from-app, also treat this crate (or Go package path) as a library; `name*`
        /// matches a prefix. Repeatable.
        #[arg(long = "library", value_name = "CRATE", requires = "from_app")]
        libraries: Vec<String>,
    },
    /// Render NEW's flame graph coloured by the change from BASE: red grew, blue shrank.
    Diff {
        /// The profile to compare against (before).
        base: PathBuf,
        /// The profile to draw (after).
        new: PathBuf,
        /// Where to write the SVG; `-` for standard output.
        #[arg(short, long, value_name = "OUT.svg")]
        output: PathBuf,
        /// The sample type to compare, looked up by name in both profiles [default: NEW's
        /// default].
        #[arg(long, value_name = "NAME")]
        sample_index: Option<String>,
        /// The graph's title [default: "<kind> profile — <sample type> (<unit>): <new label>
        /// vs <base label>"].
        #[arg(long)]
        title: Option<String>,
        /// Compare values as recorded instead of scaling BASE to NEW's total.
        #[arg(long)]
        no_normalize: bool,
        /// What BASE is called in the title and subtitle.
        #[arg(long, value_name = "L", default_value = "base")]
        base_label: String,
        /// What NEW is called in the title and subtitle.
        #[arg(long, value_name = "L", default_value = "new")]
        new_label: String,
        /// Start both profiles' stacks N frames below their outermost application frame, as
        /// `flame --from-app=N` (default 2).
        #[arg(long, value_name = "N", num_args = 0..=1, require_equals = true,
              default_missing_value = DEFAULT_FROM_APP)]
        from_app: Option<usize>,
    },
    /// Say which application functions to fix and how, from the profiles of one run.
    Report {
        /// Profiles of one run: heap or allocs, resize, mutex, block, cpu (any subset).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Write the report as JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Show at most N findings.
        #[arg(short = 'n', long = "findings", value_name = "N", default_value_t = 5)]
        max_findings: usize,
        /// Also treat this crate (or Go package path) as a library, not application code;
        /// `name*` matches a prefix. Repeatable.
        #[arg(long = "library", value_name = "CRATE")]
        libraries: Vec<String>,
        #[command(flatten)]
        tags: Tags,
    },
    /// Symbolize a profile taken with symbolize=false, from the binary it was taken from.
    Symbolize {
        /// The unsymbolized profile (.pb.gz or raw profile.proto).
        input: PathBuf,
        /// Where to write the symbolized profile (.pb.gz); `-` for standard output.
        output: PathBuf,
        /// The program's executable, with its debug information; its build id must be the
        /// one the profile recorded.
        #[arg(long, value_name = "PATH")]
        binary: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("mapprof: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Top {
            input,
            sample_index,
            max_rows,
            app: true,
            libraries,
            ..
        } => {
            let profile = read_input(&input)?;
            // Unpruned: the filter skips the frames `drop_frames` names (allocator plumbing)
            // anyway, and pruning could only take frames away from the ranking.
            let view = ProfileView::unpruned(&profile)
                .with_context(|| format!("cannot read profile {}", input.name()))?;
            let index = sample_index_of(&view, sample_index.as_deref())?;
            let filter = app_filter(&libraries);
            let ranking = app::app_top(&view, index, &filter);
            let mut out = BufWriter::new(io::stdout().lock());
            ranking.render(&mut out, max_rows)?;
            out.flush()?;
            Ok(())
        }
        Command::Top {
            input,
            sample_index,
            max_rows,
            lines,
            cum,
            ..
        } => {
            let profile = read_input(&input)?;
            let view = ProfileView::new(&profile)
                .with_context(|| format!("cannot read profile {}", input.name()))?;
            let index = sample_index_of(&view, sample_index.as_deref())?;
            let mut opts = top::TopOptions::default();
            opts.max_rows = max_rows;
            opts.lines = lines;
            opts.cum = cum;
            let table = top::top(&view, index, &opts);
            let mut out = BufWriter::new(io::stdout().lock());
            table.render(&mut out)?;
            out.flush()?;
            Ok(())
        }
        Command::Report {
            files,
            json,
            max_findings,
            libraries,
            tags,
        } => {
            let tags = tags.filter()?;
            let mut matched = TagMatches::default();
            let profiles = files
                .iter()
                .map(|f| {
                    let mut profile = codec::read_file(f)?;
                    let m = tags.apply(&mut profile);
                    (matched.focus, matched.ignore) =
                        (matched.focus || m.focus, matched.ignore || m.ignore);
                    Ok(profile)
                })
                .collect::<Result<Vec<_>>>()?;
            // A label is usually in some of a run's profiles only (CPU, not heap).
            warn_unmatched(matched);
            let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
            let inputs: Vec<_> = names.iter().map(String::as_str).zip(&profiles).collect();
            let mut opts = report::ReportOptions::default();
            opts.max_findings = max_findings;
            opts.filter = app_filter(&libraries);
            let report = report::report(&inputs, &opts)?;
            let text = if json {
                serde_json::to_string_pretty(&report)? + "\n"
            } else {
                report.to_text()
            };
            let mut out = io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
            Ok(())
        }
        Command::Symbolize {
            input,
            output,
            binary,
        } => {
            let profile = codec::read_file(&input)?;
            let symbolized = offline::symbolize(&profile, &binary).with_context(|| {
                format!(
                    "cannot symbolize {} from {}",
                    input.display(),
                    binary.display()
                )
            })?;
            let mut bytes = Vec::new();
            codec::encode_gzip(&symbolized, &mut bytes)?;
            write_output(&output, &bytes)
        }
        Command::Flame {
            input,
            output,
            sample_index,
            title,
            from_app,
            libraries,
        } => {
            let profile = read_input(&input)?;
            // Flame graphs keep the frames `drop_frames` would prune (container growth,
            // allocation plumbing): widths stay the same and the leaves show why memory was
            // taken. `top` prunes, like `go tool pprof -top`, so flat lands on the caller.
            let view = ProfileView::unpruned(&profile)
                .with_context(|| format!("cannot read profile {}", input.name()))?;
            let index = sample_index_of(&view, sample_index.as_deref())?;
            let mut opts = flame::FlameOptions::default();
            opts.title = title;
            opts.from_app = from_app.map(|keep| flame::FromApp {
                keep,
                filter: app_filter(&libraries),
            });
            // Render fully before touching the output, so a failure leaves no half-written SVG.
            let mut svg = Vec::new();
            flame::render_svg(&view, index, &opts, &mut svg)
                .context("cannot render the flame graph")?;
            write_output(&output, &svg)
        }
        Command::Diff {
            base,
            new,
            output,
            sample_index,
            title,
            no_normalize,
            base_label,
            new_label,
            from_app,
        } => {
            let base_profile = codec::read_file(&base)?;
            let new_profile = codec::read_file(&new)?;
            // Unpruned, as for `flame`.
            let base_view = ProfileView::unpruned(&base_profile)
                .with_context(|| format!("cannot read profile {}", base.display()))?;
            let new_view = ProfileView::unpruned(&new_profile)
                .with_context(|| format!("cannot read profile {}", new.display()))?;
            let new_index = sample_index_of(&new_view, sample_index.as_deref())
                .with_context(|| format!("new profile {}", new.display()))?;
            // The same sample type, by name, in the base.
            let name = new_view.sample_types()[new_index].name;
            let base_index = base_view
                .sample_index_by_name(name)
                .with_context(|| format!("base profile {}", base.display()))?;
            let mut opts = flame::DiffOptions::default();
            opts.title = title;
            opts.normalize = !no_normalize;
            opts.base_label = base_label;
            opts.new_label = new_label;
            opts.from_app = from_app.map(|keep| flame::FromApp {
                keep,
                ..flame::FromApp::default()
            });
            // Render fully before touching the output, so a failure leaves no half-written SVG.
            let mut svg = Vec::new();
            flame::render_diff_svg(
                &base_view, base_index, &new_view, new_index, &opts, &mut svg,
            )
            .context("cannot render the differential flame graph")?;
            write_output(&output, &svg)
        }
    }
}

/// Reads and merges `input`'s sources, keeping the samples its filters keep.
fn read_input(input: &Input) -> Result<Profile> {
    // Checked before anything is fetched: a CPU profile may take `seconds` to come.
    let frames = FrameFilter::new(input.focus.as_deref(), input.ignore.as_deref())
        .context("bad --focus or --ignore")?;
    let tags = input.tags.filter()?;
    let profiles = input
        .sources
        .iter()
        .map(|s| Ok((s.clone(), source::read(s, input.seconds)?)))
        .collect::<Result<Vec<_>>>()?;
    let mut profile = merge::merge(profiles)?;
    warn_unmatched(tags.apply(&mut profile));
    frames.apply(&mut profile);
    Ok(profile)
}

fn sample_index_of(view: &ProfileView<'_>, name: Option<&str>) -> Result<usize> {
    match name {
        None => Ok(view.default_sample_index()),
        Some(name) => Ok(view.sample_index_by_name(name)?),
    }
}

fn write_output(path: &Path, bytes: &[u8]) -> Result<()> {
    if path == Path::new("-") {
        let mut out = io::stdout().lock();
        out.write_all(bytes)?;
        out.flush()?;
        return Ok(());
    }
    fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// The application filter with the user's `--library` crates added.
fn app_filter(libraries: &[String]) -> app::AppFilter {
    libraries
        .iter()
        .fold(app::AppFilter::default(), |f, l| f.with_library(l))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_top_with_options() {
        let cli = Cli::try_parse_from([
            "mapprof",
            "top",
            "heap.pb.gz",
            "--sample-index",
            "alloc_space",
            "-n",
            "5",
        ])
        .unwrap();
        match cli.command {
            Command::Top {
                input,
                sample_index,
                max_rows,
                lines,
                app,
                libraries,
                cum,
            } => {
                assert!(input.tags.focus.is_none() && input.tags.ignore.is_none());
                assert_eq!(input.sources, ["heap.pb.gz"]);
                assert!(input.focus.is_none() && input.ignore.is_none() && !cum);
                assert_eq!(sample_index.as_deref(), Some("alloc_space"));
                assert_eq!(max_rows, Some(5));
                assert!(!lines && !app && libraries.is_empty());
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn parses_flame_with_output_and_title() {
        let cli = Cli::try_parse_from([
            "mapprof",
            "flame",
            "mutex.pb.gz",
            "-o",
            "out.svg",
            "--title",
            "locks",
        ])
        .unwrap();
        match cli.command {
            Command::Flame {
                input,
                output,
                sample_index,
                title,
                from_app,
                ..
            } => {
                assert_eq!(from_app, None);
                assert_eq!(input.sources, ["mutex.pb.gz"]);
                assert_eq!(output, PathBuf::from("out.svg"));
                assert_eq!(sample_index, None);
                assert_eq!(title.as_deref(), Some("locks"));
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn parses_top_with_pprof_options_and_several_sources() {
        let cli = Cli::try_parse_from([
            "mapprof",
            "top",
            "a.pb.gz",
            "http://127.0.0.1:6060/debug/pprof/heap",
            "--cum",
            "--focus",
            "Cache::",
            "--ignore",
            "^std::",
            "--seconds",
            "5",
        ])
        .unwrap();
        match cli.command {
            Command::Top { input, cum, .. } => {
                assert!(cum);
                assert_eq!(input.sources.len(), 2);
                assert_eq!(input.focus.as_deref(), Some("Cache::"));
                assert_eq!(input.ignore.as_deref(), Some("^std::"));
                assert_eq!(input.seconds, Some(5));
            }
            other => panic!("parsed as {other:?}"),
        }
        let err = Cli::try_parse_from(["mapprof", "top", "x.pb.gz", "--app", "--cum"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
        let err = Cli::try_parse_from(["mapprof", "top"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn parses_top_app_with_libraries() {
        let cli = Cli::try_parse_from([
            "mapprof",
            "top",
            "heap.pb.gz",
            "--app",
            "--library",
            "serde",
            "--library",
            "rayon*",
        ])
        .unwrap();
        match cli.command {
            Command::Top { app, libraries, .. } => {
                assert!(app);
                assert_eq!(libraries, ["serde", "rayon*"]);
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn library_requires_app_and_app_excludes_lines() {
        let err =
            Cli::try_parse_from(["mapprof", "top", "x.pb.gz", "--library", "serde"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        let err =
            Cli::try_parse_from(["mapprof", "top", "x.pb.gz", "--app", "--lines"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn parses_diff_with_defaults_and_options() {
        let cli =
            Cli::try_parse_from(["mapprof", "diff", "a.pb.gz", "b.pb.gz", "-o", "d.svg"]).unwrap();
        match cli.command {
            Command::Diff {
                base,
                new,
                output,
                sample_index,
                title,
                no_normalize,
                base_label,
                new_label,
                from_app,
            } => {
                assert_eq!(from_app, None);
                assert_eq!((base, new), ("a.pb.gz".into(), "b.pb.gz".into()));
                assert_eq!(output, PathBuf::from("d.svg"));
                assert_eq!((sample_index, title), (None, None));
                assert!(!no_normalize);
                assert_eq!((base_label.as_str(), new_label.as_str()), ("base", "new"));
            }
            other => panic!("parsed as {other:?}"),
        }
        let cli = Cli::try_parse_from([
            "mapprof",
            "diff",
            "a.pb.gz",
            "b.pb.gz",
            "-o",
            "d.svg",
            "--no-normalize",
            "--base-label",
            "v1",
            "--new-label",
            "v2",
            "--sample-index",
            "delay",
            "--from-app",
        ])
        .unwrap();
        match cli.command {
            Command::Diff {
                no_normalize,
                base_label,
                new_label,
                sample_index,
                from_app,
                ..
            } => {
                assert_eq!(from_app, Some(flame::DEFAULT_FROM_APP_FRAMES));
                assert!(no_normalize);
                assert_eq!((base_label.as_str(), new_label.as_str()), ("v1", "v2"));
                assert_eq!(sample_index.as_deref(), Some("delay"));
            }
            other => panic!("parsed as {other:?}"),
        }
        let err = Cli::try_parse_from(["mapprof", "diff", "a.pb.gz", "-o", "d.svg"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn from_app_takes_an_optional_frame_count_and_libraries() {
        let from_app = |args: &[&str]| {
            let cli = Cli::try_parse_from(
                ["mapprof", "flame", "cpu.pb.gz", "-o", "x.svg"]
                    .iter()
                    .chain(args),
            )
            .unwrap();
            match cli.command {
                Command::Flame {
                    from_app,
                    libraries,
                    ..
                } => (from_app, libraries),
                other => panic!("parsed as {other:?}"),
            }
        };
        assert_eq!(
            from_app(&["--from-app"]).0,
            Some(flame::DEFAULT_FROM_APP_FRAMES)
        );
        assert_eq!(from_app(&["--from-app=5"]).0, Some(5));
        assert_eq!(
            from_app(&["--from-app", "--library", "serde"]),
            (Some(2), vec!["serde".to_owned()])
        );
        let err = Cli::try_parse_from([
            "mapprof",
            "flame",
            "x.pb.gz",
            "-o",
            "x.svg",
            "--library",
            "serde",
        ])
        .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn flame_requires_an_output() {
        let err = Cli::try_parse_from(["mapprof", "flame", "x.pb.gz"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn rejects_a_non_numeric_row_count() {
        let err = Cli::try_parse_from(["mapprof", "top", "x.pb.gz", "-n", "many"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
    }
}
