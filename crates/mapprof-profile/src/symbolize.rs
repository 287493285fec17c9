//! In-process symbolization: return addresses to inlined chains of (function, file, line),
//! cached per address. The main executable's addresses go through the `backtrace` crate (its
//! DWARF debug info: inlined frames, files, lines); shared libraries' through their ELF symbol
//! tables (`symtab`: function names only), which keeps a first scrape from loading a
//! library's whole debug information, as `backtrace` would.

mod symtab;

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::Arc;

/// One source-level frame; several of them share an address when functions were inlined.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceFrame {
    /// Demangled name without the hash suffix, e.g. `cache::Cache::update`.
    pub name: String,
    /// The raw (mangled) symbol when known, else the same as `name`.
    pub system_name: String,
    /// Source file, or empty when unknown.
    pub file: String,
    /// Source line, or 0 when unknown.
    pub line: u32,
}

/// Resolves addresses of the running process, remembering every answer.
#[derive(Debug, Default)]
pub struct Symbolizer {
    cache: HashMap<u64, Arc<[SourceFrame]>>,
    libraries: symtab::Libraries,
}

impl Symbolizer {
    /// A symbolizer with an empty cache.
    pub fn new() -> Symbolizer {
        Symbolizer::default()
    }

    /// The frames at code address `pc` (an address inside the instruction, so for a return
    /// address pass `ret - 1`), innermost inlined frame first; empty when nothing is known.
    pub fn resolve(&mut self, pc: u64) -> Arc<[SourceFrame]> {
        if let Some(frames) = self.cache.get(&pc) {
            return frames.clone();
        }
        let frames: Arc<[SourceFrame]> = match self.libraries.lookup(pc) {
            symtab::Lookup::Library(name) => name.map(library_frame).into_iter().collect(),
            symtab::Lookup::Elsewhere => resolve_with_debug_info(pc).into(),
        };
        self.cache.insert(pc, frames.clone());
        frames
    }
}

/// A library function's frame: its demangled name, no file or line.
fn library_frame(raw: String) -> SourceFrame {
    SourceFrame {
        name: format!("{:#}", backtrace::SymbolName::new(raw.as_bytes())),
        system_name: raw,
        file: String::new(),
        line: 0,
    }
}

fn resolve_with_debug_info(pc: u64) -> Vec<SourceFrame> {
    let mut frames = Vec::new();
    // `backtrace::resolve` takes a return address and looks up the byte before it.
    let ret = pc.wrapping_add(1) as usize;
    backtrace::resolve(ret as *mut c_void, |symbol| {
        let Some(name) = symbol.name() else { return };
        let demangled = format!("{name:#}");
        let system_name = name
            .as_str()
            .map_or_else(|| demangled.clone(), str::to_owned);
        frames.push(SourceFrame {
            name: demangled,
            system_name,
            file: symbol
                .filename()
                .map(|f| f.display().to_string())
                .unwrap_or_default(),
            line: symbol.lineno().unwrap_or(0),
        });
    });
    frames
}

/// The frames of a leaf location that are not the profiler's: those outside its outermost
/// profiler frame (the hooks and allocator shims are often inlined into the caller's address).
/// `None` when the whole location is the profiler's.
pub fn strip_profiler_frames(frames: Arc<[SourceFrame]>) -> Option<Arc<[SourceFrame]>> {
    match frames.iter().rposition(|f| is_profiler_frame(&f.name)) {
        Some(i) if i + 1 == frames.len() => None,
        Some(i) => Some(frames[i + 1..].into()),
        None => Some(frames),
    }
}

/// Whether a frame belongs to the profiler or the allocator shims around it; such frames at the
/// leaf end of a stack are trimmed, as Go trims `runtime.mallocgc`.
pub fn is_profiler_frame(name: &str) -> bool {
    // The lock shim's guards record from their `Drop`.
    let name = name
        .strip_prefix("core::ptr::drop_in_place<")
        .unwrap_or(name);
    let name = name.strip_prefix('<').unwrap_or(name);
    const PREFIXES: [&str; 7] = [
        "mapprof_rt::",
        "mapprof::",
        "backtrace::",
        "__rustc::",
        "__rust_",
        "__rg_",
        "__rdl_",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    extern "C" {
        /// glibc's, exported in its `.dynsym` whether or not its debug file is installed.
        fn getpid() -> i32;
    }

    /// Resolves this function's own return address and glibc's `getpid`: the executable's
    /// frame comes with its file and line (DWARF), the library's with its name only (symbol
    /// tables), cached like any other.
    #[test]
    #[inline(never)]
    fn libraries_are_named_from_symbol_tables_and_the_executable_from_dwarf() {
        let mut stack = Vec::new();
        backtrace::trace(|frame| {
            stack.push(frame.ip() as u64);
            true
        });
        let mut symbolizer = Symbolizer::new();
        let frames: Vec<_> = stack
            .iter()
            .filter(|&&ip| ip > 0)
            .flat_map(|&ip| symbolizer.resolve(ip - 1).to_vec())
            .collect();
        assert!(
            frames.iter().any(|f| f
                .name
                .ends_with("libraries_are_named_from_symbol_tables_and_the_executable_from_dwarf")
                && f.file.ends_with("symbolize.rs")
                && f.line > 0),
            "{frames:?}"
        );

        let getpid = getpid as *const () as u64;
        // An address inside the function, as a return address minus one would be.
        let frames = symbolizer.resolve(getpid + 1);
        assert_eq!(frames.len(), 1, "{frames:?}");
        assert_eq!(
            frames[0].name.trim_start_matches('_'),
            "getpid",
            "{frames:?}"
        );
        assert_eq!((frames[0].file.as_str(), frames[0].line), ("", 0));
        assert!(Arc::ptr_eq(&frames, &symbolizer.resolve(getpid + 1)));
    }
}
