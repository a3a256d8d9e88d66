//! Tasks: spawning, the task wrapper, [`JoinHandle`] and [`JoinError`].
//!
//! Task cells, reference counts and wakers come from `async-task`. Around
//! the user's future sits a [`TaskFuture`] that
//! * registers the task's waker in the context's task registry the first
//!   time the task returns `Pending` (so the context *owns* every live task:
//!   shutdown wakes each one so it is dropped, even one pending with no
//!   waker anywhere else; a task that finishes in its first poll — the
//!   common short task — never touches the registry),
//! * turns a panic into [`JoinError::is_panic`] instead of unwinding into the
//!   scheduler,
//! * honours [`JoinHandle::abort`],
//! * releases the task's unit of outstanding work when dropped (on
//!   completion or cancellation).
//!
//! Invariant: a live task is always either queued (never polled yet, or
//! woken), being polled, or in the registry, so shutdown can reach all of
//! them.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use async_task::{Builder, FallibleTask};

use crate::runtime::scheduler::{Runnable, Shared};

const UNREGISTERED: usize = usize::MAX;

/// Per-task state kept in the `async-task` header.
pub(crate) struct TaskMeta {
    shared: Arc<Shared>,
    aborted: AtomicBool,
    /// Key in the context's task registry, or `UNREGISTERED`.
    key: AtomicUsize,
}

fn schedule(r: Runnable) {
    let shared = &r.metadata().shared;
    if crate::runtime::frame::is_running(shared) {
        let p: *const Shared = Arc::as_ptr(shared);
        // SAFETY: this thread runs the context, so its run frame holds a
        // strong reference that outlives this call even if `r` (and with it
        // the metadata's Arc) is consumed by another thread meanwhile.
        unsafe { &*p }.schedule_here(r);
    } else {
        let shared = shared.clone();
        shared.schedule(r);
    }
}

/// Spawns `fut` on `shared`. A closing context refuses: the future is
/// dropped at once and the handle reports cancellation.
pub(crate) fn spawn<F>(shared: Arc<Shared>, fut: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let refused = shared.is_closing();
    if !refused {
        shared.work_started();
        crate::runtime::metrics::Counters::bump(&shared.metrics.tasks_spawned, 1);
    }
    let meta = TaskMeta {
        shared,
        aborted: AtomicBool::new(false),
        key: AtomicUsize::new(UNREGISTERED),
    };
    let (runnable, task) = Builder::new().metadata(meta).spawn(
        move |meta: &TaskMeta| TaskFuture {
            inner: Some(fut),
            meta: MetaRef(meta as *const TaskMeta),
            counted: !refused,
        },
        schedule,
    );
    if refused {
        drop(runnable);
    } else {
        runnable.schedule();
    }
    let meta = MetaRef(task.metadata() as *const TaskMeta);
    JoinHandle {
        task: Some(task.fallible()),
        meta,
    }
}

/// A pointer to the task's own metadata.
struct MetaRef(*const TaskMeta);

// SAFETY: the metadata lives in the task allocation, which `async-task`
// frees only after the future and every `Task` handle (the two holders of a
// `MetaRef`) are gone; `TaskMeta` is `Sync`, so sharing it is fine.
unsafe impl Send for MetaRef {}
// SAFETY: as above; `&MetaRef` only hands out `&TaskMeta`.
unsafe impl Sync for MetaRef {}

impl MetaRef {
    fn get(&self) -> &TaskMeta {
        // SAFETY: see the `Send` impl: the pointee outlives its holders.
        unsafe { &*self.0 }
    }
}

/// The user's future plus the bookkeeping described in the module docs.
struct TaskFuture<F> {
    inner: Option<F>,
    meta: MetaRef,
    counted: bool,
}

impl<F: Future> Future for TaskFuture<F> {
    type Output = Result<F::Output, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `inner` is structurally pinned: it is only dropped in place
        // (set to None), never moved; the other fields are not pinned.
        let this = unsafe { self.get_unchecked_mut() };
        let meta = this.meta.get();
        if meta.aborted.load(Ordering::SeqCst) {
            this.inner = None;
            return Poll::Ready(Err(JoinError::cancelled()));
        }
        let Some(fut) = this.inner.as_mut() else {
            return Poll::Ready(Err(JoinError::cancelled()));
        };
        // SAFETY: see above; `fut` never moves while pinned.
        let fut = unsafe { Pin::new_unchecked(fut) };
        match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => {
                if meta.key.load(Ordering::Relaxed) == UNREGISTERED {
                    if let Some(mut tasks) = meta.shared.lock(&meta.shared.tasks) {
                        let key = tasks.insert(cx.waker().clone());
                        meta.key.store(key, Ordering::SeqCst);
                    }
                    // An `abort` during this first poll found no key to
                    // wake through; it stored the flag before looking, and
                    // we stored the key before this look (both SeqCst), so
                    // at least one of the two sees the other.
                    if meta.aborted.load(Ordering::SeqCst) {
                        cx.waker().wake_by_ref();
                    }
                }
                Poll::Pending
            }
            Err(payload) => {
                // Drop the future now (its destructor may cancel I/O).
                this.inner = None;
                Poll::Ready(Err(JoinError::panic(payload)))
            }
        }
    }
}

impl<F> Drop for TaskFuture<F> {
    fn drop(&mut self) {
        // The user's future goes first: it may still need the context.
        self.inner = None;
        let meta = self.meta.get();
        let key = meta.key.swap(UNREGISTERED, Ordering::SeqCst);
        if key != UNREGISTERED {
            match meta.shared.lock(&meta.shared.tasks) {
                Some(mut tasks) => {
                    tasks.try_remove(key);
                }
                None => {
                    meta.shared.remote(Box::new(move |s: &Shared| {
                        if let Some(mut tasks) = s.lock(&s.tasks) {
                            tasks.try_remove(key);
                        }
                    }));
                }
            }
        }
        if self.counted {
            meta.shared.work_finished();
        }
    }
}

/// An owned permission to await a spawned task's output.
///
/// `JoinHandle<T>` is a future of `Result<T, JoinError>`: `Ok` with the
/// task's output, `Err` if the task panicked or was cancelled (aborted, or
/// dropped by the context's shutdown). Dropping the handle *detaches* the
/// task: it keeps running.
pub struct JoinHandle<T> {
    task: Option<FallibleTask<Result<T, JoinError>, TaskMeta>>,
    /// The task's metadata; valid while `task` is `Some` (the handle holds
    /// a reference to the task allocation).
    meta: MetaRef,
}

impl<T> JoinHandle<T> {
    /// Cancels the task: its future is dropped the next time the context
    /// gets to it (at once if it is idle), cancelling any I/O it had in
    /// flight, and awaiting this handle yields a cancelled [`JoinError`].
    /// Does nothing if the task already finished.
    pub fn abort(&self) {
        let Some(task) = &self.task else { return };
        if task.is_finished() {
            return;
        }
        let meta = self.meta.get();
        meta.aborted.store(true, Ordering::SeqCst);
        let key = meta.key.load(Ordering::SeqCst);
        if key == UNREGISTERED {
            // Never returned `Pending` yet: it is queued, or in its first
            // poll, which checks the flag after registering (see `poll`).
            return;
        }
        let wake = move |s: &Shared| {
            let waker = s.lock(&s.tasks).and_then(|t| t.get(key).cloned());
            if let Some(w) = waker {
                w.wake();
            }
        };
        let shared = &meta.shared;
        if shared.lock(&shared.tasks).is_some() {
            wake(shared);
        } else {
            shared.remote(Box::new(wake));
        }
    }

    /// Whether the task has finished (completed, panicked or cancelled).
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.is_finished())
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(task) = self.task.as_mut() else {
            panic!("ringio: JoinHandle polled after it completed");
        };
        match Pin::new(task).poll(cx) {
            Poll::Ready(out) => {
                self.task = None;
                Poll::Ready(out.unwrap_or_else(|| Err(JoinError::cancelled())))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.detach();
        }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Why a task produced no output.
pub struct JoinError {
    repr: Repr,
}

enum Repr {
    Cancelled,
    // Mutex only to make JoinError Sync (the payload is Send, not Sync).
    Panic(Mutex<Box<dyn Any + Send + 'static>>),
}

impl JoinError {
    fn cancelled() -> Self {
        JoinError {
            repr: Repr::Cancelled,
        }
    }

    fn panic(payload: Box<dyn Any + Send + 'static>) -> Self {
        JoinError {
            repr: Repr::Panic(Mutex::new(payload)),
        }
    }

    /// The task was aborted or dropped by shutdown.
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, Repr::Cancelled)
    }

    /// The task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, Repr::Panic(_))
    }

    /// The panic payload, to resume the panic with
    /// `std::panic::resume_unwind`.
    ///
    /// # Panics
    ///
    /// If the error is not a panic.
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        self.try_into_panic()
            .expect("ringio: JoinError::into_panic on a cancellation")
    }

    /// The panic payload, or the error itself if it is not a panic.
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, JoinError> {
        match self.repr {
            Repr::Panic(p) => Ok(p.into_inner().unwrap_or_else(|e| e.into_inner())),
            Repr::Cancelled => Err(self),
        }
    }

    fn panic_message(&self) -> Option<String> {
        let Repr::Panic(p) = &self.repr else {
            return None;
        };
        let p = p.lock().unwrap_or_else(|e| e.into_inner());
        Some(
            p.downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "Box<dyn Any>".to_string()),
        )
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.panic_message() {
            None => f.write_str("task was cancelled"),
            Some(msg) => write!(f, "task panicked: {msg}"),
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.panic_message() {
            None => f.write_str("JoinError::Cancelled"),
            Some(msg) => write!(f, "JoinError::Panic({msg:?})"),
        }
    }
}

impl std::error::Error for JoinError {}

impl From<JoinError> for std::io::Error {
    fn from(e: JoinError) -> std::io::Error {
        std::io::Error::other(e)
    }
}
