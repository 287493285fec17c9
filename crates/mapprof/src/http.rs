//! `/debug/pprof` over HTTP, as Go's `net/http/pprof` serves it, so that
//! `go tool pprof http://127.0.0.1:6060/debug/pprof/heap` works against a Rust service.
//!
//! Opt-in: [`serve`] from code, [`crate::ProfilerBuilder::http`], or `MAPPROF=http=127.0.0.1:6060`.
//! Loopback only unless asked otherwise ([`HttpOptions::public`], `http_public=true`): profiles
//! show code addresses, call paths and timings, and taking one costs the host CPU time.
//!
//! | path under `/debug/pprof/` | answer |
//! |---|---|
//! | (empty) | HTML index: every profile with links to it, its `top` table and its flame graphs |
//! | `heap`, `allocs`, `mutex`, `block`, `resize` | the profile (gzip `profile.proto`); `?seconds=N`: the delta over the next N seconds; `?debug=1`: a `top` table as text |
//! | `profile?seconds=N` | a CPU profile of the next N seconds (default 30) |
//! | `flame/<profile>.svg?sample_index=NAME` | inferno flame graph of any of the above (`profile` included), `seconds` as above; `from_app=N`: stacks start N frames below their outermost application frame (`mapprof flame --from-app`; empty: 2) |
//! | `symbol` | `num_symbols: 1` (GET); POST or query `0xADDR+0xADDR...`: one `0xADDR name` line per known address |
//! | `cmdline` | the command line, arguments separated by NUL bytes |
//! | `goroutine`, `threads` | a thread dump (`crate::threads`): the profile; `?debug=1` identical stacks grouped, `?debug=2` every thread, as Go's goroutine profile |
//! | `threadcreate`, `trace` | 404 `Unknown profile`, then why mapprof lacks it and what to use instead (`absent`) |
//!
//! Statuses, headers and error bodies are `net/http/pprof`'s (Go 1.19–1.22): profiles are
//! `application/octet-stream` with `Content-Disposition: attachment; filename="heap"`
//! (`"heap-delta"` for a delta); errors are `text/plain; charset=utf-8` with `X-Go-Pprof: 1`
//! (which tells `go tool pprof` to show the body) and Go's texts: 404 `Unknown profile`,
//! 400 `invalid value for "seconds" - must be a positive integer`, 400 `profile duration exceeds
//! server's WriteTimeout` (here: more than [`HttpOptions::max_seconds`]), 400 `seconds and
//! debug params are incompatible`, 500 `Could not enable CPU profiling: ...` while a CPU
//! profile is being taken. Every answer has `X-Content-Type-Options: nosniff`. Methods are
//! Go 1.22's: GET (and HEAD) only, POST too on `symbol`, else 405. Where mapprof differs:
//!
//! - a malformed `seconds` on `profile` is a 400, where Go silently profiles 30 seconds;
//! - `debug=N` (N ≠ 0) answers mapprof's `top` table (`sample_index` selects the column), not
//!   Go's legacy text format: a person reads it, `go tool pprof` never asks for it;
//! - delta profiles ([`mapprof_profile::delta`]) subtract every value, like Go's
//!   `serveDeltaProfile`: `alloc_*` are the allocations of the window, `inuse_*` the change of
//!   live memory over it (negative where memory was freed); for in-use memory *now*, leave out
//!   `seconds`. `resize?seconds=N` is the resize profile of the allocs delta.
//! - bounds Go does not have (below) answer 503 `Service Unavailable` or close the connection.
//!
//! # Server
//!
//! hyper 1 (HTTP/1.1 only) on a tokio current-thread runtime that runs on one thread of its own,
//! `mapprof-http`: every connection is a task on that thread, not a thread, so a flood of
//! connections grows neither threads nor memory beyond the bounds below. Building, encoding and
//! rendering profiles (CPU-bound, may take a lock the profile builders share) runs on tokio's
//! blocking pool, capped at [`WORKER_THREADS`] threads (`mapprof-http-worker`). So the server
//! adds at most 1 + [`WORKER_THREADS`] threads to the process. `tiny_http`, the obvious smaller
//! choice, hands each connection to a pool that adds a thread whenever all are busy (its
//! `TaskPool`), so idle connections cost a thread each.
//!
//! Bounds:
//! - connections: [`HttpOptions::max_connections`] at a time; one more is answered 503 and
//!   closed at once;
//! - request head: [`MAX_HEAD_BYTES`] (more is 431, malformed is 400, both hyper's),
//!   read within [`HEAD_TIMEOUT`] (also the idle time allowed between requests); POST bodies
//!   (`symbol`): [`MAX_BODY_BYTES`] (more is 413) within [`HEAD_TIMEOUT`];
//! - a response the client stops reading for [`WRITE_STALL_TIMEOUT`] closes the connection;
//! - [`MAX_BUILDS`] profiles built at a time (others wait), [`MAX_RESPONSES`] built responses
//!   held at a time (others wait; streamed in chunks of `reply::CHUNK`, so that a slow reader
//!   holds no more), [`MAX_DELTAS`] delta profiles waiting out their `seconds` at a time (more
//!   is 503), one CPU profile at a time (more is 500, as Go), `seconds` at most
//!   [`HttpOptions::max_seconds`].
//!
//! The server thread and the workers run as the profiler's own work (`memory::profiler_thread`,
//! `memory::profiler_work`): their allocations are not profiled and go to the profiler's own
//! heap ([`crate::self_memory`]), given back to the system after each job and each response;
//! they never hold a lock that the allocator or lock hooks take (profiles are read with
//! `table::snapshot`, which copies the tables without locking).

mod absent;
mod params;
mod render;
mod reply;
mod routes;
mod state;
mod symbol;
mod take;

use crate::Error;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicI32, Ordering::AcqRel, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Threads of the blocking pool that builds, encodes and renders profiles.
pub const WORKER_THREADS: usize = 2;
/// How long an idle worker waits for the next job before it exits, so that its stack, touched
/// deep by a build, goes back: with tokio's default of 10 s, 100 back-to-back scrapes left
/// RssAnon +0.24 MiB on the fixture service until the second worker exited. Starting a thread
/// costs tens of microseconds, next to a build's milliseconds.
pub const WORKER_IDLE: Duration = Duration::from_millis(500);
/// Profiles built at a time (each may take tens of MiB while it is built).
pub const MAX_BUILDS: usize = 2;
/// Built responses held at a time, each until its last chunk is handed to the connection.
pub const MAX_RESPONSES: usize = 16;
/// Delta profiles waiting out their `seconds` at a time (each holds its first snapshot).
pub const MAX_DELTAS: usize = 4;
/// The largest request head (request line and headers), in bytes.
pub const MAX_HEAD_BYTES: usize = 16 << 10;
/// The largest request body (`POST /debug/pprof/symbol`), in bytes: about 3,500 addresses.
pub const MAX_BODY_BYTES: usize = 64 << 10;
/// Time allowed to send a request head, and to wait for the next one on a kept-alive
/// connection; also to send a request body.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection whose client reads nothing of a response for this long is closed.
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections open at a time by default, unless the open-file limit asks for fewer
/// ([`HttpOptions::max_connections`]).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// The fewest connections the default allows, however low the open-file limit.
pub const MIN_DEFAULT_CONNECTIONS: usize = 16;
/// The longest `seconds` accepted by default ([`HttpOptions::max_seconds`]).
pub const DEFAULT_MAX_SECONDS: u64 = 300;

/// How the server runs; see each field for its default.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpOptions {
    /// Allow addresses other than loopback (`http_public=true`). Default false: [`serve_with`]
    /// refuses them with [`Error::HttpNotLoopback`].
    pub public: bool,
    /// Sampling frequency of CPU profiles (`/debug/pprof/profile`). Default
    /// [`crate::DEFAULT_CPU_HZ`]; a [`crate::Profiler`] passes its `cpu_hz`.
    pub cpu_hz: u32,
    /// The longest `seconds` accepted (Go's server `WriteTimeout` check). Default
    /// [`DEFAULT_MAX_SECONDS`].
    pub max_seconds: u64,
    /// Connections open at a time. Default [`DEFAULT_MAX_CONNECTIONS`], or a quarter of the
    /// process's open-file limit when that is lower (at least [`MIN_DEFAULT_CONNECTIONS`]), so
    /// that a flood leaves the host file descriptors.
    pub max_connections: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            public: false,
            cpu_hz: crate::DEFAULT_CPU_HZ,
            max_seconds: DEFAULT_MAX_SECONDS,
            max_connections: default_max_connections(),
        }
    }
}

/// A running `/debug/pprof` server. Dropping it (or [`HttpServer::stop`]) closes the listener
/// and every connection and joins the server thread; a CPU profile or build in progress is
/// abandoned (it finishes on its worker thread, unanswered).
#[derive(Debug)]
#[must_use = "dropping the server stops it at once"]
pub struct HttpServer {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// The listening socket's descriptor, closed in a forked child ([`close_listeners_in_child`]).
    listener_fd: i32,
    /// The process that started the server.
    pid: u32,
}

impl HttpServer {
    /// The address it listens on (with the port chosen when asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server and waits for its thread.
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        // Before the listener is closed, so that a child forked meanwhile never closes a
        // descriptor number the host has reused.
        forget_listener(self.listener_fd);
        if self.pid != std::process::id() {
            // In a forked child the server's thread does not exist: joining it would wait
            // forever (see `crate::fork`).
            std::mem::forget(self.thread.take());
            return;
        }
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Serves `/debug/pprof` on `addr` (e.g. `"127.0.0.1:6060"`, port 0 for any) with the default
/// [`HttpOptions`]: loopback addresses only.
pub fn serve(addr: impl ToSocketAddrs) -> Result<HttpServer, Error> {
    serve_with(addr, &HttpOptions::default())
}

/// Serves `/debug/pprof` on `addr` with `options`. Binds before returning, so a port in use or
/// a refused address is an error here; then answers on a thread of its own until the returned
/// [`HttpServer`] is dropped.
pub fn serve_with(addr: impl ToSocketAddrs, options: &HttpOptions) -> Result<HttpServer, Error> {
    let http_error = |addr: String| move |source| Error::Http { addr, source };
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(http_error("the address given".into()))?
        .collect();
    let Some(&first) = addrs.first() else {
        return Err(Error::Http {
            addr: "the address given".into(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "it resolves to no address"),
        });
    };
    if !options.public {
        if let Some(&addr) = addrs.iter().find(|a| !is_loopback(a.ip())) {
            return Err(Error::HttpNotLoopback { addr });
        }
    }
    let listener =
        std::net::TcpListener::bind(&addrs[..]).map_err(http_error(first.to_string()))?;
    let local = listener
        .local_addr()
        .and_then(|a| listener.set_nonblocking(true).map(|()| a))
        .map_err(http_error(first.to_string()))?;
    let listener_fd = listener.as_raw_fd();
    let runtime = crate::memory::profiler_work(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .max_blocking_threads(WORKER_THREADS)
            .thread_keep_alive(WORKER_IDLE)
            .thread_name("mapprof-http-worker")
            .build()
    })
    .map_err(http_error(local.to_string()))?;
    let state = Arc::new(state::State::new(options));
    let max_connections = options.max_connections.max(1);
    let (shutdown, stopped) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("mapprof-http".into())
        .spawn(move || {
            crate::memory::profiler_thread(|| {
                runtime.block_on(accept_loop(listener, state, max_connections, stopped));
                // Workers still building are left to finish on their own.
                runtime.shutdown_timeout(Duration::from_millis(100));
            })
        })
        .map_err(http_error(local.to_string()))?;
    remember_listener(listener_fd);
    Ok(HttpServer {
        addr: local,
        shutdown: Some(shutdown),
        thread: Some(thread),
        listener_fd,
        pid: std::process::id(),
    })
}

/// The listening sockets of the servers running, -1 for a free slot: a child forked without
/// exec inherits them, and would keep the port bound after the parent is gone without ever
/// answering on it. A server past the slots is not closed in children.
static LISTENERS: [AtomicI32; 8] = [const { AtomicI32::new(-1) }; 8];

fn remember_listener(fd: i32) {
    let _ = LISTENERS
        .iter()
        .find(|slot| slot.compare_exchange(-1, fd, AcqRel, Relaxed).is_ok());
}

fn forget_listener(fd: i32) {
    let _ = LISTENERS
        .iter()
        .find(|slot| slot.compare_exchange(fd, -1, AcqRel, Relaxed).is_ok());
}

/// In a child just forked (see `crate::fork`): closes the inherited listening sockets.
/// Atomics and `close` only.
pub(crate) fn close_listeners_in_child() {
    for slot in &LISTENERS {
        let fd = slot.swap(-1, AcqRel);
        if fd >= 0 {
            // SAFETY: `fd` is a listening socket this process inherited and owns no other
            // way: the server that opened it has no thread here to use it.
            unsafe { libc::close(fd) };
        }
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

fn default_max_connections() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own and reads nothing else.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    let quarter = if ok && limit.rlim_cur != libc::RLIM_INFINITY {
        usize::try_from(limit.rlim_cur / 4).unwrap_or(usize::MAX)
    } else {
        usize::MAX
    };
    DEFAULT_MAX_CONNECTIONS
        .min(quarter)
        .max(MIN_DEFAULT_CONNECTIONS)
}

/// What a connection beyond the limit is told before it is closed.
const TOO_MANY_CONNECTIONS: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
Content-Type: text/plain; charset=utf-8\r\nX-Go-Pprof: 1\r\nX-Content-Type-Options: nosniff\r\n\
Connection: close\r\nContent-Length: 32\r\n\r\ntoo many connections, try again\n";

async fn accept_loop(
    listener: std::net::TcpListener,
    state: Arc<state::State>,
    max_connections: usize,
    mut stopped: oneshot::Receiver<()>,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("mapprof: the HTTP server cannot listen: {e}");
            return;
        }
    };
    let connections = Arc::new(Semaphore::new(max_connections));
    loop {
        let accepted = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => match connections.clone().try_acquire_owned() {
                Ok(permit) => {
                    tokio::spawn(serve_connection(stream, state.clone(), permit));
                }
                Err(_) => {
                    // Best effort, without waiting: the point is to shed load.
                    let _ = stream.try_write(TOO_MANY_CONNECTIONS);
                }
            },
            // Out of file descriptors, or a connection reset before it was accepted: wait a
            // little rather than spin on the error.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    state: Arc<state::State>,
    _permit: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(StallTimeout::new(stream, WRITE_STALL_TIMEOUT));
    let service = service_fn(move |request| routes::handle(request, state.clone()));
    let _ = http1::Builder::new()
        // A client that shuts its write side after the request (`nc -N`, `curl` never, some
        // scripts always) still gets its answer, as from Go's net/http: without this, hyper
        // takes the read side's EOF for a client gone and drops the response in flight.
        // A client that is really gone fails the write, or stalls it (WRITE_STALL_TIMEOUT).
        .half_close(true)
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES)
        .serve_connection(io, service)
        .await;
}

/// A connection that fails a write the client has not made room for within `limit`.
struct StallTimeout {
    stream: TcpStream,
    limit: Duration,
    /// Armed when a write first found no room.
    stall: Pin<Box<Sleep>>,
    armed: bool,
}

impl StallTimeout {
    fn new(stream: TcpStream, limit: Duration) -> Self {
        StallTimeout {
            stream,
            limit,
            stall: Box::pin(tokio::time::sleep(limit)),
            armed: false,
        }
    }

    /// Passes a ready result through (disarming the timer); on `Pending`, arms the timer and
    /// fails once it fires.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if result.is_ready() {
            self.armed = false;
            return result;
        }
        if !self.armed {
            self.armed = true;
            let deadline = Instant::now() + self.limit;
            self.stall.as_mut().reset(deadline);
        }
        match self.stall.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading the response",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for StallTimeout {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for StallTimeout {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.watch(cx, result)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.watch(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.stream).poll_flush(cx);
        self.watch(cx, result)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.stream).poll_shutdown(cx);
        self.watch(cx, result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses_count_as_loopback() {
        for (ip, loopback) in [
            ("127.0.0.1", true),
            ("127.1.2.3", true),
            ("::1", true),
            ("::ffff:127.0.0.1", true),
            ("0.0.0.0", false),
            ("::", false),
            ("10.0.0.1", false),
            ("::ffff:10.0.0.1", false),
        ] {
            assert_eq!(is_loopback(ip.parse().unwrap()), loopback, "{ip}");
        }
    }

    #[test]
    fn the_connection_limit_leaves_the_host_file_descriptors() {
        let n = default_max_connections();
        assert!(
            (MIN_DEFAULT_CONNECTIONS..=DEFAULT_MAX_CONNECTIONS).contains(&n),
            "{n}"
        );
    }

    #[test]
    fn the_503_says_its_own_length() {
        let text = std::str::from_utf8(TOO_MANY_CONNECTIONS).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{head}"
        );
    }
}
