//! Which compilation unit holds an address: every unit's offset and address ranges, read once
//! when the DWARF is opened, each unit's parsed state dropped as soon as its ranges are known.
//!
//! The ranges are those `addr2line` 0.27 took (`unit.rs`, `ResUnits::parse`), in its order of
//! preference: `DW_AT_ranges`, else `.debug_aranges`, else `DW_AT_low_pc`/`DW_AT_high_pc`, else
//! (a unit that declares none) its line table's sequences; units gimli cannot read are left out
//! as it left them, so that the same units answer the same addresses.

use super::lines::Lines;
use super::unit::Ranges;
use super::Reader;

/// One address range of a unit, and the least begin of the ranges from it to the end (the
/// ranges are sorted by end, so a search stops where no later range can hold the address).
struct UnitRange {
    begin: u64,
    end: u64,
    min_begin: u64,
    unit: u32,
}

pub(super) struct UnitIndex {
    /// `.debug_info` offsets of the units (compilation and partial; not type units), ascending.
    offsets: Box<[usize]>,
    ranges: Box<[UnitRange]>,
}

impl UnitIndex {
    pub(super) fn read(dwarf: &gimli::Dwarf<Reader>) -> gimli::Result<UnitIndex> {
        // The `.debug_aranges` sets, by the unit they describe (a unit may have several).
        let mut aranges = Vec::new();
        let mut headers = dwarf.debug_aranges.headers();
        while let Some(header) = headers.next()? {
            aranges.push((header.debug_info_offset(), header.offset()));
        }
        aranges.sort_unstable_by_key(|a| a.0);

        let mut offsets = Vec::new();
        let mut ranges = Vec::new();
        let mut units = dwarf.units();
        while let Some(header) = units.next()? {
            let Some(offset) = header.debug_info_offset() else {
                continue;
            };
            let mut need_range = match header.type_() {
                gimli::UnitType::Type { .. } | gimli::UnitType::SplitType { .. } => continue,
                // Only other units' references lead into a partial unit.
                gimli::UnitType::Partial => false,
                _ => true,
            };
            // Read as gimli reads it (its line program header included), to skip what it
            // cannot read; dropped at the end of this iteration.
            let Ok(unit) = dwarf.unit(header) else {
                continue;
            };
            let unit_ref = gimli::UnitRef::new(dwarf, &unit);
            // Fewer than 2^32 units: each takes bytes of a section far smaller than 4 GiB.
            let id = offsets.len() as u32;
            let mut push = |range: gimli::Range| {
                ranges.push(UnitRange {
                    begin: range.begin,
                    end: range.end,
                    min_begin: 0,
                    unit: id,
                })
            };
            if need_range {
                let mut entries = unit_ref.entries_raw(None)?;
                let Some(abbrev) = entries.read_abbreviation()? else {
                    continue;
                };
                let mut attrs = Ranges::default();
                for spec in abbrev.attributes() {
                    attrs.read(unit_ref, &entries.read_attribute(*spec)?)?;
                }
                let first = match attrs.has_range_list() {
                    true => None,
                    false => aranges.binary_search_by_key(&offset, |a| a.0).ok(),
                };
                if let Some(mut i) = first {
                    while i > 0 && aranges[i - 1].0 == offset {
                        i -= 1;
                    }
                    for &(_, set) in aranges[i..].iter().take_while(|a| a.0 == offset) {
                        let mut entries = dwarf.debug_aranges.header(set)?.entries();
                        // Errors in an entry (address overflow) skip it; the iterator stops
                        // at those it cannot go past.
                        while let Some(entry) = entries.next().transpose() {
                            if let Ok(entry) = entry {
                                if entry.length() != 0 {
                                    push(entry.range());
                                    need_range = false;
                                }
                            }
                        }
                    }
                }
                if need_range {
                    need_range = !attrs.for_each(unit_ref, &mut push)?;
                }
            }
            if need_range {
                if let Some(program) = &unit.line_program {
                    if let Ok(lines) = Lines::parse(unit_ref, program.clone()) {
                        lines.ranges().for_each(&mut push);
                    }
                }
            }
            offsets.push(offset.0);
        }
        // By end (then unit, as before), the least begin from each range on.
        ranges.sort_unstable_by_key(|r| (r.end, r.unit));
        let mut min = u64::MAX;
        for range in ranges.iter_mut().rev() {
            min = min.min(range.begin);
            range.min_begin = min;
        }
        Ok(UnitIndex {
            offsets: offsets.into_boxed_slice(),
            ranges: ranges.into_boxed_slice(),
        })
    }

    /// Units indexed.
    pub(super) fn len(&self) -> usize {
        self.offsets.len()
    }

    /// Heap bytes held.
    pub(super) fn heap_bytes(&self) -> usize {
        size_of_val(&*self.offsets) + size_of_val(&*self.ranges)
    }

    /// The `.debug_info` offset of unit `unit`.
    pub(super) fn offset(&self, unit: u32) -> usize {
        self.offsets[unit as usize]
    }

    /// The unit whose DIEs include `offset`: the last that starts before it.
    pub(super) fn unit_containing(&self, offset: usize) -> Option<u32> {
        match self.offsets.binary_search(&offset) {
            // No DIE is at a unit's own offset, nor before the first unit.
            Ok(_) | Err(0) => None,
            Err(i) => Some((i - 1) as u32),
        }
    }

    /// The units whose ranges hold `probe`, in the order they are to be asked.
    pub(super) fn units_at(&self, probe: u64) -> impl Iterator<Item = u32> + '_ {
        let high = probe.saturating_add(1);
        let from = match self.ranges.binary_search_by_key(&probe, |r| r.end) {
            Ok(i) => i + 1,
            Err(i) => i,
        };
        self.ranges[from..]
            .iter()
            .take_while(move |r| high > r.min_begin)
            .filter(move |r| probe < r.end && high > r.begin)
            .map(|r| r.unit)
    }
}
