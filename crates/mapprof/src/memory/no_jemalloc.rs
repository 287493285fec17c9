//! jemalloc's calls as `memory` makes them, for a build without the `jemalloc` feature. No
//! `Alloc` can wrap jemalloc then, so the inner allocator is never jemalloc and none of these
//! runs; each answers as a jemalloc that knows no setting would (`ENOENT`, no block), so that
//! `memory` reads the same in both builds.

use std::ffi::{c_char, c_int, c_void};

/// What jemalloc's `mallctl*` return for a name they do not know.
const UNKNOWN: c_int = libc::ENOENT;

pub(super) const MALLOCX_ZERO: c_int = 0;
pub(super) const MALLOCX_TCACHE_NONE: c_int = 0;

#[allow(non_snake_case)] // jemalloc's name
pub(super) const fn MALLOCX_ALIGN(_align: usize) -> c_int {
    0
}

#[allow(non_snake_case)] // jemalloc's name
pub(super) const fn MALLOCX_ARENA(_arena: usize) -> c_int {
    0
}

pub(super) unsafe fn mallocx(_size: usize, _flags: c_int) -> *mut c_void {
    std::ptr::null_mut()
}

pub(super) unsafe fn rallocx(_ptr: *mut c_void, _size: usize, _flags: c_int) -> *mut c_void {
    std::ptr::null_mut()
}

pub(super) unsafe fn mallctl(
    _name: *const c_char,
    _old: *mut c_void,
    _old_len: *mut usize,
    _new: *mut c_void,
    _new_len: usize,
) -> c_int {
    UNKNOWN
}

pub(super) unsafe fn mallctlnametomib(
    _name: *const c_char,
    _mib: *mut usize,
    _mib_len: *mut usize,
) -> c_int {
    UNKNOWN
}

pub(super) unsafe fn mallctlbymib(
    _mib: *const usize,
    _mib_len: usize,
    _old: *mut c_void,
    _old_len: *mut usize,
    _new: *mut c_void,
    _new_len: usize,
) -> c_int {
    UNKNOWN
}
