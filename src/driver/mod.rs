//! Everything that touches the ring.
//!
//! # Access rules
//!
//! * The SQ and CQ (`submission_shared` / `completion_shared`) and the op
//!   [`slots`] are touched only under the [`Core`] lock (a mutex in
//!   multi-threaded mode, the owner thread in single-threaded mode).
//! * `io_uring_enter` itself needs no lock: the multi-threaded leader waits
//!   in the kernel *without* the lock, so other threads can push SQEs (and
//!   flush them with their own enter) meanwhile. The tail they publish is only
//!   moved under the lock, after the entry is fully written.
//! * The ring itself is replaced only (a) at shutdown, when no runner exists,
//!   or (b) when a single-threaded context moves to a new owner thread with
//!   nothing in flight; both happen under the lock with no other user of
//!   the ring possible.
//!
//! # Batching
//!
//! Ops only push SQEs. The scheduler calls [`Driver::flush`] once per pass
//! (or the leader's [`Driver::wait`]), so every SQE pushed during a pass
//! reaches the kernel in one `io_uring_enter`. `flush` skips the syscall when
//! nothing is queued and the kernel signals no pending completions
//! (`IORING_SQ_TASKRUN` with `DEFER_TASKRUN`, or CQ entries visible beyond
//! the held ones).
//!
//! On `DEFER_TASKRUN` rings a reap leaves its batch in the CQ until the
//! next one ("held completions", see [`cq`]).
//!
//! # Files
//!
//! This file holds the ring, its lock and submission (`push`, `submit`,
//! `flush`), binding to an owner thread and shutdown; [`cq`] the
//! completion side, `wait` the blocking enter (and the spin before it),
//! `cancel` the cancellations, `buf_groups` provided-buffer rings'
//! registration. The ops themselves are in [`ops`], their slots in
//! [`slots`].

mod buf_groups;
mod cancel;
mod cq;
pub(crate) mod fd;
pub(crate) mod graveyard;
pub(crate) mod op;
pub(crate) mod ops;
pub(crate) mod ring;
pub(crate) mod slots;
pub(crate) mod stream;
mod wait;
pub(crate) mod wakeup;

use std::cell::UnsafeCell;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;
use io_uring::{opcode, squeue, types, IoUring};

use crate::runtime::cell::ModeLock;
use buf_groups::BufGroups;
use ring::RingConfig;
use slots::{Completion, Effects, Slots};
use wakeup::Wakeup;

/// user_data of `ASYNC_CANCEL` SQEs (their CQEs only count down `inflight`).
pub(crate) const CANCEL_TOKEN: u64 = u64::MAX - 1;

/// user_data of the `NOP`s another thread submits to end the leader's
/// kernel wait (multi-threaded mode, see [`Driver::wake_surely`]); reaped and
/// ignored.
pub(crate) const NOP_WAKE_TOKEN: u64 = u64::MAX - 2;

/// How long shutdown waits for cancelled ops' CQEs before it leaks their
/// memory instead.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

pub(crate) struct Core {
    pub(crate) slots: Slots,
    closed: bool,
    /// Single-threaded: the thread the ring is bound to (SINGLE_ISSUER).
    bound: Option<ThreadId>,
    /// Wakers and garbage produced where they could not be run (inside
    /// `push`, under the lock); handed to the next flush or wait.
    deferred: Effects,
    /// Buffer-group ids of the provided-buffer rings registered here.
    buf_groups: BufGroups,
    /// CQEs at the head of the CQ already dispatched but left there until
    /// the next reap (DEFER_TASKRUN rings only; `cq` module docs, "Held
    /// completions").
    cq_held: u32,
}

#[derive(Default)]
pub(crate) struct DriverCounters {
    pub(crate) sqes_submitted: AtomicU64,
    pub(crate) enter_calls: AtomicU64,
    pub(crate) cqes_reaped: AtomicU64,
    pub(crate) wakeups: AtomicU64,
    pub(crate) ops_cancelled: AtomicU64,
    pub(crate) ops_resubmitted: AtomicU64,
    pub(crate) spin_hits: AtomicU64,
}

pub(crate) struct Driver {
    ring: UnsafeCell<Option<IoUring>>,
    pub(crate) core: ModeLock<Core>,
    wakeup: Wakeup,
    /// SQEs whose terminal CQE has not been reaped (ops and cancels; not the
    /// wake-up poll, which is always armed).
    inflight: CachePadded<AtomicUsize>,
    /// SQEs queued but not yet consumed by the kernel, as of the last time
    /// someone holding the lock looked: a lock-free hint (the SQ indices
    /// themselves may only be read under the lock, because the io-uring
    /// crate's queue views write them back when dropped).
    sq_queued: AtomicUsize,
    cfg: RingConfig,
    pub(crate) counters: DriverCounters,
    /// Provided-buffer rings registered and not yet dropped (any thread
    /// drops them; the unregistration itself may be queued to the owner).
    buf_rings_live: AtomicUsize,
}

// SAFETY: `ring` is only replaced under the rules in the module docs; every
// other use is through `&IoUring`, whose methods used here are either
// syscalls (thread-safe) or SQ/CQ access serialised by the `core` lock.
unsafe impl Sync for Driver {}
// SAFETY: all fields are owned; the ring may be dropped on any thread.
unsafe impl Send for Driver {}

impl Driver {
    pub(crate) fn new(cfg: RingConfig) -> io::Result<Driver> {
        let ring = ring::create(&cfg)?;
        let wakeup = Wakeup::new()?;
        let driver = Driver {
            ring: UnsafeCell::new(Some(ring)),
            core: ModeLock::new(
                "driver",
                !cfg.single_threaded,
                Core {
                    slots: Slots::default(),
                    closed: false,
                    bound: None,
                    deferred: Effects::default(),
                    buf_groups: BufGroups::default(),
                    cq_held: 0,
                },
            ),
            wakeup,
            inflight: CachePadded::new(AtomicUsize::new(0)),
            sq_queued: AtomicUsize::new(0),
            cfg,
            counters: DriverCounters::default(),
            buf_rings_live: AtomicUsize::new(0),
        };
        // Armed now, submitted by the first flush or wait.
        // SAFETY: no other thread can see the driver yet.
        let mut core = unsafe { driver.core.lock_unchecked() };
        driver.push(&mut core, &driver.wakeup.arm_sqe())?;
        drop(core);
        Ok(driver)
    }

    /// The ring, or `None` after shutdown.
    fn ring(&self) -> Option<&IoUring> {
        // SAFETY: see the access rules; replacement never overlaps a use.
        unsafe { (*self.ring.get()).as_ref() }
    }

    /// Wakes whoever waits in the kernel on this ring (any thread), by
    /// writing the eventfd its multishot poll watches.
    pub(crate) fn wake(&self) {
        self.counters.wakeups.fetch_add(1, Ordering::Relaxed);
        self.wakeup.wake();
    }

    /// [`wake`](Self::wake) for a wake that must not be lost even while
    /// runner threads are leaving (a stop). Multi-threaded rings: a `NOP`
    /// submitted by the calling thread, which completes inside that
    /// thread's own `io_uring_enter`, posting its CQE and waking the waiter
    /// directly. The eventfd poll's completion is instead delivered as task
    /// work to whichever thread submitted the poll — a runner that may be
    /// exiting at that moment — and a stop's wake was seen lost that way
    /// (the leader slept on in the kernel with the context stopped; 1 in
    /// about 50 runs of the 2-thread `io_context.multithreaded` bench cell).
    /// Falls back to the eventfd when the ring's lock is busy; single-
    /// threaded rings, which no other thread may enter, always use it.
    pub(crate) fn wake_surely(&self) {
        if !self.cfg.single_threaded && self.wake_by_nop() {
            self.counters.wakeups.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.wake();
    }

    /// See [`wake_surely`](Self::wake_surely). `false` if the lock was busy or the NOP
    /// could not be queued.
    fn wake_by_nop(&self) -> bool {
        let Some(mut core) = self.core.try_lock() else {
            return false;
        };
        let Some(ring) = self.ring() else {
            return false;
        };
        if core.closed {
            return false;
        }
        let nop = opcode::Nop::new().build().user_data(NOP_WAKE_TOKEN);
        if self.push(&mut core, &nop).is_err() {
            return false;
        }
        let ok = self.enter_submit(ring, core.cq_held).is_ok();
        self.sync_sq_hint(ring);
        ok
    }

    pub(crate) fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Acquire)
    }

    /// Binds a single-threaded ring to the calling (owner) thread. A ring
    /// created `R_DISABLED` is enabled here; a ring bound to another thread
    /// is rebuilt if nothing is in flight on it, and refused otherwise.
    pub(crate) fn bind_owner(&self, core: &mut Core) -> io::Result<()> {
        let me = thread::current().id();
        match core.bound {
            Some(t) if t == me => Ok(()),
            _ if core.closed => Ok(()),
            None => {
                let ring = self.ring().expect("open ring");
                ring.submitter().register_enable_rings()?;
                core.bound = Some(me);
                Ok(())
            }
            Some(_) => {
                // CQEs already posted can be reaped from any thread; only
                // what is still in the kernel pins the ring.
                let mut fx = std::mem::take(&mut core.deferred);
                self.reap(core, &mut fx);
                core.deferred = fx;
                if self.buf_rings_live.load(Ordering::Acquire) != 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::WouldBlock,
                        "ringio: this single-threaded IoContext has a BufRing registered on a \
                         ring bound (SINGLE_ISSUER) to another thread; drop the BufRing (and its \
                         buffers and receives) first, or build the context without \
                         single_threaded(true)",
                    ));
                }
                if self.inflight() != 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::WouldBlock,
                        "ringio: this single-threaded IoContext has I/O in flight on a ring bound \
                         (SINGLE_ISSUER) to another thread; drive it from that thread until the \
                         I/O completes, or build the context without single_threaded(true)",
                    ));
                }
                let fresh = ring::create(&self.cfg)?;
                fresh.submitter().register_enable_rings()?;
                core.buf_groups = core.buf_groups.for_new_ring();
                // SAFETY: single-threaded owner with nothing in flight: no
                // other user of the ring exists (module docs, rule (b)).
                unsafe { *self.ring.get() = Some(fresh) };
                core.cq_held = 0;
                core.bound = Some(me);
                self.push(core, &self.wakeup.arm_sqe())
            }
        }
    }

    /// Whether this thread may enter the ring (single-threaded rings only
    /// accept their bound thread).
    fn may_enter(&self, core: &Core) -> bool {
        !self.cfg.single_threaded || core.bound == Some(thread::current().id())
    }

    /// Pushes one SQE; a full SQ is flushed to the kernel and retried, never
    /// dropped.
    fn push(&self, core: &mut Core, sqe: &squeue::Entry) -> io::Result<()> {
        let Some(ring) = self.ring() else {
            return Err(closed_error());
        };
        loop {
            {
                // SAFETY: the core lock is held, so this is the only live
                // SubmissionQueue; the entry's pointers are kept valid by the
                // op that owns them until its CQE (slots.rs, rule 2).
                let mut sq = unsafe { ring.submission_shared() };
                // SAFETY: as above.
                if unsafe { sq.push(sqe) }.is_ok() {
                    self.sq_queued.store(sq.len(), Ordering::Relaxed);
                    return Ok(());
                }
            }
            if !self.may_enter(core) {
                return Err(io::Error::other(
                    "ringio: submission queue full and the ring is not enterable from this thread",
                ));
            }
            match self.enter_submit(ring, core.cq_held) {
                Ok(_) => {}
                // CQ overflow backlog: reap to make room, then retry.
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    // Wakers may run foreign code: defer them past the lock.
                    let mut fx = std::mem::take(&mut core.deferred);
                    self.reap(core, &mut fx);
                    core.deferred = fx;
                }
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Submits a new op. Returns its slot key.
    pub(crate) fn submit(
        &self,
        core: &mut Core,
        sqe: squeue::Entry,
        waker: &std::task::Waker,
        multishot: bool,
        fd: Option<RawFd>,
    ) -> io::Result<usize> {
        if core.closed {
            return Err(closed_error());
        }
        let key = core.slots.insert(waker, multishot);
        crate::trace::trace_event!(key, opcode = sqe.get_opcode(), multishot, "submit");
        let sqe = sqe.user_data(key as u64);
        if let Err(e) = self.push(core, &sqe) {
            core.slots.remove_unsubmitted(key);
            return Err(e);
        }
        if !self.cfg.single_threaded {
            core.slots.keep_for_resubmit(key, sqe, fd);
        }
        self.inflight.fetch_add(1, Ordering::Release);
        Ok(key)
    }

    /// One `io_uring_enter` that submits what is queued and (with
    /// DEFER_TASKRUN) runs deferred completions, without waiting: it asks
    /// for the `held` CQEs already in the ring (`cq` module docs, "Held
    /// completions"), which also lets it run that many deferred ones.
    fn enter_submit(&self, ring: &IoUring, held: u32) -> io::Result<usize> {
        if !ring.params().is_setup_sqpoll() {
            self.counters.enter_calls.fetch_add(1, Ordering::Relaxed);
        }
        let n = ring.submitter().submit_and_wait(held as usize)?;
        self.counters
            .sqes_submitted
            .fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    /// Lock-free hint: SQEs are queued for the kernel.
    pub(crate) fn sq_queued(&self) -> bool {
        self.sq_queued.load(Ordering::Relaxed) > 0
    }

    /// Refreshes the `sq_queued` hint (under the lock).
    fn sync_sq_hint(&self, ring: &IoUring) {
        // SAFETY: under the core lock: the only live SubmissionQueue.
        let sq = unsafe { ring.submission_shared() };
        self.sq_queued.store(sq.len(), Ordering::Relaxed);
    }

    /// Whether a non-blocking [`flush`](Self::flush) has anything to do:
    /// SQEs queued, deferred completions (`IORING_SQ_TASKRUN`), a CQ
    /// overflow backlog, or CQEs ready to reap.
    pub(crate) fn has_pending(&self, core: &Core) -> bool {
        let Some(ring) = self.ring() else {
            return false;
        };
        // SAFETY: under the core lock (the `core` borrow proves it): the
        // only live queue views.
        let (sq, cq) = unsafe { (ring.submission_shared(), ring.completion_shared()) };
        !sq.is_empty() || sq.taskrun() || sq.cq_overflow() || core.has_new_cqes(cq.len())
    }

    /// Submits queued SQEs and reaps ready CQEs without blocking.
    pub(crate) fn flush(&self, core: &mut Core, fx: &mut Effects) {
        fx.append(&mut core.deferred);
        let Some(ring) = self.ring() else { return };
        if !self.may_enter(core) {
            return;
        }
        let need_enter = {
            // SAFETY: under the core lock (module docs).
            let sq = unsafe { ring.submission_shared() };
            !sq.is_empty() || sq.taskrun() || sq.cq_overflow()
        };
        if need_enter {
            // EBUSY/EINTR: reaping below makes progress; the next pass retries.
            let _ = self.enter_submit(ring, core.cq_held);
            self.sync_sq_hint(ring);
        }
        self.reap(core, fx);
    }

    /// Shutdown, steps 4–6 (see `runtime::scheduler`): cancel every op still
    /// in the kernel, wait up to [`SHUTDOWN_GRACE`] for their CQEs, abandon
    /// (leak) what remains, and close the ring.
    pub(crate) fn shutdown(&self, core: &mut Core, fx: &mut Effects) {
        if core.closed {
            return;
        }
        if self.may_enter(core) {
            for key in core.slots.live_keys() {
                core.slots.cancel_requested(key);
                self.cancel_key(core, key);
            }
            let deadline = Instant::now() + SHUTDOWN_GRACE;
            while self.inflight() > 0 {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                let ring = self.ring().expect("open ring");
                let ts = types::Timespec::from(deadline - now);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.counters.enter_calls.fetch_add(1, Ordering::Relaxed);
                let _ = ring
                    .submitter()
                    .submit_with_args(core.cq_held as usize + 1, &args);
                self.reap(core, fx);
            }
        }
        core.slots.abandon_in_kernel(fx);
        core.closed = true;
        // SAFETY: shutdown runs with no runner left (module docs, rule (a)).
        // Closing the ring makes the kernel cancel whatever remains; the
        // memory of those ops was just leaked, never freed.
        unsafe { *self.ring.get() = None };
    }
}

pub(crate) fn closed_error() -> io::Error {
    io::Error::other("ringio: the IoContext was shut down (its last handle was dropped)")
}

/// A completion for an op polled with no context to run it.
pub(crate) fn no_context_completion() -> Completion {
    Completion::error(io::Error::other(
        "ringio: I/O started outside a running IoContext (call it from a task, block_on or a handler)",
    ))
}
