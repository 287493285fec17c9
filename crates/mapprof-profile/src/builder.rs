//! Builds a `profile.proto` message from raw samples (return addresses and values): symbolizes,
//! trims the profiler's own frames, attaches mappings, merges equal samples and sorts, so that the
//! same samples always encode to the same bytes.

use crate::mappings::ObjectMapping;
use crate::profiler_frames::{is_profiler_frame, strip_profiler_frames, LeafTrim};
use crate::proto::{
    Function, Label, Line, Location, Mapping, Profile, Sample, StringTable, ValueType,
};
use crate::symbolize::{SourceFrame, Symbolizer};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Name of the frame that stands for samples the collector had to drop (Go's
/// `runtime/pprof.lostProfileEvent`).
pub const LOST_FRAME: &str = "mapprof::lost_samples";

/// A label value: string or number with an optional unit.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LabelValue {
    /// A string label (`-tagfocus=key=value`).
    Str(String),
    /// A numeric label, e.g. `bytes`.
    Num(i64, Option<String>),
}

impl LabelValue {
    /// The profile.proto label `key` = this value, its strings interned in `strings`.
    pub(crate) fn to_label(&self, key: &str, strings: &mut StringTable) -> Label {
        let key = strings.id(key);
        match self {
            LabelValue::Str(s) => Label {
                key,
                str: strings.id(s),
                ..Label::default()
            },
            LabelValue::Num(n, unit) => Label {
                key,
                num: *n,
                num_unit: unit.as_deref().map_or(0, |u| strings.id(u)),
                ..Label::default()
            },
        }
    }
}

/// One sample as collected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawSample {
    /// Return addresses, innermost first. Empty together with `synthetic` for a sample without a
    /// stack.
    pub stack: Vec<u64>,
    /// A frame name to use instead of (or below) the stack, e.g. [`LOST_FRAME`].
    pub synthetic: Option<String>,
    /// One value per sample type.
    pub values: Vec<i64>,
    /// Labels, in any order.
    pub labels: Vec<(String, LabelValue)>,
}

/// What goes into a profile besides its samples.
#[derive(Clone, Debug, Default)]
pub struct Header {
    /// (type, unit) of each value.
    pub sample_types: Vec<(String, String)>,
    /// (type, unit) of the sampling period.
    pub period_type: (String, String),
    /// The sampling period.
    pub period: i64,
    /// The sample type viewers show by default (`None`: the last one, pprof's rule).
    pub default_sample_type: Option<String>,
    /// Frames (regex over function names) that viewers drop with everything beneath them.
    pub drop_frames: Option<String>,
    /// Free-form comments.
    pub comments: Vec<String>,
    /// Wall-clock time of collection, in ns since the epoch.
    pub time_nanos: i64,
    /// Duration the profile covers, in ns (0 when cumulative since start).
    pub duration_nanos: i64,
    /// Keep the profiler's own frames at the leaf end of stacks (CPU profiles: time spent in
    /// the profiler is the profiler's). Default false: they are trimmed, as Go trims
    /// `runtime.mallocgc` from heap profiles.
    pub keep_profiler_frames: bool,
}

/// How to build.
#[derive(Clone, Copy, Debug)]
pub struct BuildOptions {
    /// Resolve addresses to functions, files and lines in process. Without it the profile keeps
    /// raw addresses and mappings (path, build id) for offline symbolization.
    pub symbolize: bool,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions { symbolize: true }
    }
}

/// Builds the profile. `symbolizer` caches resolved addresses across calls (within its cap) and
/// gives the mappings; its parsed debug information is released at the end
/// ([`Symbolizer::release_debug_info`]), so nothing but the cache stays between builds.
///
/// Without symbolization the profiler's own leaf frames are still trimmed, by the name of the
/// function each leaf address is in (ELF symbol tables, no DWARF), so that offline symbolizers
/// (`go tool pprof`, `mapprof symbolize`) do not charge every sample to the allocator hooks.
///
/// Cost: each distinct address is symbolized (and, at a stack's leaf, trimmed) once per call;
/// every (address, frames) pair is interned as a small integer, so that merging and sorting
/// compare integers, never frame names. Ten thousand stacks of thirty frames build in tens of
/// milliseconds once the addresses are symbolized.
pub fn build(
    header: &Header,
    samples: Vec<RawSample>,
    options: BuildOptions,
    symbolizer: &mut Symbolizer,
) -> Profile {
    let mut b = ProfileAssembler::new(symbolizer.mappings(), options.symbolize);
    b.trim = !header.keep_profiler_frames;
    if options.symbolize {
        // In address order, so that each compilation unit's DWARF is parsed about once, even
        // when its parsed state is capped (`symbolize::PARSE_BUDGET`).
        // Distinct addresses are gathered first: all of them, one per frame, would be the
        // largest allocation of a build (2.4 MB for 10,000 stacks of 30 frames).
        let distinct: HashSet<u64> = samples
            .iter()
            .flat_map(|s| s.stack.iter().map(|ret| ret.saturating_sub(1)))
            .collect();
        let mut pcs: Vec<u64> = distinct.into_iter().collect();
        pcs.sort_unstable();
        for pc in pcs {
            b.address(pc, symbolizer);
        }
    }
    let mut keyed: Vec<KeyedSample> = Vec::with_capacity(samples.len());
    for mut sample in samples {
        let stack = b.stack(&sample, symbolizer);
        sample.labels.sort();
        keyed.push(KeyedSample {
            stack,
            labels: sample.labels,
            values: sample.values,
        });
    }
    // Interned ids are in order of first use; sort by what they stand for, as the output must
    // not depend on the order of the input. Ranks compare as the keys do (distinct ids are
    // distinct keys), so stacks of ranks sort as stacks of keys would.
    let mut order: Vec<u32> = (0..b.keys.len() as u32).collect();
    order.sort_unstable_by(|&x, &y| b.keys[x as usize].cmp(&b.keys[y as usize]));
    let mut rank = vec![0u32; order.len()];
    for (r, &id) in order.iter().enumerate() {
        rank[id as usize] = r as u32;
    }
    for sample in &mut keyed {
        for id in sample.stack.iter_mut() {
            *id = rank[*id as usize];
        }
    }
    // A stable sort keeps equal samples in input order, so that their values add up in it.
    keyed.sort_by(|x, y| (&x.stack, &x.labels).cmp(&(&y.stack, &y.labels)));
    let mut merged: Vec<KeyedSample> = Vec::with_capacity(keyed.len());
    for sample in keyed {
        match merged.last_mut() {
            Some(last) if last.stack == sample.stack && last.labels == sample.labels => {
                for (sum, v) in last.values.iter_mut().zip(sample.values) {
                    *sum = sum.saturating_add(v);
                }
            }
            _ => merged.push(sample),
        }
    }
    b.keys = order
        .iter()
        .map(|&id| b.keys[id as usize].clone())
        .collect();
    let mut header = header.clone();
    if options.symbolize {
        // Before the release, while the units parsed for this build are still counted.
        header.comments.push(cache_comment(symbolizer));
    }
    symbolizer.release_debug_info();
    b.finish(&header, merged)
}

/// The profile comment on the symbolizer: what the profiler keeps of symbolization.
fn cache_comment(symbolizer: &Symbolizer) -> String {
    let s = symbolizer.stats();
    let c = s.cache;
    format!(
        "symbol cache: {} addresses, {} KiB of {} KiB (at most {}); {} evicted, {} hits, {} \
         misses; debug info opened {} times, parsed state over budget {} times, {} units \
         indexed, {} parsed; {} symbol tables, {} KiB",
        c.entries,
        c.estimated_bytes.div_ceil(1024),
        c.max_bytes / 1024,
        c.max_entries,
        c.evictions,
        c.hits,
        c.misses,
        s.debug_info_opens,
        s.parse_resets,
        s.indexed_units,
        s.parsed_units,
        s.symbol_tables,
        s.symbol_table_bytes.div_ceil(1024),
    )
}

/// A sample keyed by its stack and sorted labels, with its values.
struct KeyedSample {
    /// Location key ids, leaf first.
    stack: Vec<u32>,
    labels: Vec<(String, LabelValue)>,
    values: Vec<i64>,
}

/// What the symbolizer gave for the addresses of one mapping.
#[derive(Clone, Copy, Debug, Default)]
struct SymbolInfo {
    functions: bool,
    filenames: bool,
    line_numbers: bool,
    inline_frames: bool,
}

impl SymbolInfo {
    fn add(&mut self, frames: &[SourceFrame]) {
        self.functions |= frames.iter().any(|f| !f.name.is_empty());
        self.filenames |= frames.iter().any(|f| !f.file.is_empty());
        self.line_numbers |= frames.iter().any(|f| f.line != 0);
        self.inline_frames |= frames.len() > 1;
    }
}

/// A location before ids are assigned: an address with its (trimmed) frames, or a synthetic
/// frame. Ordered by address, so sorting samples by their keys is deterministic.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum LocKey {
    Address(u64, Arc<[SourceFrame]>),
    Synthetic(String),
}

/// What one address resolved to in this build: its location key, and the key it has at a
/// stack's leaf end once the profiler's frames are trimmed (`None` until needed; `Some(None)`
/// when the whole location is the profiler's).
struct AddressKeys {
    full: u32,
    leading: Option<Option<u32>>,
}

/// Assembles the Profile message: interns strings, functions, location keys and locations, and
/// remembers what each address resolved to (the bytes are written by [`crate::codec`]).
struct ProfileAssembler {
    mappings: Vec<ObjectMapping>,
    /// What the symbolizer found in each mapping, for its `has_*` flags.
    found: Vec<SymbolInfo>,
    symbolize: bool,
    /// Trim the profiler's frames at the leaf end.
    trim: bool,
    strings: StringTable,
    functions: Vec<Function>,
    function_ids: HashMap<(String, String, String), u64>,
    locations: Vec<Location>,
    /// Interned location keys; ids index this (sorted by [`build`] before
    /// [`ProfileAssembler::finish`]).
    keys: Vec<LocKey>,
    synthetic_ids: HashMap<String, u32>,
    addresses: HashMap<u64, AddressKeys>,
}

impl ProfileAssembler {
    fn new(mappings: Vec<ObjectMapping>, symbolize: bool) -> ProfileAssembler {
        ProfileAssembler {
            found: vec![SymbolInfo::default(); mappings.len()],
            mappings,
            symbolize,
            trim: true,
            strings: StringTable::default(),
            functions: Vec::new(),
            function_ids: HashMap::new(),
            locations: Vec::new(),
            keys: Vec::new(),
            synthetic_ids: HashMap::new(),
            addresses: HashMap::new(),
        }
    }

    /// The sample's location key ids, leaf first, with the profiler's own leaf frames trimmed.
    fn stack(&mut self, sample: &RawSample, symbolizer: &mut Symbolizer) -> Vec<u32> {
        let mut out = Vec::with_capacity(sample.stack.len() + 1);
        if let Some(name) = &sample.synthetic {
            let id = match self.synthetic_ids.get(name) {
                Some(&id) => id,
                None => {
                    let id = self.intern(LocKey::Synthetic(name.clone()));
                    self.synthetic_ids.insert(name.clone(), id);
                    id
                }
            };
            out.push(id);
        }
        let mut trim = LeafTrim::new(out.is_empty() && self.trim);
        for &ret in &sample.stack {
            // A return address points after the call; the call itself is one byte before.
            let pc = ret.saturating_sub(1);
            let full = self.address(pc, symbolizer);
            if let Some(id) = trim.next(full, |full| self.leading(pc, full, symbolizer)) {
                out.push(id);
            }
        }
        out
    }

    /// The key id of `pc` with all its frames, symbolizing it on first use.
    fn address(&mut self, pc: u64, symbolizer: &mut Symbolizer) -> u32 {
        if let Some(keys) = self.addresses.get(&pc) {
            return keys.full;
        }
        let frames = if self.symbolize {
            symbolizer.resolve(pc)
        } else {
            Arc::from([])
        };
        let full = self.intern(LocKey::Address(pc, frames));
        self.addresses.insert(
            pc,
            AddressKeys {
                full,
                leading: None,
            },
        );
        full
    }

    /// The key id of `pc` at a stack's leaf end, trimmed; `None` when it is all the
    /// profiler's. `full` is what [`ProfileAssembler::address`] returned for `pc`.
    fn leading(&mut self, pc: u64, full: u32, symbolizer: &mut Symbolizer) -> Option<u32> {
        if let Some(leading) = self.addresses[&pc].leading {
            return leading;
        }
        let LocKey::Address(_, frames) = &self.keys[full as usize] else {
            unreachable!("address keys are addresses")
        };
        let n = frames.len();
        let leading = if self.symbolize {
            strip_profiler_frames(frames.clone()).map(|rest| {
                if rest.len() == n {
                    full
                } else {
                    self.intern(LocKey::Address(pc, rest))
                }
            })
        } else {
            // No frames: the function the address is in decides, by the same rule.
            let profiler = symbolizer
                .function_name(pc)
                .is_some_and(|name| is_profiler_frame(&name));
            (!profiler).then_some(full)
        };
        self.addresses
            .get_mut(&pc)
            .expect("`address` added it")
            .leading = Some(leading);
        leading
    }

    fn intern(&mut self, key: LocKey) -> u32 {
        self.keys.push(key);
        self.keys.len() as u32 - 1
    }

    fn function(&mut self, name: &str, system_name: &str, file: &str) -> u64 {
        let key = (name.to_owned(), system_name.to_owned(), file.to_owned());
        if let Some(&id) = self.function_ids.get(&key) {
            return id;
        }
        let id = self.functions.len() as u64 + 1;
        let function = Function {
            id,
            name: self.strings.id(name),
            system_name: self.strings.id(system_name),
            filename: self.strings.id(file),
            start_line: 0,
        };
        self.functions.push(function);
        self.function_ids.insert(key, id);
        id
    }

    /// The location id of key `k` (an index into the sorted keys), assigned on first use.
    fn location(&mut self, k: u32, location_ids: &mut [u64]) -> u64 {
        if location_ids[k as usize] != 0 {
            return location_ids[k as usize];
        }
        let id = self.locations.len() as u64 + 1;
        let key = self.keys[k as usize].clone();
        let location = match &key {
            LocKey::Address(pc, frames) => {
                let mapping = self
                    .mappings
                    .iter()
                    .position(|m| m.start <= *pc && *pc < m.limit);
                if let Some(m) = mapping {
                    self.found[m].add(frames);
                }
                let line = frames
                    .iter()
                    .map(|f| Line {
                        function_id: self.function(&f.name, &f.system_name, &f.file),
                        line: i64::from(f.line),
                        column: 0,
                    })
                    .collect();
                Location {
                    id,
                    // A symbolized location names no mapping: `go tool pprof` disassembles
                    // the mapping's file for its source view and, for a position-independent
                    // executable, finds nothing at the runtime address (golang/go#46639), so
                    // the view came out empty; without a mapping it shows the Lines here.
                    mapping_id: match mapping {
                        Some(m) if frames.is_empty() => m as u64 + 1,
                        _ => 0,
                    },
                    address: *pc,
                    line,
                    is_folded: false,
                }
            }
            LocKey::Synthetic(name) => Location {
                id,
                mapping_id: 0,
                address: 0,
                line: vec![Line {
                    function_id: self.function(name, name, ""),
                    line: 0,
                    column: 0,
                }],
                is_folded: false,
            },
        };
        self.locations.push(location);
        location_ids[k as usize] = id;
        id
    }

    /// The profile of `samples`, sorted and merged, whose stacks hold indices into the sorted
    /// `self.keys`.
    fn finish(mut self, header: &Header, samples: Vec<KeyedSample>) -> Profile {
        let mut location_ids = vec![0u64; self.keys.len()];
        let sample_type: Vec<ValueType> = header
            .sample_types
            .iter()
            .map(|(ty, unit)| self.strings.value_type(ty, unit))
            .collect();
        let period_type = Some(
            self.strings
                .value_type(&header.period_type.0, &header.period_type.1),
        );
        let mut sample = Vec::with_capacity(samples.len());
        for KeyedSample {
            stack,
            labels,
            values: value,
        } in samples
        {
            if value.iter().all(|&v| v == 0) {
                continue;
            }
            let location_id = stack
                .iter()
                .map(|&k| self.location(k, &mut location_ids))
                .collect();
            let label = labels
                .iter()
                .map(|(key, value)| value.to_label(key, &mut self.strings))
                .collect();
            sample.push(Sample {
                location_id,
                value,
                label,
            });
        }
        let symbolized = self.symbolize;
        let mapping = self
            .mappings
            .clone()
            .iter()
            .zip(self.found.clone())
            .enumerate()
            .map(|(i, (m, found))| Mapping {
                id: i as u64 + 1,
                memory_start: m.start,
                memory_limit: m.limit,
                file_offset: m.file_offset,
                filename: self.strings.id(&m.path),
                build_id: self.strings.id(&m.build_id),
                // Tell pprof not to symbolize again what was symbolized here, and no more
                // than was found: a library's symbol table gives names, no files or lines.
                has_functions: symbolized && found.functions,
                has_filenames: symbolized && found.filenames,
                has_line_numbers: symbolized && found.line_numbers,
                has_inline_frames: symbolized && found.inline_frames,
            })
            .collect();
        let default_sample_type = header
            .default_sample_type
            .as_deref()
            .map_or(0, |s| self.strings.id(s));
        let drop_frames = header
            .drop_frames
            .as_deref()
            .map_or(0, |s| self.strings.id(s));
        let comment = header.comments.iter().map(|c| self.strings.id(c)).collect();
        Profile {
            sample_type,
            sample,
            mapping,
            location: self.locations,
            function: self.functions,
            string_table: self.strings.into_vec(),
            drop_frames,
            keep_frames: 0,
            time_nanos: header.time_nanos,
            duration_nanos: header.duration_nanos,
            period_type,
            period: header.period,
            comment,
            default_sample_type,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn marker_function() -> u64 {
        std::hint::black_box(42)
    }

    fn header() -> Header {
        Header {
            sample_types: vec![("samples".into(), "count".into())],
            period_type: ("samples".into(), "count".into()),
            period: 1,
            ..Header::default()
        }
    }

    fn sample(stack: &[u64], value: i64, label: &str) -> RawSample {
        RawSample {
            stack: stack.to_vec(),
            synthetic: None,
            values: vec![value],
            labels: vec![("route".into(), LabelValue::Str(label.into()))],
        }
    }

    #[test]
    fn output_is_the_same_whatever_the_input_order() {
        let samples = vec![
            sample(&[0x3000, 0x2000], 5, "/a"),
            sample(&[0x1000, 0x2000], 7, "/b"),
            sample(&[0x3000, 0x2000], 1, "/a"), // merges with the first
            sample(&[0x3000, 0x2000], 2, "/b"),
        ];
        let options = BuildOptions { symbolize: false };
        let mut reversed = samples.clone();
        reversed.reverse();
        let a = build(&header(), samples, options, &mut Symbolizer::new());
        let b = build(&header(), reversed, options, &mut Symbolizer::new());
        assert_eq!(a, b);
        assert_eq!(a.sample.len(), 3);
        assert_eq!(a.string_table[0], "");
        let values: Vec<i64> = a.sample.iter().map(|s| s.value[0]).collect();
        assert_eq!(values.iter().sum::<i64>(), 15);
        assert!(
            values.contains(&6),
            "equal stacks and labels merge: {values:?}"
        );
        // One location per address.
        let mut addresses: Vec<u64> = a.location.iter().map(|l| l.address).collect();
        addresses.sort();
        addresses.dedup();
        assert_eq!(addresses.len(), a.location.len());
    }

    #[test]
    fn functions_have_demangled_names_and_raw_symbols() {
        let ret = marker_function as *const () as usize as u64 + 1; // as if returning into it
        let p = build(
            &header(),
            vec![sample(&[ret], 1, "/")],
            BuildOptions::default(),
            &mut Symbolizer::new(),
        );
        let f = p
            .function
            .iter()
            .find(|f| p.string_table[f.name as usize].ends_with("marker_function"))
            .unwrap_or_else(|| panic!("the marker function is named: {p:?}"));
        assert_eq!(
            p.string_table[f.name as usize],
            "mapprof_profile::builder::tests::marker_function"
        );
        let raw = &p.string_table[f.system_name as usize];
        assert!(raw.starts_with("_ZN") || raw.starts_with("_R"), "{raw}");
        assert!(p.string_table[f.filename as usize].ends_with("builder.rs"));
        let location = &p.location[0];
        assert_eq!(location.address, ret - 1);
        assert!(location.line[0].line > 0);
        // Symbolized: pprof reads its Lines, not the binary (see `location`), and the
        // executable's mapping says what was found in it.
        assert_eq!(location.mapping_id, 0);
        let exe = &p.mapping[0];
        assert!(exe.has_functions && exe.has_filenames && exe.has_line_numbers);
    }

    #[test]
    fn a_library_mapping_claims_names_only() {
        // glibc is symbolized from its symbol table: function names, no files or lines.
        let ret = libc::getpid as *const () as usize as u64 + 1;
        let p = build(
            &header(),
            vec![sample(&[ret], 1, "/")],
            BuildOptions::default(),
            &mut Symbolizer::new(),
        );
        let name = |i: i64| p.string_table[i as usize].as_str();
        let libc = p
            .mapping
            .iter()
            .find(|m| name(m.filename).contains("libc.so"))
            .unwrap_or_else(|| panic!("a libc mapping: {p:?}"));
        assert!(libc.has_functions, "{libc:?}");
        assert!(!libc.has_filenames && !libc.has_line_numbers, "{libc:?}");
        assert!(
            !p.mapping[0].has_functions,
            "nothing was found in the executable"
        );
    }

    /// The address of a function of this process's vDSO, and its name.
    fn vdso_function() -> (u64, String) {
        use object::{Object, ObjectSegment, ObjectSymbol, SymbolKind};
        let vdso = crate::mappings::current()
            .into_iter()
            .find(|m| m.path == crate::mappings::VDSO)
            .expect("a vDSO mapping");
        let image = crate::mappings::vdso_image("").unwrap();
        let object = object::File::parse(&image[..]).unwrap();
        let base = object.segments().next().unwrap().address();
        let f = object
            .dynamic_symbols()
            .find(|s| s.kind() == SymbolKind::Text && s.name().unwrap().contains("gettime"))
            .expect("clock_gettime in the vDSO");
        (
            vdso.start + (f.address() - base) + 1,
            f.name().unwrap().to_owned(),
        )
    }

    #[test]
    fn decoded_mappings_name_the_vdso_and_claim_only_what_was_found() {
        let (vdso_ret, vdso_name) = vdso_function();
        let stack = [
            vdso_ret,
            libc::getpid as *const () as usize as u64 + 1,
            marker_function as *const () as usize as u64 + 1,
        ];
        let built = build(
            &header(),
            vec![sample(&stack, 1, "/")],
            BuildOptions::default(),
            &mut Symbolizer::new(),
        );
        let mut bytes = Vec::new();
        crate::codec::encode_gzip(&built, &mut bytes).unwrap();
        let p = crate::codec::decode(&bytes).unwrap();
        let name = |i: i64| p.string_table[i as usize].as_str();
        let mapping = |part: &str| {
            p.mapping
                .iter()
                .find(|m| name(m.filename).contains(part))
                .unwrap_or_else(|| panic!("a mapping of {part}: {:?}", p.mapping))
        };
        let flags = |m: &Mapping| {
            (
                m.has_functions,
                m.has_filenames,
                m.has_line_numbers,
                m.has_inline_frames,
            )
        };
        // The vDSO: named as the kernel names it, its build id, names from its symbol table.
        let vdso = mapping(crate::mappings::VDSO);
        assert_eq!(name(vdso.filename), "[vdso]");
        assert_eq!(flags(vdso), (true, false, false, false), "{vdso:?}");
        let leaf = &p.location[p.sample[0].location_id[0] as usize - 1];
        let f = &p.function[leaf.line[0].function_id as usize - 1];
        assert_eq!(name(f.name), vdso_name);
        // glibc without debug information: functions, no files or lines.
        let libc = mapping("libc.so");
        assert_eq!(flags(libc), (true, false, false, false), "{libc:?}");
        // The executable, from its DWARF: files and lines too.
        let exe = &p.mapping[0];
        assert!(
            exe.has_functions && exe.has_filenames && exe.has_line_numbers,
            "{exe:?}"
        );
        // Mappings nothing was resolved in claim nothing.
        for m in &p.mapping[1..] {
            if m.id != vdso.id && m.id != libc.id {
                assert_eq!(flags(m), (false, false, false, false), "{m:?}");
            }
        }
    }

    #[test]
    fn profiler_frames_at_the_leaf_are_trimmed_unless_kept() {
        // As if `backtrace` (one of the profiler's prefixes) had been called by the marker.
        let profiler = backtrace::Backtrace::new as fn() -> backtrace::Backtrace;
        let stack = [
            profiler as *const () as usize as u64 + 1,
            marker_function as *const () as usize as u64 + 1,
        ];
        let mut h = header();
        let build_one = |h: &Header| {
            build(
                h,
                vec![sample(&stack, 1, "/")],
                BuildOptions::default(),
                &mut Symbolizer::new(),
            )
        };
        assert_eq!(build_one(&h).sample[0].location_id.len(), 1);
        h.keep_profiler_frames = true;
        assert_eq!(build_one(&h).sample[0].location_id.len(), 2);
    }

    #[test]
    fn unsymbolized_profiles_trim_the_profilers_leaves_by_symbol_table() {
        let profiler = backtrace::Backtrace::new as fn() -> backtrace::Backtrace;
        let marker = marker_function as *const () as usize as u64;
        let stack = [profiler as *const () as usize as u64 + 1, marker + 1];
        let options = BuildOptions { symbolize: false };
        let p = build(
            &header(),
            vec![sample(&stack, 1, "/")],
            options,
            &mut Symbolizer::new(),
        );
        // Only the marker's address is left, without frames, for offline symbolizers.
        let ids = &p.sample[0].location_id;
        assert_eq!(ids.len(), 1, "{p:?}");
        let location = &p.location[ids[0] as usize - 1];
        assert_eq!((location.address, location.line.len()), (marker, 0));
        assert!(p.function.is_empty());
    }

    #[test]
    fn lost_samples_get_a_frame_of_their_own() {
        let mut s = sample(&[], 3, "/");
        s.synthetic = Some(LOST_FRAME.into());
        let p = build(
            &header(),
            vec![s],
            BuildOptions::default(),
            &mut Symbolizer::new(),
        );
        let loc = &p.location[p.sample[0].location_id[0] as usize - 1];
        let f = &p.function[loc.line[0].function_id as usize - 1];
        assert_eq!(p.string_table[f.name as usize], LOST_FRAME);
    }
}
