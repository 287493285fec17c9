//! A set's encoding: its pairs sorted by key, each key and value preceded by its 2-byte
//! length, the form the table stores, hashes and compares.

use super::stack::MAX_STACK_BYTES;
use super::OVERFLOW_VALUE;

/// Distinct keys in one set. Go's labels are a handful per goroutine.
pub const MAX_PAIRS: usize = 16;
/// Largest encoded set: each pair is its key and value, each preceded by a 2-byte length.
pub(super) const MAX_ENCODED: usize = MAX_STACK_BYTES + 4 * MAX_PAIRS;

/// The (key, value) fields of an encoded set, each a length-prefixed slice of it.
pub(super) fn fields(mut encoded: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut field = move || -> Option<&[u8]> {
        let len = u16::from_le_bytes(*encoded.first_chunk::<2>()?) as usize;
        let (field, rest) = encoded.split_at_checked(2 + len)?;
        encoded = rest;
        Some(field)
    };
    std::iter::from_fn(move || Some((field()?, field()?)))
}

/// Decodes an encoded set. Allocates.
pub(super) fn decode(encoded: &[u8]) -> Vec<(String, String)> {
    // Each field is its 2-byte length, then its bytes.
    let text = |field: &[u8]| String::from_utf8_lossy(&field[2..]).into_owned();
    fields(encoded).map(|(k, v)| (text(k), text(v))).collect()
}

/// FNV-1a over the encoding (unambiguous: lengths precede the strings).
pub(super) fn hash(encoded: &[u8]) -> u64 {
    hash_parts(&[encoded])
}

/// FNV-1a over the parts one after the other.
pub(super) fn hash_parts(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in parts.iter().flat_map(|p| p.iter()) {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^ (h >> 29)
}

/// [`OVERFLOW_VALUE`] as an encoded field: its length, then its bytes.
pub(super) const OVERFLOW_FIELD: &[u8] = b"\x08\x00overflow";
const _: () = assert!(OVERFLOW_FIELD.len() == 2 + OVERFLOW_VALUE.len());
