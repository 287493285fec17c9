//! `mapprof`: top tables and flame graphs from pprof profiles (mapprof's own or Go's).
//!
//! ```text
//! mapprof top FILE [--sample-index NAME] [-n N] [--lines]
//! mapprof flame FILE -o OUT.svg [--sample-index NAME] [--title T]
//! ```
//!
//! Errors are printed as `mapprof: <message>: <cause>...` with exit code 1; a closed stdout (as
//! in `mapprof top f | head`) ends the program quietly with exit code 0.

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use mapprof_profile::view::ProfileView;
use mapprof_profile::{codec, flame, top};

/// Top tables and flame graphs from pprof profiles.
#[derive(Debug, Parser)]
#[command(name = "mapprof", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the functions with the highest flat values, like `go tool pprof -top`.
    Top {
        /// A pprof profile (.pb.gz or raw profile.proto).
        file: PathBuf,
        /// The sample type to show, e.g. alloc_space or delay [default: the profile's default].
        #[arg(long, value_name = "NAME")]
        sample_index: Option<String>,
        /// Show at most N rows.
        #[arg(short = 'n', long = "nodecount", value_name = "N")]
        max_rows: Option<usize>,
        /// One row per function and source line of the leaf frame.
        #[arg(long)]
        lines: bool,
    },
    /// Render an inferno flame graph as SVG.
    Flame {
        /// A pprof profile (.pb.gz or raw profile.proto).
        file: PathBuf,
        /// Where to write the SVG; `-` for standard output.
        #[arg(short, long, value_name = "OUT.svg")]
        output: PathBuf,
        /// The sample type to show, e.g. alloc_space or delay [default: the profile's default].
        #[arg(long, value_name = "NAME")]
        sample_index: Option<String>,
        /// The graph's title [default: "<kind> profile — <sample type> (<unit>)"].
        #[arg(long)]
        title: Option<String>,
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
            file,
            sample_index,
            max_rows,
            lines,
        } => {
            let profile = codec::read_file(&file)?;
            let view = view_of(&profile, &file)?;
            let index = sample_index_of(&view, sample_index.as_deref())?;
            let mut opts = top::TopOptions::default();
            opts.max_rows = max_rows;
            opts.lines = lines;
            let table = top::top(&view, index, &opts);
            let mut out = BufWriter::new(io::stdout().lock());
            table.render(&mut out)?;
            out.flush()?;
            Ok(())
        }
        Command::Flame {
            file,
            output,
            sample_index,
            title,
        } => {
            let profile = codec::read_file(&file)?;
            // Flame graphs keep the frames `drop_frames` would prune (container growth,
            // allocation plumbing): widths stay the same and the leaves show why memory was
            // taken. `top` prunes, like `go tool pprof -top`, so flat lands on the caller.
            let view = ProfileView::unpruned(&profile)
                .with_context(|| format!("cannot read profile {}", file.display()))?;
            let index = sample_index_of(&view, sample_index.as_deref())?;
            let mut opts = flame::FlameOptions::default();
            opts.title = title;
            // Render fully before touching the output, so a failure leaves no half-written SVG.
            let mut svg = Vec::new();
            flame::render_svg(&view, index, &opts, &mut svg)
                .context("cannot render the flame graph")?;
            write_output(&output, &svg)
        }
    }
}

fn view_of<'a>(
    profile: &'a mapprof_profile::proto::Profile,
    file: &Path,
) -> Result<ProfileView<'a>> {
    ProfileView::new(profile).with_context(|| format!("cannot read profile {}", file.display()))
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
                file,
                sample_index,
                max_rows,
                lines,
            } => {
                assert_eq!(file, PathBuf::from("heap.pb.gz"));
                assert_eq!(sample_index.as_deref(), Some("alloc_space"));
                assert_eq!(max_rows, Some(5));
                assert!(!lines);
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
                file,
                output,
                sample_index,
                title,
            } => {
                assert_eq!(file, PathBuf::from("mutex.pb.gz"));
                assert_eq!(output, PathBuf::from("out.svg"));
                assert_eq!(sample_index, None);
                assert_eq!(title.as_deref(), Some("locks"));
            }
            other => panic!("parsed as {other:?}"),
        }
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
