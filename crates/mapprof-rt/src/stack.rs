//! Stack capture: a frame-pointer walk bounded by the thread's stack, with a DWARF fallback.
//!
//! The workspace builds with `-C force-frame-pointers=yes`, so every Rust frame starts with the
//! pair `[fp] = caller's fp, [fp + 8] = return address`. The walk reads only words inside the
//! current thread's stack (`pthread_getattr_np`), each frame strictly above the last, so a frame
//! without a frame pointer (libc's entry points, say) ends the walk or yields junk addresses,
//! never a fault. Where frame pointers are missing altogether the `backtrace` crate unwinds with
//! DWARF CFI instead: about 40 times slower, and it may briefly take the loader's lock.

use crate::thread::ThreadState;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

/// Deepest stack kept; deeper stacks are truncated at the root end.
pub const MAX_DEPTH: usize = 128;
// The stack table keeps a stack's depth in 8 bits.
const _: () = assert!(MAX_DEPTH <= u8::MAX as usize);

/// A captured stack: return addresses, innermost first.
pub(crate) type Frames = [usize; MAX_DEPTH];

/// How stacks are unwound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Unwinder {
    /// Frame pointers, falling back to DWARF when the walk finds fewer than two frames.
    Auto = 0,
    /// Frame pointers only.
    FramePointer = 1,
    /// DWARF call-frame information through the `backtrace` crate (slow).
    Dwarf = 2,
}

static UNWINDER: AtomicU8 = AtomicU8::new(Unwinder::Auto as u8);

/// Chooses how stacks are unwound from now on.
pub fn set_unwinder(unwinder: Unwinder) {
    UNWINDER.store(unwinder as u8, Relaxed);
}

/// The unwinder in use.
pub fn unwinder() -> Unwinder {
    match UNWINDER.load(Relaxed) {
        1 => Unwinder::FramePointer,
        2 => Unwinder::Dwarf,
        _ => Unwinder::Auto,
    }
}

/// Captures the caller's stack into `out`, innermost first; returns the depth.
#[inline(never)]
pub(crate) fn capture(state: &ThreadState, out: &mut Frames) -> usize {
    let mode = unwinder();
    if mode != Unwinder::Dwarf && FP_SUPPORTED {
        let n = walk_frame_pointers(state, out);
        if n >= 2 || mode == Unwinder::FramePointer {
            return n;
        }
    }
    walk_dwarf(out)
}

const FP_SUPPORTED: bool = cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));

#[inline(always)]
fn frame_pointer() -> usize {
    let fp: usize;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: reads a register into a local; no memory access, no side effects.
    unsafe {
        std::arch::asm!("mov {}, rbp", out(reg) fp, options(nomem, nostack, preserves_flags));
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: reads a register into a local; no memory access, no side effects.
    unsafe {
        std::arch::asm!("mov {}, x29", out(reg) fp, options(nomem, nostack, preserves_flags));
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        fp = 0;
    }
    fp
}

/// Walks the frame-pointer chain starting at this function's own frame.
fn walk_frame_pointers(state: &ThreadState, out: &mut Frames) -> usize {
    stack_bounds(state);
    walk_from(state, frame_pointer(), out)
}

/// Walks the frame-pointer chain from the frame record at `fp`, appending the return addresses
/// to `out`. Reads only inside the thread's stack, so it is safe from a signal handler.
fn walk_from(state: &ThreadState, mut fp: usize, out: &mut [usize]) -> usize {
    let (lo, hi) = known_stack_bounds(state);
    let word = std::mem::size_of::<usize>();
    let mut n = 0;
    while n < out.len() {
        // Both words of the frame record must lie inside this thread's stack.
        if fp < lo || !fp.is_multiple_of(word) || fp.saturating_add(2 * word) > hi {
            break;
        }
        // SAFETY: `fp` and `fp + word` are aligned and inside [lo, hi), this thread's mapped
        // stack, so both reads are of valid memory; the values are only used as numbers.
        let (next, ret) = unsafe {
            let record = fp as *const usize;
            (record.read(), record.add(1).read())
        };
        if ret == 0 {
            break;
        }
        out[n] = ret;
        n += 1;
        // Callers live at higher addresses; anything else is not a frame record.
        if next <= fp {
            break;
        }
        fp = next;
    }
    n
}

/// The stack of the code a signal interrupted, from the signal's `ucontext_t`: the interrupted
/// instruction (as `pc + 1`, so that it reads like the return addresses after it, of which
/// readers look up the byte before), then the frame-pointer chain from the interrupted frame
/// pointer. Async-signal-safe: register reads and a walk inside the thread's known stack
/// bounds (none before the thread's first sample looked them up: then only the instruction).
///
/// A leaf interrupted before its prologue pushed the frame pointer (or code built without
/// frame pointers) loses its caller: the walk starts at the caller's caller, as with every
/// frame-pointer profiler.
pub(crate) fn capture_interrupted(
    state: &ThreadState,
    context: *const libc::c_void,
    out: &mut Frames,
) -> usize {
    let Some((pc, fp)) = interrupted_registers(context) else {
        return 0;
    };
    out[0] = pc.wrapping_add(1);
    1 + walk_from(state, fp, &mut out[1..])
}

/// The instruction a signal interrupted, from its `ucontext_t`.
pub(crate) fn interrupted_pc(context: *const libc::c_void) -> Option<usize> {
    interrupted_registers(context).map(|(pc, _)| pc)
}

/// The (instruction pointer, frame pointer) saved in a signal's `ucontext_t`.
fn interrupted_registers(context: *const libc::c_void) -> Option<(usize, usize)> {
    if context.is_null() {
        return None;
    }
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    {
        // SAFETY: the kernel passes a SA_SIGINFO handler a valid `ucontext_t` as its third
        // argument, alive for the handler's duration; only two saved registers are read.
        let gregs = unsafe { &(*context.cast::<libc::ucontext_t>()).uc_mcontext.gregs };
        Some((
            gregs[libc::REG_RIP as usize] as usize,
            gregs[libc::REG_RBP as usize] as usize,
        ))
    }
    #[cfg(all(target_os = "linux", target_arch = "aarch64"))]
    {
        // SAFETY: as above; x29 is the frame pointer.
        let mcontext = unsafe { &(*context.cast::<libc::ucontext_t>()).uc_mcontext };
        Some((mcontext.pc as usize, mcontext.regs[29] as usize))
    }
    #[cfg(not(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )))]
    {
        None
    }
}

/// The thread's stack bounds if a sample already looked them up, else an empty range. For
/// signal handlers, which must not call `pthread_getattr_np` (it allocates and, on the main
/// thread, reads `/proc/self/maps`).
fn known_stack_bounds(state: &ThreadState) -> (usize, usize) {
    (state.stack_lo.get(), state.stack_hi.get())
}

/// The current thread's stack range, looked up once per thread (by its first sample, or its
/// first allocation: [`crate::heap`] looks them up early so that CPU samples can walk).
pub(crate) fn stack_bounds(state: &ThreadState) -> (usize, usize) {
    if state.stack_hi.get() == 0 {
        let (lo, hi) = query_stack_bounds();
        state.stack_lo.set(lo);
        // hi stays non-zero even when the query failed, so it is not retried on every sample;
        // (1, 1) is an empty range that makes every walk stop at once (and fall back to DWARF).
        state.stack_hi.set(hi.max(1));
    }
    (state.stack_lo.get(), state.stack_hi.get())
}

#[cfg(target_os = "linux")]
fn query_stack_bounds() -> (usize, usize) {
    let mut attr = std::mem::MaybeUninit::<libc::pthread_attr_t>::uninit();
    let mut addr: *mut libc::c_void = std::ptr::null_mut();
    let mut size: libc::size_t = 0;
    // SAFETY: `attr` is initialised by pthread_getattr_np before it is read and destroyed once;
    // `addr` and `size` are valid out-pointers. glibc may call malloc here (libc's, not the Rust
    // global allocator), once per thread.
    unsafe {
        if libc::pthread_getattr_np(libc::pthread_self(), attr.as_mut_ptr()) != 0 {
            return (1, 1);
        }
        let ok = libc::pthread_attr_getstack(attr.as_ptr(), &mut addr, &mut size) == 0;
        libc::pthread_attr_destroy(attr.as_mut_ptr());
        if !ok {
            return (1, 1);
        }
    }
    let lo = addr as usize;
    (lo, lo.saturating_add(size))
}

#[cfg(not(target_os = "linux"))]
fn query_stack_bounds() -> (usize, usize) {
    (1, 1)
}

/// Unwinds with DWARF call-frame information from here. From a signal handler this unwinds
/// through the signal frame into the interrupted code (libgcc's unwinder, lock-free with
/// `_dl_find_object`: see [`crate::cpu`]).
pub(crate) fn walk_dwarf(out: &mut Frames) -> usize {
    let mut n = 0;
    // SAFETY: `trace_unsynchronized` requires that no other unwinding happens concurrently in a
    // way that is not thread-safe; libgcc's unwinder is thread-safe on the targets we build for,
    // and the closure neither allocates nor panics.
    unsafe {
        backtrace::trace_unsynchronized(|frame| {
            let ip = frame.ip() as usize;
            if ip != 0 && n < MAX_DEPTH {
                out[n] = ip;
                n += 1;
            }
            n < MAX_DEPTH
        });
    }
    // The innermost frames are the profiler's and `backtrace`'s own; the encoder trims them.
    n
}
