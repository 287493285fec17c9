//! Labels on CPU samples taken by the `pprof` crate.
//!
//! pprof-rs's SIGPROF handler records the interrupted stack and the thread, nothing else, and
//! offers no hook. So [`chain`] puts mapprof's handler in front of it: the kernel calls ours,
//! which reads the interrupted thread's label set id ([`labels::signal_id`]) and calls
//! pprof-rs's handler through three frames, one per hex digit of the id, each frame one of 16
//! functions. pprof-rs unwinds from inside its own handler, so those frames are part of every
//! sample's stack, between its handler and the signal trampoline, and its collector, which keys
//! stacks by the functions in them, keeps samples of different labels apart. [`decode`] reads
//! the id back from the functions' start addresses; the profile then drops every frame before
//! the trampoline. Samples without labels go through the digits of id 0: a sample without
//! digit frames was taken before [`chain`] ran, when nobody read its labels.
//!
//! Everything here is async-signal-safe: an atomic load, [`labels::signal_id`] (atomics and a
//! bounded spin), and plain calls.

use crate::labels;
use std::io;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicUsize, Ordering::Acquire, Ordering::Release};

/// A `SA_SIGINFO` signal handler.
type Handler = extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void);
/// One digit frame: calls the next level (or `next`, the handler chained to) and returns.
type Digit = extern "C" fn(u32, Handler, libc::c_int, *mut libc::siginfo_t, *mut libc::c_void);

/// Hex digits of an id: enough for [`labels::MAX_SETS`] ids.
const LEVELS: usize = 3;
const _: () = assert!(labels::MAX_SETS <= 1 << (4 * LEVELS));

/// The handler ours calls: pprof-rs's, as it was installed when [`chain`] ran. 0 = none.
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Puts mapprof's handler in front of SIGPROF's current `SA_SIGINFO` handler (pprof-rs's,
/// just installed by its profiler), with the same mask and flags. Call it after each start of
/// pprof-rs's profiler, which installs its handler anew; its stop sets SIGPROF to ignored,
/// which removes ours too. Samples taken before this returns carry no labels.
pub fn chain() -> io::Result<()> {
    let mut action = MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: with a null new action, `sigaction` only writes the current one into `action`, a
    // valid, zeroed `struct sigaction`.
    if unsafe { libc::sigaction(libc::SIGPROF, std::ptr::null(), action.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: zero-initialised, then filled in by the kernel: every field is valid.
    let mut action = unsafe { action.assume_init() };
    let current = action.sa_sigaction;
    if current == handler as Handler as usize {
        return Ok(());
    }
    if action.sa_flags & libc::SA_SIGINFO == 0
        || current == libc::SIG_DFL
        || current == libc::SIG_IGN
    {
        return Err(io::Error::other(
            "SIGPROF has no SA_SIGINFO handler to chain to: the CPU profiler is not running",
        ));
    }
    NEXT.store(current, Release);
    action.sa_sigaction = handler as Handler as usize;
    // SAFETY: `action` is the current, valid action with only the handler replaced by
    // `handler`, an `extern "C"` function of the `SA_SIGINFO` signature that stays valid for
    // the life of the process; the old action is not asked for.
    if unsafe { libc::sigaction(libc::SIGPROF, &action, std::ptr::null_mut()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The label set id that a CPU sample's handler frames (innermost first: the function start
/// of each frame before the signal trampoline) encode; `None` when they do not hold exactly
/// one digit frame per level, in order: the sample did not go through mapprof's handler.
pub fn decode(function_starts: impl IntoIterator<Item = usize>) -> Option<u32> {
    let mut id = 0u32;
    let mut level = 0;
    for start in function_starts {
        let found = DIGITS
            .iter()
            .enumerate()
            .find_map(|(l, digits)| Some((l, digits.iter().position(|&d| d as usize == start)?)));
        let Some((l, digit)) = found else { continue };
        if l != level {
            return None;
        }
        id |= (digit as u32) << (4 * l);
        level += 1;
    }
    (level == LEVELS).then_some(id)
}

extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let next = NEXT.load(Acquire);
    if next == 0 {
        return;
    }
    // SAFETY: `chain` stores only the `sa_sigaction` of a `SA_SIGINFO` action, a function of
    // this signature, before installing `handler`.
    let next: Handler = unsafe { std::mem::transmute::<usize, Handler>(next) };
    let id = labels::signal_id();
    let top = LEVELS - 1;
    DIGITS[top][(id >> (4 * top)) as usize & 15](id, next, sig, info, ctx);
}

/// The digit function for digit `D` at level `LEVEL`: calls the level below's function for the
/// next digit (level 0 calls `next`), then passes its own number through `black_box`. That
/// keeps the 48 instances' bodies distinct, so LLVM does not merge them, and the call out of
/// tail position, so each frame stays on the stack.
#[inline(never)]
extern "C" fn digit<const LEVEL: usize, const D: usize>(
    id: u32,
    next: Handler,
    sig: libc::c_int,
    info: *mut libc::siginfo_t,
    ctx: *mut libc::c_void,
) {
    match LEVEL.checked_sub(1) {
        None => next(sig, info, ctx),
        Some(below) => {
            DIGITS[below][(id >> (4 * below)) as usize & 15](id, next, sig, info, ctx);
        }
    }
    std::hint::black_box(LEVEL * 16 + D);
}

/// One level's 16 digit functions, by digit.
const fn level<const L: usize>() -> [Digit; 16] {
    [
        digit::<L, 0>,
        digit::<L, 1>,
        digit::<L, 2>,
        digit::<L, 3>,
        digit::<L, 4>,
        digit::<L, 5>,
        digit::<L, 6>,
        digit::<L, 7>,
        digit::<L, 8>,
        digit::<L, 9>,
        digit::<L, 10>,
        digit::<L, 11>,
        digit::<L, 12>,
        digit::<L, 13>,
        digit::<L, 14>,
        digit::<L, 15>,
    ]
}

/// The digit functions, by level and digit.
static DIGITS: [[Digit; 16]; LEVELS] = [level::<0>(), level::<1>(), level::<2>()];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digit_functions_are_distinct() {
        let mut starts: Vec<usize> = DIGITS
            .iter()
            .flat_map(|t| t.iter().map(|&d| d as usize))
            .collect();
        starts.sort_unstable();
        starts.dedup();
        assert_eq!(
            starts.len(),
            16 * LEVELS,
            "LLVM or the linker merged digit functions"
        );
    }

    #[test]
    fn decode_reads_the_digits_innermost_first() {
        let frames = |id: u32| -> Vec<usize> {
            let mut v = vec![0x1000]; // pprof-rs's handler
            v.extend((0..LEVELS).map(|l| DIGITS[l][(id >> (4 * l)) as usize & 15] as usize));
            v.push(handler as Handler as usize);
            v
        };
        for id in [0, 2, 15, 16, 255, 256, 0xabc, 4095] {
            assert_eq!(decode(frames(id)), Some(id));
        }
        let mut out_of_order = frames(0x123);
        out_of_order.swap(1, 2);
        assert_eq!(decode(out_of_order), None);
        let mut missing = frames(0x123);
        missing.remove(2);
        assert_eq!(decode(missing), None);
        assert_eq!(decode([0x1000, 0x2000]), None);
    }
}
