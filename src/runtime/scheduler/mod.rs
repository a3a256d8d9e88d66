//! The scheduler: ready queues, the `do_one` loop, work counting, stop and
//! restart, and shutdown. The Rust form of Corosio's
//! `io_uring_scheduler::do_one`.
//!
//! # One pass of `do_one`
//!
//! 1. Return if interrupted (`stop()`, or the `block_on` future was woken).
//! 2. Every [`EVENT_INTERVAL`] handlers: flush the ring (submit the SQEs the
//!    handlers pushed, reap ready CQEs) and fire due timers, so a queue that
//!    never empties cannot starve I/O or timers. The flush is skipped when
//!    nothing is queued or pending (no syscall at all).
//! 3. Pop one ready task and poll it (handing the rest of the queue to an
//!    idle follower, multi-threaded); return 1.
//! 4. Queue empty: take remote work (single-threaded), fire due timers; if
//!    that produced work, go to 1. With no outstanding work, return 0.
//! 5. Become the leader (or, multi-threaded, follow an existing one on the
//!    condition variable) and wait in the kernel with one `io_uring_enter`
//!    that also submits every pending SQE, bounded by the nearest timer
//!    deadline (`EXT_ARG` timeout; no timeout SQE per timer) and by the
//!    caller's own deadline (`run_for`). A context built with
//!    `spin_before_park` first polls the ring for that long (bounded by the
//!    same deadlines; multi-threaded, releasing the driver lock between
//!    looks) and enters without sleeping if work came.
//!    Reap, fire timers, go to 1.
//!
//! # Wake-up protocol
//!
//! A runner sleeps in exactly two places: the leader in `io_uring_enter`,
//! and followers on the run queue's condition variable. Every way of
//! producing work wakes the right one, with no periodic timeout:
//! * a completion: the kernel ends the leader's wait itself;
//! * a task woken from another thread, `post`/`spawn` from another thread,
//!   `stop()`, a `block_on` future woken elsewhere: multi-threaded, the run
//!   queue's protocol ([`super::run_queue`]) notifies a follower or returns
//!   `Wake::Leader`; single-threaded, the remote [`Inject`] queue and the
//!   [`Parker`] handshake ([`super::park`]). Either ends in an eventfd write
//!   that the multishot poll turns into a CQE ([`crate::driver::wakeup`]);
//! * a timer armed earlier than the leader's deadline: see
//!   [`crate::time::service`].
//!
//! # Lock order (multi-threaded)
//!
//! driver core → timer store → run queue. No lock is held while a task is
//! polled, a waker is woken or user code runs; wakers and dropped data found
//! under a lock are collected and handled after it is released.
//!
//! # Shutdown (dropping the last `IoContext`)
//!
//! 1. `stop()`; new spawns are refused from here on (their future is
//!    dropped and the `JoinHandle` reports cancellation).
//! 2. Take ownership (single-threaded: the runner lock) under a detached
//!    frame, so dropping futures finds the context.
//! 3. Until nothing is left: drop every queued task (which drops its future
//!    and so cancels its ops) and wake every registered task so it is queued
//!    and dropped too — a task pending with no waker anywhere is still owned
//!    here and still dropped.
//! 4. Drop timer wakers.
//! 5. Cancel every op still in the kernel and wait, bounded, for the CQEs;
//!    leak (never free) the memory of those that do not come back.
//! 6. Close the ring. From now on a stray wake drops its task at once.
//!
//! # Files
//!
//! This file holds the context's shared state, scheduling, stop and the
//! parts of a pass both modes share; `single` is the single-threaded loop
//! (local queue, remote work, park), `multi` the multi-threaded one
//! (leader/follower over [`RunQueue`]), `work` the outstanding-work count,
//! `block_on` and `shutdown` what their names say.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::Instant;

use crossbeam_utils::CachePadded;
use slab::Slab;

use crate::context::IoContext;
use crate::driver::ring::RingConfig;
use crate::driver::slots::Effects;
use crate::driver::{Core, Driver};
use crate::runtime::cell::{ModeGuard, ModeLock};
use crate::runtime::frame::{self, Frame};
use crate::runtime::metrics::Counters;
use crate::runtime::park::{Inject, Parker};
use crate::runtime::run_queue::{RunQueue, WaitMode, Wake as QueueWake};
use crate::time::service::TimerService;

mod block_on;
mod multi;
mod shutdown;
mod single;
mod work;

/// Handlers run between two checks of the ring and timers while the ready
/// queue stays non-empty (tokio uses the same figure).
pub(crate) const EVENT_INTERVAL: u32 = 61;

pub(crate) use crate::runtime::task::Runnable;
use crate::runtime::task::TaskQueue;

/// Work handed to a single-threaded context's owner by other threads.
pub(crate) enum Remote {
    Task(Runnable),
    Call(Box<dyn FnOnce(&Shared) + Send>),
}

enum Queue {
    Multi(RunQueue<Runnable>),
    Single {
        local: ModeLock<TaskQueue>,
        inject: Inject<Remote>,
        parker: Parker,
    },
}

const RUNNING: u8 = 0;
const CLOSING: u8 = 1;
const CLOSED: u8 = 2;

pub(crate) struct Shared {
    single_threaded: bool,
    outstanding: CachePadded<AtomicUsize>,
    /// Finishes counted by a single-threaded context's owner thread (see
    /// `work_finished`); written only by that thread.
    finished_by_owner: AtomicUsize,
    stopped: AtomicBool,
    /// RUNNING → CLOSING (shutdown in progress) → CLOSED.
    lifecycle: AtomicU8,
    queue: Queue,
    pub(crate) driver: Driver,
    pub(crate) timers: TimerService,
    /// Wakers of every task polled at least once and not finished: the
    /// context owns its tasks (shutdown drops them through these).
    pub(crate) tasks: ModeLock<Slab<Waker>>,
    /// On cache lines of its own: a thread outside the context bumps
    /// `tasks_spawned` on every spawn, and that line must not hold what
    /// the runners read at every turn (`finished_by_owner`, read with each
    /// publish of their finishes, and the timer service's first fields sat
    /// on it).
    pub(crate) metrics: CachePadded<Counters>,
    /// Single-threaded: held by the thread that runs the context.
    runner: Mutex<()>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoContext")
            .field("single_threaded", &self.single_threaded)
            .field("outstanding", &self.outstanding())
            .field("stopped", &self.stopped())
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn new(cfg: RingConfig) -> io::Result<Arc<Shared>> {
        let st = cfg.single_threaded;
        let driver = Driver::new(cfg)?;
        let queue = if st {
            Queue::Single {
                local: ModeLock::new("ready queue", false, TaskQueue::new()),
                inject: Inject::new(),
                parker: Parker::new(),
            }
        } else {
            Queue::Multi(RunQueue::new())
        };
        Ok(Arc::new(Shared {
            single_threaded: st,
            outstanding: CachePadded::new(AtomicUsize::new(0)),
            finished_by_owner: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
            lifecycle: AtomicU8::new(RUNNING),
            queue,
            driver,
            timers: TimerService::new(!st),
            tasks: ModeLock::new("task registry", !st, Slab::new()),
            metrics: CachePadded::new(Counters::default()),
            runner: Mutex::new(()),
        }))
    }

    /// The context running on this thread (innermost).
    pub(crate) fn current() -> Option<Arc<Shared>> {
        frame::current_shared()
    }

    /// Locks `l` (multi-threaded) or borrows it if this thread owns the
    /// single-threaded context; `None` on any other thread.
    /// [`Shared::lock`] for a caller that knows this thread runs the
    /// context (it got `self` from its innermost run frame): no frame walk.
    ///
    /// # Safety
    ///
    /// This thread has a live run frame of this context.
    #[inline]
    pub(crate) unsafe fn lock_running<'a, T>(&self, l: &'a ModeLock<T>) -> ModeGuard<'a, T> {
        debug_assert!(frame::is_running(self));
        // SAFETY: locking mode takes a mutex; otherwise the caller's frame
        // makes this thread the owner.
        unsafe { l.lock_unchecked() }
    }

    #[inline]
    pub(crate) fn lock<'a, T>(&self, l: &'a ModeLock<T>) -> Option<ModeGuard<'a, T>> {
        if l.is_locking() || frame::is_running(self) {
            // SAFETY: locking mode takes a mutex; otherwise this thread has a
            // run frame for this context, which only its owner can have.
            Some(unsafe { l.lock_unchecked() })
        } else {
            None
        }
    }

    pub(crate) fn lock_driver(&self) -> Option<ModeGuard<'_, Core>> {
        self.lock(&self.driver.core)
    }

    /// Runs `f` on the owner thread of a single-threaded context (called
    /// only where [`Shared::lock`] returned `None`).
    pub(crate) fn remote(&self, f: Box<dyn FnOnce(&Shared) + Send>) {
        match &self.queue {
            Queue::Multi(_) => f(self),
            Queue::Single { inject, parker, .. } => {
                inject.push(Remote::Call(f));
                if self.lifecycle.load(Ordering::SeqCst) == CLOSED {
                    self.drain_closed_inject();
                } else if parker.unpark() {
                    self.driver.wake();
                }
            }
        }
    }

    // ---- stop, restart (work counting: `work`) ---------------------------
    pub(crate) fn stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.kick();
    }

    pub(crate) fn restart(&self) {
        self.stopped.store(false, Ordering::SeqCst);
    }

    /// Wakes every runner that may be asleep (after the caller published
    /// whatever they should notice).
    fn kick(&self) {
        let wake = match &self.queue {
            Queue::Multi(q) => q.wake_all() == QueueWake::Leader,
            Queue::Single { parker, .. } => parker.unpark(),
        };
        if wake {
            self.driver.wake_surely();
        }
    }

    /// A timer earlier than the leader's wait deadline was armed.
    pub(crate) fn wake_leader_for_timer(&self) {
        if let Queue::Multi(q) = &self.queue {
            if q.wake_leader() == QueueWake::Leader {
                self.driver.wake();
            }
        }
    }

    #[inline]
    pub(crate) fn is_closing(&self) -> bool {
        self.lifecycle.load(Ordering::Acquire) != RUNNING
    }

    // ---- scheduling ------------------------------------------------------

    /// Queues a task to be polled. Called by task wakers, from any thread.
    pub(crate) fn schedule(&self, r: Runnable) {
        if self.lifecycle.load(Ordering::Acquire) == CLOSED {
            // Nothing will ever run it: drop it (and its future) now.
            drop(r);
            return;
        }
        match &self.queue {
            Queue::Multi(q) => {
                if q.push(r) == QueueWake::Leader {
                    self.driver.wake();
                }
                // Shutdown may have closed the context between the check
                // above and the push, after its last drain: nothing would
                // ever run or drop this task (and its Arc to the context
                // would keep both alive). Shutdown drains again after
                // CLOSED; whoever comes second drops it.
                if self.lifecycle.load(Ordering::SeqCst) == CLOSED {
                    drop(q.drain());
                }
            }
            Queue::Single {
                local,
                inject,
                parker,
            } => match self.lock(local) {
                Some(mut q) => q.push_back(r),
                None => {
                    inject.push(Remote::Task(r));
                    if self.lifecycle.load(Ordering::SeqCst) == CLOSED {
                        self.drain_closed_inject();
                    } else if parker.unpark() {
                        self.driver.wake();
                    }
                }
            },
        }
    }

    #[inline]
    fn run_task(&self, frame: &Frame, r: Runnable) {
        frame.polled.set(frame.polled.get() + 1);
        frame.since_flush.set(frame.since_flush.get() + 1);
        frame.inline_budget.set(frame::INLINE_BUDGET);
        frame.in_task.set(true);
        r.run();
        frame.in_task.set(false);
    }

    /// Queues a task woken on a thread that runs this context (its run
    /// frame is on this thread's stack): a single-threaded context's owner
    /// pushes to its local queue with no further check.
    #[inline(always)]
    pub(crate) fn schedule_here(&self, r: Runnable) {
        match &self.queue {
            Queue::Single { local, .. } if self.lifecycle.load(Ordering::Acquire) != CLOSED => {
                self.owner_queue(local).push_back(r)
            }
            _ => self.schedule(r),
        }
    }

    /// Fires due timers; returns how many fired.
    fn expire_timers(&self) -> usize {
        if self.timers.is_empty() {
            return 0;
        }
        let mut wakers = Vec::new();
        let n = self.expire_timers_into(Instant::now(), &mut wakers);
        for w in wakers {
            w.wake();
        }
        n
    }

    /// Fires the timers due at `now`, collecting their wakers (to be woken
    /// once no lock is held); returns how many fired.
    fn expire_timers_into(&self, now: Instant, wakers: &mut Vec<Waker>) -> usize {
        if !self.timers.is_due(now) {
            return 0;
        }
        let n = match self.lock(&self.timers.store) {
            Some(mut store) => self.timers.expire(&mut store, now, wakers),
            None => 0,
        };
        Counters::bump(&self.metrics.timers_fired, n as u64);
        if n > 0 {
            crate::trace::trace_event!(fired = n, "timers");
        }
        n
    }

    /// Submits pending SQEs and reaps ready CQEs, without blocking; no
    /// syscall if there is nothing to do. Multi-threaded, a thread with no
    /// SQEs of its own to submit does not wait for a busy driver lock (its
    /// holder is reaping already).
    fn flush_ring(&self) {
        let core = if self.driver.core.is_locking() && !self.driver.sq_queued() {
            self.driver.core.try_lock()
        } else {
            self.lock_driver()
        };
        let Some(mut core) = core else { return };
        if !self.driver.has_pending(&core) {
            return;
        }
        let mut fx = Effects::reuse();
        self.driver.flush(&mut core, &mut fx);
        drop(core);
        fx.run_and_recycle();
    }

    /// Step 2 of a pass.
    fn maintain(&self, frame: &Frame) {
        frame.since_flush.set(0);
        frame.flush_tallies();
        self.drain_inject();
        self.flush_ring();
        self.expire_timers();
    }

    // ---- running ----------------------------------------------------------

    /// Claims the right to run (single-threaded: the runner lock, unless this
    /// thread already runs the context) and pushes a run frame for `f`.
    fn with_runner<R>(&self, ctx: &IoContext, f: impl FnOnce(&Frame) -> R) -> R {
        let nested = frame::is_running(self);
        if nested {
            // A handler runs the context again (a nested `block_on`): the
            // tasks this thread took ahead must stay reachable — the nested
            // loop may be waiting for one of them.
            frame::with_frame_of(self, |outer| {
                if let Some(outer) = outer {
                    self.give_back_stash(outer);
                }
            });
        }
        let _runner: Option<MutexGuard<'_, ()>> = (self.single_threaded && !nested)
            .then(|| self.runner.lock().unwrap_or_else(|e| e.into_inner()));
        let mut frame = Frame::new(ctx);
        let guard = frame.enter();
        if self.single_threaded && !nested {
            let mut core = self.lock_driver().expect("owner");
            if let Err(e) = self.driver.bind_owner(&mut core) {
                drop(core);
                drop(guard);
                panic!("{e}");
            }
        }
        let out = f(guard.frame());
        self.give_back_stash(guard.frame());
        if !nested {
            self.reaping(|| self.settle());
        }
        out
    }

    /// Before a runner lets go of the context: submit what its last handlers
    /// queued (a cancel, say) — nobody else may come to do it — and, on a
    /// single-threaded ring, post the completions deferred to this thread
    /// (`DEFER_TASKRUN` posts them only when this thread enters the ring), so
    /// a finished op does not pin the ring to this thread. Non-blocking; a
    /// few rounds at most (a cancel completes, then the op it cancelled).
    fn settle(&self) {
        for _ in 0..4 {
            let before = self.driver.inflight();
            if before == 0 && !self.driver.sq_queued() {
                return;
            }
            self.flush_ring();
            if !self.driver.sq_queued() && self.driver.inflight() == before {
                return; // nothing more will move without waiting
            }
        }
    }

    /// `run`, `run_one`, `run_for`, `poll`, ...: up to `limit` handlers.
    pub(crate) fn run(&self, ctx: &IoContext, limit: usize, wait: WaitMode) -> usize {
        if self.outstanding() == 0 {
            self.stop();
            return 0;
        }
        self.with_runner(ctx, |frame| {
            let interrupt = || self.stopped();
            let mut n = 0;
            while n < limit {
                let ran = self.do_some(frame, wait, &interrupt, limit - n, true);
                if ran == 0 {
                    break;
                }
                n += ran;
            }
            n
        })
    }

    /// One pass (Asio's `do_one`, see the module docs), except that a
    /// single-threaded context may run up to `max` ready handlers in one
    /// call (checking the event interval before each, and `interrupt`
    /// before each if `interrupt_each`, else only before the first), so
    /// the cost of the call is paid once per batch. Returns how many
    /// handlers ran; 0 means the caller must stop looping: interrupted, no
    /// outstanding work, nothing ready in `Poll` mode, or the `Until`
    /// deadline passed.
    pub(super) fn do_some(
        &self,
        frame: &Frame,
        wait: WaitMode,
        interrupt: &dyn Fn() -> bool,
        max: usize,
        interrupt_each: bool,
    ) -> usize {
        match &self.queue {
            Queue::Single {
                local,
                inject,
                parker,
            } => self.do_some_single(
                frame,
                wait,
                interrupt,
                (max, interrupt_each),
                local,
                inject,
                parker,
            ),
            Queue::Multi(q) => self.do_one_multi(frame, wait, interrupt, q),
        }
    }
}

fn min_opt(
    a: Option<std::time::Duration>,
    b: Option<std::time::Duration>,
) -> Option<std::time::Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}
