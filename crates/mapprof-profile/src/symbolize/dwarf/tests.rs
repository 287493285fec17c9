//! The DWARF reader against `addr2line`'s context, which it replaced: the same frames (raw
//! names, files, lines, inlined chains) at every address probed.

use super::*;

/// What `addr2line` 0.27 answered at `probe`, as the symbolizer read it before.
fn as_addr2line_did(context: &addr2line::Context<Reader>, probe: u64) -> Vec<DwarfFrame> {
    let mut out = Vec::new();
    let Ok(mut frames) = context.find_frames(probe).skip_all_loads() else {
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

fn key(frames: &[DwarfFrame]) -> Vec<(Option<&str>, &str, u32)> {
    frames
        .iter()
        .map(|f| (f.raw_name.as_deref(), f.file.as_str(), f.line))
        .collect()
}

/// Every `step`-th address of the file's `.text` (this test binary's, or the file at
/// `MAPPROF_DWARF_COMPARE`, every `MAPPROF_DWARF_COMPARE_STEP`-th byte): the same frames as
/// `addr2line`'s, while the parsed state is dropped past its budget again and again.
#[test]
fn every_address_resolves_as_addr2line_did() {
    let own = std::env::current_exe().unwrap();
    let path = std::env::var("MAPPROF_DWARF_COMPARE").unwrap_or(own.display().to_string());
    let step: u64 = std::env::var("MAPPROF_DWARF_COMPARE_STEP")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(53);
    let mut ours = DebugInfo::open(&path).unwrap();
    let mapped = Mapped::open(&path).unwrap();
    let object = object::File::parse(&*mapped.bytes).unwrap();
    let text = object.section_by_name(".text").unwrap();
    let (start, end) = (text.address(), text.address() + text.size());
    // The same sections, as the symbolizer gave them to addr2line.
    // Deprecated for `DwarfSections::borrow`, which would need the sections loaded again.
    #[allow(deprecated)]
    let mut dwarf = ours.dwarf.borrow(|section| section.clone());
    dwarf.populate_abbreviations_cache(gimli::AbbreviationsCacheStrategy::Duplicates);
    let context = addr2line::Context::from_dwarf(dwarf).unwrap();
    let (mut compared, mut inlined, mut differ) = (0, 0, Vec::new());
    for probe in (start..end).step_by(step as usize) {
        let (a, b) = (ours.frames(probe), as_addr2line_did(&context, probe));
        if key(&a) != key(&b) && differ.len() < 5 {
            differ.push(format!("{probe:#x}: {:?} != {:?}", key(&a), key(&b)));
        }
        compared += usize::from(!b.is_empty());
        inlined += usize::from(b.len() > 1);
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
    assert!(compared > 1000 && inlined > 100, "{compared} {inlined}");
    assert!(ours.parsed().resets > 0, "{:?}", ours.parsed());
}
