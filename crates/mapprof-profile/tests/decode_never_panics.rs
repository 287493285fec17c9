//! Property-style check: no input makes decoding, or anything done with what it accepts, panic.
//! Inputs are every prefix of a real profile (gzip and raw), single-byte corruptions of the raw
//! message, and random bytes, from a fixed-seed generator so failures reproduce.

mod common;

use mapprof_profile::codec::{decode, DecodeError};
use mapprof_profile::flame;
use mapprof_profile::report::{report, ReportOptions};
use mapprof_profile::resize::resize_profile;
use mapprof_profile::top::{top, TopOptions};
use mapprof_profile::view::ProfileView;
use prost::Message;

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Decodes `bytes`; when that succeeds, uses the profile the way the CLI does.
fn exercise(bytes: &[u8]) -> Result<(), DecodeError> {
    let profile = decode(bytes)?;
    let view = ProfileView::new(&profile).expect("decode validated the profile");
    for index in 0..view.sample_types().len() {
        let mut sink = Vec::new();
        top(&view, index, &TopOptions::default())
            .render(&mut sink)
            .unwrap();
        let _ = flame::folded_stacks(&view, index);
    }
    let resize = resize_profile(&profile);
    ProfileView::new(&resize).expect("a resize profile derived from a valid one is valid");
    // The report may refuse a profile whose sample types it cannot use, but never panics.
    let _ = report(&[("input", &profile)], &ReportOptions::default()).map(|r| r.to_text());
    Ok(())
}

fn real_profile() -> (Vec<u8>, Vec<u8>) {
    let gz = std::fs::read(common::data("go-heap.pb.gz")).unwrap();
    let raw = decode(&gz).unwrap().encode_to_vec();
    (gz, raw)
}

#[test]
fn truncated_gzip_is_an_error_not_a_panic() {
    let (gz, _) = real_profile();
    for len in 0..gz.len() {
        let err = exercise(&gz[..len]).expect_err("a strict prefix of the gzip stream decoded");
        let text = err.to_string();
        assert!(
            text.starts_with("not a pprof profile"),
            "prefix of {len} bytes: {text}"
        );
    }
}

#[test]
fn truncated_raw_message_never_panics() {
    let (_, raw) = real_profile();
    let mut accepted = 0;
    for len in 0..raw.len() {
        // A prefix that ends between fields may be a valid, smaller profile.
        if exercise(&raw[..len]).is_ok() {
            accepted += 1;
        }
    }
    assert!(exercise(&raw).is_ok());
    // Most prefixes cut a field, or lose the string table the rest refers to.
    assert!(
        accepted < raw.len() / 2,
        "{accepted} of {} prefixes accepted",
        raw.len()
    );
}

#[test]
fn corrupted_and_random_bytes_never_panic() {
    let (_, raw) = real_profile();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..3000 {
        let mut bytes = raw.clone();
        for _ in 0..1 + rng.next() % 3 {
            let at = (rng.next() % bytes.len() as u64) as usize;
            bytes[at] = rng.next() as u8;
        }
        let _ = exercise(&bytes);
    }
    for _ in 0..3000 {
        let len = (rng.next() % 512) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // Half of them look like gzip, to reach the decompressor.
        if len >= 2 && rng.next().is_multiple_of(2) {
            bytes[0] = 0x1f;
            bytes[1] = 0x8b;
        }
        let _ = exercise(&bytes);
    }
}
