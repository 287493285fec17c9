//! The profiles of Go's `net/http/pprof` that mapprof does not serve (`goroutine` it does: a
//! thread dump, `crate::threads`), and why: their paths
//! answer 404 saying so (Go's `Unknown profile` first, for tools that read it), and the index
//! lists them.

/// `(name, why it is not served and what to use instead)`.
pub(super) const ABSENT: [(&str, &str); 2] = [
    (
        "threadcreate",
        "Go records where its runtime starts OS threads; a Rust program starts its own \
         (std::thread::spawn, a runtime's pool), and mapprof does not sample thread creation",
    ),
    (
        "trace",
        "Go's execution tracer records its scheduler's events, which a Rust program has no \
         counterpart of; profile?seconds=N samples where threads run",
    ),
];

/// The reason `name` is not served, if it is one of Go's profiles that mapprof lacks.
pub(super) fn reason(name: &str) -> Option<&'static str> {
    ABSENT.iter().find(|(n, _)| *n == name).map(|(_, why)| *why)
}
