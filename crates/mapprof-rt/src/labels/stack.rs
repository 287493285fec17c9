//! The thread's labels: the pairs of its guards in a fixed thread-local buffer, set without a
//! lock or an allocation, and the id of their set looked up when a sample first needs it.

use super::encoded::{decode, MAX_ENCODED, MAX_PAIRS};
use super::table::{intern, Interned};
use super::{overflow_pairs, NONE, OVERFLOW, OVERFLOWS};
use crate::spin::Caller;
use crate::thread::{ThreadState, STATE};
use std::cell::{Cell, UnsafeCell};
use std::sync::atomic::{
    compiler_fence, AtomicU32,
    Ordering::{Acquire, Relaxed, Release},
};

/// Pairs a thread's nested guards hold together (a key set twice counts twice).
pub const MAX_STACK_PAIRS: usize = 32;
/// Bytes of keys and values a thread's nested guards hold together: room for a few trace ids,
/// routes and tenants.
pub const MAX_STACK_BYTES: usize = 1024;

/// The thread-state cache value meaning "labels set, id not looked up yet".
pub(super) const PENDING: u32 = u32::MAX;
/// The thread-state cache value while [`enter`] or [`leave`] rewrite the thread's labels: a
/// signal handler that interrupts them must not read the half-written buffer.
const CHANGING: u32 = u32::MAX - 1;

/// One thread's labels: the pairs of its guards, outermost first, as byte ranges of `bytes`.
/// Only the owning thread touches it: [`enter`] and [`encode_current`] neither allocate, lock
/// nor call out while they access `bytes`, so no sample can run on the thread in between. A
/// signal handler can ([`signal_id`]); it reads the buffer only when the cached id says that
/// no write is under way.
struct LabelStack {
    bytes: UnsafeCell<[u8; MAX_STACK_BYTES]>,
    /// (start in `bytes`, key length, value length) of each pair.
    pairs: [Cell<(u16, u16, u16)>; MAX_STACK_PAIRS],
    n_pairs: Cell<usize>,
    n_bytes: Cell<usize>,
    /// Set while a guard whose pairs did not fit is alive: the labels are [`OVERFLOW`].
    overflowed: Cell<bool>,
}

thread_local! {
    static STACK: LabelStack = const {
        LabelStack {
            bytes: UnsafeCell::new([0; MAX_STACK_BYTES]),
            pairs: [const { Cell::new((0, 0, 0)) }; MAX_STACK_PAIRS],
            n_pairs: Cell::new(0),
            n_bytes: Cell::new(0),
            overflowed: Cell::new(false),
        }
    };
}

/// What [`enter`] replaced, to give back to [`leave`].
#[derive(Clone, Copy, Debug)]
pub struct Saved {
    n_pairs: usize,
    n_bytes: usize,
    overflowed: bool,
    id: u32,
}

/// Adds `pairs` to the calling thread's labels (a key already set takes the new value; of
/// equal keys within `pairs`, the last wins) and returns what to restore with [`leave`], in
/// reverse order of the `enter` calls. No lock, no allocation. Pairs that do not fit in the
/// thread's buffer make the labels [`OVERFLOW`] until the matching `leave`.
pub fn enter(pairs: &[(&str, &str)]) -> Saved {
    STACK
        .try_with(|stack| {
            let saved = save(stack);
            if !pairs.is_empty() {
                push(stack, &saved, pairs);
            }
            saved
        })
        .unwrap_or(EMPTY)
}

/// What a thread whose thread-locals are gone restores: nothing.
const EMPTY: Saved = Saved {
    n_pairs: 0,
    n_bytes: 0,
    overflowed: false,
    id: NONE,
};

/// The thread's labels as they are, to restore later.
fn save(stack: &LabelStack) -> Saved {
    Saved {
        n_pairs: stack.n_pairs.get(),
        n_bytes: stack.n_bytes.get(),
        overflowed: stack.overflowed.get(),
        id: STATE.try_with(|s| s.labels.load(Relaxed)).unwrap_or(NONE),
    }
}

/// Appends `pairs` to the thread's labels, as they were when `saved` was taken.
fn push(stack: &LabelStack, saved: &Saved, pairs: &[(&str, &str)]) {
    let bytes = pairs.iter().map(|(k, v)| k.len() + v.len()).sum();
    let Some((first, start)) = reserve(stack, saved, pairs.len(), bytes) else {
        return;
    };
    let mut at = start;
    for (i, (k, v)) in pairs.iter().enumerate() {
        stack.pairs[first + i].set((at as u16, k.len() as u16, v.len() as u16));
        copy_in(stack, at, k.as_bytes());
        copy_in(stack, at + k.len(), v.as_bytes());
        at += k.len() + v.len();
    }
    publish(stack, first + pairs.len(), at, PENDING);
}

/// Appends a prepared set to the thread's labels, as they were when `saved` was taken, and
/// caches `id` for them: its bytes are laid out as the buffer's, so they are copied at once.
fn push_prepared(stack: &LabelStack, saved: &Saved, prepared: &Prepared, id: u32) {
    let (n, bytes) = (prepared.pairs.len(), prepared.bytes.len());
    let Some((first, start)) = reserve(stack, saved, n, bytes) else {
        return;
    };
    copy_in(stack, start, &prepared.bytes);
    for (i, &(at, k, v)) in prepared.pairs.iter().enumerate() {
        stack.pairs[first + i].set(((start + at) as u16, k as u16, v as u16));
    }
    publish(stack, first + n, start + bytes, id);
}

/// Makes room for `n` pairs of `bytes` bytes in all after the labels `saved` describes:
/// returns the first new pair's index and byte offset, or `None` when they do not fit (the
/// labels are then [`OVERFLOW`] until the matching `leave`).
fn reserve(stack: &LabelStack, saved: &Saved, n: usize, bytes: usize) -> Option<(usize, usize)> {
    let (n_pairs, at) = (saved.n_pairs, saved.n_bytes);
    if saved.overflowed || n_pairs + n > MAX_STACK_PAIRS || at + bytes > MAX_STACK_BYTES {
        stack.overflowed.set(true);
        OVERFLOWS.fetch_add(1, Relaxed);
        set_cached(OVERFLOW);
        return None;
    }
    set_cached(CHANGING);
    Some((n_pairs, at))
}

/// Copies `src` into the thread's buffer at `at` (inside the room [`reserve`] made; the
/// slice is bounds-checked anyway).
fn copy_in(stack: &LabelStack, at: usize, src: &[u8]) {
    // SAFETY: the buffer is this thread's and no other reference to it exists meanwhile (see
    // `LabelStack`: only this module's functions touch it, none of them reentrantly, and a
    // signal handler on this thread reads it only under a published id, not `CHANGING`).
    let buffer = unsafe { &mut *stack.bytes.get() };
    buffer[at..at + src.len()].copy_from_slice(src);
}

/// The thread's labels now end after `n_pairs` pairs and `n_bytes` bytes, with `id` cached.
fn publish(stack: &LabelStack, n_pairs: usize, n_bytes: usize, id: u32) {
    stack.n_pairs.set(n_pairs);
    stack.n_bytes.set(n_bytes);
    set_cached(id);
}

/// Pairs laid out once (one buffer of keys and values), to be added to the polling thread's
/// labels at every poll of a task ([`enter_prepared`]): a copy of the bytes and a few stores,
/// and, once a sample has looked the set up, no lookup again.
#[derive(Debug)]
pub struct Prepared {
    bytes: Box<[u8]>,
    /// (start in `bytes`, key length, value length) of each pair.
    pairs: Box<[(usize, usize, usize)]>,
    /// The set's id when entered on a thread with no labels of its own, once a sample has
    /// looked it up; [`PENDING`] until then.
    id: AtomicU32,
}

impl Prepared {
    /// `pairs` laid out for [`enter_prepared`]. Allocates.
    pub fn new<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> Prepared {
        let mut bytes = Vec::new();
        let mut ranges = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            let (k, v) = (k.as_ref(), v.as_ref());
            ranges.push((bytes.len(), k.len(), v.len()));
            bytes.extend_from_slice(k.as_bytes());
            bytes.extend_from_slice(v.as_bytes());
        }
        Prepared {
            bytes: bytes.into(),
            pairs: ranges.into(),
            id: AtomicU32::new(PENDING),
        }
    }

    /// The `i`th pair as bytes.
    fn pair(&self, i: usize) -> (&[u8], &[u8]) {
        let (at, k, v) = self.pairs[i];
        (&self.bytes[at..at + k], &self.bytes[at + k..at + k + v])
    }

    /// The pairs, in the order given.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        fn text(b: &[u8]) -> &str {
            // Copied from `&str`s whole: always UTF-8.
            std::str::from_utf8(b).unwrap_or("")
        }
        (0..self.pairs.len()).map(move |i| {
            let (k, v) = self.pair(i);
            (text(k), text(v))
        })
    }
}

/// [`enter`] for a [`Prepared`] set: the same labels, at the cost of one copy of its bytes
/// and, on a thread with no labels of its own, the set's id known from an earlier poll.
pub fn enter_prepared(prepared: &Prepared) -> Saved {
    STACK
        .try_with(|stack| {
            let saved = save(stack);
            let n = prepared.pairs.len();
            if n > 0 {
                // On a thread with no labels the set is the thread's whole set: its id, once
                // known, is the set's own.
                let id = if is_base(&saved) {
                    prepared.id.load(Relaxed)
                } else {
                    PENDING
                };
                push_prepared(stack, &saved, prepared, id);
            }
            saved
        })
        .unwrap_or(EMPTY)
}

/// [`leave`] for what [`enter_prepared`] returned: also keeps the id a sample looked up
/// meanwhile, for the set's next poll.
pub fn leave_prepared(saved: Saved, prepared: &Prepared) {
    if is_base(&saved) {
        let id = STATE
            .try_with(|s| s.labels.load(Relaxed))
            .unwrap_or(PENDING);
        if id != PENDING && id != CHANGING {
            prepared.id.store(id, Relaxed);
        }
    }
    leave(saved);
}

/// Whether `saved` is a thread with no labels: a prepared set entered on it is the thread's
/// whole set, so its id is the set's own.
fn is_base(saved: &Saved) -> bool {
    saved.n_pairs == 0 && !saved.overflowed
}

/// Restores the calling thread's labels to what they were before the [`enter`] that returned
/// `saved`, and the id that was cached for them. Out of order (an outer `saved` first), the
/// labels may be wrong until the outermost is restored; they are never out of bounds.
pub fn leave(saved: Saved) {
    set_cached(CHANGING);
    let _ = STACK.try_with(|stack| {
        stack.n_pairs.set(saved.n_pairs.min(MAX_STACK_PAIRS));
        stack.n_bytes.set(saved.n_bytes.min(MAX_STACK_BYTES));
        stack.overflowed.set(saved.overflowed);
    });
    set_cached(saved.id);
}

/// Publishes the thread's label id. The fence orders the buffer's writes before it for a
/// signal handler on this thread, which reads the id first ([`signal_id`]).
fn set_cached(id: u32) {
    compiler_fence(Release);
    let _ = STATE.try_with(|s| s.labels.store(id, Relaxed));
    compiler_fence(Release);
}

/// The calling thread's labels, merged and sorted by key
/// ([`OVERFLOW_KEY`](super::OVERFLOW_KEY)=[`OVERFLOW_VALUE`](super::OVERFLOW_VALUE) when they
/// overflowed). Allocates: not for the hot path.
pub fn current_pairs() -> Vec<(String, String)> {
    let mut buf = [0u8; MAX_ENCODED];
    match STACK.try_with(|stack| encode_current(stack, &mut buf)) {
        Ok(Some(len)) => decode(&buf[..len]),
        Ok(None) => overflow_pairs(),
        Err(_) => Vec::new(),
    }
}

/// The calling thread's label set id for a sample: the cached id, or, the first time after the
/// labels changed, the id looked up or inserted now. Hot path (sampling only): no allocation,
/// bounded work, no blocking.
#[inline]
pub(crate) fn current_id(state: &ThreadState) -> u32 {
    current_id_as(state, state.labels.load(Relaxed), Caller::Thread)
}

#[inline]
fn current_id_as(state: &ThreadState, cached: u32, caller: Caller) -> u32 {
    match cached {
        PENDING => resolve(state, caller),
        // Only a signal handler that allocates, interrupting `enter` or `leave`, sees this.
        CHANGING => OVERFLOW,
        id => id,
    }
}

/// The label set id for a sample taken by a signal handler (a CPU sample) on the thread it
/// interrupted: as a heap sample's, except that a handler that interrupted [`enter`] or
/// [`leave`] mid-write gets [`OVERFLOW`] and does not look at the buffer. Async-signal-safe: no
/// allocation, atomics and a bounded spin only. A handler that interrupted the thread's own
/// `resolve` only reads what that reads, and, if it holds the insert lock, gives up after the
/// bounded spin.
pub fn signal_id() -> u32 {
    STATE
        .try_with(|state| {
            let id = state.labels.load(Relaxed);
            compiler_fence(Acquire);
            current_id_as(state, id, Caller::SignalHandler)
        })
        .unwrap_or(NONE)
}

#[cold]
#[inline(never)]
fn resolve(state: &ThreadState, caller: Caller) -> u32 {
    let mut buf = [0u8; MAX_ENCODED];
    let encoded = STACK.try_with(|stack| encode_current(stack, &mut buf));
    let id = match encoded {
        Ok(Some(0)) => NONE,
        Ok(Some(len)) => match intern(&buf[..len], caller) {
            Interned::Id(id) => id,
            // The insert lock was busy: this sample overflows, the next one tries again.
            Interned::Busy => {
                OVERFLOWS.fetch_add(1, Relaxed);
                return OVERFLOW;
            }
            Interned::Full => {
                OVERFLOWS.fetch_add(1, Relaxed);
                OVERFLOW
            }
        },
        Ok(None) => {
            OVERFLOWS.fetch_add(1, Relaxed);
            OVERFLOW
        }
        Err(_) => return NONE,
    };
    state.labels.store(id, Relaxed);
    id
}

/// Writes the thread's merged labels into `out` as an encoded set (see [`intern`]); returns
/// its length, or `None` when they overflowed (too many distinct keys, or a guard's pairs did
/// not fit). Bounded: at most [`MAX_STACK_PAIRS`] pairs, [`MAX_PAIRS`] keys.
fn encode_current(stack: &LabelStack, out: &mut [u8; MAX_ENCODED]) -> Option<usize> {
    if stack.overflowed.get() {
        return None;
    }
    let mut local = [0u8; MAX_STACK_BYTES];
    let n_bytes = stack.n_bytes.get().min(MAX_STACK_BYTES);
    // SAFETY: `n_bytes <= MAX_STACK_BYTES`, the size of both buffers; the thread-local buffer
    // is this thread's and nothing else accesses it meanwhile (see `LabelStack`).
    unsafe {
        std::ptr::copy_nonoverlapping(stack.bytes.get().cast::<u8>(), local.as_mut_ptr(), n_bytes);
    }
    let pair = |i: usize| -> (&[u8], &[u8]) {
        let (at, k, v) = stack.pairs[i].get();
        let (at, k, v) = (at as usize, k as usize, v as usize);
        let key = local.get(at..at + k).unwrap_or(&[]);
        let value = local.get(at + k..at + k + v).unwrap_or(&[]);
        (key, value)
    };
    // Merge: later pairs replace earlier ones of the same key; kept sorted by key.
    let mut merged: [(&[u8], &[u8]); MAX_PAIRS] = [(&[], &[]); MAX_PAIRS];
    let mut n = 0;
    for i in 0..stack.n_pairs.get().min(MAX_STACK_PAIRS) {
        let (k, v) = pair(i);
        match merged[..n].binary_search_by(|p| p.0.cmp(k)) {
            Ok(j) => merged[j].1 = v,
            Err(_) if n == MAX_PAIRS => return None,
            Err(j) => {
                merged.copy_within(j..n, j + 1);
                merged[j] = (k, v);
                n += 1;
            }
        }
    }
    let mut len = 0;
    for (k, v) in &merged[..n] {
        for s in [k, v] {
            // Fits by construction (at most MAX_STACK_BYTES of strings, MAX_PAIRS pairs);
            // checked all the same, so that this never panics.
            let field = out.get_mut(len..len + 2 + s.len())?;
            field[..2].copy_from_slice(&(s.len() as u16).to_le_bytes());
            field[2..].copy_from_slice(s);
            len += 2 + s.len();
        }
    }
    Some(len)
}
