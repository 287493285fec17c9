//! One compilation unit's functions, parsed for resolving: their address ranges, and each
//! function's name and inlined calls as addresses ask for them.
//!
//! The rules are `addr2line` 0.27's (`function.rs`; MIT or Apache-2.0), which the symbolizer
//! used before, kept so that every answer is the same: functions are found by binary search
//! over their ranges, inlined calls by depth then begin address, names from
//! `DW_AT_linkage_name`, else `DW_AT_name`, else through `DW_AT_abstract_origin` /
//! `DW_AT_specification` (16 levels at most), a call's file 0 meaning none before DWARF 5.
//! Columns are not kept (nothing asks).

use super::{Reader, Refs};
use gimli::ReaderOffset;
use std::cmp::Ordering;
use std::sync::Arc;

type Unit = gimli::Unit<Reader>;
type UnitRef<'a> = gimli::UnitRef<'a, Reader>;

/// A DIE's `DW_AT_low_pc`, `DW_AT_high_pc` and `DW_AT_ranges`, as read.
#[derive(Default)]
pub(super) struct Ranges {
    low_pc: Option<u64>,
    high_pc: Option<u64>,
    size: Option<u64>,
    offset: Option<gimli::RangeListsOffset<usize>>,
}

impl Ranges {
    /// Takes the attribute if it is one of the range attributes.
    pub(super) fn read(
        &mut self,
        unit: UnitRef<'_>,
        attr: &gimli::Attribute<Reader>,
    ) -> gimli::Result<()> {
        match (attr.name(), attr.value()) {
            (gimli::DW_AT_low_pc, gimli::AttributeValue::Addr(a)) => self.low_pc = Some(a),
            (gimli::DW_AT_low_pc, gimli::AttributeValue::DebugAddrIndex(i)) => {
                self.low_pc = Some(unit.address(i)?)
            }
            (gimli::DW_AT_high_pc, gimli::AttributeValue::Addr(a)) => self.high_pc = Some(a),
            (gimli::DW_AT_high_pc, gimli::AttributeValue::DebugAddrIndex(i)) => {
                self.high_pc = Some(unit.address(i)?)
            }
            (gimli::DW_AT_high_pc, gimli::AttributeValue::Udata(size)) => self.size = Some(size),
            (gimli::DW_AT_ranges, value) => self.offset = unit.attr_ranges_offset(value)?,
            _ => {}
        }
        Ok(())
    }

    pub(super) fn has_range_list(&self) -> bool {
        self.offset.is_some()
    }

    /// Calls `f` with each non-empty range; whether there was one.
    pub(super) fn for_each(
        &self,
        unit: UnitRef<'_>,
        mut f: impl FnMut(gimli::Range),
    ) -> gimli::Result<bool> {
        let mut any = false;
        let mut add = |range: gimli::Range| {
            if range.begin < range.end {
                f(range);
                any = true;
            }
        };
        if let Some(offset) = self.offset {
            let mut list = unit.ranges(offset)?;
            while let Some(range) = list.next()? {
                add(range);
            }
        } else if let (Some(begin), Some(end)) = (self.low_pc, self.high_pc) {
            add(gimli::Range { begin, end });
        } else if let (Some(begin), Some(size)) = (self.low_pc, self.size) {
            // A -1 tombstone wraps and is left out as empty.
            add(gimli::Range {
                begin,
                end: begin.wrapping_add(size),
            });
        }
        Ok(any)
    }
}

/// A unit's functions (`DW_TAG_subprogram` with code): their ranges, sorted, and each
/// function parsed the first time an address falls in it.
pub(super) struct Functions {
    functions: Box<[(gimli::UnitOffset, Option<gimli::Result<Function>>)]>,
    addresses: Box<[(gimli::Range, usize)]>,
}

/// A function: its name and its inlined calls (outermost first), with their ranges sorted by
/// depth, then begin.
pub(super) struct Function {
    name: Option<Reader>,
    inlined: Box<[Inlined]>,
    inlined_addresses: Box<[(gimli::Range, usize, usize)]>,
}

/// An inlined call: the callee's name, and where it was called from.
pub(super) struct Inlined {
    pub(super) name: Option<Reader>,
    pub(super) call_file: Option<u64>,
    pub(super) call_line: u32,
}

impl Functions {
    pub(super) fn parse(unit: UnitRef<'_>) -> gimli::Result<Functions> {
        let mut functions = Vec::new();
        let mut addresses = Vec::new();
        let mut entries = unit.entries_raw(None)?;
        while !entries.is_empty() {
            let offset = entries.next_offset();
            let Some(abbrev) = entries.read_abbreviation()? else {
                continue;
            };
            if abbrev.tag() != gimli::DW_TAG_subprogram {
                entries.skip_attributes(abbrev.attributes())?;
                continue;
            }
            let mut ranges = Ranges::default();
            for spec in abbrev.attributes() {
                ranges.read(unit, &entries.read_attribute(*spec)?)?;
            }
            let index = functions.len();
            if ranges.for_each(unit, |range| addresses.push((range, index)))? {
                functions.push((offset, None));
            }
        }
        // Identical functions folded to one address range: one of them answers, as before.
        addresses.sort_unstable_by_key(|a: &(gimli::Range, usize)| a.0.begin);
        Ok(Functions {
            functions: functions.into_boxed_slice(),
            addresses: addresses.into_boxed_slice(),
        })
    }

    /// Heap bytes held (estimated; the functions parsed so far counted by their inlined calls).
    pub(super) fn heap_bytes(&self) -> usize {
        let parsed: usize = self
            .functions
            .iter()
            .filter_map(|f| f.1.as_ref()?.as_ref().ok())
            .map(|f| {
                f.inlined.len() * size_of::<Inlined>()
                    + f.inlined_addresses.len() * size_of::<(gimli::Range, usize, usize)>()
            })
            .sum();
        self.functions.len() * size_of::<(gimli::UnitOffset, Option<gimli::Result<Function>>)>()
            + self.addresses.len() * size_of::<(gimli::Range, usize)>()
            + parsed
    }

    /// The function whose range holds `probe`, parsed now if it was not.
    pub(super) fn find(
        &mut self,
        probe: u64,
        unit: UnitRef<'_>,
        refs: &mut Refs<'_>,
    ) -> gimli::Result<Option<&Function>> {
        let found = self.addresses.binary_search_by(|(range, _)| {
            if probe < range.begin {
                Ordering::Greater
            } else if probe >= range.end {
                Ordering::Less
            } else {
                Ordering::Equal
            }
        });
        let Ok(i) = found else { return Ok(None) };
        let (offset, parsed) = &mut self.functions[self.addresses[i].1];
        let parsed = parsed.get_or_insert_with(|| Function::parse(*offset, unit, refs));
        parsed.as_ref().map(Some).map_err(|e| *e)
    }
}

impl Function {
    fn parse(
        offset: gimli::UnitOffset,
        unit: UnitRef<'_>,
        refs: &mut Refs<'_>,
    ) -> gimli::Result<Function> {
        let mut entries = unit.entries_raw(Some(offset))?;
        let depth = entries.next_depth();
        let abbrev = entries
            .read_abbreviation()?
            .ok_or(gimli::Error::NoEntryAtGivenOffset(offset.0 as u64))?;
        let mut name = None;
        for spec in abbrev.attributes() {
            let attr = entries.read_attribute(*spec)?;
            match attr.name() {
                gimli::DW_AT_linkage_name | gimli::DW_AT_MIPS_linkage_name => {
                    if let Ok(value) = unit.attr_string(attr.value()) {
                        name = Some(value);
                    }
                }
                gimli::DW_AT_name if name.is_none() => name = unit.attr_string(attr.value()).ok(),
                gimli::DW_AT_abstract_origin | gimli::DW_AT_specification if name.is_none() => {
                    name = name_attr(attr.value(), unit, refs, 16)?;
                }
                _ => {}
            }
        }
        let mut state = InlinedState {
            entries,
            inlined: Vec::new(),
            addresses: Vec::new(),
            unit,
        };
        parse_children(&mut state, refs, depth, 0)?;
        // By depth, then begin: the range at a given depth is found by binary search.
        state.addresses.sort_unstable_by_key(|a| (a.1, a.0.begin));
        Ok(Function {
            name,
            inlined: state.inlined.into_boxed_slice(),
            inlined_addresses: state.addresses.into_boxed_slice(),
        })
    }

    pub(super) fn name(&self) -> Option<&Reader> {
        self.name.as_ref()
    }

    /// The inlined calls whose ranges hold `probe`, outermost first.
    pub(super) fn inlined_at(&self, probe: u64) -> Vec<&Inlined> {
        let mut out = Vec::new();
        let mut addresses = &self.inlined_addresses[..];
        loop {
            let depth = out.len();
            let found = addresses.binary_search_by(|(range, d, _)| {
                if *d > depth {
                    Ordering::Greater
                } else if *d < depth {
                    Ordering::Less
                } else if range.begin > probe {
                    Ordering::Greater
                } else if range.end <= probe {
                    Ordering::Less
                } else {
                    Ordering::Equal
                }
            });
            let Ok(i) = found else { return out };
            out.push(&self.inlined[addresses[i].2]);
            addresses = &addresses[i + 1..];
        }
    }
}

struct InlinedState<'a> {
    entries: gimli::EntriesRaw<'a, Reader>,
    inlined: Vec<Inlined>,
    /// (range, depth, index in `inlined`)
    addresses: Vec<(gimli::Range, usize, usize)>,
    unit: UnitRef<'a>,
}

/// The children of the DIE at `depth`: inlined calls parsed (with theirs, one level deeper),
/// nested functions skipped.
fn parse_children(
    state: &mut InlinedState<'_>,
    refs: &mut Refs<'_>,
    depth: isize,
    inlined_depth: usize,
) -> gimli::Result<()> {
    loop {
        let next_depth = state.entries.next_depth();
        if next_depth <= depth {
            return Ok(());
        }
        let Some(abbrev) = state.entries.read_abbreviation()? else {
            continue;
        };
        match abbrev.tag() {
            gimli::DW_TAG_subprogram => {
                state.entries.skip_attributes(abbrev.attributes())?;
                while state.entries.next_depth() > next_depth {
                    if let Some(abbrev) = state.entries.read_abbreviation()? {
                        state.entries.skip_attributes(abbrev.attributes())?;
                    }
                }
            }
            gimli::DW_TAG_inlined_subroutine => {
                parse_inlined(state, refs, abbrev, next_depth, inlined_depth)?;
            }
            _ => state.entries.skip_attributes(abbrev.attributes())?,
        }
    }
}

fn parse_inlined(
    state: &mut InlinedState<'_>,
    refs: &mut Refs<'_>,
    abbrev: &gimli::Abbreviation,
    depth: isize,
    inlined_depth: usize,
) -> gimli::Result<()> {
    let unit = state.unit;
    let mut ranges = Ranges::default();
    let mut call = Inlined {
        name: None,
        call_file: None,
        call_line: 0,
    };
    for spec in abbrev.attributes() {
        let attr = state.entries.read_attribute(*spec)?;
        ranges.read(unit, &attr)?;
        match attr.name() {
            gimli::DW_AT_linkage_name | gimli::DW_AT_MIPS_linkage_name => {
                if let Ok(value) = unit.attr_string(attr.value()) {
                    call.name = Some(value);
                }
            }
            gimli::DW_AT_name if call.name.is_none() => {
                call.name = unit.attr_string(attr.value()).ok();
            }
            gimli::DW_AT_abstract_origin | gimli::DW_AT_specification if call.name.is_none() => {
                call.name = name_attr(attr.value(), unit, refs, 16)?;
            }
            gimli::DW_AT_call_file => {
                // File 0 is "none" before DWARF 5, the unit's primary file since.
                if let gimli::AttributeValue::FileIndex(file) = attr.value() {
                    if file > 0 || unit.header.version() >= 5 {
                        call.call_file = Some(file);
                    }
                }
            }
            gimli::DW_AT_call_line => call.call_line = attr.udata_value().unwrap_or(0) as u32,
            _ => {}
        }
    }
    let index = state.inlined.len();
    state.inlined.push(call);
    let addresses = &mut state.addresses;
    ranges.for_each(unit, |range| {
        addresses.push((range, inlined_depth, index));
    })?;
    parse_children(state, refs, depth, inlined_depth + 1)
}

/// The name a reference (`DW_AT_abstract_origin`, `DW_AT_specification`) leads to, in this
/// unit or another (`DW_FORM_ref_addr`: its header and abbreviations read through `refs`).
fn name_attr(
    value: gimli::AttributeValue<Reader>,
    unit: UnitRef<'_>,
    refs: &mut Refs<'_>,
    limit: usize,
) -> gimli::Result<Option<Reader>> {
    if limit == 0 {
        return Ok(None);
    }
    match value {
        gimli::AttributeValue::UnitRef(offset) => name_entry(unit, offset, refs, limit),
        gimli::AttributeValue::DebugInfoRef(offset) => {
            let other: Arc<Unit> = refs.unit_at(offset)?;
            let unit_offset = offset
                .to_unit_offset(&other.header)
                .ok_or(gimli::Error::NoEntryAtGivenOffset(offset.0.into_u64()))?;
            let other_ref = gimli::UnitRef::new(unit.dwarf, &other);
            name_entry(other_ref, unit_offset, refs, limit)
        }
        // No supplementary file is read (`.gnu_debugaltlink`): as before, no name.
        _ => Ok(None),
    }
}

fn name_entry(
    unit: UnitRef<'_>,
    offset: gimli::UnitOffset,
    refs: &mut Refs<'_>,
    limit: usize,
) -> gimli::Result<Option<Reader>> {
    let mut entries = unit.entries_raw(Some(offset))?;
    let abbrev = entries
        .read_abbreviation()?
        .ok_or(gimli::Error::NoEntryAtGivenOffset(offset.0 as u64))?;
    let (mut name, mut next) = (None, None);
    for spec in abbrev.attributes() {
        let attr = entries.read_attribute(*spec)?;
        match attr.name() {
            gimli::DW_AT_linkage_name | gimli::DW_AT_MIPS_linkage_name => {
                if let Ok(value) = unit.attr_string(attr.value()) {
                    return Ok(Some(value));
                }
            }
            gimli::DW_AT_name => {
                if let Ok(value) = unit.attr_string(attr.value()) {
                    name = Some(value);
                }
            }
            gimli::DW_AT_abstract_origin | gimli::DW_AT_specification => {
                next = Some(attr.value());
            }
            _ => {}
        }
    }
    match (name, next) {
        (Some(name), _) => Ok(Some(name)),
        (None, Some(next)) => name_attr(next, unit, refs, limit - 1),
        (None, None) => Ok(None),
    }
}
