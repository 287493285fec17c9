//! Symbolization: code addresses to inlined chains of (function, file, line), cached per
//! address within a cap.
//!
//! The main executable is read from its DWARF (`dwarf`: the file mapped, an index of its
//! compilation units read when opened, each unit's lines and functions parsed with gimli as
//! addresses ask, within `PARSE_BUDGET`; all of
//! it dropped after each build by [`Symbolizer::release_debug_info`], so that nothing of it
//! stays in the heap between profiles); shared libraries from their ELF symbol tables
//! (`symtab`: function names only), so that a library's debug information is never loaded.
//! Addresses are translated through the mapping that contains them: in process the running
//! process's (`/proc/self/maps`), offline those a profile recorded ([`Symbolizer::offline`]),
//! so both symbolize with the same code.

mod cache;
mod dwarf;
mod symtab;

pub use cache::{CacheStats, CONTINUOUS_MAX_BYTES, DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES};
pub use dwarf::PARSE_BUDGET;

use crate::mappings::{self, ObjectMapping};
use std::collections::HashMap;
use std::sync::Arc;

/// One source-level frame; several of them share an address when functions were inlined.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceFrame {
    /// Demangled name without the hash suffix, e.g. `cache::Cache::update`.
    pub name: Arc<str>,
    /// The raw (mangled) symbol when known, else the same as `name`.
    pub system_name: Arc<str>,
    /// Source file, or empty when unknown.
    pub file: Arc<str>,
    /// Source line, or 0 when unknown.
    pub line: u32,
}

/// Where the symbolizer's mappings come from.
#[derive(Debug)]
enum Mappings {
    /// The running process's, read again when an address falls outside all of them (a library
    /// loaded since).
    Process,
    /// A profile's, with the file to read for the main binary (the first mapping).
    Recorded { main_binary: String },
}

/// Resolves code addresses, remembering answers within a cap (see [`CacheStats`]).
#[derive(Debug)]
pub struct Symbolizer {
    cache: cache::AddressCache,
    source: Mappings,
    /// Executable file mappings, the main binary first.
    mappings: Vec<ObjectMapping>,
    /// Symbol tables of the files mapped, by path, read on first use. Libraries' are kept;
    /// the main binary's goes with its debug information.
    tables: HashMap<String, symtab::SymbolTable>,
    /// The main binary's DWARF, opened on first use (`Err`: why there is none, not retried
    /// until released), dropped by [`Symbolizer::release_debug_info`].
    debug_info: Option<Result<dwarf::DebugInfo, String>>,
    /// Times the DWARF was opened, and its parsed state dropped for being over the budget
    /// in the debug information released so far.
    debug_info_opens: u64,
    released_parse_resets: u64,
    /// While above 0, [`Symbolizer::release_debug_info`] keeps what it would drop: one count
    /// per caller holding it ([`Symbolizer::hold_debug_info`]).
    holds: u32,
    /// Set while symbolizing continuously ([`Symbolizer::set_continuous`]).
    continuous: bool,
    /// The cache's byte cap when not.
    max_bytes: usize,
    /// Runs the cache's allocations ([`Symbolizer::set_keeper`]).
    keeper: Keeper,
}

/// Runs a closure that allocates what the symbolizer keeps (its cache's entries and maps, the
/// libraries' symbol tables), so that the caller can put those allocations apart from a
/// build's temporaries. Its first argument is the cache generation they belong to: a heap per
/// generation's parity lets dropping a generation empty its heap whole, where in a shared heap
/// the entries that stay would pin the pages of those dropped.
pub type Keeper = fn(u64, &mut dyn FnMut());

fn run_here(_generation: u64, f: &mut dyn FnMut()) {
    f()
}

/// What the symbolizer holds and has done, for the profile's comments and the profiler's
/// accounting of its own memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SymbolizerStats {
    /// The cache of resolved addresses.
    pub cache: CacheStats,
    /// Section bytes (`.debug_info`, `.debug_line`) of the compilation units parsed now, at
    /// most about [`PARSE_BUDGET`]; zero once released.
    pub parsed_debug_info_bytes: usize,
    /// Compilation units parsed now for their lines and functions; zero once released.
    pub parsed_units: usize,
    /// Compilation units read now only for names they hold (functions another unit inlined:
    /// their headers and abbreviations); zero once released.
    pub referenced_units: usize,
    /// Compilation units in the open DWARF's index; zero once released.
    pub indexed_units: usize,
    /// Estimated heap bytes of that index.
    pub debug_info_index_bytes: usize,
    /// Estimated heap bytes of what is parsed now (units, abbreviations).
    pub parsed_debug_info_heap_bytes: usize,
    /// Times the main binary's DWARF was opened (once per build that needed it).
    pub debug_info_opens: u64,
    /// Times its parsed state was dropped for being over [`PARSE_BUDGET`].
    pub parse_resets: u64,
    /// Symbol tables held (the libraries', kept; the main binary's until released).
    pub symbol_tables: usize,
    /// Their estimated heap bytes.
    pub symbol_table_bytes: usize,
}

impl Default for Symbolizer {
    fn default() -> Self {
        Symbolizer::new()
    }
}

impl Symbolizer {
    /// A symbolizer of the running process's addresses, with an empty cache of the default cap
    /// ([`DEFAULT_MAX_ENTRIES`], [`DEFAULT_MAX_BYTES`]).
    pub fn new() -> Symbolizer {
        Symbolizer::with_cache_cap(DEFAULT_MAX_ENTRIES, DEFAULT_MAX_BYTES)
    }

    /// A symbolizer of the running process's addresses whose cache holds at most `max_entries`
    /// addresses and `max_bytes` estimated bytes.
    pub fn with_cache_cap(max_entries: usize, max_bytes: usize) -> Symbolizer {
        Symbolizer {
            cache: cache::AddressCache::new(max_entries, max_bytes),
            source: Mappings::Process,
            mappings: Vec::new(),
            tables: HashMap::new(),
            debug_info: None,
            debug_info_opens: 0,
            released_parse_resets: 0,
            holds: 0,
            continuous: false,
            max_bytes,
            keeper: run_here,
        }
    }

    /// A symbolizer of addresses recorded with `mappings` (the main binary first, as in a
    /// profile), reading the main binary from `main_binary`, as the process would have read
    /// itself. Fails when it cannot be read or its build id is not the one recorded. Libraries
    /// are read from their recorded paths, when the file there has the recorded build id.
    pub fn offline(mappings: Vec<ObjectMapping>, main_binary: &str) -> Result<Symbolizer, String> {
        let mut symbolizer = Symbolizer::new();
        symbolizer.source = Mappings::Recorded {
            main_binary: main_binary.to_owned(),
        };
        let Some(main) = mappings.first() else {
            return Err("no mappings were recorded: nothing to symbolize".to_owned());
        };
        if main.build_id.is_empty() {
            return Err(format!(
                "no build id was recorded for {}: nothing tells whether {main_binary} is the \
                 binary the addresses were taken in",
                main.path
            ));
        }
        let found = mappings::build_id_of(main_binary)?;
        if found != main.build_id {
            let found = if found.is_empty() {
                "no build id"
            } else {
                &found
            };
            return Err(format!(
                "{main_binary} has build id {found}, but the profile was taken from {} with \
                 build id {}",
                main.path, main.build_id,
            ));
        }
        symbolizer.mappings = mappings;
        Ok(symbolizer)
    }

    /// The executable mappings addresses are resolved through, the main binary first: in
    /// process, read again now (profiles record them as they are when built).
    pub fn mappings(&mut self) -> Vec<ObjectMapping> {
        if matches!(self.source, Mappings::Process) {
            self.mappings = mappings::current();
        }
        self.mappings.clone()
    }

    /// The frames at code address `pc` (an address inside the instruction, so for a return
    /// address pass `ret - 1`), innermost inlined frame first; empty when nothing is known.
    pub fn resolve(&mut self, pc: u64) -> Arc<[SourceFrame]> {
        if let Some(frames) = self.cache.get(pc, self.keeper) {
            return frames;
        }
        let frames: Arc<[SourceFrame]> = match self.mapping_of(pc) {
            Some((0, offset)) => self.main_binary_frames(offset).into(),
            Some((i, offset)) => self
                .table(i)
                .name_at(offset)
                .map(|raw| name_only_frame(raw.to_owned()))
                .into_iter()
                .collect(),
            None => Arc::from([]),
        };
        // The cache copies the entry under the keeper: `frames` were made among the work's
        // temporaries (DWARF parsing), the copy is what stays.
        self.cache.insert(pc, &frames, self.keeper)
    }

    /// Has `keeper` run every allocation of the cache (its entries, its maps' growth): the
    /// profiler puts them in a heap of their own, apart from a build's temporaries. Default:
    /// run them as they come.
    pub fn set_keeper(&mut self, keeper: Keeper) {
        self.keeper = keeper;
    }

    /// The demangled name of the function that contains `pc`, from the symbol tables alone (no
    /// DWARF; for an inlined call, the function it was inlined into). Not cached.
    pub fn function_name(&mut self, pc: u64) -> Option<String> {
        let (i, offset) = self.mapping_of(pc)?;
        let raw = self.table(i).name_at(offset)?;
        Some(demangle(raw))
    }

    /// Drops the main binary's parsed DWARF, its mapping and its symbol table: all that
    /// resolving new addresses needs and resolved ones do not (while symbolizing
    /// continuously, the DWARF's index and mapping stay). Builds
    /// call it when done (`builder::build`), as should anyone else who resolved a batch of
    /// addresses; the next address not in the cache opens them again.
    pub fn release_debug_info(&mut self) {
        if self.holds > 0 {
            return;
        }
        match &mut self.debug_info {
            Some(Ok(info)) if self.continuous => info.drop_parsed(),
            _ => {
                if let Some(Ok(info)) = self.debug_info.take() {
                    self.released_parse_resets += info.parsed().resets;
                }
            }
        }
        if let Some(main) = self.mappings.first() {
            self.tables.remove(&main.path);
        }
    }

    /// Keeps the main binary's DWARF and symbol table across builds until called with
    /// `false` as many times as with `true` (holders may overlap), which releases them: for a
    /// batch of profiles built together (a dump), which would otherwise read the symbol table
    /// and the DWARF's index again for each.
    pub fn hold_debug_info(&mut self, hold: bool) {
        if hold {
            self.holds += 1;
        } else {
            self.holds = self.holds.saturating_sub(1);
            self.release_debug_info();
        }
    }

    /// For a caller that symbolizes every few seconds (the pusher): releasing the debug
    /// information keeps the DWARF's index of units, dropping only what is parsed (reading
    /// every unit's header again was most of each interval's cost), and the cache may hold up
    /// to [`CONTINUOUS_MAX_BYTES`], so that an interval resolves only the addresses new to
    /// it. Unset, the index is released and the cache goes back to its own cap.
    pub fn set_continuous(&mut self, on: bool) {
        self.continuous = on;
        let max_bytes = match on {
            true => self.max_bytes.max(CONTINUOUS_MAX_BYTES),
            false => self.max_bytes,
        };
        self.cache.set_max_bytes(max_bytes);
        if !on {
            self.release_debug_info();
        }
    }

    /// What the symbolizer holds and has done.
    pub fn stats(&self) -> SymbolizerStats {
        let parsed = match &self.debug_info {
            Some(Ok(info)) => info.parsed(),
            _ => dwarf::Parsed::default(),
        };
        SymbolizerStats {
            cache: self.cache.stats(),
            parsed_debug_info_bytes: parsed.bytes,
            parsed_units: parsed.units,
            referenced_units: parsed.referenced_units,
            indexed_units: parsed.indexed_units,
            debug_info_index_bytes: parsed.index_heap_bytes,
            parsed_debug_info_heap_bytes: parsed.parsed_heap_bytes,
            debug_info_opens: self.debug_info_opens,
            parse_resets: self.released_parse_resets + parsed.resets,
            symbol_tables: self.tables.len(),
            symbol_table_bytes: self.tables.values().map(|t| t.estimated_bytes()).sum(),
        }
    }

    /// The index of the mapping that contains `pc` and the offset in its file.
    fn mapping_of(&mut self, pc: u64) -> Option<(usize, u64)> {
        let find = |mappings: &[ObjectMapping]| {
            mappings
                .iter()
                .position(|m| (m.start..m.limit).contains(&pc))
        };
        let i = find(&self.mappings).or_else(|| match self.source {
            Mappings::Process => {
                self.mappings = mappings::current();
                find(&self.mappings)
            }
            Mappings::Recorded { .. } => None,
        })?;
        let m = &self.mappings[i];
        Some((i, pc - m.start + m.file_offset))
    }

    /// The path to read for mapping `i`.
    fn file_of(&self, i: usize) -> &str {
        match &self.source {
            Mappings::Recorded { main_binary } if i == 0 => main_binary,
            _ => &self.mappings[i].path,
        }
    }

    /// The symbol table of mapping `i`'s file, read on first use.
    fn table(&mut self, i: usize) -> &symtab::SymbolTable {
        let m = &self.mappings[i];
        let (path, build_id) = (self.file_of(i).to_owned(), m.build_id.clone());
        if !self.tables.contains_key(&m.path) {
            // A library's table is kept: read it under the keeper (see `set_keeper`); a few
            // large blocks, whichever generation's heap holds them.
            let (keeper, tables, key) = (self.keeper, &mut self.tables, m.path.clone());
            keeper(self.cache.generation(), &mut || {
                let table = symtab::SymbolTable::read(&path, &build_id);
                tables.insert(key.clone(), table);
            });
        }
        &self.tables[&m.path]
    }

    /// The main binary's frames at `offset` in its file: DWARF's inlined chain, or the
    /// function's name from the symbol table where DWARF has none.
    fn main_binary_frames(&mut self, offset: u64) -> Vec<SourceFrame> {
        if self.debug_info.is_none() {
            self.debug_info = Some(dwarf::DebugInfo::open(self.file_of(0)));
            self.debug_info_opens += 1;
        }
        let mut frames = Vec::new();
        if let Some(Ok(info)) = &mut self.debug_info {
            if let Some(address) = info.address_of(offset) {
                frames = info.frames(address);
            }
        }
        // Frames without a name of their own take the function's from the symbol table, as
        // `backtrace` does; nameless frames that remain are left out.
        let mut fallback = None;
        let mut out = Vec::with_capacity(frames.len().max(1));
        for frame in frames {
            let raw = match frame.raw_name {
                Some(raw) => raw,
                None => match fallback
                    .get_or_insert_with(|| self.table(0).name_at(offset).map(str::to_owned))
                {
                    Some(raw) => raw.clone(),
                    None => continue,
                },
            };
            out.push(SourceFrame {
                name: demangle(&raw).into(),
                system_name: raw.into(),
                file: frame.file.into(),
                line: frame.line,
            });
        }
        if out.is_empty() {
            if let Some(raw) = self.table(0).name_at(offset) {
                out.push(name_only_frame(raw.to_owned()));
            }
        }
        out
    }
}

/// `raw` demangled without the hash suffix (`{:#}`); a name that is not a Rust symbol as is.
fn demangle(raw: &str) -> String {
    format!("{:#}", rustc_demangle::demangle(raw))
}

/// A frame named from a symbol table: its demangled name, no file or line.
fn name_only_frame(raw: String) -> SourceFrame {
    SourceFrame {
        name: demangle(&raw).into(),
        system_name: raw.into(),
        file: "".into(),
        line: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    extern "C" {
        /// glibc's, exported in its `.dynsym` whether or not its debug file is installed.
        fn getpid() -> i32;
    }

    /// Every allocation of the cache runs under the keeper, and what is served afterwards is
    /// the copy made there: a miss inserts under it, a hit in the recent generation allocates
    /// nothing.
    #[test]
    #[inline(never)]
    fn the_cache_is_kept_under_the_keeper() {
        use std::cell::Cell;
        thread_local! {
            static CALLS: Cell<u32> = const { Cell::new(0) };
        }
        fn keeper(_generation: u64, f: &mut dyn FnMut()) {
            CALLS.with(|c| c.set(c.get() + 1));
            f();
        }
        let mut symbolizer = Symbolizer::new();
        symbolizer.set_keeper(keeper);
        let pc = Symbolizer::new as fn() -> Symbolizer as usize as u64 + 1;
        let first = symbolizer.resolve(pc);
        assert!(!first.is_empty(), "resolved");
        assert_eq!(CALLS.with(Cell::get), 1, "the insert");
        let again = symbolizer.resolve(pc);
        assert!(
            Arc::ptr_eq(&first, &again),
            "the kept copy is what is served"
        );
        assert_eq!(CALLS.with(Cell::get), 1, "nothing more");
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
        assert_eq!((&*frames[0].file, frames[0].line), ("", 0));
        assert!(Arc::ptr_eq(&frames, &symbolizer.resolve(getpid + 1)));
    }

    /// Every `step`-th byte of the test binary's text, as in-process addresses.
    fn addresses_of_this_binary(step: u64) -> Vec<u64> {
        let main = &mappings::current()[0];
        (main.start..main.limit).step_by(step as usize).collect()
    }

    /// What `backtrace::resolve`, the symbolizer before this one (it loads the whole DWARF),
    /// says about `pc`, as `SourceFrame`s.
    fn as_backtrace_resolves(pc: u64) -> Vec<SourceFrame> {
        let mut frames = Vec::new();
        let ret = pc.wrapping_add(1) as usize as *mut std::ffi::c_void;
        backtrace::resolve(ret, |symbol| {
            let Some(name) = symbol.name() else { return };
            let demangled = format!("{name:#}");
            frames.push(SourceFrame {
                system_name: name.as_str().unwrap_or(&demangled).into(),
                name: demangled.into(),
                file: symbol
                    .filename()
                    .map_or_else(String::new, |f| f.display().to_string())
                    .into(),
                line: symbol.lineno().unwrap_or(0),
            });
        });
        frames
    }

    /// Thousands of addresses across the whole executable resolve to the same inlined chains,
    /// names, raw symbols, files and lines as `backtrace` gave, with the debug information
    /// released halfway (it is opened again).
    #[test]
    fn the_executable_resolves_as_backtrace_did() {
        let addresses = addresses_of_this_binary(997);
        assert!(addresses.len() > 2000, "{}", addresses.len());
        let mut symbolizer = Symbolizer::new();
        let (mut inlined, mut dwarf) = (0, 0);
        for (i, &pc) in addresses.iter().enumerate() {
            if i == addresses.len() / 2 {
                symbolizer.release_debug_info();
            }
            let ours = symbolizer.resolve(pc);
            let theirs = as_backtrace_resolves(pc);
            // Where DWARF has nothing, both name the address from a symbol table, with
            // different edge rules (`backtrace` gives the byte past a function's end to it, and
            // an unsized symbol only its first byte): outside functions, never at a call.
            let from_dwarf = |frames: &[SourceFrame]| frames.iter().any(|f| !f.file.is_empty());
            if from_dwarf(&ours) || from_dwarf(&theirs) {
                assert_eq!(&ours[..], &theirs[..], "at {pc:#x}");
                dwarf += 1;
            }
            inlined += usize::from(ours.len() > 1);
        }
        assert!(
            dwarf > addresses.len() / 2,
            "{dwarf} of {}",
            addresses.len()
        );
        assert!(inlined > 100, "inlined chains are kept: {inlined}");
    }

    /// Over more distinct addresses than its cap, the cache stays within it, counts what it
    /// evicted, and still answers every address correctly.
    #[test]
    fn the_cache_stays_within_its_cap_over_many_addresses() {
        let addresses = addresses_of_this_binary(4093);
        let cap = 256;
        assert!(addresses.len() > 2 * cap);
        let mut symbolizer = Symbolizer::with_cache_cap(cap, 64 << 10);
        let mut reference = Symbolizer::new();
        for &pc in &addresses {
            assert_eq!(symbolizer.resolve(pc), reference.resolve(pc));
            let stats = symbolizer.stats().cache;
            assert!(stats.entries <= cap, "{stats:?}");
            assert!(stats.estimated_bytes <= 64 << 10, "{stats:?}");
        }
        let stats = symbolizer.stats().cache;
        assert_eq!(stats.misses, addresses.len() as u64);
        assert_eq!(
            stats.evictions,
            addresses.len() as u64 - stats.entries as u64
        );
        // Asked again, a recent address is a hit.
        symbolizer.resolve(*addresses.last().unwrap());
        assert_eq!(symbolizer.stats().cache.hits, 1);
    }

    /// Opening the DWARF reads only an index of the units: one address parses the unit it is
    /// in (and reads the headers of the few its inlined functions are named in), not all of
    /// them, as `addr2line`'s context did (every unit's header, abbreviations and line program
    /// header: 7.6 MiB of heap for this test binary).
    #[test]
    #[inline(never)]
    fn one_address_parses_one_unit_not_all() {
        let mut symbolizer = Symbolizer::new();
        let pc = one_address_parses_one_unit_not_all as fn() as usize as u64 + 1;
        let frames = symbolizer.resolve(pc);
        assert!(
            frames.iter().any(|f| f.file.ends_with("symbolize.rs")),
            "{frames:?}"
        );
        let stats = symbolizer.stats();
        assert!(stats.indexed_units > 100, "{stats:?}");
        assert!(
            (1..=2).contains(&stats.parsed_units) && stats.referenced_units <= 16,
            "{stats:?}"
        );
        // The index: tens of bytes a unit (its offset and ranges), not kilobytes.
        assert!(stats.debug_info_index_bytes < 1 << 20, "{stats:?}");
        assert!(
            stats.parsed_debug_info_bytes <= 2 * PARSE_BUDGET,
            "{stats:?}"
        );
    }

    /// Over the whole executable the parsed DWARF goes past its budget and starts again (the
    /// answers stay right: `the_executable_resolves_as_backtrace_did` crosses such resets), and
    /// once released nothing parsed is held until an address not cached asks again.
    #[test]
    fn parsed_debug_information_is_capped_and_released() {
        let addresses = addresses_of_this_binary(997);
        let mut symbolizer = Symbolizer::new();
        for &pc in &addresses {
            symbolizer.resolve(pc);
        }
        let stats = symbolizer.stats();
        assert!(stats.parse_resets > 0, "{stats:?}");
        assert!(stats.parsed_debug_info_bytes > 0, "{stats:?}");
        symbolizer.release_debug_info();
        let stats = symbolizer.stats();
        assert_eq!(
            (stats.parsed_debug_info_bytes, stats.debug_info_opens),
            (0, 1)
        );
        // A cached address needs no DWARF; the first one not cached opens it again.
        symbolizer.resolve(*addresses.last().unwrap());
        assert_eq!(symbolizer.stats().debug_info_opens, 1);
        symbolizer.resolve(addresses[0] + 1);
        assert_eq!(symbolizer.stats().debug_info_opens, 2);
    }

    /// Symbolizing continuously, a release keeps the index (the next new address opens
    /// nothing) and drops what is parsed; the cache takes its larger cap. Unset, both go back.
    #[test]
    fn continuous_symbolizing_keeps_the_index_between_builds() {
        let addresses = addresses_of_this_binary(97);
        let mut symbolizer = Symbolizer::new();
        symbolizer.set_continuous(true);
        assert_eq!(symbolizer.stats().cache.max_bytes, CONTINUOUS_MAX_BYTES);
        for &pc in &addresses[..48] {
            symbolizer.resolve(pc);
        }
        symbolizer.release_debug_info();
        let kept = symbolizer.stats();
        assert!(kept.indexed_units > 100, "{kept:?}");
        assert_eq!(
            (kept.parsed_units, kept.parsed_debug_info_bytes),
            (0, 0),
            "{kept:?}"
        );
        for &pc in &addresses[48..] {
            symbolizer.resolve(pc);
        }
        let again = symbolizer.stats();
        assert_eq!(again.debug_info_opens, 1, "{again:?}");
        assert!(again.cache.misses > kept.cache.misses, "{again:?}");
        symbolizer.set_continuous(false);
        let after = symbolizer.stats();
        assert_eq!(
            (after.indexed_units, after.cache.max_bytes),
            (0, DEFAULT_MAX_BYTES)
        );
        // Not continuous (the positive control): a release drops the index, a new address
        // opens the DWARF again.
        symbolizer.resolve(addresses[0] + 1);
        assert_eq!(symbolizer.stats().debug_info_opens, 2);
    }
}
