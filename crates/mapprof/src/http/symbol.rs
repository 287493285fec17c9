//! `symbol`: function names of code addresses, as Go's symbolz answer.

use super::reply::{bad_request, fail, respond, Problem, Reply};
use super::state::State;
use super::{HEAD_TIMEOUT, MAX_BODY_BYTES};
use crate::profiles::with_symbolizer;
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header;
use hyper::{Method, Request, StatusCode};
use std::fmt::Write as _;
use std::sync::Arc;

/// `symbol`: Go's answer to `pprof`'s symbolz protocol. `num_symbols: 1` says symbols are
/// available; then, for each address of the request (the query of a GET, the body of a POST,
/// `+`-separated, hex with `0x`, octal with `0`, or decimal, as Go's `ParseUint(s, 0, 64)`),
/// `0xADDR name` when the address is in a known function: the function the address is in, the
/// outermost frame of an inlined chain. (Go's `runtime.FuncForPC` names the innermost one, but
/// symbolz has one name per address: `HashMap::insert` inlined into `Cache::update` would hide
/// `Cache::update`, and the profile's `drop_frames` then drops the location altogether.)
pub(super) async fn symbol(
    request: Request<Incoming>,
    state: &Arc<State>,
) -> Result<Reply, Problem> {
    let input: Bytes = if request.method() == Method::POST {
        let too_large = || {
            fail(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body too large: at most {MAX_BODY_BYTES} bytes"),
            )
        };
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
            return Err(too_large());
        }
        let body = Limited::new(request.into_body(), MAX_BODY_BYTES).collect();
        match tokio::time::timeout(HEAD_TIMEOUT, body).await {
            Err(_) => {
                return Err(fail(
                    StatusCode::REQUEST_TIMEOUT,
                    "timed out reading the request body",
                ))
            }
            Ok(Err(e)) if e.is::<LengthLimitError>() => return Err(too_large()),
            Ok(Err(e)) => return Err(bad_request(format!("reading request: {e}"))),
            Ok(Ok(collected)) => collected.to_bytes(),
        }
    } else {
        Bytes::copy_from_slice(request.uri().query().unwrap_or("").as_bytes())
    };
    let slot = state.responseslot().await?;
    let text = state
        .run(move || {
            let mut out = String::from("num_symbols: 1\n");
            with_symbolizer(|symbolizer| {
                for word in input.split(|&b| b == b'+') {
                    let Some(pc) = std::str::from_utf8(word).ok().and_then(parse_address) else {
                        continue;
                    };
                    if let Some(function) = symbolizer.resolve(pc).last() {
                        let _ = writeln!(out, "{pc:#x} {}", function.name);
                    }
                }
                symbolizer.release_debug_info();
            });
            out
        })
        .await?;
    Ok(respond(
        StatusCode::OK,
        "text/plain; charset=utf-8",
        text.into(),
        Some(slot),
    ))
}

/// A non-zero address as Go's `strconv.ParseUint(s, 0, 64)` reads it.
fn parse_address(word: &str) -> Option<u64> {
    let word = word.trim();
    let (digits, radix) = if let Some(hex) = word.strip_prefix("0x").or(word.strip_prefix("0X")) {
        (hex, 16)
    } else if let Some(bin) = word.strip_prefix("0b").or(word.strip_prefix("0B")) {
        (bin, 2)
    } else if let Some(oct) = word.strip_prefix("0o").or(word.strip_prefix("0O")) {
        (oct, 8)
    } else if word.len() > 1 && word.starts_with('0') {
        (&word[1..], 8)
    } else {
        (word, 10)
    };
    let digits = digits.replace('_', "");
    u64::from_str_radix(&digits, radix)
        .ok()
        .filter(|&pc| pc != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_read_as_go_reads_them() {
        assert_eq!(parse_address("0x4a3b"), Some(0x4a3b));
        assert_eq!(parse_address("0X4A3B"), Some(0x4a3b));
        assert_eq!(parse_address("010"), Some(8));
        assert_eq!(parse_address("0b11"), Some(3));
        assert_eq!(parse_address("1234"), Some(1234));
        assert_eq!(parse_address(" 0x10\n"), Some(16));
        for bad in ["", "0", "0x", "zz", "0x1g", "-1", "99999999999999999999"] {
            assert_eq!(parse_address(bad), None, "{bad:?}");
        }
    }
}
