//! What the handlers share: settings and the bounds on work in progress.

use super::reply::{fail, Problem};
use super::{HttpOptions, MAX_BUILDS, MAX_DELTAS, MAX_RESPONSES};
use hyper::StatusCode;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What the handlers share: settings and the bounds on work in progress.
pub(super) struct State {
    pub(super) cpu_hz: u32,
    pub(super) max_seconds: u64,
    /// Jobs on the blocking pool, queued or running.
    builds: Arc<Semaphore>,
    /// Built responses not yet handed to their connection.
    responses: Arc<Semaphore>,
    /// Delta profiles between their two snapshots.
    pub(super) deltas: Arc<Semaphore>,
}

impl State {
    pub(super) fn new(options: &HttpOptions) -> State {
        State {
            cpu_hz: options.cpu_hz,
            max_seconds: options.max_seconds,
            builds: Arc::new(Semaphore::new(MAX_BUILDS)),
            responses: Arc::new(Semaphore::new(MAX_RESPONSES)),
            deltas: Arc::new(Semaphore::new(MAX_DELTAS)),
        }
    }

    /// Runs `job` on the blocking pool as the profiler's own work (unprofiled, its memory given
    /// back when it ends), once one of [`MAX_BUILDS`] slots is free; the slot is held until the
    /// job ends, even if the client has gone.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Problem> {
        let slot = self.builds.clone().acquire_owned().await.map_err(closing)?;
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            crate::memory::profiler_work(job)
        })
        .await
        .map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, format!("failed: {e}")))
    }

    /// One of [`MAX_RESPONSES`] slots, held by the response body until it is handed over.
    pub(super) async fn responseslot(&self) -> Result<OwnedSemaphorePermit, Problem> {
        self.responses
            .clone()
            .acquire_owned()
            .await
            .map_err(closing)
    }
}

fn closing(_: tokio::sync::AcquireError) -> Problem {
    fail(
        StatusCode::SERVICE_UNAVAILABLE,
        "the server is shutting down",
    )
}
