//! One compilation unit's line table, parsed for resolving: its rows (address, file, line)
//! by sequence, and its file names rendered as paths.
//!
//! The rules are `addr2line` 0.27's (`line.rs`; MIT or Apache-2.0), kept so that every answer
//! is the same: rows at the same address keep the last one, sequences are sorted by start and
//! found by binary search, a row answers from its address to the next. Columns are not kept.

use super::Reader;
use gimli::Reader as _;
use std::cmp::Ordering;

type UnitRef<'a> = gimli::UnitRef<'a, Reader>;

/// A unit's line table: rendered file names, and sequences of rows sorted by start.
pub(super) struct Lines {
    files: Box<[String]>,
    sequences: Box<[Sequence]>,
}

struct Sequence {
    start: u64,
    end: u64,
    rows: Box<[Row]>,
}

/// A row: 16 bytes (`u32::MAX` for a file index past any table: no file, as the index it
/// stands for would be).
struct Row {
    address: u64,
    file: u32,
    line: u32,
}

/// A source location: the file and the line (0: unknown).
#[derive(Clone, Copy)]
pub(super) struct Location<'a> {
    pub(super) file: Option<&'a str>,
    pub(super) line: u32,
}

impl Lines {
    pub(super) fn parse(
        unit: UnitRef<'_>,
        program: gimli::IncompleteLineProgram<Reader>,
    ) -> gimli::Result<Lines> {
        let mut sequences = Vec::new();
        let mut current = Vec::<Row>::new();
        let mut rows = program.rows();
        while let Some((_, row)) = rows.next_row()? {
            if row.end_sequence() {
                if let Some(start) = current.first().map(|r| r.address) {
                    let end = row.address();
                    let rows = std::mem::take(&mut current);
                    if start < end {
                        sequences.push(Sequence {
                            start,
                            end,
                            rows: rows.into_boxed_slice(),
                        });
                    }
                }
                continue;
            }
            let address = row.address();
            let file = u32::try_from(row.file_index()).unwrap_or(u32::MAX);
            let line = row.line().map_or(0, |l| l.get() as u32);
            if let Some(last) = current.last_mut() {
                if last.address == address {
                    (last.file, last.line) = (file, line);
                    continue;
                }
            }
            current.push(Row {
                address,
                file,
                line,
            });
        }
        sequences.sort_unstable_by_key(|s| s.start);

        let header = rows.header();
        let mut files = Vec::new();
        match header.file(0) {
            Some(file) => files.push(render_file(unit, file, header)?),
            // DWARF before 5 may have no entry 0.
            None => files.push(String::new()),
        }
        let mut index = 1;
        while let Some(file) = header.file(index) {
            files.push(render_file(unit, file, header)?);
            index += 1;
        }
        Ok(Lines {
            files: files.into_boxed_slice(),
            sequences: sequences.into_boxed_slice(),
        })
    }

    /// The address ranges of the sequences (for a unit that declares none).
    pub(super) fn ranges(&self) -> impl Iterator<Item = gimli::Range> + '_ {
        self.sequences.iter().map(|s| gimli::Range {
            begin: s.start,
            end: s.end,
        })
    }

    pub(super) fn file(&self, index: u64) -> Option<&str> {
        self.files
            .get(usize::try_from(index).ok()?)
            .map(String::as_str)
    }

    /// Heap bytes held (estimated: the rows, sequences and file names).
    pub(super) fn heap_bytes(&self) -> usize {
        let rows: usize = self.sequences.iter().map(|s| s.rows.len()).sum();
        rows * size_of::<Row>()
            + self.sequences.len() * size_of::<Sequence>()
            + self.files.iter().map(|f| f.capacity() + 24).sum::<usize>()
    }

    pub(super) fn find_location(&self, probe: u64) -> Option<Location<'_>> {
        let i = self
            .sequences
            .binary_search_by(|s| {
                if probe < s.start {
                    Ordering::Greater
                } else if probe >= s.end {
                    Ordering::Less
                } else {
                    Ordering::Equal
                }
            })
            .ok()?;
        let rows = &self.sequences[i].rows;
        let row = match rows.binary_search_by(|r| r.address.cmp(&probe)) {
            Ok(x) => x,
            Err(0) => return None,
            Err(x) => x - 1,
        };
        let row = &rows[row];
        Some(Location {
            file: self.file(u64::from(row.file)),
            line: row.line,
        })
    }
}

/// A file entry's path: the unit's directory, the entry's directory, its name, each absolute
/// one replacing what came before.
fn render_file(
    unit: UnitRef<'_>,
    file: &gimli::FileEntry<Reader>,
    header: &gimli::LineProgramHeader<Reader>,
) -> gimli::Result<String> {
    let mut path = match &unit.comp_dir {
        Some(dir) => dir.to_string_lossy()?.into_owned(),
        None => String::new(),
    };
    // Directory 0 is the unit's own.
    if file.directory_index() != 0 {
        if let Some(dir) = file.directory(header) {
            path_push(&mut path, &unit.attr_string(dir)?.to_string_lossy()?);
        }
    }
    path_push(
        &mut path,
        &unit.attr_string(file.path_name())?.to_string_lossy()?,
    );
    Ok(path)
}

fn path_push(path: &mut String, p: &str) {
    let unix_root = |p: &str| p.starts_with('/') || p.get(1..3) == Some(":/");
    let windows_root = |p: &str| p.starts_with('\\') || p.get(1..3) == Some(":\\");
    if unix_root(p) || windows_root(p) {
        *path = p.to_owned();
    } else {
        let separator = if windows_root(path) { '\\' } else { '/' };
        if !path.is_empty() && !path.ends_with(separator) {
            path.push(separator);
        }
        path.push_str(p);
    }
}
