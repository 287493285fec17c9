//! What a profile read from outside may cost: every limit the readers (`decode`, `view`, `top`,
//! `flame`, `report`, the CLI) enforce, in one place, and the error that names the one crossed.
//!
//! A profile file is untrusted input: a few kilobytes of gzip can hold a message that decodes to
//! gigabytes (repeated empty entries cost 2 bytes on the wire and ~100 bytes decoded), or one
//! Location with thousands of inlined lines repeated thousands of times in a sample, which
//! `top` and `flame` would expand to millions of frames per sample. Each limit below is far
//! above what a real profile needs (Go's and mapprof's stacks stop at 128 locations; 10,000
//! stacks of 30 frames are 300,000 frames, about 3 MiB decoded) and far below what exhausts a
//! laptop. A profile past one is refused with [`LimitExceeded`], which says which limit, the
//! value seen and what is accepted.

use std::fmt;

/// Largest decompressed profile accepted: 1 GiB. Keeps a gzip bomb from exhausting memory.
pub const MAX_DECOMPRESSED_LEN: u64 = 1 << 30;

/// Largest estimated size of the decoded message, counted on the wire before anything is
/// materialized: 512 MiB. The estimate is each entry's struct size plus its repeated
/// elements (8 bytes per id or value, a Line per line, a string's bytes), lengths, not
/// capacities.
pub const MAX_DECODED_BYTES: u64 = 512 << 20;

/// Most frames one sample may expand to, its Locations' inlined lines included: 4,096.
/// (Go and mapprof record at most 128 Locations a sample, a few lines each.)
pub const MAX_FRAMES_PER_SAMPLE: u64 = 4096;

/// Most frames all samples together may expand to: 16 Mi (10,000 stacks of 30 frames are
/// 300,000).
pub const MAX_TOTAL_FRAMES: u64 = 16 << 20;

/// Most bytes of function names all expanded frames together may hold, which bounds the folded
/// stacks and the flame graph's text: 512 MiB.
pub const MAX_TOTAL_FRAME_NAME_BYTES: u64 = 512 << 20;

/// Largest sum of the absolute values of one sample type, so that totals, flat and cum sums
/// are exact (never wrapped or silently saturated): `i64::MAX`.
pub const MAX_TOTAL_VALUE: u64 = i64::MAX as u64;

/// A profile refused because it crosses one of the limits of this module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitExceeded {
    /// The limit's constant, e.g. `MAX_FRAMES_PER_SAMPLE`.
    pub limit: &'static str,
    /// What was measured, e.g. `sample 3 expands to`.
    pub what: String,
    /// The value seen (at least; counting stops once past the limit).
    pub seen: u64,
    /// The most that is accepted.
    pub accepted: u64,
    /// The unit of `seen` and `accepted`, e.g. `frames`, `bytes`.
    pub unit: &'static str,
}

impl LimitExceeded {
    pub(crate) fn new(
        limit: &'static str,
        what: impl Into<String>,
        seen: u64,
        accepted: u64,
        unit: &'static str,
    ) -> Self {
        LimitExceeded {
            limit,
            what: what.into(),
            seen,
            accepted,
            unit,
        }
    }
}

impl fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "profile refused: {} {} {}, more than the {} {} accepted (limit {})",
            self.what,
            group(self.seen),
            self.unit,
            group(self.accepted),
            self.unit,
            self.limit
        )
    }
}

impl std::error::Error for LimitExceeded {}

/// `1234567` as `1,234,567` (also the report's figures).
pub(crate) fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The estimated decoded size of a `profile.proto` message, counted on the wire: stops and
/// returns the error as soon as the estimate passes [`MAX_DECODED_BYTES`]. Malformed wire data
/// ends the count quietly (prost then reports it, having materialized no more than was counted).
pub(crate) fn check_decoded_size(bytes: &[u8]) -> Result<(), LimitExceeded> {
    use crate::proto::{Function, Label, Location, Mapping, Sample, ValueType};
    use std::mem::size_of;
    let mut total: u64 = 0;
    let over = |total: u64| total > MAX_DECODED_BYTES;
    let refuse = |total: u64| {
        LimitExceeded::new(
            "MAX_DECODED_BYTES",
            "the message would decode to at least",
            total,
            MAX_DECODED_BYTES,
            "bytes",
        )
    };
    let mut wire = Wire::new(bytes);
    while let Some((field, value)) = wire.next() {
        let cost = match (field, value) {
            (1, _) => size_of::<ValueType>() as u64,
            (2, Value::Bytes(b)) => size_of::<Sample>() as u64 + sample_cost(b),
            (3, _) => size_of::<Mapping>() as u64,
            (4, Value::Bytes(b)) => size_of::<Location>() as u64 + location_cost(b),
            (5, _) => size_of::<Function>() as u64,
            (6, Value::Bytes(b)) => size_of::<String>() as u64 + b.len() as u64,
            (13, v) => 8 * v.count(),
            (2 | 4, _) => size_of::<Label>() as u64, // wrong wire type: prost refuses it
            _ => 0,
        };
        total = total.saturating_add(cost);
        if over(total) {
            return Err(refuse(total));
        }
    }
    Ok(())
}

fn sample_cost(bytes: &[u8]) -> u64 {
    let mut cost = 0u64;
    let mut wire = Wire::new(bytes);
    while let Some((field, value)) = wire.next() {
        cost = cost.saturating_add(match field {
            1 | 2 => 8 * value.count(),
            3 => std::mem::size_of::<crate::proto::Label>() as u64,
            _ => 0,
        });
    }
    cost
}

fn location_cost(bytes: &[u8]) -> u64 {
    let mut cost = 0u64;
    let mut wire = Wire::new(bytes);
    while let Some((field, _)) = wire.next() {
        if field == 4 {
            cost = cost.saturating_add(std::mem::size_of::<crate::proto::Line>() as u64);
        }
    }
    cost
}

#[derive(Clone, Copy)]
enum Value<'a> {
    Scalar,
    Bytes(&'a [u8]),
}

impl Value<'_> {
    /// How many scalars a repeated scalar field's entry holds: one, or as many varints as a
    /// packed run has (bytes without the continuation bit).
    fn count(self) -> u64 {
        match self {
            Value::Scalar => 1,
            Value::Bytes(b) => b.iter().filter(|&&x| x & 0x80 == 0).count() as u64,
        }
    }
}

/// A minimal protobuf wire reader: (field number, value), ending at the first malformed byte.
struct Wire<'a> {
    bytes: &'a [u8],
}

impl<'a> Wire<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Wire { bytes }
    }

    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let (&b, rest) = self.bytes.split_first()?;
            self.bytes = rest;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn next(&mut self) -> Option<(u64, Value<'a>)> {
        let key = self.varint()?;
        let value = match key & 7 {
            0 => {
                self.varint()?;
                Value::Scalar
            }
            1 | 5 => {
                let n = if key & 7 == 1 { 8 } else { 4 };
                self.bytes = self.bytes.get(n..)?;
                Value::Scalar
            }
            2 => {
                let len = usize::try_from(self.varint()?).ok()?;
                let (payload, rest) = (self.bytes.get(..len)?, self.bytes.get(len..)?);
                self.bytes = rest;
                Value::Bytes(payload)
            }
            _ => return None, // groups (3, 4) are not in profile.proto; prost refuses them
        };
        Some((key >> 3, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Location, Profile, Sample};
    use prost::Message;

    #[test]
    fn the_estimate_follows_what_prost_materializes() {
        let p = Profile {
            sample: vec![
                Sample {
                    location_id: vec![1, 2, 300],
                    value: vec![5],
                    label: vec![],
                };
                3
            ],
            location: vec![Location {
                id: 1,
                ..Default::default()
            }],
            string_table: vec!["".into(), "abc".into()],
            ..Default::default()
        };
        let mut wire = Wire::new(&[]);
        assert!(wire.next().is_none());
        assert!(check_decoded_size(&p.encode_to_vec()).is_ok());
    }

    #[test]
    fn repeated_empty_samples_are_refused_before_decoding() {
        // 2 bytes per empty sample on the wire, ~72 decoded.
        let n = (MAX_DECODED_BYTES / std::mem::size_of::<Sample>() as u64) as usize + 1;
        let bytes: Vec<u8> = [0x12u8, 0x00].repeat(n);
        let e = check_decoded_size(&bytes).unwrap_err();
        assert_eq!(e.limit, "MAX_DECODED_BYTES");
        assert!(e
            .to_string()
            .contains("more than the 536,870,912 bytes accepted"));
        // Positive control: a tenth as many decode.
        assert!(check_decoded_size(&bytes[..bytes.len() / 10]).is_ok());
    }

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(1234567), "1,234,567");
    }
}
