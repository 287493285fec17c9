//! Reading and writing pprof files: gzip-compressed (or raw) `profile.proto` bytes.
//!
//! [`decode`] accepts what `go tool pprof` accepts — gzip (magic `1f 8b`) or a raw message — and
//! then [`validate`]s the result, so that code holding a decoded [`Profile`] can follow every
//! string index and every id without checking it again. Nothing here panics on any input.

use std::collections::HashSet;
use std::error::Error;
use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use prost::Message;

use crate::proto::Profile;

pub use crate::limits::MAX_DECOMPRESSED_LEN;
use crate::limits::{check_decoded_size, LimitExceeded};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Why bytes could not be decoded as a pprof profile.
#[derive(Debug)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input has no bytes at all.
    Empty,
    /// The input starts with the gzip magic but does not decompress.
    Gzip(io::Error),
    /// The input decompresses to more than [`MAX_DECOMPRESSED_LEN`] bytes.
    TooLarge,
    /// The input is neither gzip nor a `profile.proto` message.
    NotProtobuf(prost::DecodeError),
    /// The input is gzip, but what it holds is not a `profile.proto` message.
    GzipNotProtobuf(prost::DecodeError),
    /// The message decoded but breaks an invariant of the format; the text says which.
    Malformed(String),
    /// The profile crosses one of the limits of [`crate::limits`]; the error says which.
    Limit(LimitExceeded),
}

impl From<LimitExceeded> for DecodeError {
    fn from(e: LimitExceeded) -> Self {
        DecodeError::Limit(e)
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("not a pprof profile: the input is empty"),
            Self::Gzip(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                f.write_str("not a pprof profile: the gzip stream is truncated")
            }
            Self::Gzip(_) => f.write_str("not a pprof profile: the gzip stream is corrupt"),
            Self::TooLarge => write!(
                f,
                "profile refused: it decompresses to more than {} MiB (limit MAX_DECOMPRESSED_LEN)",
                MAX_DECOMPRESSED_LEN >> 20
            ),
            Self::NotProtobuf(_) => {
                f.write_str("not a pprof profile: neither gzip nor a profile.proto message")
            }
            Self::GzipNotProtobuf(_) => f.write_str(
                "not a pprof profile: the gzip stream does not hold a profile.proto message",
            ),
            Self::Malformed(what) => write!(f, "malformed profile: {what}"),
            Self::Limit(e) => e.fmt(f),
        }
    }
}

impl Error for DecodeError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Gzip(e) => Some(e),
            Self::NotProtobuf(e) | Self::GzipNotProtobuf(e) => Some(e),
            // Its text is this error's whole text: not repeated as a cause.
            Self::Empty | Self::TooLarge | Self::Malformed(_) | Self::Limit(_) => None,
        }
    }
}

/// Decodes a pprof profile from gzip-compressed or raw `profile.proto` bytes and validates it
/// (see [`validate`]).
pub fn decode(bytes: &[u8]) -> Result<Profile, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    let profile = if bytes.starts_with(&GZIP_MAGIC) {
        let mut raw = Vec::new();
        // Read one byte past the cap to tell "exactly at the cap" from "over it".
        // Multi-member, like Go's gzip reader: concatenated .gz files are one stream.
        MultiGzDecoder::new(bytes)
            .take(MAX_DECOMPRESSED_LEN + 1)
            .read_to_end(&mut raw)
            .map_err(DecodeError::Gzip)?;
        if raw.len() as u64 > MAX_DECOMPRESSED_LEN {
            return Err(DecodeError::TooLarge);
        }
        check_decoded_size(&raw)?;
        Profile::decode(raw.as_slice()).map_err(DecodeError::GzipNotProtobuf)?
    } else {
        check_decoded_size(bytes)?;
        Profile::decode(bytes).map_err(DecodeError::NotProtobuf)?
    };
    validate(&profile)?;
    Ok(profile)
}

/// Checks the invariants that later code relies on to index without panicking:
///
/// - the profile has at least one sample type (garbage that happens to parse as protobuf
///   usually has none);
/// - `string_table[0] == ""` when the table is non-empty, and every string index is in range;
/// - every sample has exactly one value per sample type;
/// - location, function and mapping ids are non-zero and unique, and every id a sample or
///   location refers to exists (a location's `mapping_id` and a line's `function_id` may be 0,
///   meaning "none", as in pprof).
pub fn validate(p: &Profile) -> Result<(), DecodeError> {
    let bad = |what: String| Err(DecodeError::Malformed(what));
    let strings = p.string_table.len();
    if let Some(first) = p.string_table.first() {
        if !first.is_empty() {
            return bad(format!("string_table[0] must be \"\", found {first:?}"));
        }
    }
    let check_str = |index: i64, what: &dyn Fn() -> String| -> Result<(), DecodeError> {
        // Index 0 is the empty string, valid even when the table itself is empty.
        if index == 0 || (index > 0 && (index as u64) < strings as u64) {
            Ok(())
        } else {
            Err(DecodeError::Malformed(format!(
                "{} is string {index}, but the string table has {strings} entries",
                what()
            )))
        }
    };

    if p.sample_type.is_empty() {
        return bad("the profile has no sample types".into());
    }
    for (i, vt) in p.sample_type.iter().enumerate() {
        check_str(vt.r#type, &|| format!("the name of sample type {i}"))?;
        check_str(vt.unit, &|| format!("the unit of sample type {i}"))?;
    }
    if let Some(vt) = &p.period_type {
        check_str(vt.r#type, &|| "the period type's name".into())?;
        check_str(vt.unit, &|| "the period type's unit".into())?;
    }
    check_str(p.drop_frames, &|| "drop_frames".into())?;
    check_str(p.keep_frames, &|| "keep_frames".into())?;
    check_str(p.default_sample_type, &|| "default_sample_type".into())?;
    for (i, &c) in p.comment.iter().enumerate() {
        check_str(c, &|| format!("comment {i}"))?;
    }

    let mut mappings = HashSet::new();
    for (i, m) in p.mapping.iter().enumerate() {
        if m.id == 0 || !mappings.insert(m.id) {
            return bad(format!(
                "mapping {i} has id {}, which is zero or repeated",
                m.id
            ));
        }
        check_str(m.filename, &|| format!("the file name of mapping {}", m.id))?;
        check_str(m.build_id, &|| format!("the build id of mapping {}", m.id))?;
    }
    let mut functions = HashSet::new();
    for (i, f) in p.function.iter().enumerate() {
        if f.id == 0 || !functions.insert(f.id) {
            return bad(format!(
                "function {i} has id {}, which is zero or repeated",
                f.id
            ));
        }
        check_str(f.name, &|| format!("the name of function {}", f.id))?;
        check_str(f.system_name, &|| {
            format!("the system name of function {}", f.id)
        })?;
        check_str(f.filename, &|| {
            format!("the file name of function {}", f.id)
        })?;
    }
    let mut locations = HashSet::new();
    for (i, l) in p.location.iter().enumerate() {
        if l.id == 0 || !locations.insert(l.id) {
            return bad(format!(
                "location {i} has id {}, which is zero or repeated",
                l.id
            ));
        }
        if l.mapping_id != 0 && !mappings.contains(&l.mapping_id) {
            return bad(format!(
                "location {} refers to mapping {}, which does not exist",
                l.id, l.mapping_id
            ));
        }
        for line in &l.line {
            if line.function_id != 0 && !functions.contains(&line.function_id) {
                return bad(format!(
                    "location {} refers to function {}, which does not exist",
                    l.id, line.function_id
                ));
            }
        }
    }
    for (i, s) in p.sample.iter().enumerate() {
        if s.value.len() != p.sample_type.len() {
            return bad(format!(
                "sample {i} has {} values, but the profile has {} sample types",
                s.value.len(),
                p.sample_type.len()
            ));
        }
        for &id in &s.location_id {
            if !locations.contains(&id) {
                return bad(format!(
                    "sample {i} refers to location {id}, which does not exist"
                ));
            }
        }
        for label in &s.label {
            check_str(label.key, &|| format!("a label key of sample {i}"))?;
            check_str(label.str, &|| format!("a label value of sample {i}"))?;
            check_str(label.num_unit, &|| format!("a label unit of sample {i}"))?;
        }
    }
    Ok(())
}

/// Writes `profile` as gzip-compressed `profile.proto`, the form `go tool pprof` and
/// `/debug/pprof` use.
pub fn encode_gzip(profile: &Profile, out: &mut impl Write) -> io::Result<()> {
    let mut gz = GzEncoder::new(out, Compression::default());
    gz.write_all(&profile.encode_to_vec())?;
    gz.finish()?;
    Ok(())
}

/// Why a profile file could not be read: which path, and the cause ([`Error::source`]).
#[derive(Debug)]
pub struct ReadError {
    path: PathBuf,
    cause: ReadErrorCause,
}

#[derive(Debug)]
enum ReadErrorCause {
    Io(io::Error),
    Decode(DecodeError),
}

impl ReadError {
    /// The path that could not be read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The decoding error, when the file was read but is not a valid profile.
    pub fn decode_error(&self) -> Option<&DecodeError> {
        match &self.cause {
            ReadErrorCause::Decode(e) => Some(e),
            ReadErrorCause::Io(_) => None,
        }
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot read profile {}", self.path.display())
    }
}

impl Error for ReadError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match &self.cause {
            ReadErrorCause::Io(e) => Some(e),
            ReadErrorCause::Decode(e) => Some(e),
        }
    }
}

/// Reads and [`decode`]s the profile file at `path`.
pub fn read_file(path: impl AsRef<Path>) -> Result<Profile, ReadError> {
    let path = path.as_ref();
    let err = |cause| ReadError {
        path: path.to_owned(),
        cause,
    };
    let bytes = std::fs::read(path).map_err(|e| err(ReadErrorCause::Io(e)))?;
    decode(&bytes).map_err(|e| err(ReadErrorCause::Decode(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{frame, Frame, ProfileBuilder};

    /// One sample of `f` (line 3): strings "", samples, count, f.
    fn tiny() -> Profile {
        let f = Frame {
            line: 3,
            ..frame("f")
        };
        ProfileBuilder::new(&[("samples", "count")])
            .sample(&[f.into()], &[7])
            .build()
    }

    fn malformed(p: &Profile) -> String {
        match validate(p) {
            Err(e @ DecodeError::Malformed(_)) => e.to_string(),
            other => panic!("expected a malformed-profile error, got {other:?}"),
        }
    }

    #[test]
    fn raw_and_gzip_both_decode() {
        let p = tiny();
        let raw = p.encode_to_vec();
        let mut gz = Vec::new();
        encode_gzip(&p, &mut gz).unwrap();
        assert_eq!(&gz[..2], &GZIP_MAGIC);
        assert_eq!(decode(&raw).unwrap(), p);
        assert_eq!(decode(&gz).unwrap(), p);
    }

    #[test]
    fn missing_location_is_named() {
        let mut p = tiny();
        p.sample[0].location_id = vec![1, 17];
        assert_eq!(
            malformed(&p),
            "malformed profile: sample 0 refers to location 17, which does not exist"
        );
    }

    #[test]
    fn out_of_range_string_is_rejected() {
        let mut p = tiny();
        p.function[0].name = 4;
        assert_eq!(
            malformed(&p),
            "malformed profile: the name of function 1 is string 4, but the string table has 4 entries"
        );
        p.function[0].name = -1;
        assert!(malformed(&p).contains("is string -1"));
    }

    #[test]
    fn value_count_must_match_sample_types() {
        let mut p = tiny();
        p.sample[0].value.push(1);
        assert_eq!(
            malformed(&p),
            "malformed profile: sample 0 has 2 values, but the profile has 1 sample types"
        );
    }

    #[test]
    fn first_string_must_be_empty() {
        let mut p = tiny();
        p.string_table[0] = "x".into();
        assert!(malformed(&p).contains("string_table[0] must be \"\""));
    }

    #[test]
    fn missing_function_and_mapping_are_named() {
        let mut p = tiny();
        p.location[0].line[0].function_id = 9;
        assert!(malformed(&p).contains("location 1 refers to function 9"));
        let mut p = tiny();
        p.location[0].mapping_id = 4;
        assert!(malformed(&p).contains("location 1 refers to mapping 4"));
    }

    #[test]
    fn duplicate_ids_are_rejected() {
        let mut p = tiny();
        p.location.push(p.location[0].clone());
        assert!(malformed(&p).contains("location 1 has id 1, which is zero or repeated"));
    }

    #[test]
    fn empty_and_truncated_gzip_say_so() {
        assert_eq!(
            decode(&[]).unwrap_err().to_string(),
            "not a pprof profile: the input is empty"
        );
        let mut gz = Vec::new();
        encode_gzip(&tiny(), &mut gz).unwrap();
        let e = decode(&gz[..gz.len() / 2]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "not a pprof profile: the gzip stream is truncated"
        );
        assert!(e.source().is_some());
    }

    #[test]
    fn text_is_not_a_profile() {
        let e = decode(b"this is certainly not a profile\n").unwrap_err();
        assert!(
            e.to_string().starts_with("not a pprof profile"),
            "unexpected message: {e}"
        );
    }

    #[test]
    fn read_file_names_the_path() {
        let e = read_file("/nonexistent/mapprof/x.pb.gz").unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot read profile /nonexistent/mapprof/x.pb.gz"
        );
        assert!(e.source().is_some());
        assert!(e.decode_error().is_none());
    }
}
