//! The bounded queue between the collector and the sender: requests and bytes capped, the
//! oldest dropped (and counted) to make room, so that an engine that is down costs the host
//! at most the queue.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use super::{DROPPED, MAX_QUEUED_BYTES, MAX_QUEUED_REQUESTS, QUEUED};

/// One request body, ready to send.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) body: Vec<u8>,
}

impl Request {
    pub(crate) fn new(body: Vec<u8>) -> Arc<Request> {
        Arc::new(Request { body })
    }
}

#[derive(Debug, Default)]
struct State {
    requests: VecDeque<Arc<Request>>,
    bytes: usize,
    /// No more requests will come (the profiler stops).
    closed: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Queue {
    state: Mutex<State>,
    ready: Condvar,
}

impl Queue {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `request`, dropping the oldest while over the bounds (a request larger than
    /// the byte bound alone is still kept: it is the newest).
    pub(crate) fn push(&self, request: Arc<Request>) {
        let mut state = self.state();
        state.bytes += request.body.len();
        state.requests.push_back(request);
        while state.requests.len() > MAX_QUEUED_REQUESTS
            || (state.bytes > MAX_QUEUED_BYTES && state.requests.len() > 1)
        {
            let oldest = state.requests.pop_front().expect("more than one request");
            state.bytes -= oldest.body.len();
            DROPPED.fetch_add(1, Relaxed);
        }
        QUEUED.store(state.requests.len() as u64, Relaxed);
        self.ready.notify_all();
    }

    /// No more requests will be pushed.
    pub(crate) fn close(&self) {
        self.state().closed = true;
        self.ready.notify_all();
    }

    /// The oldest request, kept queued until [`Self::remove`]; waits for one. `None` once the
    /// queue is closed and empty.
    pub(crate) fn oldest(&self) -> Option<Arc<Request>> {
        let mut state = self.state();
        loop {
            if let Some(request) = state.requests.front() {
                return Some(request.clone());
            }
            if state.closed {
                return None;
            }
            state = self
                .ready
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Removes `request` if it is still queued (it may have been dropped to make room).
    pub(crate) fn remove(&self, request: &Arc<Request>) {
        let mut state = self.state();
        if let Some(i) = state.requests.iter().position(|r| Arc::ptr_eq(r, request)) {
            state.requests.remove(i);
            state.bytes -= request.body.len();
        }
        QUEUED.store(state.requests.len() as u64, Relaxed);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state().closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_requests_are_dropped_beyond_the_bounds() {
        let queue = Queue::default();
        let dropped = DROPPED.load(Relaxed);
        let requests: Vec<_> = (0..MAX_QUEUED_REQUESTS + 3)
            .map(|i| Request::new(vec![i as u8; 10]))
            .collect();
        for r in &requests {
            queue.push(r.clone());
        }
        assert!(DROPPED.load(Relaxed) - dropped >= 3);
        // The oldest left is the fourth pushed.
        assert!(Arc::ptr_eq(&queue.oldest().unwrap(), &requests[3]));
        queue.remove(&requests[3]);
        assert!(Arc::ptr_eq(&queue.oldest().unwrap(), &requests[4]));
        // Bytes: a big request pushes out everything older.
        queue.push(Request::new(vec![0; MAX_QUEUED_BYTES]));
        assert_eq!(queue.state().requests.len(), 1);
        queue.close();
        let last = queue.oldest().unwrap();
        queue.remove(&last);
        assert!(queue.oldest().is_none());
    }
}
