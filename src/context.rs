//! The public face of the runtime: [`IoContext`], [`Builder`],
//! [`WorkGuard`], [`Metrics`], and the free [`spawn`].

use std::fmt;
use std::future::Future;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::driver::ring::RingConfig;
use crate::runtime::blocking::{self, BlockingPool};
use crate::runtime::frame;
use crate::runtime::run_queue::WaitMode;
use crate::runtime::scheduler::Shared;
use crate::runtime::task::{self, JoinHandle};

/// An execution context: one io_uring, one ready queue of tasks, timers.
///
/// `IoContext` is a cheap handle (`Clone`, `Send + Sync`). Work is run by
/// the threads that call [`run`](IoContext::run) (or `run_one`, `run_for`,
/// `poll`, `block_on`) on it: any number of threads at once — one of them
/// waits in the kernel while the others run ready tasks (leader/follower) —
/// or exactly one at a time for a context built
/// [`single_threaded`](Builder::single_threaded).
///
/// The semantics are Boost.Asio's: `run` returns when no work is
/// outstanding (no live task, no [`WorkGuard`]) or after
/// [`stop`](IoContext::stop), and returns how many handlers (task polls) it
/// ran; once it ran out of work or was stopped, the context stays stopped
/// until [`restart`](IoContext::restart).
///
/// Dropping the last handle shuts the context down: queued and idle tasks
/// are dropped (their futures too, which cancels their I/O), in-flight
/// operations are cancelled and their completions awaited (for a bounded
/// time), and the ring is closed.
///
/// ```
/// use std::time::Duration;
/// let ctx = ringio::IoContext::new()?;
/// let handle = ctx.spawn(async {
///     ringio::time::sleep(Duration::from_millis(1)).await;
///     6 * 7
/// });
/// ctx.run();
/// assert_eq!(ctx.block_on(handle).unwrap(), 42);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct IoContext {
    handle: Arc<ContextHandle>,
}

/// The owner of the context: its drop is the context's shutdown.
struct ContextHandle {
    shared: Arc<Shared>,
    /// Threads for blocking work, started on demand.
    blocking: BlockingPool,
}

impl Drop for ContextHandle {
    fn drop(&mut self) {
        self.shared.shutdown();
        // After the tasks are gone: nobody waits for a queued job any more.
        self.blocking.shutdown();
    }
}

impl fmt::Debug for IoContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.handle.shared, f)
    }
}

impl IoContext {
    /// A multi-threaded context with default settings.
    pub fn new() -> io::Result<IoContext> {
        Builder::new().build()
    }

    /// A builder for a context with other settings.
    pub fn builder() -> Builder {
        Builder::new()
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.handle.shared
    }

    pub(crate) fn shared_arc(&self) -> &Arc<Shared> {
        &self.handle.shared
    }

    /// Spawns a task. It counts as outstanding work until it completes.
    /// The returned [`JoinHandle`] yields its output; dropping the handle
    /// lets the task run on, detached.
    pub fn spawn<F>(&self, fut: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        task::spawn(self.shared_arc(), fut)
    }

    /// Runs a blocking closure on the context's blocking pool: a thread of
    /// its own, so it cannot stall the threads that run tasks. See the free
    /// [`ringio::spawn_blocking`](crate::spawn_blocking) for the details.
    pub fn spawn_blocking<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        blocking::spawn_blocking(self, f)
    }

    pub(crate) fn blocking_pool(&self) -> &BlockingPool {
        &self.handle.blocking
    }

    /// Runs a plain handler on the context (Asio's `post`): it counts as
    /// outstanding work until it has run. A panic in it is caught and does
    /// not take the runner down. It has no join handle, so it costs less
    /// than a [`spawn`](IoContext::spawn) whose handle is dropped: the
    /// posting thread never touches the task again once it is queued.
    pub fn post<F: FnOnce() + Send + 'static>(&self, f: F) {
        task::spawn_detached(self.shared_arc(), async move { f() });
    }

    /// Drives the context on this thread until `fut` completes, and returns
    /// its output. `fut` need not be `Send`; it is polled only here. Tasks
    /// and I/O of the context run meanwhile, on this thread and on any other
    /// thread running the context. `block_on` counts as outstanding work
    /// while it runs, and keeps going even if the context is stopped.
    ///
    /// # Panics
    ///
    /// A single-threaded context whose ring is bound to another thread with
    /// I/O still in flight cannot be driven from this one (the kernel refuses
    /// `SINGLE_ISSUER` rings from other threads): this panics with that
    /// explanation.
    pub fn block_on<F: Future>(&self, fut: F) -> F::Output {
        self.shared_arc().block_on(self, fut)
    }

    /// Runs handlers until no work is outstanding or the context is stopped.
    /// Returns the number of handlers run. On a context with no outstanding
    /// work it stops the context and returns 0 at once.
    ///
    /// # Panics
    ///
    /// As [`block_on`](IoContext::block_on), for a single-threaded context
    /// bound to another thread with I/O in flight.
    pub fn run(&self) -> usize {
        self.shared().run(self, usize::MAX, WaitMode::Block)
    }

    /// Runs at most one handler, blocking until one is ready (or the
    /// context stops or runs out of work). Returns 0 or 1.
    pub fn run_one(&self) -> usize {
        self.shared().run(self, 1, WaitMode::Block)
    }

    /// Like [`run`](IoContext::run), returning after `d` at the latest.
    pub fn run_for(&self, d: Duration) -> usize {
        self.shared()
            .run(self, usize::MAX, WaitMode::Until(deadline(d)))
    }

    /// Like [`run_one`](IoContext::run_one), waiting at most `d` (the
    /// reference scheduler's `wait_one`).
    pub fn run_one_for(&self, d: Duration) -> usize {
        self.shared().run(self, 1, WaitMode::Until(deadline(d)))
    }

    /// Runs every handler that is ready, without blocking. Returns how many ran.
    pub fn poll(&self) -> usize {
        self.shared().run(self, usize::MAX, WaitMode::Poll)
    }

    /// Runs at most one ready handler, without blocking. Returns 0 or 1.
    pub fn poll_one(&self) -> usize {
        self.shared().run(self, 1, WaitMode::Poll)
    }

    /// Stops the context: every `run*`/`poll*` returns promptly on every
    /// thread (waking those asleep), and later calls return 0 at once,
    /// until [`restart`](IoContext::restart). Outstanding work is kept.
    pub fn stop(&self) {
        self.shared().stop();
    }

    /// Whether the context is stopped (by [`stop`](IoContext::stop) or by
    /// running out of work).
    pub fn stopped(&self) -> bool {
        self.shared().stopped()
    }

    /// Clears the stopped state so the context can run again.
    pub fn restart(&self) {
        self.shared().restart();
    }

    /// A guard that counts as outstanding work while it lives, so `run`
    /// keeps waiting for work instead of returning.
    pub fn work_guard(&self) -> WorkGuard {
        self.shared().work_started();
        WorkGuard {
            shared: self.shared_arc().clone(),
        }
    }

    /// Whether the calling thread is inside `run`/`poll`/`block_on` of this
    /// context (directly, or from a handler it runs).
    pub fn running_in_this_thread(&self) -> bool {
        frame::is_running(self.shared())
    }

    /// A snapshot of the context's counters.
    pub fn metrics(&self) -> Metrics {
        let s = self.shared();
        let d = &s.driver.counters;
        let m = &s.metrics;
        let r = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        // Polls and spawns of the calling thread's own frame not yet flushed.
        let (polled, spawned) = frame::with_frame_of(s, |f| {
            f.map_or((0, 0), |f| (f.polled.get(), f.spawned.get()))
        });
        Metrics {
            tasks_polled: m.tasks_polled() + polled,
            tasks_spawned: m.tasks_spawned() + spawned,
            sqes_submitted: r(&d.sqes_submitted),
            enter_calls: r(&d.enter_calls),
            cqes_reaped: r(&d.cqes_reaped),
            wakeups: r(&d.wakeups),
            timers_fired: r(&m.timers_fired),
            inline_completions: r(&m.inline_completions),
            ops_cancelled: r(&d.ops_cancelled),
            ops_resubmitted: r(&d.ops_resubmitted),
            leader_waits: r(&m.leader_waits),
            spin_hits: r(&d.spin_hits),
            ops_in_flight: s.driver.inflight() as u64,
            outstanding_work: s.outstanding() as u64,
        }
    }

    /// The context running on this thread (the innermost one).
    ///
    /// # Panics
    ///
    /// Outside `run`/`poll`/`block_on` of any context, with a message saying
    /// so; use [`try_current`](IoContext::try_current) to check.
    pub fn current() -> IoContext {
        Self::try_current().expect(
            "ringio: IoContext::current() called outside a running IoContext \
             (call it from a task, a handler or block_on)",
        )
    }

    /// The context running on this thread, if any.
    pub fn try_current() -> Option<IoContext> {
        frame::current_context()
    }
}

fn deadline(d: Duration) -> Instant {
    crate::time::deadline_after(d)
}

/// Spawns a task on [`IoContext::current()`].
///
/// # Panics
///
/// Outside a running context (see [`IoContext::current`]).
pub fn spawn<F>(fut: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match task::spawn_here(fut) {
        Ok(handle) => handle,
        Err(_) => panic!(
            "ringio::spawn called outside a running IoContext \
             (call it from a task, a handler or block_on, or use IoContext::spawn)"
        ),
    }
}

/// Runs a blocking closure on a thread of the current context's blocking
/// pool and returns a [`JoinHandle`] for its result, like [`spawn`]'s.
///
/// Use it for work that would stall the threads running tasks: CPU-heavy
/// computation, blocking system calls, libraries without async support.
/// The pool starts threads on demand, up to
/// [`Builder::max_blocking_threads`] (further closures wait in a queue), and
/// lets each go after [`Builder::blocking_keep_alive`] without work.
///
/// The job counts as outstanding work until it finishes, so `run` and
/// `block_on` keep going meanwhile. A panic in `f` is caught: the handle
/// yields a [`JoinError`](crate::JoinError) with
/// [`is_panic`](crate::JoinError::is_panic) and the pool thread carries on.
/// [`abort`](JoinHandle::abort) skips a closure that has not started yet;
/// one that has started runs to its end (a thread cannot be interrupted)
/// and its result is dropped. Dropping the context does not wait for
/// running closures.
///
/// ```
/// let ctx = ringio::IoContext::new()?;
/// let sum = ctx.block_on(async {
///     let handle = ringio::spawn_blocking(|| (1..=100u64).sum::<u64>());
///     handle.await.unwrap()
/// });
/// assert_eq!(sum, 5050);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Panics
///
/// Outside a running context (see [`IoContext::current`]); use
/// [`IoContext::spawn_blocking`] there. Called while the context shuts
/// down (from the destructor of a future it drops), it does not panic: the
/// closure is dropped unrun and the handle reports cancellation, as
/// [`spawn`] does then.
pub fn spawn_blocking<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    blocking::spawn_blocking_current(f)
}

/// Settings for a new [`IoContext`].
#[derive(Debug, Clone)]
pub struct Builder {
    cfg: RingConfig,
    blocking: blocking::Config,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    /// Defaults: multi-threaded, 256 SQ entries, no SQPOLL.
    pub fn new() -> Builder {
        Builder {
            cfg: RingConfig {
                entries: 256,
                single_threaded: false,
                sqpoll: None,
                spin_before_park: Duration::ZERO,
            },
            blocking: blocking::Config::default(),
        }
    }

    /// A single-threaded context: one thread runs it at a time (a second
    /// thread calling `run` waits for the first to return), no lock is taken
    /// on the local path, and the ring is created with
    /// `IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN` (without
    /// `DEFER_TASKRUN` under SQPOLL, which the kernel refuses). Wakers and
    /// `spawn` from other threads still work, through a remote queue and the
    /// wake-up eventfd.
    ///
    /// The kernel binds such a ring to the thread that first drives it; the
    /// context may move to another thread whenever no I/O is in flight (the
    /// ring is rebuilt), but not while I/O is pending.
    pub fn single_threaded(mut self, yes: bool) -> Builder {
        self.cfg.single_threaded = yes;
        self
    }

    /// Enables SQPOLL: a kernel thread polls the submission queue, so
    /// submitting needs no syscall while it is awake. `idle` is how long it
    /// spins before sleeping; `cpu` pins it to a CPU.
    pub fn sqpoll(mut self, idle: Duration, cpu: Option<usize>) -> Builder {
        self.cfg.sqpoll = Some((idle, cpu));
        self
    }

    /// Before a runner sleeps in the kernel (the single-threaded runner, or
    /// a multi-threaded context's leader; followers wait on a condition
    /// variable as before), it polls the ring for up to `d` (never past its
    /// next timer or `run_for` deadline) for completions and wake-ups, and
    /// sleeps only if none came. This trades CPU for latency: an idle
    /// context keeps its core busy for `d` after each burst of work, and in
    /// exchange an event that arrives within `d` is handled without a
    /// wake-up from sleep, which costs from a few µs on bare metal to tens
    /// of µs on a virtual machine (measured on the benchmark VM with 100 µs
    /// of spin: a 64-byte TCP round trip to an echo server fell from about
    /// 56–64 µs to about 22 µs, and the server's CPU at 50k messages/s rose
    /// from 36% to about 90%; see the README's benchmark tables).
    ///
    /// Default `Duration::ZERO`: never spin. `Duration::MAX` spins until
    /// work comes (a busy-polling runner that never sleeps while it has
    /// work outstanding; `stop()` and wakes from other threads still reach
    /// it). [`Metrics::spin_hits`] counts the spins that found work.
    pub fn spin_before_park(mut self, d: Duration) -> Builder {
        self.cfg.spin_before_park = d;
        self
    }

    /// Submission queue size (default 256; 1..=32768, rounded up to a power
    /// of two by the kernel). The completion queue gets four times as many.
    pub fn entries(mut self, n: u32) -> Builder {
        self.cfg.entries = n;
        self
    }

    /// Most threads the blocking pool ([`spawn_blocking`]) runs at once
    /// (default 64; at least 1). Closures beyond that wait for a free thread.
    pub fn max_blocking_threads(mut self, n: usize) -> Builder {
        self.blocking.max_threads = n;
        self
    }

    /// How long an idle blocking-pool thread waits for work before it exits
    /// (default 10 s). `Duration::ZERO` lets a thread go as soon as the
    /// queue is empty; `Duration::MAX` keeps threads until the context is
    /// dropped.
    pub fn blocking_keep_alive(mut self, d: Duration) -> Builder {
        self.blocking.keep_alive = d;
        self
    }

    /// Creates the context. Fails with `InvalidInput` for out-of-range
    /// settings, and with an error naming the cause and the fix if the
    /// kernel refuses the ring (io_uring disabled, `RLIMIT_MEMLOCK` too low,
    /// unsupported flags).
    pub fn build(self) -> io::Result<IoContext> {
        if self.blocking.max_threads == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "ringio: max_blocking_threads must be at least 1",
            ));
        }
        let shared = Shared::new(self.cfg)?;
        Ok(IoContext {
            handle: Arc::new(ContextHandle {
                shared,
                blocking: BlockingPool::new(self.blocking),
            }),
        })
    }
}

/// Counts as outstanding work on its context while alive (see
/// [`IoContext::work_guard`]).
#[must_use = "a WorkGuard releases its work count when dropped"]
pub struct WorkGuard {
    shared: Arc<Shared>,
}

impl Drop for WorkGuard {
    fn drop(&mut self) {
        self.shared.work_finished();
    }
}

impl fmt::Debug for WorkGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WorkGuard")
    }
}

/// A snapshot of a context's counters (see [`IoContext::metrics`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// Task polls (handlers) run.
    pub tasks_polled: u64,
    /// Tasks spawned (including `post`).
    pub tasks_spawned: u64,
    /// SQEs the kernel accepted.
    pub sqes_submitted: u64,
    /// `io_uring_enter` calls.
    pub enter_calls: u64,
    /// CQEs reaped (including wake-up and cancel CQEs).
    pub cqes_reaped: u64,
    /// Wake-up eventfd writes (another thread waking a runner in the kernel).
    pub wakeups: u64,
    /// Timers that fired.
    pub timers_fired: u64,
    /// Operations completed inline by a speculative syscall, without an SQE.
    pub inline_completions: u64,
    /// Operations cancelled because their future was dropped.
    pub ops_cancelled: u64,
    /// Operations submitted again because the kernel cancelled them on its
    /// own (Linux cancels a thread's io_uring requests when it exits; any
    /// thread may submit on a multi-threaded context).
    pub ops_resubmitted: u64,
    /// Kernel waits (times a runner slept in `io_uring_enter`, or would
    /// have, see `spin_hits`).
    pub leader_waits: u64,
    /// Kernel waits that a spin before parking
    /// ([`Builder::spin_before_park`]) made unnecessary: the spin saw work
    /// arrive, so the wait returned without sleeping.
    pub spin_hits: u64,
    /// Operations (and cancels) in the kernel right now.
    pub ops_in_flight: u64,
    /// Outstanding work right now (live tasks, guards, `block_on` calls).
    pub outstanding_work: u64,
}
