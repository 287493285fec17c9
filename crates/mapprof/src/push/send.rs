//! The sender: sends the oldest queued request; retries failures with exponential backoff and
//! jitter; logs at most once a minute.
//!
//! Which failures are retried: no connection, a timeout, 408, 429 and 5xx (the engine may
//! take the same request later). Any other answer outside 2xx means the engine will never
//! take it (a bad request, bad credentials): it is dropped and counted as refused. One
//! request is in flight at a time, and the backoff reaches [`MAX_BACKOFF`], so an engine down
//! for an hour gets one attempt every few minutes from each instance, not a storm.

use std::io::Read;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use base64::Engine as _;

use super::queue::Queue;
use super::{set_last_error, Protocol, Stop, FAILED, FLUSH_TIMEOUT, REFUSED, SENT, SENT_BYTES};
use crate::config::Config;

/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a whole request may take (an engine that stalls is given up on).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// The first wait after a failure; it doubles per failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// At most one message on stderr per this interval; the ones between are counted in it.
const LOG_EVERY: Duration = Duration::from_secs(60);
/// What is read of an answer: enough to quote an error, never an engine's whole reply.
const MAX_ANSWER: u64 = 64 << 10;

/// Where requests go and the headers they carry.
pub(crate) struct Endpoint {
    /// The URL, with the protocol's path (never a secret: credentials are headers).
    pub(crate) url: String,
    protocol: Protocol,
    /// `(name, value)`; values may be secrets and are never logged.
    headers: Vec<(&'static str, String)>,
    agent: ureq::Agent,
}

impl Endpoint {
    pub(crate) fn new(config: &Config, protocol: Protocol) -> Endpoint {
        let base = config.push.as_deref().unwrap_or_default();
        let url = format!("{}{}", base.trim_end_matches('/'), protocol.path);
        let mut headers = vec![("Content-Type", protocol.content_type.to_owned())];
        if let (Some(user), Some(password)) = (&config.push_user, &config.push_password) {
            let pair = format!("{user}:{}", password.expose());
            let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
            headers.push(("Authorization", format!("Basic {encoded}")));
        }
        if let Some(token) = &config.push_token {
            headers.push(("Authorization", format!("Bearer {}", token.expose())));
        }
        if let Some(tenant) = &config.push_tenant {
            headers.push(("X-Scope-OrgID", tenant.clone()));
        }
        if protocol.name == "pyroscope" {
            // Connect's unary protocol, binary protobuf.
            headers.push(("Connect-Protocol-Version", "1".to_owned()));
        }
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("mapprof/", env!("CARGO_PKG_VERSION")))
            .max_idle_connections(1)
            .build();
        Endpoint {
            url,
            protocol,
            headers,
            agent,
        }
    }

    /// Sends one body, within `timeout`.
    fn send(&self, body: &[u8], timeout: Duration) -> Result<(), Failure> {
        let mut request = self.agent.post(&self.url).timeout(timeout);
        for (name, value) in &self.headers {
            request = request.set(name, value);
        }
        match request.send_bytes(body) {
            Ok(answer) => {
                // Read (a little of) the answer, so that the connection can be used again.
                let _ = answer
                    .into_reader()
                    .take(MAX_ANSWER)
                    .read_to_end(&mut Vec::new());
                Ok(())
            }
            Err(ureq::Error::Status(status, answer)) => {
                let quote = quote(answer.into_reader());
                let retry = matches!(status, 408 | 429 | 500..=599);
                let message = format!(
                    "{} answered {status}{}",
                    self.protocol.name,
                    if quote.is_empty() {
                        String::new()
                    } else {
                        format!(": {quote}")
                    }
                );
                Err(Failure { message, retry })
            }
            Err(ureq::Error::Transport(e)) => Err(Failure {
                message: e.to_string(),
                retry: true,
            }),
        }
    }
}

/// A failed attempt: what happened, and whether the same request may succeed later.
struct Failure {
    message: String,
    retry: bool,
}

/// The start of an answer's body, as printable text on one line.
fn quote(answer: impl Read) -> String {
    let mut bytes = Vec::new();
    let _ = answer.take(200).read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes)
        .chars()
        .map(|c| {
            if c.is_control() || c == '\u{fffd}' {
                ' '
            } else {
                c
            }
        })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// The sender's thread: until the queue is closed and empty.
pub(crate) fn run(endpoint: Endpoint, queue: &Queue, stop: &Stop) {
    let mut backoff = Backoff::new();
    let mut log = Log::default();
    let mut flush_deadline = None;
    while let Some(request) = queue.oldest() {
        // Once stopping, what is left gets one try each, within the flush timeout.
        let timeout = if queue.is_closed() {
            let deadline = *flush_deadline.get_or_insert_with(|| Instant::now() + FLUSH_TIMEOUT);
            match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => left,
                _ => return,
            }
        } else {
            REQUEST_TIMEOUT
        };
        match endpoint.send(&request.body, timeout) {
            Ok(()) => {
                SENT.fetch_add(1, Relaxed);
                SENT_BYTES.fetch_add(request.body.len() as u64, Relaxed);
                queue.remove(&request);
                backoff = Backoff::new();
                log.recovered(&endpoint.url);
            }
            Err(failure) if failure.retry => {
                FAILED.fetch_add(1, Relaxed);
                if queue.is_closed() {
                    queue.remove(&request);
                    continue;
                }
                let wait = backoff.next();
                log.failed(&endpoint.url, &failure.message, Some(wait));
                stop.sleep_until(Instant::now() + wait);
            }
            Err(failure) => {
                REFUSED.fetch_add(1, Relaxed);
                queue.remove(&request);
                // The engine is up and answering: the next request goes at once.
                backoff = Backoff::new();
                log.failed(&endpoint.url, &failure.message, None);
            }
        }
    }
}

/// Exponential backoff with jitter: the n-th wait is drawn from [d/2, d], d = 1 s × 2^n up to
/// [`MAX_BACKOFF`], so that instances that failed together do not retry together.
struct Backoff {
    next: Duration,
    random: u64,
}

impl Backoff {
    fn new() -> Backoff {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Backoff {
            next: FIRST_BACKOFF,
            random: nanos ^ u64::from(std::process::id()).rotate_left(32) | 1,
        }
    }

    fn next(&mut self) -> Duration {
        // xorshift64: jitter needs no better randomness.
        self.random ^= self.random << 13;
        self.random ^= self.random >> 7;
        self.random ^= self.random << 17;
        let fraction = 0.5 + 0.5 * (self.random >> 11) as f64 / (1u64 << 53) as f64;
        let wait = self.next.mul_f64(fraction);
        self.next = (self.next * 2).min(MAX_BACKOFF);
        wait
    }
}

/// Failures on stderr, at most one line per [`LOG_EVERY`].
#[derive(Default)]
struct Log {
    last: Option<Instant>,
    unreported: u64,
    failing: bool,
}

impl Log {
    fn failed(&mut self, url: &str, message: &str, retry_in: Option<Duration>) {
        self.failing = true;
        let line = match retry_in {
            Some(wait) => format!(
                "push to {url} failed: {message}; retrying in {:.1} s",
                wait.as_secs_f64()
            ),
            None => format!("push to {url} refused: {message}; that request is dropped"),
        };
        set_last_error(line.clone());
        if self.last.is_some_and(|t| t.elapsed() < LOG_EVERY) {
            self.unreported += 1;
            return;
        }
        let more = match std::mem::take(&mut self.unreported) {
            0 => String::new(),
            n => format!(" ({n} more failures since the last message)"),
        };
        eprintln!("mapprof: {line}{more}");
        self.last = Some(Instant::now());
    }

    fn recovered(&mut self, url: &str) {
        if std::mem::take(&mut self.failing) {
            eprintln!("mapprof: push to {url} works again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_its_cap() {
        let mut backoff = Backoff::new();
        let mut nominal = FIRST_BACKOFF;
        for _ in 0..20 {
            let wait = backoff.next();
            assert!(
                wait >= nominal / 2 && wait <= nominal,
                "{wait:?} for {nominal:?}"
            );
            nominal = (nominal * 2).min(MAX_BACKOFF);
        }
        assert_eq!(nominal, MAX_BACKOFF);
    }
}
