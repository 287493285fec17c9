//! Pushing profiles to a continuous-profiling engine (`push=URL`, the `push` feature): every
//! `push_every`, the CPU profile of the interval, the heap (allocations over the interval and
//! what is live at its end), resize, mutex and block profiles as deltas over the interval,
//! sent as gzipped pprof with Pyroscope's `push.v1` or as OTLP profiles (the `otlp` feature).
//!
//! Two threads, both the profiler's own ([`crate::memory::profiler_thread`]: never sampled,
//! in mapprof's own heap): the **collector** takes the profiles at each interval's end and
//! queues one request; the **sender** sends the oldest queued request. The queue is bounded
//! (requests and bytes, dropping the oldest), so whatever the engine does (slow, refusing,
//! down for an hour, closing connections) the host's memory is bounded and its allocation
//! and lock paths never wait: neither thread holds a lock those paths take. A failed send is
//! retried with exponential backoff and jitter ([`send`]); failures are counted
//! ([`push_stats`]), shown in the trace line and the `/debug/pprof/` index, and logged at
//! most once a minute.

mod collect;
#[cfg(feature = "otlp")]
mod otlp;
mod pyroscope;
mod queue;
mod send;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::{Config, PushProtocol};
use crate::memory::profiler_thread;
use crate::Error;
use queue::Queue;

/// At most this many requests wait to be sent; beyond, the oldest is dropped (and counted).
pub const MAX_QUEUED_REQUESTS: usize = 8;
/// At most this many bytes of requests wait to be sent.
pub const MAX_QUEUED_BYTES: usize = 8 << 20;
/// How long dropping the profiler waits for the last interval's request to be sent.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(3);

/// What pushing has done since the profiler started ([`push_stats`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PushStats {
    /// Where and how: the URL (never a secret), the protocol and the interval.
    pub target: String,
    /// Requests the engine accepted.
    pub sent: u64,
    /// Their bytes (the request bodies).
    pub sent_bytes: u64,
    /// Attempts that failed (connection, timeout, 408, 429, 5xx): retried.
    pub failed: u64,
    /// Requests the engine refused (other 4xx): not retried, not sent.
    pub refused: u64,
    /// Requests dropped unsent because the queue was full.
    pub dropped: u64,
    /// Requests waiting now.
    pub queued: u64,
    /// The last failure, as logged.
    pub last_error: Option<String>,
}

/// The counts behind [`PushStats`], process-wide: one profiler runs at a time.
static ACTIVE: AtomicBool = AtomicBool::new(false);
static SENT: AtomicU64 = AtomicU64::new(0);
static SENT_BYTES: AtomicU64 = AtomicU64::new(0);
static FAILED: AtomicU64 = AtomicU64::new(0);
static REFUSED: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);
static QUEUED: AtomicU64 = AtomicU64::new(0);
/// The target and the last error: written by the push threads, read by the index and
/// [`push_stats`]; never taken by the allocation or lock paths.
static TEXT: Mutex<(String, Option<String>)> = Mutex::new((String::new(), None));

/// What pushing has done, or `None` when the running profiler does not push.
pub fn push_stats() -> Option<PushStats> {
    if !ACTIVE.load(Relaxed) {
        return None;
    }
    let text = TEXT.lock().unwrap_or_else(PoisonError::into_inner);
    Some(PushStats {
        target: text.0.clone(),
        sent: SENT.load(Relaxed),
        sent_bytes: SENT_BYTES.load(Relaxed),
        failed: FAILED.load(Relaxed),
        refused: REFUSED.load(Relaxed),
        dropped: DROPPED.load(Relaxed),
        queued: QUEUED.load(Relaxed),
        last_error: text.1.clone(),
    })
}

/// Whether the pusher holds the CPU sampler (`push_profiles` has `cpu`).
static PUSHING_CPU: AtomicBool = AtomicBool::new(false);

/// Why a CPU profile asked for over HTTP cannot start, when the pusher is the reason.
#[cfg(feature = "http")]
pub(crate) fn cpu_busy_note() -> &'static str {
    if ACTIVE.load(Relaxed) && PUSHING_CPU.load(Relaxed) {
        " (mapprof pushes CPU profiles to an engine all the time: push_profiles has cpu; \
         the engine has them)"
    } else {
        ""
    }
}

/// The push fields of the trace line, empty when not pushing.
pub(crate) fn trace_fields() -> String {
    push_stats().map_or(String::new(), |s| {
        format!(
            " push_sent={} push_failed={} push_refused={} push_dropped={} push_queued={}",
            s.sent, s.failed, s.refused, s.dropped, s.queued
        )
    })
}

fn set_last_error(error: String) {
    TEXT.lock().unwrap_or_else(PoisonError::into_inner).1 = Some(error);
}

/// A stop flag that sleeping threads wake up for.
#[derive(Debug, Default)]
struct Stop {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Stop {
    fn stop(&self) {
        *self.stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.wake.notify_all();
    }

    /// Sleeps until `deadline` or the stop; whether it stopped.
    fn sleep_until(&self, deadline: Instant) -> bool {
        let mut stopped = self.stopped.lock().unwrap_or_else(PoisonError::into_inner);
        while !*stopped {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            stopped = self
                .wake
                .wait_timeout(stopped, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}

/// The push threads of a running profiler; dropping it pushes the last interval and stops.
#[derive(Debug)]
pub(crate) struct Pusher {
    stop: Arc<Stop>,
    collector: Option<JoinHandle<()>>,
    sender: Option<JoinHandle<()>>,
    /// The process that started the threads (see `crate::fork`).
    pid: u32,
}

/// Starts pushing if `config` asks for it. A URL or protocol mapprof cannot use is an error
/// here, before anything starts.
pub(crate) fn start(config: &Config) -> Result<Option<Pusher>, Error> {
    let Some(url) = &config.push else {
        return Ok(None);
    };
    let protocol = protocol(config.push_protocol).map_err(|problem| Error::Push {
        url: url.clone(),
        problem,
    })?;
    let spawn_error = |e: std::io::Error| Error::Push {
        url: url.clone(),
        problem: format!("cannot start its thread: {e}"),
    };
    let endpoint = send::Endpoint::new(config, protocol);
    *TEXT.lock().unwrap_or_else(PoisonError::into_inner) = (
        format!(
            "{} ({}) every {:?}",
            endpoint.url, protocol.name, config.push_every
        ),
        None,
    );
    for count in [&SENT, &SENT_BYTES, &FAILED, &REFUSED, &DROPPED, &QUEUED] {
        count.store(0, Relaxed);
    }
    let queue = Arc::new(Queue::default());
    let stop = Arc::new(Stop::default());
    let mut pusher = Pusher {
        stop: stop.clone(),
        collector: None,
        sender: None,
        pid: std::process::id(),
    };
    // The first interval starts now: its deltas count what the host does from here on.
    let mut collector = collect::Collector::new(config, protocol);
    collector.begin();
    let (every, q) = (config.push_every, queue.clone());
    let s = stop.clone();
    pusher.collector = Some(
        std::thread::Builder::new()
            .name("mapprof-push-collect".into())
            .spawn(move || profiler_thread(|| collect::run(collector, every, &q, &s)))
            .map_err(spawn_error)?,
    );
    pusher.sender = Some(
        std::thread::Builder::new()
            .name("mapprof-push-send".into())
            .spawn(move || profiler_thread(|| send::run(endpoint, &queue, &stop)))
            .map_err(spawn_error)?,
    );
    PUSHING_CPU.store(config.pushes("cpu"), Relaxed);
    ACTIVE.store(true, Relaxed);
    Ok(Some(pusher))
}

impl Drop for Pusher {
    fn drop(&mut self) {
        if self.pid != std::process::id() {
            // In a forked child the threads do not exist: joining them would wait forever.
            std::mem::forget(self.collector.take());
            std::mem::forget(self.sender.take());
            return;
        }
        self.stop.stop();
        // The collector takes the last interval's profiles and queues them; the sender then
        // sends what is queued, within `FLUSH_TIMEOUT`, and ends.
        if let Some(collector) = self.collector.take() {
            let _ = collector.join();
        }
        if let Some(sender) = self.sender.take() {
            let deadline = Instant::now() + FLUSH_TIMEOUT + Duration::from_secs(1);
            while !sender.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            // A request the engine stalls past the deadline is left to time out on its own:
            // the host's exit is not held up by an engine.
            if sender.is_finished() {
                let _ = sender.join();
            }
        }
        ACTIVE.store(false, Relaxed);
    }
}

/// How requests of one protocol are made.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Protocol {
    name: &'static str,
    /// Added to the `push` URL.
    path: &'static str,
    content_type: &'static str,
    encode: fn(&collect::Interval) -> Vec<u8>,
}

fn protocol(which: PushProtocol) -> Result<Protocol, String> {
    match which {
        PushProtocol::Pyroscope => Ok(pyroscope::PROTOCOL),
        #[cfg(feature = "otlp")]
        PushProtocol::Otlp => Ok(otlp::PROTOCOL),
        #[cfg(not(feature = "otlp"))]
        PushProtocol::Otlp => Err("push_protocol=otlp needs mapprof's `otlp` feature, which \
                                   this build was made without"
            .into()),
    }
}
