//! The executable mappings of the running process (`/proc/self/maps`), with build ids, so that
//! profiles can be symbolized offline and `go tool pprof` can tell binaries apart. The vDSO
//! (the kernel's `clock_gettime`, `gettimeofday`, ... mapped into every process) is one of
//! them, named [`VDSO`] as the kernel names it; its ELF image is read from the process's
//! memory, not from a file.

use std::collections::HashMap;
use std::fs::File;

/// The name of the vDSO's mapping, in `/proc/self/maps` and in profiles (as Go's and perf's).
pub const VDSO: &str = "[vdso]";

/// One executable mapping of a file (or of the vDSO, [`VDSO`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMapping {
    /// First address of the mapping.
    pub start: u64,
    /// One past its last address.
    pub limit: u64,
    /// Offset in the file where the mapping starts.
    pub file_offset: u64,
    /// Path of the mapped file.
    pub path: String,
    /// GNU build id as lowercase hex, or empty.
    pub build_id: String,
}

/// Reads the process's executable file mappings, the main executable first. Empty when
/// `/proc/self/maps` cannot be read (not Linux, or a restricted sandbox).
pub fn current() -> Vec<ObjectMapping> {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return Vec::new();
    };
    let exe = std::env::current_exe()
        .ok()
        .map(|p| p.display().to_string());
    let mut files: HashMap<String, ElfFacts> = HashMap::new();
    let mut out: Vec<ObjectMapping> = maps
        .lines()
        .filter_map(parse_line)
        .map(|m| {
            let facts = files
                .entry(m.path.clone())
                .or_insert_with(|| match m.path.as_str() {
                    VDSO => read_memory(m.start, m.limit)
                        .map(|image| ElfFacts::from_headers_of(&image[..]))
                        .unwrap_or_default(),
                    path => ElfFacts::read(path),
                });
            facts.refine(m)
        })
        .collect();
    // pprof takes the first mapping to be the main binary.
    out.sort_by_key(|m| (Some(&m.path) != exe.as_ref(), m.start));
    out
}

/// Parses `start-end perms offset dev inode path` and keeps executable mappings of files and
/// the vDSO.
fn parse_line(line: &str) -> Option<ObjectMapping> {
    let mut fields = line.split_ascii_whitespace();
    let (start, end) = fields.next()?.split_once('-')?;
    let perms = fields.next()?;
    let offset = fields.next()?;
    let path = fields.nth(2)?;
    if !perms.contains('x') || !(path.starts_with('/') || path == VDSO) {
        return None;
    }
    Some(ObjectMapping {
        start: u64::from_str_radix(start, 16).ok()?,
        limit: u64::from_str_radix(end, 16).ok()?,
        file_offset: u64::from_str_radix(offset, 16).ok()?,
        path: path.to_owned(),
        build_id: String::new(),
    })
}

/// The bytes at `[start, limit)` of this process's memory, through `/proc/self/mem` (so a
/// range that is not readable is an error, not a fault); for the vDSO, two pages or so.
fn read_memory(start: u64, limit: u64) -> Option<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let len = usize::try_from(limit.checked_sub(start)?).ok()?;
    // The vDSO is a few pages; anything larger is not the vDSO.
    if len > 1 << 20 {
        return None;
    }
    let mut mem = File::open("/proc/self/mem").ok()?;
    mem.seek(SeekFrom::Start(start)).ok()?;
    let mut image = vec![0; len];
    mem.read_exact(&mut image).ok()?;
    Some(image)
}

/// The ELF image of this process's vDSO, copied from its memory, if it has one and its build
/// id is `build_id` (lowercase hex; any, when empty): a profile's vDSO is this one when it
/// was taken under the same kernel.
pub(crate) fn vdso_image(build_id: &str) -> Option<Vec<u8>> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let m = maps
        .lines()
        .filter_map(parse_line)
        .find(|m| m.path == VDSO)?;
    let image = read_memory(m.start, m.limit)?;
    let found = ElfFacts::from_headers_of(&image[..]).build_id;
    (build_id.is_empty() || found == build_id).then_some(image)
}

/// What the mappings need from an ELF file, read without loading the whole file.
#[derive(Debug, Default)]
struct ElfFacts {
    /// GNU build id as lowercase hex, or empty.
    build_id: String,
    /// File offsets of the executable `PT_LOAD` segments.
    exec_segment_offsets: Vec<u64>,
}

/// The GNU build id of the ELF file at `path`, lowercase hex (empty when it has none); errors
/// say what is wrong with the file.
pub fn build_id_of(path: &str) -> Result<String, String> {
    let file = File::open(path).map_err(|e| format!("cannot open {path}: {e}"))?;
    let cache = object::ReadCache::new(file);
    let object =
        object::File::parse(&cache).map_err(|e| format!("{path} is not an ELF file: {e}"))?;
    Ok(build_id(&object))
}

fn build_id<'d>(object: &impl object::Object<'d>) -> String {
    match object.build_id() {
        Ok(Some(id)) => id.iter().map(|b| format!("{b:02x}")).collect(),
        _ => String::new(),
    }
}

impl ElfFacts {
    /// Reads the ELF header and program headers only (the build id from the `PT_NOTE`
    /// segments): parsing the whole file (`object::File::parse` reads the section headers and
    /// symbol table) cost ~35 ms per profile on a 30 MB executable with debug info.
    fn read(path: &str) -> ElfFacts {
        let Ok(file) = File::open(path) else {
            return ElfFacts::default();
        };
        let cache = object::ReadCache::new(file);
        Self::from_headers_of(&cache)
    }

    /// The same from an ELF file's bytes, or a cache of its reads.
    fn from_headers_of<'d>(data: impl object::ReadRef<'d>) -> ElfFacts {
        use object::elf::{FileHeader32, FileHeader64};
        use object::{Endianness, FileKind};
        match FileKind::parse(data) {
            Ok(FileKind::Elf64) => Self::from_headers::<FileHeader64<Endianness>>(data),
            Ok(FileKind::Elf32) => Self::from_headers::<FileHeader32<Endianness>>(data),
            _ => ElfFacts::default(),
        }
    }

    fn from_headers<'d, Elf: object::read::elf::FileHeader<Endian = object::Endianness>>(
        data: impl object::ReadRef<'d>,
    ) -> ElfFacts {
        use object::elf::{ELF_NOTE_GNU, NT_GNU_BUILD_ID, PT_LOAD};
        use object::read::elf::ProgramHeader;
        const PF_X: u32 = 1;
        let mut facts = ElfFacts::default();
        let Ok(header) = Elf::parse(data) else {
            return facts;
        };
        let Ok(endian) = header.endian() else {
            return facts;
        };
        let Ok(segments) = header.program_headers(endian, data) else {
            return facts;
        };
        for segment in segments {
            if segment.p_type(endian) == PT_LOAD && segment.p_flags(endian).0 & PF_X != 0 {
                facts
                    .exec_segment_offsets
                    .push(segment.p_offset(endian).into());
            }
            let Ok(Some(mut notes)) = segment.notes(endian, data) else {
                continue;
            };
            while let Ok(Some(note)) = notes.next() {
                if facts.build_id.is_empty()
                    && note.name() == ELF_NOTE_GNU
                    && note.n_type(endian) == NT_GNU_BUILD_ID
                {
                    facts.build_id = note.desc().iter().map(|b| format!("{b:02x}")).collect();
                }
            }
        }
        facts
    }

    /// Adds the build id, and starts the mapping where its executable segment starts.
    ///
    /// `/proc/self/maps` gives page-aligned ranges, but linkers may start the text segment in
    /// the middle of a page shared with the segment before it. `go tool pprof` computes the
    /// load bias as `memory_start - segment vaddr`, which is wrong by that in-page offset unless
    /// the mapping starts exactly at the segment (binutils-based pprof accepts both forms).
    fn refine(&self, mut m: ObjectMapping) -> ObjectMapping {
        m.build_id = self.build_id.clone();
        let page = 4096;
        if let Some(&off) = self
            .exec_segment_offsets
            .iter()
            .find(|&&off| off >= m.file_offset && off < m.file_offset + page)
        {
            let delta = off - m.file_offset;
            if delta < m.limit - m.start {
                m.start += delta;
                m.file_offset = off;
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_executable_file_mappings_only() {
        let m = parse_line("55d0c000-55d0d000 r-xp 00001000 fd:01 123 /usr/bin/app").unwrap();
        assert_eq!(
            (m.start, m.limit, m.file_offset),
            (0x55d0c000, 0x55d0d000, 0x1000)
        );
        assert_eq!(m.path, "/usr/bin/app");
        assert!(parse_line("55d0c000-55d0d000 rw-p 00001000 fd:01 123 /usr/bin/app").is_none());
        let vdso = parse_line("7ffd000-7ffe000 r-xp 00000000 00:00 0 [vdso]").unwrap();
        assert_eq!((vdso.start, vdso.path.as_str()), (0x7ffd000, VDSO));
        assert!(parse_line("7ffc000-7ffd000 r--p 00000000 00:00 0 [vvar]").is_none());
        assert!(parse_line("7ff0000-7ff1000 r-xp 00000000 00:00 0 [anon:x]").is_none());
        assert!(parse_line("garbage").is_none());
    }

    #[test]
    fn the_test_binary_is_first_and_has_a_build_id() {
        let maps = current();
        let exe = std::env::current_exe().unwrap().display().to_string();
        assert_eq!(maps[0].path, exe);
        assert_eq!(maps[0].build_id.len(), 40, "{maps:?}");
    }

    #[test]
    fn the_vdso_is_mapped_with_the_build_id_of_its_image() {
        use object::Object;
        let maps = current();
        let vdso = maps
            .iter()
            .find(|m| m.path == VDSO)
            .unwrap_or_else(|| panic!("no vDSO in {maps:?}"));
        let image = vdso_image("").expect("the vDSO's image");
        let object = object::File::parse(&image[..]).unwrap();
        let id: String = match object.build_id() {
            Ok(Some(id)) => id.iter().map(|b| format!("{b:02x}")).collect(),
            _ => String::new(),
        };
        assert_eq!(vdso.build_id, id);
        assert!(vdso_image(&vdso.build_id).is_some());
        assert!(vdso_image("00").is_none(), "another kernel's vDSO");
    }

    #[test]
    fn the_headers_give_what_the_whole_file_gives() {
        use object::{Object, ObjectSegment, SegmentFlags};
        for m in current().into_iter().filter(|m| m.path != VDSO) {
            let facts = ElfFacts::read(&m.path);
            assert_eq!(Ok(facts.build_id), build_id_of(&m.path), "{}", m.path);
            let bytes = std::fs::read(&m.path).unwrap();
            let object = object::File::parse(&*bytes).unwrap();
            let offsets: Vec<u64> = object
                .segments()
                .filter(
                    |s| matches!(s.flags(), SegmentFlags::Elf { p_flags, .. } if p_flags.0 & 1 != 0),
                )
                .map(|s| s.file_range().0)
                .collect();
            assert_eq!(facts.exec_segment_offsets, offsets, "{}", m.path);
            assert!(!offsets.is_empty(), "{}", m.path);
        }
    }
}
