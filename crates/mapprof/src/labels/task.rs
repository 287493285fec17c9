//! Labels on a task: [`WithLabels`] makes a future's labels current on whichever thread polls
//! it, for the duration of each poll, so that they follow the task across `.await`.

use mapprof_rt::labels as rt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Labels owned by a task or carried to another thread: cheap to clone, `Send` and `Sync`.
///
/// Spawned work does not inherit labels by accident (a task or thread starts with none); carry
/// them on purpose:
///
/// ```
/// use mapprof::{Labels, WithLabels};
///
/// # async fn work() {}
/// # async fn handler() {
/// // A task spawned by a labelled one, with the labels it has now:
/// tokio::spawn(work().with_current_labels());
/// // A blocking section or a thread:
/// let labels = Labels::current();
/// tokio::task::spawn_blocking(move || labels.scope(|| vec![0u8; 1 << 20]));
/// let labels = Labels::current();
/// std::thread::spawn(move || labels.scope(|| vec![0u8; 1 << 20]));
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Labels(Arc<rt::Prepared>);

impl Labels {
    /// `pairs`, for a task or a thread to carry. Allocates once; entering them does not.
    pub fn new(pairs: &[(&str, &str)]) -> Labels {
        Labels(Arc::new(rt::Prepared::new(pairs)))
    }

    /// The calling thread's labels now, merged (inside a labelled future's poll: the task's).
    /// Allocates.
    pub fn current() -> Labels {
        Labels(Arc::new(rt::Prepared::new(&rt::current_pairs())))
    }

    /// The pairs, in the order given (before merging: a key given twice is listed twice).
    pub fn pairs(&self) -> Vec<(String, String)> {
        self.0
            .pairs()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// The laid-out set, for the span layer.
    #[cfg(feature = "tracing")]
    pub(super) fn prepared(&self) -> &rt::Prepared {
        &self.0
    }

    /// Runs `f` with these labels added to the thread's, as [`crate::labels`] does, and
    /// restores them afterwards (also when `f` panics).
    pub fn scope<R>(&self, f: impl FnOnce() -> R) -> R {
        let _entered = Entered::new(&self.0);
        f()
    }
}

/// The labels of one poll or scope, restored when dropped (also by a panic).
struct Entered<'a> {
    saved: rt::Saved,
    labels: &'a rt::Prepared,
}

impl<'a> Entered<'a> {
    fn new(labels: &'a rt::Prepared) -> Entered<'a> {
        Entered {
            saved: rt::enter_prepared(labels),
            labels,
        }
    }
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        rt::leave_prepared(self.saved, self.labels);
    }
}

/// Labels for futures, in the style of `tracing::Instrument`: every heap, resize, lock and
/// CPU sample taken while the future is polled carries them, whichever thread polls it.
///
/// ```
/// use mapprof::WithLabels;
///
/// # async fn handle(_: &str) {}
/// # async fn serve(trace_id: &str) {
/// handle("/item/1")
///     .with_labels(&[("trace_id", trace_id), ("route", "/item GET")])
///     .await;
/// # }
/// ```
///
/// Each poll adds the labels to the polling thread's and restores the thread's own after: a
/// copy of their bytes and a few thread-local stores, no lock, no allocation (the first sample
/// looks the set up; later polls reuse its id). Nesting composes as [`crate::set_labels`]
/// does: an inner future's keys win. A [`crate::LabelGuard`] must not be held across an
/// `.await` inside such a future; use a nested `with_labels` instead.
pub trait WithLabels: Future + Sized {
    /// This future with `pairs` as its labels. Allocates once, here.
    fn with_labels(self, pairs: &[(&str, &str)]) -> Labelled<Self> {
        self.labelled(Labels::new(pairs))
    }

    /// This future with the calling thread's labels now: how a spawned task inherits its
    /// spawner's (`tokio::spawn(fut.with_current_labels())`). Allocates once, here.
    fn with_current_labels(self) -> Labelled<Self> {
        self.labelled(Labels::current())
    }

    /// This future with `labels` (shared with others that carry them).
    fn labelled(self, labels: Labels) -> Labelled<Self> {
        Labelled {
            inner: self,
            labels,
        }
    }
}

impl<F: Future> WithLabels for F {}

pin_project_lite::pin_project! {
    /// A future whose polls carry its labels. Made by [`WithLabels`].
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct Labelled<F> {
        #[pin]
        inner: F,
        labels: Labels,
    }
}

impl<F> Labelled<F> {
    /// The labels its polls carry.
    pub fn labels(&self) -> &Labels {
        &self.labels
    }
}

impl<F: Future> Future for Labelled<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _entered = Entered::new(&this.labels.0);
        this.inner.poll(cx)
    }
}
