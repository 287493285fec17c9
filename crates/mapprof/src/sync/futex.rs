//! The Linux futex calls the shim's own `Mutex` and `Condvar` sleep and wake with.

use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Sleeps while `*futex == expected`, at most `timeout`. Returns false when the timeout
/// passed; true on a wake-up, a changed value or a spurious return (callers re-check).
pub(crate) fn wait(futex: &AtomicU32, expected: u32, timeout: Option<Duration>) -> bool {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: FUTEX_WAIT reads the u32 at `futex` (a live atomic) and the optional timespec
    // (a live local); it writes nothing.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            futex.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            ts_ptr,
        )
    };
    !(r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ETIMEDOUT))
}

/// Wakes up to `count` threads sleeping on `futex`.
pub(crate) fn wake(futex: &AtomicU32, count: i32) {
    // SAFETY: FUTEX_WAKE only uses the address of `futex` (a live atomic) as a key.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            futex.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            count,
        );
    }
}
