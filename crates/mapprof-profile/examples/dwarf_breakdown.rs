//! Where the heap goes when an ELF file's DWARF is opened for symbolization: a counting
//! allocator around each step of what `addr2line::Context::from_dwarf` does, and around
//! mapprof's own index (`Symbolizer::offline` and one address).
//!
//! ```text
//! cargo run --release --example dwarf_breakdown -p mapprof-profile -- PATH
//! ```

use addr2line::gimli;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

#[path = "counting/mod.rs"]
mod counting;
use counting::{mib, Counting, LIVE, PEAK};

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f`, printing the heap it left held and its peak above the heap before it.
fn measure<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    let t = Instant::now();
    let out = f();
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let (live, peak) = (LIVE.load(Relaxed), PEAK.load(Relaxed));
    println!(
        "{what:<58} held {:+7.2} MiB  peak {:7.2} MiB  {ms:6.0} ms",
        (live as f64 - base as f64) / (1 << 20) as f64,
        mib(peak - base)
    );
    out
}

type Reader<'a> = gimli::EndianSlice<'a, gimli::RunTimeEndian>;

fn main() {
    use object::{Object, ObjectSection};
    let path = std::env::args().nth(1).expect("PATH");
    let bytes = std::fs::read(&path).expect("readable");
    let object = object::File::parse(&*bytes).expect("an ELF file");
    let endian = if object.is_little_endian() {
        gimli::RunTimeEndian::Little
    } else {
        gimli::RunTimeEndian::Big
    };
    let load = |id: gimli::SectionId| -> Result<Reader<'_>, gimli::Error> {
        let data = object
            .section_by_name(id.name())
            .and_then(|s| s.data().ok())
            .unwrap_or(&[]);
        Ok(gimli::EndianSlice::new(data, endian))
    };
    let size = |name: &str| object.section_by_name(name).map_or(0, |s| s.size());
    println!(
        "{path}: .debug_info {:.1} MiB, .debug_line {:.1} MiB, .debug_abbrev {:.2} MiB",
        mib(size(".debug_info") as usize),
        mib(size(".debug_line") as usize),
        mib(size(".debug_abbrev") as usize)
    );

    let dwarf = measure("gimli::Dwarf::load", || gimli::Dwarf::load(load).unwrap());
    let count = || {
        let mut units = dwarf.units();
        let mut n = 0;
        while let Ok(Some(_)) = units.next() {
            n += 1;
        }
        n
    };
    println!("{} units", count());
    // Every unit's gimli::Unit, each parsing its own abbreviations (no cache).
    let units = measure("every Unit, own abbreviations (kept)", || {
        let mut out = Vec::new();
        let mut headers = dwarf.units();
        while let Ok(Some(header)) = headers.next() {
            if let Ok(unit) = dwarf.unit(header) {
                out.push(unit);
            }
        }
        out
    });
    let files: usize = units
        .iter()
        .filter_map(|u| u.line_program.as_ref())
        .map(|p| p.header().file_names().len())
        .sum();
    let dirs: usize = units
        .iter()
        .filter_map(|u| u.line_program.as_ref())
        .map(|p| p.header().include_directories().len())
        .sum();
    println!("  line program headers: {files} file entries, {dirs} directories in all");
    measure("  their line program headers dropped", || {
        let mut units = units;
        for unit in &mut units {
            unit.line_program = None;
        }
        units
    });
    let mut dwarf = dwarf;
    measure("populate_abbreviations_cache(Duplicates)", || {
        dwarf.populate_abbreviations_cache(gimli::AbbreviationsCacheStrategy::Duplicates)
    });
    let units = measure("every Unit, shared abbreviations (kept)", || {
        let mut out = Vec::new();
        let mut headers = dwarf.units();
        while let Ok(Some(header)) = headers.next() {
            if let Ok(unit) = dwarf.unit(header) {
                out.push(unit);
            }
        }
        out
    });
    measure("  their line program headers dropped", || {
        let mut units = units;
        for unit in &mut units {
            unit.line_program = None;
        }
        units
    });
    measure("  the units dropped (abbreviations cache stays)", || ());
    let context = measure(
        "addr2line::Context::from_dwarf (shared abbreviations)",
        || addr2line::Context::from_dwarf(dwarf).unwrap(),
    );
    measure("  the context dropped", || drop(context));

    // mapprof's reader: addresses are file offsets (one mapping from 0).
    use mapprof_profile::{mappings, symbolize::Symbolizer};
    let (text_start, text_size) = object
        .section_by_name(".text")
        .and_then(|s| s.file_range())
        .expect("a .text section");
    let mapping = mappings::ObjectMapping {
        start: 0,
        limit: u64::MAX,
        file_offset: 0,
        path: path.clone(),
        build_id: mappings::build_id_of(&path).expect("a build id"),
    };
    let mut symbolizer = measure("mapprof: open, one address", || {
        let mut s = Symbolizer::offline(vec![mapping], &path).unwrap();
        s.resolve(text_start + text_size / 2);
        s
    });
    println!("  {:?}", symbolizer.stats());
    let step = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    measure(&format!("mapprof: every {step}th byte of .text"), || {
        for pc in (text_start..text_start + text_size).step_by(step) {
            symbolizer.resolve(pc);
        }
    });
    println!("  {:?}", symbolizer.stats());
    measure("mapprof: released (the cache stays)", || {
        symbolizer.release_debug_info()
    });
}
