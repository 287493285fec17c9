//! How much memory the fixed tables of this crate hold: their size (the bound) and how much of
//! it is resident. Reporting only, never called from the hooks (it makes system calls).
//!
//! The tables are static arrays in `.bss`, paged in only when touched, so their resident part
//! grows with use up to their size and never beyond. Residency is asked of the kernel
//! (`mincore`) page by page, into a buffer on the stack: no allocation. A page that was only
//! read maps the kernel's shared zero page and counts as resident here though it costs no
//! memory, so the figure is an upper bound on what the tables cost.

/// The address and byte size of a static table.
pub(crate) type Region = (usize, usize);

/// The [`Region`] of `table`.
pub(crate) fn region<T>(table: &'static T) -> Region {
    (table as *const T as usize, std::mem::size_of_val(table))
}

/// Every fixed table of the hot path: the stack table (buckets, index, frame arena), the
/// live set, the label table and the thread dumps' slots.
fn regions() -> impl Iterator<Item = Region> {
    let table = crate::table::static_tables();
    let live = crate::live::static_tables();
    let labels = crate::labels::static_tables();
    let dumps = [crate::threads::slots_region()];
    table.into_iter().chain(live).chain(labels).chain(dumps)
}

/// The fixed tables' memory: `(reserved, resident)` bytes. `reserved` is their total size, a
/// constant; `resident` the part of it in memory now (see the module's note on zero pages).
pub fn tables() -> (usize, usize) {
    regions().fold((0, 0), |(reserved, resident), r| {
        (reserved + r.1, resident + resident_bytes(r))
    })
}

/// Bytes of the pages overlapping `region` that are resident.
fn resident_bytes((addr, bytes): Region) -> usize {
    // SAFETY: sysconf only reads a system constant.
    let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        p if p > 0 => p as usize,
        _ => 4096,
    };
    let (start, end) = (addr & !(page - 1), addr + bytes);
    let mut resident_pages = 0;
    let mut vec = [0u8; 512];
    let mut at = start;
    while at < end {
        let pages = ((end - at).div_ceil(page)).min(vec.len());
        // SAFETY: `at` is page-aligned and `[at, at + pages * page)` lies within the pages of
        // a static array, which are mapped for the life of the process; the kernel writes one
        // byte per page into `vec`, which has room for `pages` of them.
        let ok = unsafe { libc::mincore(at as *mut libc::c_void, pages * page, vec.as_mut_ptr()) };
        if ok != 0 {
            // Cannot say: count the region as resident, the bound.
            return bytes;
        }
        resident_pages += vec[..pages].iter().filter(|&&b| b & 1 != 0).count();
        at += pages * page;
    }
    (resident_pages * page).min(end - start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_tables_are_within_their_size_and_grow_when_touched() {
        let (reserved, before) = tables();
        // The main table (`MAX_BUCKETS`, twice as many index slots, `MAX_FRAMES`), the live set
        // and labels.
        assert!(reserved > 12 << 20, "{reserved}");
        assert!(before <= reserved);
        // A page of the label arena nobody has touched yet is not resident; writing makes it so.
        static PROBE: [std::sync::atomic::AtomicU8; 1 << 16] =
            [const { std::sync::atomic::AtomicU8::new(0) }; 1 << 16];
        let untouched = resident_bytes(region(&PROBE));
        for b in PROBE.iter().step_by(4096) {
            b.store(1, std::sync::atomic::Ordering::Relaxed);
        }
        let touched = resident_bytes(region(&PROBE));
        assert!(
            touched >= (1 << 16) && touched > untouched,
            "{untouched} → {touched}"
        );
    }
}
