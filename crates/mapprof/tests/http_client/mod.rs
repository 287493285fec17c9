//! A minimal HTTP/1.1 client over `std::net::TcpStream` for the `/debug/pprof` tests: raw
//! requests in, status, headers and body out. One request per connection.
#![allow(dead_code)] // Each test binary uses a different subset.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// An answer as received.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    /// Names lower-cased.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    /// The value of header `name` (any case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `GET path`.
pub(crate) fn get(addr: SocketAddr, path: &str) -> Answer {
    send(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// `method path` with `body`.
pub(crate) fn request(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Answer {
    let mut raw = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    send(addr, &raw).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// Sends `raw` bytes and reads the answer until the server closes the connection.
pub(crate) fn send(addr: SocketAddr, raw: &[u8]) -> Result<Answer, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    stream.write_all(raw).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    // A server that answers before reading everything may reset the connection: keep what came.
    if let Err(e) = stream.read_to_end(&mut bytes) {
        // Linux reports the read timeout as `WouldBlock`: name it, for callers that check.
        if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) {
            return Err(format!("timed out: {e}"));
        }
        if bytes.is_empty() {
            return Err(e.to_string());
        }
    }
    parse(&bytes)
}

/// Splits a response into status, headers and body (by Content-Length, or chunked).
pub(crate) fn parse(bytes: &[u8]) -> Result<Answer, String> {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no end of head in {:?}", String::from_utf8_lossy(bytes)))?;
    let head = std::str::from_utf8(&bytes[..end]).map_err(|e| e.to_string())?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &bytes[end + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)?
    } else {
        match headers.iter().find(|(n, _)| n == "content-length") {
            Some((_, len)) => {
                let len: usize = len.parse().map_err(|_| format!("bad length {len}"))?;
                if rest.len() < len {
                    return Err(format!("body cut short: {} of {len} bytes", rest.len()));
                }
                rest[..len].to_vec()
            }
            None => rest.to_vec(),
        }
    };
    Ok(Answer {
        status,
        headers,
        body,
    })
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("chunk size line")?;
        let size = std::str::from_utf8(&rest[..line_end]).map_err(|e| e.to_string())?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|e| e.to_string())?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(rest.get(..size).ok_or("chunk cut short")?);
        rest = rest.get(size + 2..).ok_or("chunk end")?;
    }
}

/// Checks that `svg` is well-formed XML and returns the text of its title.
pub(crate) fn svg_title(svg: &[u8]) -> String {
    let text = std::str::from_utf8(svg).expect("SVG is UTF-8");
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(text, options)
        .unwrap_or_else(|e| panic!("not well-formed XML: {e}\n{}", &text[..text.len().min(500)]));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    doc.descendants()
        .find(|n| n.has_tag_name("title") || n.attribute("id") == Some("title"))
        .and_then(|n| n.text())
        .unwrap_or_default()
        .to_owned()
}

/// The number of threads of this process.
pub(crate) fn thread_count() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .expect("/proc/self/status")
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("a Threads: line")
}
