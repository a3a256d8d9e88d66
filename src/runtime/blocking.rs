//! The blocking pool: threads of their own for work that would stall a
//! runner (`spawn_blocking`, `getaddrinfo`, file metadata).
//!
//! # Shape
//!
//! One [`BlockingPool`] per context, held by the context handle. It starts
//! no thread until the first job; threads are started on demand up to
//! `max_threads` and retire after `keep_alive` without work. Jobs beyond
//! `max_threads` wait in a FIFO queue until a thread is free.
//!
//! # How a job's result gets back
//!
//! A job is a boxed closure; its result travels through a [`oneshot`]
//! channel whose receiver is an ordinary future. `spawn_blocking` spawns an
//! ordinary *task* on the context that awaits that receiver, so the handle
//! it returns is the same [`JoinHandle`] as `spawn`'s, and everything a
//! task already does comes for free, with no new unsafe code: the task
//! counts as outstanding work until the result arrives (so `run` and
//! `block_on` do not return early), a panic in the closure is carried over
//! the channel and re-raised inside the task (so it surfaces as
//! [`JoinError::is_panic`](crate::JoinError::is_panic) with its payload),
//! `abort` and shutdown drop the waiting task. The price is one small task
//! allocation per job, negligible next to a thread hand-off. Building the
//! handle on a task cell of its own would have meant a second kind of task
//! with its own registry, abort and work-counting rules.
//!
//! A job whose receiver is gone before a thread picks it up (handle
//! aborted, future dropped, context shut down) is skipped. A job already
//! running cannot be interrupted: it runs to the end and its result is
//! dropped.
//!
//! # Worker protocol (every step under `Inner::state`)
//!
//! 1. `submit`: refused after shutdown. Push the job. If a thread is idle,
//!    move it from `idle` to `notified` (a token) and `notify_one`; else if
//!    fewer than `max_threads` threads live, start one (counted first);
//!    else leave the job queued: a busy thread takes it when it is done.
//! 2. A worker pops jobs and runs each *outside* the lock under
//!    `catch_unwind`, so a panic never kills the thread.
//! 3. Queue empty: on shutdown, leave. Otherwise `idle += 1` and wait on the
//!    condition variable until the keep-alive deadline. A `notified` token
//!    (whichever waiter takes it) means "go to 2"; shutdown means leave
//!    (`idle -= 1`); the deadline passing with no token means retire
//!    (`idle -= 1`). Anything else is a spurious wake-up: keep waiting.
//!    The submitter already took the woken thread out of `idle`, so `idle`
//!    is always the number of waiters no job is promised to.
//! 4. A leaving thread does `threads -= 1`.
//!
//! # Shutdown
//!
//! The context handle's drop calls [`BlockingPool::shutdown`] after the
//! scheduler's shutdown (which already dropped every task waiting for a
//! result): set `shutdown`, take the queued jobs, `notify_all`, and drop the
//! jobs after unlocking (their closures are user code). Threads are
//! detached, never joined: idle ones leave at once, busy ones when their
//! job returns, so dropping a context never waits for a job (which may
//! block forever) and never deadlocks when the last handle is dropped on a
//! pool thread. A thread owns only an `Arc<Inner>`, never the context.

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use crate::context::IoContext;
use crate::runtime::scheduler::Shared;
use crate::runtime::task::{self, JoinHandle};

/// Default for [`Config::max_threads`].
pub(crate) const DEFAULT_MAX_THREADS: usize = 64;
/// Default for [`Config::keep_alive`].
pub(crate) const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(10);
/// The name of every pool thread (as shown in `/proc/self/task/*/comm`).
pub(crate) const THREAD_NAME: &str = "ringio-blocking";

/// Pool settings, chosen on the context's `Builder`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Config {
    /// Most threads alive at once (at least 1).
    pub(crate) max_threads: usize,
    /// How long a thread waits for a job before it exits.
    pub(crate) keep_alive: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_threads: DEFAULT_MAX_THREADS,
            keep_alive: DEFAULT_KEEP_ALIVE,
        }
    }
}

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A context's blocking pool (see the module docs).
pub(crate) struct BlockingPool {
    cfg: Config,
    inner: OnceLock<Arc<Inner>>,
}

struct Inner {
    cfg: Config,
    state: Mutex<State>,
    cond: Condvar,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    /// Live threads (counted before they start, until they leave).
    threads: usize,
    /// Waiting threads no job is promised to.
    idle: usize,
    /// Wake-up tokens handed to waiting threads and not yet taken.
    notified: usize,
    shutdown: bool,
}

impl fmt::Debug for BlockingPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("BlockingPool");
        d.field("max_threads", &self.cfg.max_threads);
        if let Some(inner) = self.inner.get() {
            let s = inner.lock();
            d.field("threads", &s.threads)
                .field("queued", &s.queue.len());
        }
        d.finish()
    }
}

impl BlockingPool {
    /// A pool that starts no thread until its first job.
    pub(crate) fn new(cfg: Config) -> BlockingPool {
        BlockingPool {
            cfg,
            inner: OnceLock::new(),
        }
    }

    fn inner(&self) -> &Arc<Inner> {
        self.inner.get_or_init(|| {
            Arc::new(Inner {
                cfg: self.cfg,
                state: Mutex::new(State::default()),
                cond: Condvar::new(),
            })
        })
    }

    /// Queues `job` (protocol step 1). Gives the job back, with the reason,
    /// if the pool is shut down or no thread at all can be started.
    fn submit(&self, job: Job) -> Result<(), (Job, io::Error)> {
        let inner = self.inner();
        let mut s = inner.lock();
        if s.shutdown {
            return Err((job, shut_down()));
        }
        s.queue.push_back(job);
        if s.idle > 0 {
            s.idle -= 1;
            s.notified += 1;
            inner.cond.notify_one();
            return Ok(());
        }
        if s.threads >= inner.cfg.max_threads {
            return Ok(());
        }
        s.threads += 1;
        let worker = inner.clone();
        let started = thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || worker.work());
        match started {
            Ok(_detached) => Ok(()),
            Err(e) => {
                s.threads -= 1;
                if s.threads > 0 {
                    // A live thread will get to the job.
                    return Ok(());
                }
                let job = s.queue.pop_back().expect("the job pushed above");
                Err((
                    job,
                    io::Error::new(
                        e.kind(),
                        format!("ringio: cannot start a blocking-pool thread: {e}"),
                    ),
                ))
            }
        }
    }

    /// Shuts the pool down (see the module docs). Idempotent.
    pub(crate) fn shutdown(&self) {
        let Some(inner) = self.inner.get() else {
            return;
        };
        let jobs = {
            let mut s = inner.lock();
            s.shutdown = true;
            std::mem::take(&mut s.queue)
        };
        inner.cond.notify_all();
        drop(jobs);
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Jobs run outside the lock, so a poisoned lock can only come from
        // a panic in this file's own bookkeeping; the state stays coherent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A worker thread's life (protocol steps 2 to 4).
    fn work(&self) {
        let mut s = self.lock();
        'jobs: loop {
            while let Some(job) = s.queue.pop_front() {
                drop(s);
                // The closures built in this file catch their own panics;
                // this one guards the thread against any other job.
                let _ = catch_unwind(AssertUnwindSafe(job));
                s = self.lock();
            }
            if s.shutdown {
                break;
            }
            s.idle += 1;
            // None: a keep-alive too long to represent, i.e. forever.
            let deadline = Instant::now().checked_add(self.cfg.keep_alive);
            loop {
                s = match deadline {
                    Some(d) => {
                        let left = d.saturating_duration_since(Instant::now());
                        let r = self.cond.wait_timeout(s, left);
                        r.unwrap_or_else(|e| e.into_inner()).0
                    }
                    None => self.cond.wait(s).unwrap_or_else(|e| e.into_inner()),
                };
                if s.notified > 0 {
                    s.notified -= 1;
                    continue 'jobs;
                }
                if s.shutdown || deadline.is_some_and(|d| Instant::now() >= d) {
                    s.idle -= 1;
                    break 'jobs;
                }
            }
        }
        s.threads -= 1;
    }
}

fn shut_down() -> io::Error {
    io::Error::other("ringio: the blocking pool is shut down (its IoContext was dropped)")
}

/// What a job sends back: its output, or the payload of its panic.
type Outcome<T> = Result<T, Box<dyn Any + Send + 'static>>;

/// Wraps `f` into a job that reports through a oneshot, skipping `f` if
/// nobody waits any more.
fn job_for<F, T>(f: F) -> (Job, oneshot::Receiver<Outcome<T>>)
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    let job: Job = Box::new(move || {
        if tx.is_closed() {
            return;
        }
        tx.send(catch_unwind(AssertUnwindSafe(f)));
    });
    (job, rx)
}

/// `spawn_blocking` on `ctx` (see [`IoContext::spawn_blocking`]).
pub(crate) fn spawn_blocking<F, T>(ctx: &IoContext, f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (job, rx) = job_for(f);
    // The task first, so the job counts as work before it can finish.
    let handle = ctx.spawn(async move {
        match rx.await {
            Ok(Ok(v)) => v,
            Ok(Err(payload)) => resume_unwind(payload),
            Err(oneshot::Closed) => panic!(
                "ringio::spawn_blocking: the closure was not run \
                 (the blocking pool could not start a thread)"
            ),
        }
    });
    if handle.is_finished() {
        // Refused: the context is shutting down. Do not run the closure.
        return handle;
    }
    if let Err((job, _)) = ctx.blocking_pool().submit(job) {
        // Pool shut down: the context is closing and drops the task
        // (cancellation). Thread start failure: the task wakes to `Closed`
        // and reports it as a panic with the message above.
        drop(job);
    }
    handle
}

/// The free `spawn_blocking`: on the context running this thread.
pub(crate) fn spawn_blocking_current<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if let Some(ctx) = IoContext::try_current() {
        return spawn_blocking(&ctx, f);
    }
    match Shared::current() {
        // Only shutdown (or the drain of a closed context) runs under a
        // frame without a handle: the context is closing, so `spawn`
        // refuses and the handle reports cancellation. Were it ever not
        // closing, the closure would run inline as a task: still correct.
        Some(shared) => task::spawn(&shared, async move { f() }),
        None => panic!(
            "ringio::spawn_blocking called outside a running IoContext \
             (call it from a task, a handler or block_on, or use IoContext::spawn_blocking)"
        ),
    }
}

/// Runs `f` on the current context's blocking pool and returns its result.
///
/// For ringio's own blocking calls (name resolution, file metadata). A
/// panic in `f` is resumed in the caller, as if `f` had run inline.
/// Dropping the future before a thread picks `f` up skips it.
///
/// # Errors
///
/// Outside a running context, after the context was dropped, or if no
/// thread can be started.
pub(crate) async fn run<F, T>(f: F) -> io::Result<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let ctx = IoContext::try_current().ok_or_else(|| {
        io::Error::other("ringio: a blocking operation was started outside a running IoContext")
    })?;
    let (job, rx) = job_for(f);
    ctx.blocking_pool().submit(job).map_err(|(_, e)| e)?;
    drop(ctx);
    match rx.await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(payload)) => resume_unwind(payload),
        Err(oneshot::Closed) => Err(shut_down()),
    }
}

/// A single-value channel from a pool thread to a future.
mod oneshot {
    use super::*;

    struct Slot<T> {
        value: Option<T>,
        waker: Option<Waker>,
        sender_gone: bool,
        receiver_gone: bool,
    }

    type Shared<T> = Arc<Mutex<Slot<T>>>;

    fn lock<T>(s: &Shared<T>) -> MutexGuard<'_, Slot<T>> {
        s.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) struct Sender<T>(Shared<T>);
    pub(super) struct Receiver<T>(Shared<T>);

    /// The sender was dropped without sending.
    #[derive(Debug)]
    pub(super) struct Closed;

    pub(super) fn channel<T>() -> (Sender<T>, Receiver<T>) {
        let s = Arc::new(Mutex::new(Slot {
            value: None,
            waker: None,
            sender_gone: false,
            receiver_gone: false,
        }));
        (Sender(s.clone()), Receiver(s))
    }

    impl<T> Sender<T> {
        /// Whether the receiver is gone (nobody wants the value).
        pub(super) fn is_closed(&self) -> bool {
            lock(&self.0).receiver_gone
        }

        /// Delivers `v` (dropped if the receiver is gone) and wakes the
        /// receiver.
        pub(super) fn send(self, v: T) {
            let mut slot = lock(&self.0);
            if slot.receiver_gone {
                drop(slot);
                drop(v);
                return;
            }
            slot.value = Some(v);
            // The wake happens in `drop`, right after.
        }
    }

    impl<T> Drop for Sender<T> {
        fn drop(&mut self) {
            let waker = {
                let mut slot = lock(&self.0);
                slot.sender_gone = true;
                slot.waker.take()
            };
            if let Some(w) = waker {
                w.wake();
            }
        }
    }

    impl<T> Future for Receiver<T> {
        type Output = Result<T, Closed>;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            let mut slot = lock(&self.0);
            if let Some(v) = slot.value.take() {
                return Poll::Ready(Ok(v));
            }
            if slot.sender_gone {
                return Poll::Ready(Err(Closed));
            }
            match &mut slot.waker {
                Some(w) => w.clone_from(cx.waker()),
                None => slot.waker = Some(cx.waker().clone()),
            }
            Poll::Pending
        }
    }

    impl<T> Drop for Receiver<T> {
        fn drop(&mut self) {
            let (value, waker) = {
                let mut slot = lock(&self.0);
                slot.receiver_gone = true;
                (slot.value.take(), slot.waker.take())
            };
            // User data and wakers are dropped outside the lock.
            drop(value);
            drop(waker);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;

    fn pool(max: usize, keep_alive: Duration) -> BlockingPool {
        BlockingPool::new(Config {
            max_threads: max,
            keep_alive,
        })
    }

    fn threads(p: &BlockingPool) -> usize {
        p.inner.get().map_or(0, |i| i.lock().threads)
    }

    #[test]
    fn no_thread_before_the_first_job() {
        let p = pool(4, Duration::from_secs(10));
        assert_eq!(threads(&p), 0);
        assert!(p.inner.get().is_none());
    }

    #[test]
    fn jobs_beyond_max_threads_queue_and_all_run() {
        let p = pool(2, Duration::from_secs(10));
        let (tx, rx) = mpsc::channel();
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        for i in 0..10 {
            let (tx, running, peak) = (tx.clone(), running.clone(), peak.clone());
            let job: Job = Box::new(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                thread::sleep(Duration::from_millis(2));
                running.fetch_sub(1, Ordering::SeqCst);
                tx.send(i).unwrap();
            });
            assert!(p.submit(job).is_ok());
        }
        let mut got: Vec<i32> = (0..10)
            .map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap())
            .collect();
        got.sort();
        assert_eq!(got, (0..10).collect::<Vec<_>>());
        assert!(
            peak.load(Ordering::SeqCst) <= 2,
            "more than max_threads ran"
        );
        assert!(threads(&p) <= 2);
        p.shutdown();
    }

    #[test]
    fn idle_threads_retire_after_keep_alive() {
        let p = pool(4, Duration::from_millis(20));
        let (tx, rx) = mpsc::channel();
        assert!(p.submit(Box::new(move || tx.send(()).unwrap())).is_ok());
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
        let start = Instant::now();
        while threads(&p) != 0 {
            assert!(start.elapsed() < Duration::from_secs(5), "never retired");
            thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn an_endless_keep_alive_neither_panics_nor_retires() {
        let p = pool(2, Duration::MAX);
        let (tx, rx) = mpsc::channel();
        assert!(p.submit(Box::new(move || tx.send(()).unwrap())).is_ok());
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
        thread::sleep(Duration::from_millis(20));
        assert_eq!(threads(&p), 1);
        p.shutdown();
        let start = Instant::now();
        while threads(&p) != 0 {
            assert!(start.elapsed() < Duration::from_secs(5), "shutdown missed");
            thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn an_idle_thread_is_reused() {
        let p = pool(4, Duration::from_secs(10));
        for _ in 0..5 {
            let (tx, rx) = mpsc::channel();
            assert!(p.submit(Box::new(move || tx.send(()).unwrap())).is_ok());
            rx.recv_timeout(Duration::from_secs(5)).unwrap();
            // Let the thread reach its idle wait before the next job.
            let start = Instant::now();
            while p.inner().lock().idle != 1 {
                assert!(start.elapsed() < Duration::from_secs(5));
                thread::sleep(Duration::from_millis(1));
            }
        }
        assert_eq!(threads(&p), 1, "an idle thread should take the next job");
        p.shutdown();
    }

    #[test]
    fn a_panicking_job_does_not_kill_its_thread() {
        let p = pool(1, Duration::from_secs(10));
        assert!(p.submit(Box::new(|| panic!("job panics"))).is_ok());
        let (tx, rx) = mpsc::channel();
        assert!(p.submit(Box::new(move || tx.send(7).unwrap())).is_ok());
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), 7);
        assert_eq!(threads(&p), 1);
        p.shutdown();
    }

    #[test]
    fn submit_after_shutdown_gives_the_job_back() {
        let p = pool(1, Duration::from_secs(10));
        p.shutdown(); // nothing started yet: a no-op
        assert!(p.submit(Box::new(|| {})).is_ok());
        p.shutdown();
        let Err((_job, e)) = p.submit(Box::new(|| {})) else {
            panic!("accepted after shutdown");
        };
        assert!(e.to_string().contains("shut down"), "{e}");
        let start = Instant::now();
        while threads(&p) != 0 {
            assert!(start.elapsed() < Duration::from_secs(5), "thread stayed");
            thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn oneshot_delivers_or_reports_closed() {
        let (tx, rx) = oneshot::channel::<u32>();
        tx.send(5);
        let mut rx = Box::pin(rx);
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(rx.as_mut().poll(&mut cx), Poll::Ready(Ok(5))));
        let (tx, rx) = oneshot::channel::<u32>();
        drop(tx);
        let mut rx = Box::pin(rx);
        assert!(matches!(
            rx.as_mut().poll(&mut cx),
            Poll::Ready(Err(oneshot::Closed))
        ));
        let (tx, rx) = oneshot::channel::<u32>();
        assert!(!tx.is_closed());
        drop(rx);
        assert!(tx.is_closed());
    }
}
