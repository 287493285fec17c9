//! The main executable's DWARF, read in place: the file is mapped (`mmap`, file-backed pages
//! the kernel can drop, not heap), and `addr2line` parses it lazily, one compilation unit's line
//! table and functions at a time, as addresses ask for them.
//!
//! Measured on a test binary of 1,393 units (9.5 MiB of `.debug_info` and `.debug_line`,
//! `examples/symbolizer_footprint.rs`): making the context parses every unit's header,
//! abbreviations and line program header, 11.6 MiB of heap once abbreviation tables are shared
//! between units (19.9 MiB when each unit parsed its own); each unit then parsed takes about 3.6
//! bytes of heap per byte of its sections (all of them: 34 MiB more). So the parsed units are
//! counted by those section bytes and past [`PARSE_BUDGET`] the context is dropped and made
//! again, empty; the symbolizer drops it after each build (`Symbolizer::release_debug_info`);
//! and builds resolve addresses in address order, so that a unit is parsed about once per
//! build however many stacks ask for it.
//!
//! A context per unit would not parse the others at all, but rustc's units refer to each
//! other (`DW_FORM_ref_addr`: functions inlined from another codegen unit name it there), which
//! `addr2line` resolves only among the units of its own context.
//!
//! Compressed debug sections (`SHF_COMPRESSED`, `.zdebug_*`) would have to be inflated into the
//! heap whole, which is what this module exists to avoid: they are treated as absent, and the
//! executable's functions are then named from its symbol table.

use super::symtab::{debug_file_path, Segments};
use addr2line::gimli;
use object::{Object, ObjectSection};
use std::collections::HashSet;
use std::fs::File;
use std::ops::Deref;
use std::sync::Arc;

/// At most this many bytes of `.debug_info` and `.debug_line` (of the units parsed) are held
/// parsed at a time: about 3.6 MiB of heap (see the module's comment), plus the unit being
/// read.
pub const PARSE_BUDGET: usize = 1 << 20;

/// The mapped bytes of a file, shared by every section reader that points into them.
#[derive(Clone, Debug)]
struct MappedFile(Arc<memmap2::Mmap>);

impl Deref for MappedFile {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

// SAFETY: the bytes are the mapping the `Arc` owns: moving or cloning the handle moves neither
// the mapping nor its address, and it stays mapped until the last clone is dropped.
unsafe impl gimli::StableDeref for MappedFile {}
// SAFETY: as above; a clone points at the same mapping.
unsafe impl gimli::CloneStableDeref for MappedFile {}

type Reader = gimli::EndianReader<gimli::RunTimeEndian, MappedFile>;

/// One inlined frame as DWARF gives it.
pub(super) struct DwarfFrame {
    /// The raw (linkage) name: mangled for Rust, plain for C. `None` when DWARF has none.
    pub(super) raw_name: Option<String>,
    pub(super) file: String,
    pub(super) line: u32,
}

/// An ELF file's DWARF, parsed as it is asked.
pub(super) struct DebugInfo {
    /// `None` while it is being made again (and after, if that failed: no DWARF frames then).
    context: Option<addr2line::Context<Reader>>,
    /// Where the DWARF sections are, to make the context again.
    sections: Sections,
    /// The units the context has parsed (by offset) and their section bytes in total.
    parsed_units: HashSet<u64>,
    parsed_bytes: usize,
    /// Times the context was dropped for being over [`PARSE_BUDGET`].
    resets: u64,
    segments: Segments,
    build_id: String,
}

/// The DWARF sections of a mapped file: (offset, size) by section.
struct Sections {
    path: String,
    bytes: MappedFile,
    endian: gimli::RunTimeEndian,
    ranges: Vec<(gimli::SectionId, usize, usize)>,
}

impl Sections {
    /// A fresh `addr2line` context over the sections: nothing parsed but the units' ranges.
    fn context(&self) -> Result<addr2line::Context<Reader>, String> {
        let whole = Reader::new(self.bytes.clone(), self.endian);
        let load = |id: gimli::SectionId| -> Result<Reader, String> {
            Ok(match self.ranges.iter().find(|r| r.0 == id) {
                Some(&(_, start, end)) => whole.range(start..end),
                None => whole.range(0..0),
            })
        };
        let mut dwarf = gimli::Dwarf::load(load)?;
        // Units share abbreviation tables (1,393 units, 126 KiB of tables in a test binary):
        // parsed once each, not once per unit (10 MiB of heap).
        dwarf.populate_abbreviations_cache(gimli::AbbreviationsCacheStrategy::Duplicates);
        addr2line::Context::from_dwarf(dwarf)
            .map_err(|e| format!("{}: unreadable DWARF: {e}", self.path))
    }
}

impl std::fmt::Debug for DebugInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DebugInfo")
            .field("build_id", &self.build_id)
            .finish_non_exhaustive()
    }
}

impl DebugInfo {
    /// Opens the file at `path` and, when it has no DWARF of its own, its separate debug file
    /// (found by build id). Errors say which file and what is wrong with it.
    pub(super) fn open(path: &str) -> Result<DebugInfo, String> {
        let own = Mapped::open(path)?;
        if own.has_debug_info {
            return own.debug_info();
        }
        // A stripped binary: its segments and build id, the DWARF of its debug file.
        match debug_file_path(&own.build_id).map(|p| Mapped::open(&p)) {
            Some(Ok(debug)) if debug.has_debug_info && debug.build_id == own.build_id => {
                let mut info = debug.debug_info()?;
                info.segments = own.segments;
                Ok(info)
            }
            _ => Err(format!("{path} has no DWARF debug information")),
        }
    }

    /// The file's virtual address of the byte at `offset` in the file.
    pub(super) fn address_of(&self, offset: u64) -> Option<u64> {
        self.segments.address_of(offset)
    }

    /// Section bytes of the units parsed now, and how many times the parsed state was dropped
    /// for being over [`PARSE_BUDGET`].
    pub(super) fn parsed(&self) -> (usize, u64) {
        (self.parsed_bytes, self.resets)
    }

    /// The frames at `address` (an address of the file's own), innermost inlined frame first;
    /// empty when DWARF does not cover it.
    pub(super) fn frames(&mut self, address: u64) -> Vec<DwarfFrame> {
        let out = self.lookup(address);
        // Past the budget with more than the unit just parsed (one unit over it alone is kept:
        // the next addresses, in address order, are likely in it): start again empty, the
        // old context dropped first so that the two are never held at once (the units' ranges
        // are read again: tens of milliseconds).
        if self.parsed_bytes > PARSE_BUDGET && self.parsed_units.len() > 1 {
            self.context = None;
            self.context = self.sections.context().ok();
            self.parsed_units.clear();
            self.parsed_bytes = 0;
            self.resets += 1;
        }
        out
    }

    fn lookup(&mut self, address: u64) -> Vec<DwarfFrame> {
        let mut out = Vec::new();
        let Some(context) = &self.context else {
            return out;
        };
        // The unit that answers, counted the first time it is parsed.
        if let Some(unit) = context.find_dwarf_and_unit(address).skip_all_loads() {
            if self.parsed_units.insert(unit.header.offset().0 as u64) {
                let lines = unit
                    .line_program
                    .as_ref()
                    .map_or(0, |p| p.header().unit_length());
                self.parsed_bytes += unit.header.length_including_self() + lines;
            }
        }
        // No split DWARF (`.dwo`): what is not in the file is not looked for.
        let Ok(mut frames) = context.find_frames(address).skip_all_loads() else {
            return out;
        };
        while let Ok(Some(frame)) = frames.next() {
            let raw_name = frame
                .function
                .as_ref()
                .and_then(|f| f.raw_name().ok())
                .map(|name| name.into_owned());
            let (file, line) = frame.location.map_or((None, None), |l| (l.file, l.line));
            out.push(DwarfFrame {
                raw_name,
                file: file.unwrap_or_default().to_owned(),
                line: line.unwrap_or(0),
            });
        }
        out
    }
}

/// A mapped ELF file, with what is needed to decide which file's DWARF to read.
struct Mapped {
    path: String,
    bytes: MappedFile,
    segments: Segments,
    build_id: String,
    /// Whether it has an uncompressed `.debug_info` with content in the file.
    has_debug_info: bool,
}

impl Mapped {
    fn open(path: &str) -> Result<Mapped, String> {
        let file = File::open(path).map_err(|e| format!("cannot open {path}: {e}"))?;
        // SAFETY: the mapping is read-only and private; a file truncated underneath would fault
        // on access, as with any mapped executable (the process's own is mapped the same way).
        let map =
            unsafe { memmap2::Mmap::map(&file) }.map_err(|e| format!("cannot map {path}: {e}"))?;
        let bytes = MappedFile(Arc::new(map));
        let object =
            object::File::parse(&*bytes).map_err(|e| format!("{path} is not an ELF file: {e}"))?;
        let build_id = match object.build_id() {
            Ok(Some(id)) => id.iter().map(|b| format!("{b:02x}")).collect(),
            _ => String::new(),
        };
        let has_debug_info = object
            .section_by_name(".debug_info")
            .and_then(|s| section_range(&s))
            .is_some_and(|(_, size)| size > 0);
        let segments = Segments::of(&object);
        Ok(Mapped {
            path: path.to_owned(),
            bytes: bytes.clone(),
            segments,
            build_id,
            has_debug_info,
        })
    }

    /// A lazy `addr2line` context over the file's DWARF sections, pointing into the mapping.
    fn debug_info(self) -> Result<DebugInfo, String> {
        let bytes = self.bytes;
        let object = object::File::parse(&*bytes)
            .map_err(|e| format!("{} is not an ELF file: {e}", self.path))?;
        let endian = if object.is_little_endian() {
            gimli::RunTimeEndian::Little
        } else {
            gimli::RunTimeEndian::Big
        };
        let mut ranges = Vec::new();
        // Every section a `gimli::Dwarf` loads, where the file has it.
        let ids = [
            gimli::SectionId::DebugAbbrev,
            gimli::SectionId::DebugAddr,
            gimli::SectionId::DebugAranges,
            gimli::SectionId::DebugInfo,
            gimli::SectionId::DebugLine,
            gimli::SectionId::DebugLineStr,
            gimli::SectionId::DebugLoc,
            gimli::SectionId::DebugLocLists,
            gimli::SectionId::DebugMacinfo,
            gimli::SectionId::DebugMacro,
            gimli::SectionId::DebugNames,
            gimli::SectionId::DebugRanges,
            gimli::SectionId::DebugRngLists,
            gimli::SectionId::DebugStr,
            gimli::SectionId::DebugStrOffsets,
            gimli::SectionId::DebugTypes,
        ];
        for id in ids {
            let Some((start, size)) = object
                .section_by_name(id.name())
                .and_then(|s| section_range(&s))
            else {
                continue;
            };
            let start = usize::try_from(start).ok();
            let end = start.and_then(|s| s.checked_add(usize::try_from(size).ok()?));
            // A corrupt header may point past the end: such a section is absent.
            if let (Some(start), Some(end)) = (start, end) {
                if end <= bytes.len() {
                    ranges.push((id, start, end));
                }
            }
        }
        let sections = Sections {
            path: self.path,
            bytes: bytes.clone(),
            endian,
            ranges,
        };
        Ok(DebugInfo {
            context: Some(sections.context()?),
            sections,
            parsed_units: HashSet::new(),
            parsed_bytes: 0,
            resets: 0,
            segments: self.segments,
            build_id: self.build_id,
        })
    }
}

/// The (file offset, size) of a section's bytes, or `None` when it has none in the file or they
/// are compressed (see the module's comment).
fn section_range<'d>(section: &impl ObjectSection<'d>) -> Option<(u64, u64)> {
    let compressed = section.compressed_file_range().ok()?;
    if compressed.format != object::CompressionFormat::None {
        return None;
    }
    let name = section.name().unwrap_or("");
    if name.starts_with(".zdebug") {
        return None;
    }
    section.file_range()
}
