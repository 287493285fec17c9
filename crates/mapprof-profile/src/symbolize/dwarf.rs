//! The main executable's DWARF, read in place: the file is mapped (`mmap`, file-backed pages
//! the kernel can drop, not heap), and `addr2line` parses it lazily, one compilation unit's line
//! table and functions at a time, as addresses ask for them. What it parses stays in the heap
//! until the [`DebugInfo`] is dropped, which the symbolizer does after each build
//! (`Symbolizer::release_debug_info`).
//!
//! Compressed debug sections (`SHF_COMPRESSED`, `.zdebug_*`) would have to be inflated into the
//! heap whole, which is what this module exists to avoid: they are treated as absent, and the
//! executable's functions are then named from its symbol table.

use super::symtab::{debug_file_path, Segments};
use addr2line::gimli;
use object::{Object, ObjectSection};
use std::fs::File;
use std::ops::Deref;
use std::sync::Arc;

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
    context: addr2line::Context<Reader>,
    segments: Segments,
    build_id: String,
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

    /// The GNU build id of the file, lowercase hex, or empty.
    pub(super) fn build_id(&self) -> &str {
        &self.build_id
    }

    /// The file's virtual address of the byte at `offset` in the file.
    pub(super) fn address_of(&self, offset: u64) -> Option<u64> {
        self.segments.address_of(offset)
    }

    /// The frames at `address` (an address of the file's own), innermost inlined frame first;
    /// empty when DWARF does not cover it.
    pub(super) fn frames(&self, address: u64) -> Vec<DwarfFrame> {
        let mut out = Vec::new();
        // No split DWARF (`.dwo`): what is not in the file is not looked for.
        let Ok(mut frames) = self.context.find_frames(address).skip_all_loads() else {
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
        let whole = Reader::new(bytes.clone(), endian);
        let empty = whole.range(0..0);
        let load = |id: gimli::SectionId| -> Result<Reader, String> {
            Ok(object
                .section_by_name(id.name())
                .and_then(|s| section_range(&s))
                .and_then(|(start, size)| {
                    let start = usize::try_from(start).ok()?;
                    let end = start.checked_add(usize::try_from(size).ok()?)?;
                    // A corrupt header may point past the end: such a section is absent.
                    (end <= bytes.len()).then(|| whole.range(start..end))
                })
                .unwrap_or_else(|| empty.clone()))
        };
        let dwarf = gimli::Dwarf::load(load)?;
        let context = addr2line::Context::from_dwarf(dwarf)
            .map_err(|e| format!("{}: unreadable DWARF: {e}", self.path))?;
        Ok(DebugInfo {
            context,
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
