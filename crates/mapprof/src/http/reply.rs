//! How an answer is written: the headers every reply has, errors as `net/http/pprof` writes
//! them, and the body handed to the connection a chunk at a time.

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use std::convert::Infallible;
use std::fmt::Display;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::OwnedSemaphorePermit;

/// An answer.
pub(super) type Reply = Response<Payload>;

/// An error answer to be: status and text, written as Go's `serveError` does ([`error`]).
pub(super) struct Problem {
    pub(super) status: StatusCode,
    pub(super) text: String,
}

pub(super) fn fail(status: StatusCode, text: impl Display) -> Problem {
    Problem {
        status,
        text: text.to_string(),
    }
}

pub(super) fn bad_request(text: impl Display) -> Problem {
    fail(StatusCode::BAD_REQUEST, text)
}

/// A reply with the headers every answer has.
pub(super) fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
    slot: Option<OwnedSemaphorePermit>,
) -> Reply {
    let big = body.len() > CHUNK;
    let mut reply = Response::new(Payload {
        rest: body,
        slot,
        big,
    });
    *reply.status_mut() = status;
    let headers = reply.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    reply
}

/// An error as Go's `serveError` writes it: the text and a newline, `X-Go-Pprof: 1`.
pub(super) fn error(status: StatusCode, text: impl Display) -> Reply {
    let mut reply = respond(
        status,
        "text/plain; charset=utf-8",
        format!("{text}\n").into(),
        None,
    );
    reply
        .headers_mut()
        .insert("x-go-pprof", HeaderValue::from_static("1"));
    reply
}

/// A response body handed over in [`CHUNK`]-byte copies, holding its response slot until the
/// last one is taken: the connection never holds more than a chunk of it, however slowly the
/// client reads, and the whole body is freed with the slot. When a large one is done with, the
/// memory it and its connection's work freed goes back to the system
/// ([`crate::memory::release`]).
pub(super) struct Payload {
    rest: Bytes,
    slot: Option<OwnedSemaphorePermit>,
    /// Larger than a chunk (a profile or a graph): worth a release when dropped; small answers
    /// (errors, the index) are not, with `malloc_trim` walking all of glibc's heap.
    big: bool,
}

/// Bytes of a body handed to the connection at a time.
const CHUNK: usize = 16 << 10;

impl Drop for Payload {
    fn drop(&mut self) {
        self.rest = Bytes::new();
        if self.big {
            crate::memory::release();
        }
    }
}

impl Body for Payload {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.rest.is_empty() {
            self.slot = None;
            return Poll::Ready(None);
        }
        let n = self.rest.len().min(CHUNK);
        let chunk = Bytes::copy_from_slice(&self.rest[..n]);
        self.rest = self.rest.slice(n..);
        if self.rest.is_empty() {
            // Free the body and the slot now: the connection has all it needs.
            self.rest = Bytes::new();
            self.slot = None;
        }
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.rest.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::sync::Semaphore;

    #[test]
    fn a_payload_hands_over_copies_and_frees_its_slot_with_the_last() {
        let semaphore = Arc::new(Semaphore::new(1));
        let slot = semaphore.clone().try_acquire_owned().unwrap();
        let body: Vec<u8> = (0..CHUNK * 2 + 10).map(|i| i as u8).collect();
        let mut payload = Payload {
            rest: Bytes::from(body.clone()),
            slot: Some(slot),
            big: true,
        };
        assert_eq!(payload.size_hint().exact(), Some(body.len() as u64));
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut received = Vec::new();
        while let Poll::Ready(Some(Ok(frame))) = Pin::new(&mut payload).poll_frame(&mut cx) {
            let data = frame.into_data().unwrap();
            assert!(data.len() <= CHUNK);
            received.extend_from_slice(&data);
            if received.len() < body.len() {
                assert_eq!(semaphore.available_permits(), 0);
            }
        }
        assert_eq!(received, body);
        assert_eq!(semaphore.available_permits(), 1);
        assert!(payload.is_end_stream());
    }
}
