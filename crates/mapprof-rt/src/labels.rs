//! Label sets: the `(key, value)` pairs a thread carries (`mapprof::labels`), interned into a
//! bounded table so that a sample carries one `u32`.
//!
//! # Invariants
//!
//! * **Setting labels takes no lock and allocates nothing.** [`enter`] copies the pairs into
//!   the thread's own fixed buffer ([`STACK`], const-initialised, no destructor) and [`leave`]
//!   truncates it again; both are a few stores. A label unique per request (a trace id) thus
//!   costs its request some 20 ns, and nothing global, unless a sample catches it.
//! * **A set is interned when a sample first needs it**, on the sampling path, under the same
//!   rules as the stack table: no allocation (fixed arrays of atomics in `.bss`), lock-free
//!   lookup, insertion under a spin lock with a bounded number of attempts, bounded loops, no
//!   panic. The id found is cached in the thread's state (`labels`), so later samples under
//!   the same labels read one `Cell<u32>`; [`enter`] and [`leave`] reset the cache.
//! * **Bounded.** A thread's labels, nesting included, take at most [`MAX_STACK_PAIRS`] pairs
//!   and [`MAX_STACK_BYTES`] bytes; a set has at most [`MAX_PAIRS`] distinct keys. The table
//!   holds [`MAX_SETS`] ids (two reserved) and [`ARENA_BYTES`] of strings, and only sets that
//!   samples carried. What does not fit gets [`OVERFLOW`], shown as
//!   [`OVERFLOW_KEY`]=[`OVERFLOW_VALUE`], and is counted ([`overflow`]). A key keeps at most
//!   [`MAX_VALUES_PER_KEY`] distinct values; a new one past them is interned as
//!   [`OVERFLOW_VALUE`], the other pairs kept, and counted ([`capped`]), so that a key unique
//!   per request cannot fill the table.
//!
//! Sets are interned sorted by key, keys unique; an inner pair replaces an outer pair of the
//! same key (Go's `pprof.WithLabels`).

use crate::spin::{Caller, SpinLock};
use crate::thread::{ThreadState, STATE};
use std::cell::{Cell, UnsafeCell};
use std::sync::atomic::{
    compiler_fence, AtomicU32, AtomicU64, AtomicU8,
    Ordering::{Acquire, Relaxed, Release},
};

/// The id of the empty set: no labels.
pub const NONE: u32 = 0;
/// The id of every set that does not fit: too many pairs or bytes, or the table full.
pub const OVERFLOW: u32 = 1;
/// The label key that samples carrying [`OVERFLOW`] show.
pub const OVERFLOW_KEY: &str = "mapprof_labels";
/// The value of [`OVERFLOW_KEY`].
pub const OVERFLOW_VALUE: &str = "overflow";
/// Ids in the table, [`NONE`] and [`OVERFLOW`] included. Only sets that a sample carried take
/// one, and each such set takes at least one of the stack table's 65,536 buckets too.
pub const MAX_SETS: usize = 4096;
/// Bytes of interned keys and values (1 MiB of virtual memory, paged in as used): 256 bytes
/// per set on average when the table is full.
pub const ARENA_BYTES: usize = 1 << 20;
/// Distinct keys in one set. Go's labels are a handful per goroutine.
pub const MAX_PAIRS: usize = 16;
/// Distinct values a key keeps in the table. Past them, a set with a value of that key not seen
/// before is interned with [`OVERFLOW_VALUE`] in its place: a key unique per request (a trace
/// id) then takes at most this many sets, and at most their stacks' worth of the stack table's
/// buckets and frames, while the set's other keys (a route) stay exact.
pub const MAX_VALUES_PER_KEY: usize = 256;
/// Pairs a thread's nested guards hold together (a key set twice counts twice).
pub const MAX_STACK_PAIRS: usize = 32;
/// Bytes of keys and values a thread's nested guards hold together: room for a few trace ids,
/// routes and tenants.
pub const MAX_STACK_BYTES: usize = 1024;

/// The thread-state cache value meaning "labels set, id not looked up yet".
const PENDING: u32 = u32::MAX;
/// The thread-state cache value while [`enter`] or [`leave`] rewrite the thread's labels: a
/// signal handler that interrupts them must not read the half-written buffer.
const CHANGING: u32 = u32::MAX - 1;
/// Index slots: twice the sets, so that probes stay short.
const SLOTS: usize = 2 * MAX_SETS;
/// Keys whose distinct values are counted; a key past them counts as having too many.
const KEY_SLOTS: usize = 64;
/// Distinct (key, value) pairs remembered; once full, new values count as past the cap.
const PAIR_SLOTS: usize = 1 << 14;
/// Longest probe in the pair index.
const PAIR_PROBES: usize = 64;
/// Largest encoded set: each pair is its key and value, each preceded by a 2-byte length.
const MAX_ENCODED: usize = MAX_STACK_BYTES + 4 * MAX_PAIRS;

// ---------------------------------------------------------------------------------------------
// The thread's labels.

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
            let saved = Saved {
                n_pairs: stack.n_pairs.get(),
                n_bytes: stack.n_bytes.get(),
                overflowed: stack.overflowed.get(),
                id: STATE.try_with(|s| s.labels.load(Relaxed)).unwrap_or(NONE),
            };
            if !pairs.is_empty() {
                push(stack, &saved, pairs);
            }
            saved
        })
        .unwrap_or(Saved {
            n_pairs: 0,
            n_bytes: 0,
            overflowed: false,
            id: NONE,
        })
}

/// Appends `pairs` to the thread's labels, as they were when `saved` was taken.
fn push(stack: &LabelStack, saved: &Saved, pairs: &[(&str, &str)]) {
    let bytes: usize = pairs.iter().map(|(k, v)| k.len() + v.len()).sum();
    let (mut n_pairs, mut at) = (saved.n_pairs, saved.n_bytes);
    if saved.overflowed || n_pairs + pairs.len() > MAX_STACK_PAIRS || at + bytes > MAX_STACK_BYTES {
        stack.overflowed.set(true);
        OVERFLOWS.fetch_add(1, Relaxed);
        set_cached(OVERFLOW);
        return;
    }
    set_cached(CHANGING);
    let bytes = stack.bytes.get().cast::<u8>();
    for (k, v) in pairs {
        stack.pairs[n_pairs].set((at as u16, k.len() as u16, v.len() as u16));
        // SAFETY: `at + k.len() + v.len() <= MAX_STACK_BYTES` (checked above for all the
        // pairs), so both copies stay inside `bytes`; the buffer is this thread's and nothing
        // else accesses it meanwhile (see `LabelStack`); sources are the caller's strings,
        // which cannot overlap the thread-local buffer.
        unsafe {
            std::ptr::copy_nonoverlapping(k.as_ptr(), bytes.add(at), k.len());
            std::ptr::copy_nonoverlapping(v.as_ptr(), bytes.add(at + k.len()), v.len());
        }
        at += k.len() + v.len();
        n_pairs += 1;
    }
    stack.n_pairs.set(n_pairs);
    stack.n_bytes.set(at);
    set_cached(PENDING);
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

/// The calling thread's labels, merged and sorted by key ([`OVERFLOW_KEY`]=[`OVERFLOW_VALUE`]
/// when they overflowed). Allocates: not for the hot path.
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

/// Decodes an encoded set. Allocates.
fn decode(encoded: &[u8]) -> Vec<(String, String)> {
    // Each field is its 2-byte length, then its bytes.
    let text = |field: &[u8]| String::from_utf8_lossy(&field[2..]).into_owned();
    fields(encoded).map(|(k, v)| (text(k), text(v))).collect()
}

fn overflow_pairs() -> Vec<(String, String)> {
    vec![(OVERFLOW_KEY.to_owned(), OVERFLOW_VALUE.to_owned())]
}

// ---------------------------------------------------------------------------------------------
// The table of sets that samples carried.

/// One interned set: its hash and where its encoding lies in [`ARENA`].
struct Set {
    hash: AtomicU64,
    at: AtomicU32,
    len: AtomicU32,
}

#[allow(clippy::declare_interior_mutable_const)] // Used only as an array initialiser.
const EMPTY_SET: Set = Set {
    hash: AtomicU64::new(0),
    at: AtomicU32::new(0),
    len: AtomicU32::new(0),
};

static SETS: [Set; MAX_SETS] = [EMPTY_SET; MAX_SETS];
/// Slot value: set id + 1; 0 = empty. Once published, a slot never changes.
static SLOT: [AtomicU32; SLOTS] = [const { AtomicU32::new(0) }; SLOTS];
/// Encoded sets, back to back.
static ARENA: [AtomicU8; ARENA_BYTES] = [const { AtomicU8::new(0) }; ARENA_BYTES];
/// Ids in use; [`NONE`] and [`OVERFLOW`] are reserved. Published with release after the set
/// is written.
static SET_COUNT: AtomicU32 = AtomicU32::new(2);
/// Protects `SET_COUNT`, `ARENA_USED` and the writing of a new set.
static INSERT_LOCK: SpinLock = SpinLock::new();
static ARENA_USED: AtomicU32 = AtomicU32::new(0);
/// Times labels got [`OVERFLOW`].
static OVERFLOWS: AtomicU64 = AtomicU64::new(0);
/// Hashes of the keys whose values are counted (0 = free) and their distinct values.
static KEY_HASH: [AtomicU64; KEY_SLOTS] = [const { AtomicU64::new(0) }; KEY_SLOTS];
static KEY_VALUES: [AtomicU32; KEY_SLOTS] = [const { AtomicU32::new(0) }; KEY_SLOTS];
/// Hashes of the (key, value) pairs of the interned sets (0 = free).
static PAIR_HASH: [AtomicU64; PAIR_SLOTS] = [const { AtomicU64::new(0) }; PAIR_SLOTS];
/// Times a value was replaced by [`OVERFLOW_VALUE`] because its key had too many.
static VALUES_CAPPED: AtomicU64 = AtomicU64::new(0);

/// In a child just forked: the insert lock, which another thread of the parent may have held
/// (see `crate::fork`).
pub(crate) fn after_fork_in_child() {
    INSERT_LOCK.release_in_child();
}

enum Interned {
    Id(u32),
    /// The insert lock stayed busy.
    Busy,
    /// No id or arena room left.
    Full,
}

/// FNV-1a over the encoding (unambiguous: lengths precede the strings).
fn hash(encoded: &[u8]) -> u64 {
    hash_parts(&[encoded])
}

/// FNV-1a over the parts one after the other.
fn hash_parts(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in parts.iter().flat_map(|p| p.iter()) {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^ (h >> 29)
}

fn matches(id: u32, hash: u64, encoded: &[u8]) -> bool {
    let set = &SETS[id as usize % MAX_SETS];
    if set.hash.load(Relaxed) != hash || set.len.load(Relaxed) as usize != encoded.len() {
        return false;
    }
    let at = set.at.load(Relaxed) as usize;
    ARENA.get(at..at + encoded.len()).is_some_and(|arena| {
        arena
            .iter()
            .zip(encoded)
            .all(|(a, b)| a.load(Relaxed) == *b)
    })
}

/// Returns the set's id, or the empty slot where the probe ended.
fn probe(hash: u64, encoded: &[u8]) -> Result<u32, Option<usize>> {
    let mut at = hash as usize % SLOTS;
    for _ in 0..SLOTS {
        let slot = SLOT[at].load(Acquire);
        if slot == 0 {
            return Err(Some(at));
        }
        if matches(slot - 1, hash, encoded) {
            return Ok(slot - 1);
        }
        at = (at + 1) % SLOTS;
    }
    Err(None)
}

/// The id of the encoded set, inserted if new, with the values of keys past
/// [`MAX_VALUES_PER_KEY`] capped.
fn intern(encoded: &[u8], caller: Caller) -> Interned {
    let found = |encoded: &[u8]| {
        let hash = hash(encoded);
        probe(hash, encoded).map(Interned::Id).map_err(|_| hash)
    };
    let hash = match found(encoded) {
        Ok(id) => return id,
        Err(hash) => hash,
    };
    let mut capped = [0u8; MAX_ENCODED];
    let Some(len) = cap_values(encoded, &mut capped) else {
        return insert(encoded, hash, caller);
    };
    VALUES_CAPPED.fetch_add(1, Relaxed);
    match found(&capped[..len]) {
        Ok(id) => id,
        Err(hash) => insert(&capped[..len], hash, caller),
    }
}

/// Inserts the encoded set, which a lock-free look did not find, unless someone did since;
/// returns its id.
fn insert(encoded: &[u8], hash: u64, caller: Caller) -> Interned {
    if SET_COUNT.load(Relaxed) as usize >= MAX_SETS {
        return Interned::Full;
    }
    let Some(_lock) = INSERT_LOCK.lock_as(caller) else {
        return Interned::Busy;
    };
    // Someone may have inserted it since the lock-free look.
    let Some(slot) = (match probe(hash, encoded) {
        Ok(id) => return Interned::Id(id),
        Err(slot) => slot,
    }) else {
        return Interned::Full;
    };
    let id = SET_COUNT.load(Relaxed);
    let at = ARENA_USED.load(Relaxed) as usize;
    if id as usize >= MAX_SETS || at + encoded.len() > ARENA_BYTES {
        return Interned::Full;
    }
    for (a, b) in ARENA[at..at + encoded.len()].iter().zip(encoded) {
        a.store(*b, Relaxed);
    }
    let set = &SETS[id as usize];
    set.hash.store(hash, Relaxed);
    set.at.store(at as u32, Relaxed);
    set.len.store(encoded.len() as u32, Relaxed);
    ARENA_USED.store((at + encoded.len()) as u32, Relaxed);
    // Release: whoever sees the slot or the count sees the set written above.
    SET_COUNT.store(id + 1, Release);
    SLOT[slot].store(id + 1, Release);
    count_values(encoded);
    Interned::Id(id)
}

/// The (key, value) fields of an encoded set, each a length-prefixed slice of it.
fn fields(mut encoded: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut field = move || -> Option<&[u8]> {
        let len = u16::from_le_bytes(*encoded.first_chunk::<2>()?) as usize;
        let (field, rest) = encoded.split_at_checked(2 + len)?;
        encoded = rest;
        Some(field)
    };
    std::iter::from_fn(move || Some((field()?, field()?)))
}

/// A pair's hash (of its encoding: both fields are length-prefixed), never 0 (the free
/// slot's mark).
fn pair_hash(key: &[u8], value: &[u8]) -> u64 {
    hash_parts(&[key, value]) | 1
}

/// A key's hash, never 0 (the free slot's mark).
fn key_hash(key: &[u8]) -> u64 {
    hash(key) | 1
}

/// Looks `h` (never 0) up in an open-addressed table of hashes, probing at most `probes`
/// slots: `Some((slot, true))` where it is, `Some((slot, false))` at the free slot where the
/// probe ended (taken for `h` if `add`), `None` when every probed slot holds another hash.
fn find_hash(table: &[AtomicU64], h: u64, probes: usize, add: bool) -> Option<(usize, bool)> {
    let start = (h >> 1) as usize % table.len(); // bit 0 is always set
    for i in 0..probes {
        let at = (start + i) % table.len();
        match table[at].load(Relaxed) {
            0 => {
                if add {
                    table[at].store(h, Relaxed);
                }
                return Some((at, false));
            }
            found if found == h => return Some((at, true)),
            _ => {}
        }
    }
    None
}

/// Counts the new values of a set just interned (under the insert lock).
fn count_values(encoded: &[u8]) {
    for (key, value) in fields(encoded) {
        let pair = find_hash(&PAIR_HASH, pair_hash(key, value), PAIR_PROBES, true);
        if let Some((_, false)) = pair {
            if let Some((at, _)) = find_hash(&KEY_HASH, key_hash(key), KEY_SLOTS, true) {
                KEY_VALUES[at].fetch_add(1, Relaxed);
            }
        }
    }
}

/// Writes into `out` the set with [`OVERFLOW_VALUE`] for each value not seen before of a key
/// that already has [`MAX_VALUES_PER_KEY`] values (or whose values cannot be counted: the key
/// or pair index is full); returns its length, or `None` when no value needs capping.
fn cap_values(encoded: &[u8], out: &mut [u8; MAX_ENCODED]) -> Option<usize> {
    let capped = |key: &[u8], value: &[u8]| match find_hash(
        &PAIR_HASH,
        pair_hash(key, value),
        PAIR_PROBES,
        false,
    ) {
        Some((_, true)) => false,
        Some((_, false)) => match find_hash(&KEY_HASH, key_hash(key), KEY_SLOTS, false) {
            Some((at, true)) => KEY_VALUES[at].load(Relaxed) as usize >= MAX_VALUES_PER_KEY,
            Some((_, false)) => false,
            None => true,
        },
        None => true,
    };
    let (mut len, mut any) = (0, false);
    for (key, value) in fields(encoded) {
        let value = if capped(key, value) {
            any = true;
            OVERFLOW_FIELD
        } else {
            value
        };
        for field in [key, value] {
            out.get_mut(len..len + field.len())?.copy_from_slice(field);
            len += field.len();
        }
    }
    any.then_some(len)
}

/// [`OVERFLOW_VALUE`] as an encoded field: its length, then its bytes.
const OVERFLOW_FIELD: &[u8] = b"\x08\x00overflow";
const _: () = assert!(OVERFLOW_FIELD.len() == 2 + OVERFLOW_VALUE.len());

/// The pairs of set `id`, sorted by key: empty for [`NONE`] (and an id not in the table),
/// [`OVERFLOW_KEY`]=[`OVERFLOW_VALUE`] for [`OVERFLOW`]. Allocates: for profile building.
pub fn pairs(id: u32) -> Vec<(String, String)> {
    if id == OVERFLOW {
        return overflow_pairs();
    }
    if id == NONE || id >= SET_COUNT.load(Acquire) {
        return Vec::new();
    }
    let set = &SETS[id as usize % MAX_SETS];
    let at = set.at.load(Relaxed) as usize;
    let len = set.len.load(Relaxed) as usize;
    let encoded: Vec<u8> = ARENA
        .get(at..at + len)
        .unwrap_or(&[])
        .iter()
        .map(|b| b.load(Relaxed))
        .collect();
    decode(&encoded)
}

/// How many times labels got [`OVERFLOW`] since the process started: a guard whose pairs did
/// not fit, a set of too many keys or one the full table had no room for (once per guard), or
/// a sample that found the insert lock busy.
pub fn overflow() -> u64 {
    OVERFLOWS.load(Relaxed)
}

/// How many times a label value was replaced by [`OVERFLOW_VALUE`] because its key already
/// had [`MAX_VALUES_PER_KEY`] values: once per thread's labels, when first sampled.
pub fn capped() -> u64 {
    VALUES_CAPPED.load(Relaxed)
}

/// How full the table is: (ids used, the two reserved included; capacity).
pub fn usage() -> (usize, usize) {
    (SET_COUNT.load(Relaxed) as usize, MAX_SETS)
}

/// The label table's static arrays, for [`crate::footprint`].
pub(crate) fn static_tables() -> [crate::footprint::Region; 6] {
    use crate::footprint::region;
    [
        region(&SETS),
        region(&SLOT),
        region(&ARENA),
        region(&KEY_HASH),
        region(&KEY_VALUES),
        region(&PAIR_HASH),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap};

    type Set = Vec<(String, String)>;

    fn merge(outer: &Set, pairs: &[(&str, &str)]) -> Set {
        let mut map: BTreeMap<String, String> = outer.iter().cloned().collect();
        for (k, v) in pairs {
            map.insert(k.to_string(), v.to_string());
        }
        map.into_iter().collect()
    }

    /// The table and its counters are the process's: the label tests take turns, so that one's
    /// inserts and overflows do not show in another's counts.
    fn serial() -> std::sync::MutexGuard<'static, ()> {
        static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
        SERIAL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The id a sample taken now would carry, once a sample got through: one that found the
    /// insert lock held by another thread (preempted, with the test's threads outnumbering the
    /// CPUs) overflows and leaves the id uncached, and the next sample tries again.
    fn sample_id() -> u32 {
        for _ in 0..1000 {
            let id = STATE.with(current_id);
            let busy = id == OVERFLOW && STATE.with(|s| s.labels.load(Relaxed)) == PENDING;
            if !busy {
                return id;
            }
            std::thread::yield_now();
        }
        STATE.with(current_id)
    }

    /// Random nested enters and leaves on several threads at once, with a "sample" after
    /// each, checked against a reference: a thread's labels are the merge of what it entered;
    /// a `HashMap` from contents to ids, shared by the threads, says that equal sets get one
    /// id and distinct sets distinct ids; the id of a set decodes to it.
    #[test]
    fn sets_agree_with_a_hashmap_reference() {
        let _serial = serial();
        let reference: std::sync::Mutex<HashMap<Set, u32>> = Default::default();
        let keys = ["trace_id", "route", "tenant", "k3"];
        let values = ["a", "b", "/item", "ccc"];
        std::thread::scope(|s| {
            for t in 0..3u64 {
                let reference = &reference;
                s.spawn(move || {
                    let mut rng = 0x1234_5678 + t;
                    let mut stack: Vec<(Saved, Set)> = Vec::new();
                    for _ in 0..20_000 {
                        let r = crate::sampler::next_u64(&mut rng);
                        if r.is_multiple_of(3) && !stack.is_empty() || stack.len() == 6 {
                            leave(stack.pop().unwrap().0);
                        } else {
                            let new: Vec<(&str, &str)> = (0..(r >> 8) as usize % 3)
                                .map(|i| {
                                    let x = (r >> (16 + 4 * i)) as usize;
                                    (keys[x % keys.len()], values[(x / 4) % values.len()])
                                })
                                .collect();
                            let outer = stack.last().map(|e| e.1.clone()).unwrap_or_default();
                            let expected = merge(&outer, &new);
                            stack.push((enter(&new), expected));
                        }
                        let expected = stack.last().map(|e| e.1.clone()).unwrap_or_default();
                        assert_eq!(current_pairs(), expected);
                        if r.is_multiple_of(5) {
                            continue; // not every state is sampled
                        }
                        let id = sample_id();
                        assert_eq!(id == NONE, expected.is_empty());
                        assert_eq!(sample_id(), id, "cached");
                        assert_eq!(pairs(id), expected);
                        if !expected.is_empty() {
                            let mut reference = reference.lock().unwrap();
                            let known = *reference.entry(expected.clone()).or_insert(id);
                            assert_eq!(known, id, "one set, two ids: {expected:?}");
                        }
                    }
                    while let Some((saved, _)) = stack.pop() {
                        leave(saved);
                    }
                    assert_eq!(sample_id(), NONE);
                });
            }
        });
        let reference = reference.into_inner().unwrap();
        let ids: std::collections::HashSet<u32> = reference.values().copied().collect();
        assert_eq!(ids.len(), reference.len(), "two sets, one id");
        let interned = (2..usage().0 as u32)
            .filter(|&id| reference.contains_key(&pairs(id)))
            .count();
        assert_eq!(interned, reference.len(), "a set interned twice");
    }

    #[test]
    fn what_does_not_fit_overflows_until_its_guard_is_gone() {
        let _serial = serial();
        std::thread::spawn(|| {
            let before = overflow();
            let outer = enter(&[("route", "/r")]);
            // More bytes than the thread's buffer holds.
            let long = "x".repeat(MAX_STACK_BYTES);
            let inner = enter(&[("trace_id", &long)]);
            assert_eq!(sample_id(), OVERFLOW);
            assert_eq!(current_pairs(), overflow_pairs());
            let nested = enter(&[("tenant", "t")]);
            assert_eq!(sample_id(), OVERFLOW);
            leave(nested);
            leave(inner);
            assert_eq!(pairs(sample_id()), [("route".into(), "/r".into())]);
            // More distinct keys than a set holds: overflows when sampled.
            let keys: Vec<String> = (0..=MAX_PAIRS).map(|k| format!("k{k}")).collect();
            let many: Vec<(&str, &str)> = keys.iter().map(|k| (k.as_str(), "v")).collect();
            let inner = enter(&many[1..]);
            assert_eq!(sample_id(), OVERFLOW);
            leave(inner);
            leave(outer);
            assert_eq!(sample_id(), NONE);
            assert_eq!(overflow() - before, 3);
        })
        .join()
        .unwrap();
    }

    /// A key unique per sample keeps its first [`MAX_VALUES_PER_KEY`] values; later ones read
    /// `overflow`, the set's other key kept, and sets seen before the cap keep their ids.
    #[test]
    fn a_key_keeps_a_bounded_number_of_values() {
        let _serial = serial();
        std::thread::spawn(|| {
            let before = capped();
            let mut ids = Vec::new();
            for i in 0..MAX_VALUES_PER_KEY + 20 {
                let value = format!("v{i}");
                let saved = enter(&[("cap_test", &value), ("route", "/r")]);
                ids.push(sample_id());
                leave(saved);
            }
            let value = |id: u32| {
                let pairs = pairs(id);
                assert_eq!(pairs[1], ("route".to_owned(), "/r".to_owned()), "{pairs:?}");
                pairs[0].1.clone()
            };
            for (i, &id) in ids.iter().enumerate().take(MAX_VALUES_PER_KEY) {
                assert_eq!(value(id), format!("v{i}"));
            }
            let late = &ids[MAX_VALUES_PER_KEY..];
            assert!(late
                .iter()
                .all(|&id| id == late[0] && value(id) == OVERFLOW_VALUE));
            assert_eq!(capped() - before, late.len() as u64);
            // A value seen before the cap still finds its own set.
            let saved = enter(&[("route", "/r"), ("cap_test", "v3")]);
            assert_eq!(sample_id(), ids[3]);
            leave(saved);
        })
        .join()
        .unwrap();
    }
}
