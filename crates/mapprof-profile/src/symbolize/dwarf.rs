//! The main executable's DWARF, read in place: the file is mapped (`mmap`, file-backed pages
//! the kernel can drop, not heap) and parsed with gimli one compilation unit at a time, as
//! addresses ask for them.
//!
//! Opening it reads only an index (`index`): each unit's offset and address ranges, the unit's
//! header, abbreviations and line program header parsed to get them and dropped at once. An
//! address then parses the units whose ranges hold it (`unit`: their line rows, file names and
//! functions' ranges; the function it is in with its inlined calls), and, for names that
//! other units hold (`DW_FORM_ref_addr`: rustc names a function inlined from another codegen
//! unit there), those units' headers and abbreviations alone. The answers are those of
//! `addr2line` 0.27, which did this before, rule for rule.
//!
//! Why not `addr2line`: its context (`Context::from_dwarf`) parses every unit's `gimli::Unit`
//! up front and keeps it (header, abbreviations, line program header with its file tables)
//! so that references between units resolve; a context per unit cannot resolve them.
//! Measured (`examples/dwarf_breakdown.rs`, counting allocator) on the fixture's release
//! binary, 2,023 units, 14.3 MiB of `.debug_info` and 5.9 MiB of `.debug_line`: 16.1 MiB of
//! heap before the first address (13.6 MiB the context, 2.4 MiB the abbreviation tables
//! shared between units; of the units' 10.5 MiB, 8.0 MiB their line program headers); on
//! this crate's test binary (1,695 units, 7.7 MiB of `.debug_info`), 7.6 MiB. Opening it here
//! and resolving one address takes 0.41 MiB for the release binary (0.34 MiB of it the
//! index: 2,023 units and their ranges), 0.76 MiB for the test binary (the unit parsed is
//! 0.7 MiB of sections).
//!
//! What is parsed is counted by the units' section bytes (`.debug_info` and `.debug_line`)
//! and past [`PARSE_BUDGET`] all of it is dropped (the index stays); the symbolizer drops the
//! whole after each build (`Symbolizer::release_debug_info`; symbolizing continuously, all
//! but the index); and builds resolve addresses in
//! address order, so that a unit is parsed about once per build however many stacks ask.
//!
//! Compressed debug sections (`SHF_COMPRESSED`, `.zdebug_*`) would have to be inflated into the
//! heap whole, which is what this module exists to avoid: they are treated as absent, and the
//! executable's functions are then named from its symbol table.

mod index;
mod lines;
mod unit;

use super::symtab::{debug_file_path, Segments};
use index::UnitIndex;
use lines::{Lines, Location};
use object::{Object, ObjectSection};
use std::collections::hash_map::{Entry, HashMap};
use std::fs::File;
use std::ops::Deref;
use std::sync::Arc;
use unit::Functions;

/// At most this many bytes of `.debug_info` and `.debug_line` (of the units parsed) are held
/// parsed at a time: about twice as much heap (estimated by `Parsed::parsed_heap_bytes`: the
/// line rows, file names, functions' ranges, the functions parsed and the abbreviations), plus
/// the unit being read.
pub const PARSE_BUDGET: usize = 1 << 20;

/// What a unit read only for the names it holds counts toward [`PARSE_BUDGET`]: its header
/// and a share of an abbreviation table, estimated.
const REFERENCED_UNIT_BYTES: usize = 4 << 10;

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
type Unit = gimli::Unit<Reader>;

/// One inlined frame as DWARF gives it.
pub(super) struct DwarfFrame {
    /// The raw (linkage) name: mangled for Rust, plain for C. `None` when DWARF has none.
    pub(super) raw_name: Option<String>,
    pub(super) file: String,
    pub(super) line: u32,
}

/// What the DWARF holds parsed now, for the symbolizer's stats.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Parsed {
    /// Section bytes of the units parsed (and the estimate for those referenced).
    pub(super) bytes: usize,
    /// Units parsed for their lines and functions.
    pub(super) units: usize,
    /// Units read for the names they hold (header and abbreviations).
    pub(super) referenced_units: usize,
    /// Estimated heap bytes of the index and of what is parsed.
    pub(super) index_heap_bytes: usize,
    pub(super) parsed_heap_bytes: usize,
    /// Units in the index.
    pub(super) indexed_units: usize,
    /// Times the parsed state was dropped for being over [`PARSE_BUDGET`].
    pub(super) resets: u64,
}

/// An ELF file's DWARF, parsed as it is asked.
pub(super) struct DebugInfo {
    dwarf: gimli::Dwarf<Reader>,
    index: UnitIndex,
    state: State,
    resets: u64,
    segments: Segments,
    build_id: String,
}

/// The units parsed, dropped together past [`PARSE_BUDGET`].
#[derive(Default)]
struct State {
    /// By unit number in the index.
    units: HashMap<u32, ParsedUnit>,
    /// Units read for names only, by number.
    referenced: HashMap<u32, Arc<Unit>>,
    /// Abbreviation tables by `.debug_abbrev` offset: units share them.
    abbreviations: HashMap<usize, Arc<gimli::Abbreviations>>,
    bytes: usize,
}

/// A unit parsed for resolving: its `gimli::Unit` without its line program (taken into
/// `lines`), its functions and its lines, or why they could not be read.
struct ParsedUnit {
    unit: Unit,
    functions: gimli::Result<Functions>,
    lines: gimli::Result<Option<Lines>>,
}

/// Reads the units that references lead into, for names (`unit::name_attr`).
struct Refs<'a> {
    dwarf: &'a gimli::Dwarf<Reader>,
    index: &'a UnitIndex,
    units: &'a mut HashMap<u32, Arc<Unit>>,
    abbreviations: &'a mut HashMap<usize, Arc<gimli::Abbreviations>>,
    bytes: &'a mut usize,
}

impl Refs<'_> {
    /// The unit that holds the DIE at `offset`, its line program not kept.
    fn unit_at(&mut self, offset: gimli::DebugInfoOffset) -> gimli::Result<Arc<Unit>> {
        let id = self
            .index
            .unit_containing(offset.0)
            .ok_or(gimli::Error::NoEntryAtGivenOffset(offset.0 as u64))?;
        if let Some(unit) = self.units.get(&id) {
            return Ok(unit.clone());
        }
        let mut unit = read_unit(self.dwarf, self.abbreviations, self.index.offset(id))?;
        unit.line_program = None;
        let unit = Arc::new(unit);
        self.units.insert(id, unit.clone());
        *self.bytes += REFERENCED_UNIT_BYTES;
        Ok(unit)
    }
}

/// The unit at `.debug_info` offset `offset`, as gimli reads it (its line program header
/// included), its abbreviations shared through `abbreviations`.
fn read_unit(
    dwarf: &gimli::Dwarf<Reader>,
    abbreviations: &mut HashMap<usize, Arc<gimli::Abbreviations>>,
    offset: usize,
) -> gimli::Result<Unit> {
    let header = dwarf.unit_header(gimli::DebugInfoOffset(offset))?;
    let at = header.debug_abbrev_offset().0;
    let table = match abbreviations.get(&at) {
        Some(table) => table.clone(),
        None => {
            let table = Arc::new(
                dwarf
                    .debug_abbrev
                    .abbreviations(header.debug_abbrev_offset())?,
            );
            abbreviations.insert(at, table.clone());
            table
        }
    };
    gimli::Unit::new_with_abbreviations(dwarf, header, table)
}

impl ParsedUnit {
    /// Parses unit `id`'s functions' ranges and its line table; the section bytes it counts.
    fn parse(
        dwarf: &gimli::Dwarf<Reader>,
        index: &UnitIndex,
        abbreviations: &mut HashMap<usize, Arc<gimli::Abbreviations>>,
        id: u32,
    ) -> gimli::Result<(ParsedUnit, usize)> {
        let mut unit = read_unit(dwarf, abbreviations, index.offset(id))?;
        let program = unit.line_program.take();
        let mut bytes = unit.header.length_including_self();
        let unit_ref = gimli::UnitRef::new(dwarf, &unit);
        let functions = Functions::parse(unit_ref);
        let lines = match program {
            Some(program) => {
                bytes += program.header().unit_length();
                Lines::parse(unit_ref, program).map(Some)
            }
            None => Ok(None),
        };
        let parsed = ParsedUnit {
            unit,
            functions,
            lines,
        };
        Ok((parsed, bytes))
    }

    /// The frames at `probe`, innermost first: `None` when the unit has neither a function
    /// nor a line there (the next unit whose ranges hold it is asked).
    fn frames(
        &mut self,
        probe: u64,
        dwarf: &gimli::Dwarf<Reader>,
        refs: &mut Refs<'_>,
    ) -> gimli::Result<Option<Vec<DwarfFrame>>> {
        let ParsedUnit {
            unit,
            functions,
            lines,
        } = self;
        let unit_ref = gimli::UnitRef::new(dwarf, unit);
        let functions = functions.as_mut().map_err(|e| *e)?;
        let function = functions.find(probe, unit_ref, refs)?;
        let lines = lines.as_ref().map_err(|e| *e)?.as_ref();
        let location = lines.and_then(|l| l.find_location(probe));
        let Some(function) = function else {
            return Ok(location.map(|l| vec![frame(None, Some(l))]));
        };
        // Each inlined call's frame at the location inside it; the caller's at the call.
        let inlined = function.inlined_at(probe);
        let mut out = Vec::with_capacity(inlined.len() + 1);
        let mut location = location;
        for call in inlined.iter().rev() {
            out.push(frame(call.name.as_ref(), location));
            let file = match (call.call_file, lines) {
                (Some(file), Some(lines)) => lines.file(file),
                _ => None,
            };
            location = Some(Location {
                file,
                line: call.call_line,
            });
        }
        out.push(frame(function.name(), location));
        Ok(Some(out))
    }

    fn heap_bytes(&self) -> usize {
        let functions = self.functions.as_ref().map_or(0, Functions::heap_bytes);
        let lines = match &self.lines {
            Ok(Some(lines)) => lines.heap_bytes(),
            _ => 0,
        };
        size_of::<Self>() + functions + lines
    }
}

fn frame(name: Option<&Reader>, location: Option<Location<'_>>) -> DwarfFrame {
    use gimli::Reader as _;
    DwarfFrame {
        raw_name: name
            .and_then(|n| n.to_string_lossy().ok())
            .map(|n| n.into_owned()),
        file: location.and_then(|l| l.file).unwrap_or_default().to_owned(),
        line: location.map_or(0, |l| l.line),
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

    /// What is parsed now, and how many times it was dropped for being over [`PARSE_BUDGET`].
    pub(super) fn parsed(&self) -> Parsed {
        let state = &self.state;
        let referenced = state.referenced.len() * (size_of::<Unit>() + 64);
        let abbreviations: usize = state
            .abbreviations
            .values()
            .map(|a| size_of_val(&**a))
            .sum();
        Parsed {
            bytes: state.bytes,
            units: state.units.len(),
            referenced_units: state.referenced.len(),
            index_heap_bytes: self.index.heap_bytes(),
            parsed_heap_bytes: state
                .units
                .values()
                .map(ParsedUnit::heap_bytes)
                .sum::<usize>()
                + referenced
                + abbreviations,
            indexed_units: self.index.len(),
            resets: self.resets,
        }
    }

    /// Drops what is parsed, keeping the index.
    pub(super) fn drop_parsed(&mut self) {
        self.state = State::default();
    }

    /// The frames at `address` (an address of the file's own), innermost inlined frame first;
    /// empty when DWARF does not cover it.
    pub(super) fn frames(&mut self, address: u64) -> Vec<DwarfFrame> {
        let out = self.lookup(address).unwrap_or_default();
        // Past the budget with more than the unit just parsed (one unit over it alone is kept:
        // the next addresses, in address order, are likely in it): start again empty.
        if self.state.bytes > PARSE_BUDGET
            && self.state.units.len() + self.state.referenced.len() > 1
        {
            self.state = State::default();
            self.resets += 1;
        }
        out
    }

    /// The first unit whose ranges hold `probe` and that has a function or a line there
    /// answers; an error in reading it answers nothing (as `addr2line` did).
    fn lookup(&mut self, probe: u64) -> Option<Vec<DwarfFrame>> {
        let State {
            units,
            referenced,
            abbreviations,
            bytes,
        } = &mut self.state;
        for id in self.index.units_at(probe) {
            let unit = match units.entry(id) {
                Entry::Occupied(unit) => unit.into_mut(),
                Entry::Vacant(entry) => {
                    let (unit, size) =
                        ParsedUnit::parse(&self.dwarf, &self.index, abbreviations, id).ok()?;
                    *bytes += size;
                    entry.insert(unit)
                }
            };
            let mut refs = Refs {
                dwarf: &self.dwarf,
                index: &self.index,
                units: referenced,
                abbreviations,
                bytes,
            };
            // No split DWARF (`.dwo`) nor supplementary file: what is not in the file is not
            // looked for.
            if let Some(frames) = unit.frames(probe, &self.dwarf, &mut refs).ok()? {
                return Some(frames);
            }
        }
        None
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

    /// The file's DWARF sections, pointing into the mapping, and their units' index.
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
        let whole = Reader::new(bytes.clone(), endian);
        let load = |id: gimli::SectionId| -> Result<Reader, gimli::Error> {
            Ok(
                match ranges
                    .iter()
                    .find(|r: &&(gimli::SectionId, usize, usize)| r.0 == id)
                {
                    Some(&(_, start, end)) => whole.range(start..end),
                    None => whole.range(0..0),
                },
            )
        };
        let unreadable = |e: gimli::Error| format!("{}: unreadable DWARF: {e}", self.path);
        let dwarf = gimli::Dwarf::load(load).map_err(unreadable)?;
        let index = UnitIndex::read(&dwarf).map_err(unreadable)?;
        Ok(DebugInfo {
            dwarf,
            index,
            state: State::default(),
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

#[cfg(test)]
mod tests;
