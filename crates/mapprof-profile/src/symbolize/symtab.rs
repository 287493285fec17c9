//! Function names of shared libraries from their ELF symbol tables, without their DWARF.
//!
//! The `backtrace` crate symbolizes through DWARF, and loads a file's debug information whole on
//! first use: for glibc with Debian's `libc6-dbg` (which valgrind pulls in) that is a 38 MiB
//! decompression and parse, more than the rest of a scrape. A library frame needs its function's
//! name, rarely its line, so libraries are read here instead: the `.symtab` and `.dynsym` of the
//! file, plus the `.symtab` of its separate debug file when one is installed under
//! `/usr/lib/debug/.build-id/` (where `start_thread` or `__memmove_avx_unaligned_erms` live),
//! through `object`'s read cache, which reads only the section headers and tables.

use crate::mappings::{self, ObjectMapping};
use object::{Object, ObjectSegment, ObjectSymbol, SymbolKind};
use std::collections::HashMap;
use std::fs::File;

/// The process's library mappings and their symbol tables, read as addresses ask for them.
#[derive(Debug, Default)]
pub(super) struct Libraries {
    /// Executable file mappings, the main executable first; read on first use, again when an
    /// address falls outside all of them (a library loaded since).
    mappings: Vec<ObjectMapping>,
    tables: HashMap<String, SymbolTable>,
}

/// What [`Libraries::lookup`] found for an address.
pub(super) enum Lookup {
    /// The address is in a library: its function's raw symbol, if the tables cover it.
    Library(Option<String>),
    /// The address is in the main executable, or in no file (the vDSO): not for this module.
    Elsewhere,
}

impl Libraries {
    pub(super) fn lookup(&mut self, pc: u64) -> Lookup {
        let find = |mappings: &[ObjectMapping]| {
            mappings
                .iter()
                .position(|m| (m.start..m.limit).contains(&pc))
        };
        let at = find(&self.mappings).or_else(|| {
            self.mappings = mappings::current();
            find(&self.mappings)
        });
        // `mappings::current` puts the main executable first.
        let Some(i @ 1..) = at else {
            return Lookup::Elsewhere;
        };
        let m = &self.mappings[i];
        let table = self
            .tables
            .entry(m.path.clone())
            .or_insert_with(|| SymbolTable::read(&m.path, &m.build_id));
        Lookup::Library(
            table
                .name_at(pc - m.start + m.file_offset)
                .map(str::to_owned),
        )
    }
}

/// A file's loadable segments and functions.
#[derive(Debug, Default)]
struct SymbolTable {
    /// (file offset, file size, virtual address) of each `PT_LOAD` segment.
    segments: Vec<(u64, u64, u64)>,
    /// (start, end, raw name) of each function, by start; `end` is the next start when the
    /// symbol has no size.
    functions: Vec<(u64, u64, String)>,
}

impl SymbolTable {
    /// Reads the file's tables and those of its separate debug file, found by `build_id` (lowercase
    /// hex, as the mappings read it); empty when unreadable.
    fn read(path: &str, build_id: &str) -> SymbolTable {
        let mut table = SymbolTable::default();
        let mut functions = Vec::new();
        with_object(path, |object| {
            table.segments = object
                .segments()
                .map(|s| (s.file_range().0, s.file_range().1, s.address()))
                .collect();
            add_functions(object, &mut functions);
        });
        if build_id.len() > 2 {
            let (dir, file) = build_id.split_at(2);
            let debug = format!("/usr/lib/debug/.build-id/{dir}/{file}.debug");
            with_object(&debug, |object| add_functions(object, &mut functions));
        }
        functions.sort_by_key(|f| f.0);
        functions.dedup_by_key(|f| f.0);
        // The size becomes the end: the start plus the size, or the next start when unsized.
        for i in 0..functions.len() {
            let next = functions.get(i + 1).map_or(u64::MAX, |f| f.0);
            let (start, size, _) = &mut functions[i];
            *size = if *size > 0 {
                start.saturating_add(*size)
            } else {
                next
            };
        }
        table.functions = functions;
        table
    }

    /// The raw name of the function at `offset` in the file.
    fn name_at(&self, offset: u64) -> Option<&str> {
        let &(file_start, _, vaddr) = self
            .segments
            .iter()
            .find(|&&(start, size, _)| (start..start.saturating_add(size)).contains(&offset))?;
        // The values come from the file: no overflow panics on a corrupt one.
        let address = vaddr.wrapping_add(offset - file_start);
        let i = self
            .functions
            .partition_point(|f| f.0 <= address)
            .checked_sub(1)?;
        let (_, end, name) = &self.functions[i];
        (address < *end).then_some(name.as_str())
    }
}

/// Runs `f` on the parsed ELF file at `path`, read through a cache: only what `f` asks for is
/// read. Nothing when the file cannot be opened or parsed.
fn with_object(path: &str, f: impl FnOnce(&object::File<'_, &object::ReadCache<File>>)) {
    let Ok(file) = File::open(path) else { return };
    let cache = object::ReadCache::new(file);
    if let Ok(object) = object::File::parse(&cache) {
        f(&object);
    }
}

/// Adds the defined functions of the object's symbol tables as (address, size, raw name).
fn add_functions<'d, O: Object<'d>>(object: &O, out: &mut Vec<(u64, u64, String)>) {
    for symbol in object.symbols().chain(object.dynamic_symbols()) {
        if symbol.kind() != SymbolKind::Text || !symbol.is_definition() || symbol.address() == 0 {
            continue;
        }
        if let Ok(name) = symbol.name() {
            if !name.is_empty() {
                out.push((symbol.address(), symbol.size(), name.to_owned()));
            }
        }
    }
}
