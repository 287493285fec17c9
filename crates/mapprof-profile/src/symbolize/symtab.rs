//! Function names from ELF symbol tables, without DWARF.
//!
//! A shared library's frame needs its function's name, rarely its line, and a library's debug
//! file can be large (glibc's `libc6-dbg`: 38 MiB), so libraries are named from here: the
//! `.symtab` and `.dynsym` of the file, plus the `.symtab` of its separate debug file when one
//! is installed under `/usr/lib/debug/.build-id/` (where `start_thread` or
//! `__memmove_avx_unaligned_erms` live), read from the mapped file, which touches only the
//! section headers and tables. The main executable's table names the addresses its DWARF
//! does not cover, and the leaves of unsymbolized profiles (to trim the profiler's frames).

use crate::mappings;
use object::{Object, ObjectSegment, ObjectSymbol, SymbolKind};
use std::fs::File;

/// The loadable segments of an ELF file: how a file offset becomes an address in the file's
/// own address space (the one its symbols and DWARF use).
#[derive(Debug, Default)]
pub(super) struct Segments {
    /// (file offset, file size, virtual address) of each `PT_LOAD` segment.
    ranges: Vec<(u64, u64, u64)>,
}

impl Segments {
    pub(super) fn of<'d>(object: &impl Object<'d>) -> Segments {
        let ranges = object
            .segments()
            .map(|s| (s.file_range().0, s.file_range().1, s.address()))
            .collect();
        Segments { ranges }
    }

    /// The file's virtual address of the byte at `offset` in the file.
    pub(super) fn address_of(&self, offset: u64) -> Option<u64> {
        let &(file_start, _, vaddr) = self
            .ranges
            .iter()
            .find(|&&(start, size, _)| (start..start.saturating_add(size)).contains(&offset))?;
        // The values come from the file: no overflow panics on a corrupt one.
        Some(vaddr.wrapping_add(offset - file_start))
    }
}

/// A file's loadable segments and functions.
#[derive(Debug, Default)]
pub(super) struct SymbolTable {
    segments: Segments,
    /// Each function by start; `end` is the next start when the symbol has no size.
    functions: Vec<Function>,
    /// The functions' raw names, end to end: a table kept across profiles is then a few large
    /// blocks, not one small block per name (glibc has thousands) pinning pages of the heap
    /// it is kept in.
    names: String,
}

/// A function of a symbol table; its name is `names[name_at..name_at + name_len]`.
#[derive(Clone, Copy, Debug)]
struct Function {
    start: u64,
    end: u64,
    name_at: u32,
    name_len: u32,
}

impl SymbolTable {
    /// Reads the file's tables and those of its separate debug file, found by `build_id` (lowercase
    /// hex, as the mappings read it); empty when unreadable, or when the file is not the one
    /// with that build id (offline, a library may have been upgraded since).
    pub(super) fn read(path: &str, build_id: &str) -> SymbolTable {
        let mut table = SymbolTable::default();
        let (mut functions, mut names) = (Vec::new(), String::new());
        let mut same_file = true;
        with_object(path, |object| {
            let found = match object.build_id() {
                Ok(Some(id)) => id.iter().map(|b| format!("{b:02x}")).collect(),
                _ => String::new(),
            };
            same_file = build_id.is_empty() || found == build_id;
            if same_file {
                table.segments = Segments::of(object);
                add_functions(object, &mut functions, &mut names);
            }
        });
        if !same_file {
            return table;
        }
        if let Some(debug) = debug_file_path(build_id) {
            with_object(&debug, |object| {
                add_functions(object, &mut functions, &mut names)
            });
        }
        functions.sort_by_key(|f| f.start);
        functions.dedup_by_key(|f| f.start);
        // `end` holds the size until here; it becomes the start plus the size, or the next
        // start when unsized.
        for i in 0..functions.len() {
            let next = functions.get(i + 1).map_or(u64::MAX, |f| f.start);
            let f = &mut functions[i];
            f.end = if f.end > 0 {
                f.start.saturating_add(f.end)
            } else {
                next
            };
        }
        functions.shrink_to_fit();
        names.shrink_to_fit();
        table.functions = functions;
        table.names = names;
        table
    }

    /// The heap the table takes: its entries and names.
    pub(super) fn estimated_bytes(&self) -> usize {
        self.functions.capacity() * std::mem::size_of::<Function>()
            + self.names.capacity()
            + self.segments.ranges.capacity() * std::mem::size_of::<(u64, u64, u64)>()
    }

    /// The raw name of the function at `offset` in the file.
    pub(super) fn name_at(&self, offset: u64) -> Option<&str> {
        self.name_at_address(self.segments.address_of(offset)?)
    }

    /// The raw name of the function at `address`, an address of the file's own.
    pub(super) fn name_at_address(&self, address: u64) -> Option<&str> {
        let i = self
            .functions
            .partition_point(|f| f.start <= address)
            .checked_sub(1)?;
        let f = self.functions[i];
        let name = self
            .names
            .get(f.name_at as usize..f.name_at as usize + f.name_len as usize)?;
        (address < f.end).then_some(name)
    }
}

/// Where a separate debug file with this build id (lowercase hex) is installed, if anywhere.
pub(super) fn debug_file_path(build_id: &str) -> Option<String> {
    if build_id.len() <= 2 || !build_id.is_ascii() {
        return None;
    }
    let (dir, file) = build_id.split_at(2);
    Some(format!("/usr/lib/debug/.build-id/{dir}/{file}.debug"))
}

/// Runs `f` on the ELF file at `path`, memory-mapped: only the pages `f` touches are read, and
/// none of it is heap. (Through `object::ReadCache`, each symbol name was a read into the
/// cache: a third of a short run's at-exit dump, ~35 ms for a 30 MB executable.) Nothing when
/// the file cannot be opened, mapped or parsed.
/// The vDSO ([`mappings::VDSO`]) is read from this process's memory, whose vDSO it is when
/// the build ids agree (`SymbolTable::read` checks).
fn with_object(path: &str, f: impl FnOnce(&object::File<'_, &[u8]>)) {
    if path == mappings::VDSO {
        if let Some(image) = mappings::vdso_image("") {
            if let Ok(object) = object::File::parse(&image[..]) {
                f(&object);
            }
        }
        return;
    }
    let Ok(file) = File::open(path) else { return };
    // SAFETY: the mapping is read-only and private; a file truncated underneath would fault
    // on access, as with any mapped executable (the process's own is mapped the same way).
    let Ok(map) = (unsafe { memmap2::Mmap::map(&file) }) else {
        return;
    };
    if let Ok(object) = object::File::parse(&*map) {
        f(&object);
    }
}

/// Adds the defined functions of the object's symbol tables, their size in `end`, their raw
/// names to `names` (none past 4 GiB of names).
fn add_functions<'d, O: Object<'d>>(object: &O, out: &mut Vec<Function>, names: &mut String) {
    for symbol in object.symbols().chain(object.dynamic_symbols()) {
        if symbol.kind() != SymbolKind::Text || !symbol.is_definition() || symbol.address() == 0 {
            continue;
        }
        if let Ok(name) = symbol.name() {
            let (Ok(name_at), Ok(name_len)) =
                (u32::try_from(names.len()), u32::try_from(name.len()))
            else {
                return;
            };
            if !name.is_empty() && name_at.checked_add(name_len).is_some() {
                names.push_str(name);
                out.push(Function {
                    start: symbol.address(),
                    end: symbol.size(),
                    name_at,
                    name_len,
                });
            }
        }
    }
}
