//! Where a profile comes from: a file, or an `http(s)://` URL fetched as `go tool pprof` does
//! (`--seconds N` sets the URL's `seconds`; a URL without a path asks for the CPU profile).

use std::io::Read;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use mapprof_profile::codec;
use mapprof_profile::limits::MAX_DECOMPRESSED_LEN;
use mapprof_profile::proto::Profile;

/// pprof's default path for a URL that names none.
const CPU_PROFILE_PATH: &str = "/debug/pprof/profile";

/// What pprof waits for an answer when no `seconds` is asked for.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Time the server takes to build and send the profile after its window of `seconds`.
const BUILD_ALLOWANCE: Duration = Duration::from_secs(10);

/// Whether `source` is fetched rather than read from disk.
pub(crate) fn is_url(source: &str) -> bool {
    source.starts_with("http://") || source.starts_with("https://")
}

/// Reads the profile at `source`: a path or a URL.
pub(crate) fn read(source: &str, seconds: Option<u64>) -> Result<Profile> {
    if !is_url(source) {
        return Ok(codec::read_file(source)?);
    }
    let (url, timeout) = adjust_url(source, seconds)?;
    let bytes = fetch(&url, timeout).with_context(|| format!("cannot fetch {url}"))?;
    codec::decode(&bytes).with_context(|| format!("cannot read profile {url}"))
}

/// The URL to ask and how long to wait, as pprof's `adjustURL`: `seconds` given replaces the
/// URL's; the wait is the window and half of it again (pprof's rule), plus the build.
fn adjust_url(source: &str, seconds: Option<u64>) -> Result<(String, Duration)> {
    let mut url = url::Url::parse(source).with_context(|| format!("`{source}` is not a URL"))?;
    if url.path().is_empty() || url.path() == "/" {
        url.set_path(CPU_PROFILE_PATH);
    }
    let window = match seconds {
        Some(n) => {
            let others: Vec<(String, String)> = url
                .query_pairs()
                .filter(|(k, _)| k != "seconds")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            url.query_pairs_mut()
                .clear()
                .extend_pairs(others)
                .append_pair("seconds", &n.to_string());
            Some(n)
        }
        None => url
            .query_pairs()
            .find(|(k, _)| k == "seconds")
            .and_then(|(_, v)| v.parse().ok()),
    };
    let timeout = match window {
        Some(n) if n > 0 => {
            let window = Duration::from_secs(n);
            window + window / 2 + BUILD_ALLOWANCE
        }
        _ => DEFAULT_TIMEOUT,
    };
    Ok((url.to_string(), timeout))
}

fn fetch(url: &str, timeout: Duration) -> Result<Vec<u8>> {
    let agent = ureq::AgentBuilder::new().timeout(timeout).build();
    let response = match agent.get(url).call() {
        Ok(response) => response,
        Err(ureq::Error::Status(code, response)) => {
            // Go's handlers (and mapprof's) say why in a short text body.
            let reason = response.into_string().unwrap_or_default();
            bail!("the server answered {code}: {}", reason.trim());
        }
        Err(e) => return Err(e.into()),
    };
    let mut bytes = Vec::new();
    response
        .into_reader()
        .take(MAX_DECOMPRESSED_LEN + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_DECOMPRESSED_LEN {
        bail!("the answer is longer than {MAX_DECOMPRESSED_LEN} bytes (MAX_DECOMPRESSED_LEN)");
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_adjusted_as_pprof_adjusts_them() {
        let adjust = |s, n| adjust_url(s, n).unwrap();
        assert_eq!(
            adjust("http://h:1/debug/pprof/heap", None),
            ("http://h:1/debug/pprof/heap".into(), DEFAULT_TIMEOUT)
        );
        assert_eq!(
            adjust("http://h:1", Some(4)).0,
            "http://h:1/debug/pprof/profile?seconds=4"
        );
        assert_eq!(
            adjust("http://h:1/debug/pprof/allocs?seconds=30&debug=0", Some(2)),
            (
                "http://h:1/debug/pprof/allocs?debug=0&seconds=2".into(),
                Duration::from_secs(3) + BUILD_ALLOWANCE
            )
        );
        assert_eq!(
            adjust("https://h/debug/pprof/profile?seconds=10", None).1,
            Duration::from_secs(15) + BUILD_ALLOWANCE
        );
        assert!(is_url("https://h/x") && !is_url("heap.pb.gz") && !is_url("./http:"));
    }
}
