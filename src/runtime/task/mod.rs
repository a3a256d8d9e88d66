//! Tasks: spawning, the task wrapper, [`JoinHandle`] and [`JoinError`].
//!
//! Task cells, reference counts and wakers are ringio's own ([`raw`], with
//! the state word in [`state`]). Around the user's future sits a
//! [`TaskFuture`] that
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

mod join_error;
mod queue;
mod raw;
mod recycle;
mod state;

use std::fmt;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

pub use join_error::JoinError;
pub(crate) use queue::TaskQueue;
pub(crate) use raw::Runnable;

use crate::runtime::frame::Frame;
use crate::runtime::scheduler::Shared;

const UNREGISTERED: usize = usize::MAX;

/// Per-task state kept in the task cell's header.
pub(crate) struct TaskMeta {
    /// The task's context; given back to this thread's run frame of it
    /// when the task is freed (see [`crate::runtime::frame`]).
    shared: ManuallyDrop<Arc<Shared>>,
    aborted: AtomicBool,
    /// Key in the context's task registry, or `UNREGISTERED`.
    key: AtomicUsize,
}

impl Drop for TaskMeta {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the field is taken once, here, and never used again.
        let shared = unsafe { ManuallyDrop::take(&mut self.shared) };
        crate::runtime::frame::give_back_arc(shared);
    }
}

/// Queues `r` on its context. `kept`: the caller holds another reference
/// to the task for the whole call (the waker of a wake by reference, the
/// join handle of a fresh spawn), which keeps the task cell, and with it
/// the metadata's `Arc<Shared>`, alive after `r` is handed over; otherwise
/// a reference to the task is taken for the call (cheaper than one to the
/// context, whose count every thread touches).
#[inline]
fn schedule(r: Runnable, kept: bool) {
    let shared: *const Shared = Arc::as_ptr(&r.metadata().shared);
    // SAFETY: `r` holds a task reference, so the metadata's Arc is alive now.
    let s = unsafe { &*shared };
    if crate::runtime::frame::is_running(s) {
        // This thread runs the context: its run frame holds a strong
        // reference that outlives this call, even if `r` is consumed (and
        // its task freed) by another thread meanwhile.
        s.schedule_here(r);
    } else if kept {
        // The caller's reference keeps the cell and its Arc alive.
        s.schedule(r);
    } else {
        let _alive = r.keep_alive();
        s.schedule(r);
    }
}

/// Spawns `fut` on `shared`. A closing context refuses: the future is
/// dropped at once and the handle reports cancellation.
#[inline]
pub(crate) fn spawn<F>(shared: &Arc<Shared>, fut: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    crate::runtime::frame::with_frame_of(shared, move |frame| match frame {
        Some(frame) => spawn_in(frame, fut),
        None => {
            let (runnable, join) = spawn_unscheduled(shared.clone(), fut, None, false);
            let handle = JoinHandle::new(join);
            if let Some(r) = runnable {
                shared.metrics.add_spawned_outside();
                // `handle` keeps the task alive.
                schedule(r, true);
            }
            handle
        }
    })
}

/// [`spawn`] for a task nobody will join (`IoContext::post`): the task has
/// no join handle, so the spawning thread never touches its state again
/// once it is queued (dropping a handle is an atomic read-modify-write on
/// the task, which a runner on another core may be running by then).
#[inline]
pub(crate) fn spawn_detached<F>(shared: &Arc<Shared>, fut: F)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    crate::runtime::frame::with_frame_of(shared, move |frame| match frame {
        Some(frame) => {
            if let (Some(r), _) = spawn_unscheduled(frame.shared_arc(), fut, Some(frame), true) {
                queue_spawned_in(frame, r);
            }
        }
        None => {
            if let (Some(r), _) = spawn_unscheduled(shared.clone(), fut, None, true) {
                shared.metrics.add_spawned_outside();
                // The caller's `shared` keeps the context alive for the
                // call; nothing touches the task after it is queued.
                shared.schedule(r);
            }
        }
    })
}

/// `spawn` on the context of the innermost run frame of this thread (the
/// `ringio::spawn` of a task or handler). `Err(fut)` outside any frame.
#[inline]
pub(crate) fn spawn_here<F>(fut: F) -> Result<JoinHandle<F::Output>, F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    crate::runtime::frame::with_innermost(move |frame| match frame {
        Some(frame) => Ok(spawn_in(frame, fut)),
        None => Err(fut),
    })
}

/// Spawns `fut` on the context of `frame`, a run frame of this thread: the
/// frame's credits pay for the task's context reference and work unit
/// (see [`crate::runtime::frame`]), it tallies the spawn, and the task is
/// queued locally.
#[inline]
fn spawn_in<F>(frame: &Frame, fut: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (runnable, join) = spawn_unscheduled(frame.shared_arc(), fut, Some(frame), false);
    let handle = JoinHandle::new(join);
    if let Some(r) = runnable {
        queue_spawned_in(frame, r);
    }
    handle
}

/// Tallies a task spawned in `frame` and queues it on the frame's context.
#[inline(always)]
fn queue_spawned_in(frame: &Frame, r: Runnable) {
    frame.spawned.set(frame.spawned.get() + 1);
    frame.shared().schedule_here(r);
}

/// Creates the task of `spawn` without queueing it: its `Runnable`, or
/// `None` if the context is closing (the future is then already dropped),
/// and its join reference unless `detached`. `frame`: this thread's run
/// frame of `shared`, if any, which pays for the task's unit of
/// outstanding work.
#[inline(always)]
fn spawn_unscheduled<F>(
    shared: Arc<Shared>,
    fut: F,
    frame: Option<&Frame>,
    detached: bool,
) -> (Option<Runnable>, Option<raw::JoinRef>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let refused = shared.is_closing();
    if !refused {
        match frame {
            Some(frame) => frame.take_work_unit(),
            None => shared.work_started(),
        }
    }
    let meta = TaskMeta {
        shared: ManuallyDrop::new(shared),
        aborted: AtomicBool::new(false),
        key: AtomicUsize::new(UNREGISTERED),
    };
    let make = |meta| TaskFuture {
        inner: Some(fut),
        meta: MetaRef(meta),
        counted: !refused,
    };
    let (runnable, join) = if detached {
        (raw::allocate_detached(meta, make), None)
    } else {
        let (runnable, join) = raw::allocate(meta, make);
        (runnable, Some(join))
    };
    if refused {
        // Cancels the task: a handle reports it.
        drop(runnable);
        return (None, join);
    }
    crate::trace::trace_event!(task = runnable.addr(), "spawn");
    (Some(runnable), join)
}

/// A pointer to the task's own metadata.
struct MetaRef(*const TaskMeta);

// SAFETY: the metadata lives in the task cell, which is freed only after
// its future (the holder of a `MetaRef`) is gone; `TaskMeta` is `Sync`, so
// sharing it is fine.
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

    #[inline]
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
    #[inline]
    fn drop(&mut self) {
        // The user's future goes first: it may still need the context. A
        // panic in its destructor must not skip the bookkeeping below.
        let inner = &mut self.inner;
        let _ = catch_unwind(AssertUnwindSafe(|| *inner = None));
        let meta = self.meta.get();
        // Registration happens only in this task's own polls, which are
        // over; the swap (an atomic RMW) is paid only by registered tasks.
        if meta.key.load(Ordering::Relaxed) != UNREGISTERED {
            unregister(meta);
        }
        if self.counted {
            meta.shared.work_finished();
        }
    }
}

/// Takes a finished task's waker out of the context's registry (out of
/// line: a task that finishes in its first poll, the common short task,
/// never registered, and its drop stays small).
#[cold]
#[inline(never)]
fn unregister(meta: &TaskMeta) {
    let key = meta.key.swap(UNREGISTERED, Ordering::SeqCst);
    if key == UNREGISTERED {
        return;
    }
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

/// An owned permission to await a spawned task's output.
///
/// `JoinHandle<T>` is a future of `Result<T, JoinError>`: `Ok` with the
/// task's output, `Err` if the task panicked or was cancelled (aborted, or
/// dropped by the context's shutdown). Dropping the handle *detaches* the
/// task: it keeps running.
pub struct JoinHandle<T> {
    /// `None` once the output was taken.
    join: Option<raw::JoinRef>,
    _output: std::marker::PhantomData<fn() -> T>,
}

impl<T> JoinHandle<T> {
    /// The handle of a task made with a join reference.
    fn new(join: Option<raw::JoinRef>) -> Self {
        debug_assert!(join.is_some(), "a joinable task has a join reference");
        JoinHandle {
            join,
            _output: std::marker::PhantomData,
        }
    }

    /// Cancels the task: its future is dropped the next time the context
    /// gets to it (at once if it is idle), cancelling any I/O it had in
    /// flight, and awaiting this handle yields a cancelled [`JoinError`].
    /// Does nothing if the task already finished.
    pub fn abort(&self) {
        let Some(join) = &self.join else { return };
        if join.is_complete() {
            return;
        }
        let meta = join.metadata();
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
        self.join.as_ref().is_none_or(raw::JoinRef::is_complete)
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(join) = self.join.as_ref() else {
            panic!("ringio: JoinHandle polled after it completed");
        };
        if !join.poll_complete(cx) {
            return Poll::Pending;
        }
        let join = self.join.take().expect("checked above");
        // SAFETY: complete (checked above), and the task was created by
        // `spawn` with a `TaskFuture` whose output is `Result<T, JoinError>`.
        let out = unsafe { join.take_output::<Result<T, JoinError>>() };
        Poll::Ready(out.unwrap_or_else(|| Err(JoinError::cancelled())))
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}
