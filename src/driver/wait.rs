//! Waiting in the kernel: the one blocking `io_uring_enter` of a pass
//! (bounded by the nearest timer), and the optional spin before it
//! (`Builder::spin_before_park`).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use io_uring::{types, IoUring};

use super::slots::Effects;
use super::{Core, Driver};
use crate::runtime::cell::ModeGuard;

/// Pause instructions between two looks at the ring while spinning before
/// a park (`Builder::spin_before_park`): a look reads two shared cache
/// lines and the clock; this keeps it a small share of the spin.
const SPIN_PAUSES: u32 = 64;

/// One pause between two looks at the ring (see [`SPIN_PAUSES`]).
fn spin_pause() {
    for _ in 0..SPIN_PAUSES {
        std::hint::spin_loop();
    }
}

impl Driver {
    /// Waits in the kernel for at least one CQE or `timeout`, submitting
    /// queued SQEs in the same call, then reaps. Single-threaded callers hold
    /// the (lockless) core guard throughout; the multi-threaded leader passes
    /// the lock in and it is released around the wait.
    pub(crate) fn wait(
        &self,
        mut core: ModeGuard<'_, Core>,
        timeout: Option<Duration>,
        fx: &mut Effects,
    ) {
        fx.append(&mut core.deferred);
        let Some(ring) = self.ring() else { return };
        if !self.may_enter(&core) {
            return;
        }
        let core = self.spin_before_park(core, ring, timeout);
        let held_cqes = core.cq_held;
        let unlocked = self.core.is_locking();
        let held = if unlocked {
            drop(core);
            None
        } else {
            Some(core)
        };
        self.counters.enter_calls.fetch_add(1, Ordering::Relaxed);
        crate::trace::trace_event!(timeout_us = timeout.map(|t| t.as_micros() as u64), "wait");
        let submitter = ring.submitter();
        let res = match timeout {
            Some(t) => {
                let ts = types::Timespec::new()
                    .sec(t.as_secs())
                    .nsec(t.subsec_nanos());
                let args = types::SubmitArgs::new().timespec(&ts);
                submitter.submit_with_args(held_cqes as usize + 1, &args)
            }
            None => submitter.submit_and_wait(held_cqes as usize + 1),
        };
        if let Ok(n) = res {
            self.counters
                .sqes_submitted
                .fetch_add(n as u64, Ordering::Relaxed);
        }
        // ETIME (deadline), EINTR (signal), EBUSY (CQ backlog) and EAGAIN all
        // end the wait; the reap below makes progress in each case.
        let mut core = match held {
            Some(core) => core,
            // SAFETY: multi-threaded mode: a real mutex is taken.
            None => unsafe { self.core.lock_unchecked() },
        };
        self.sync_sq_hint(ring);
        self.reap(&mut core, fx);
    }

    /// `Builder::spin_before_park`: polls the ring, for at most the
    /// configured time and never past `timeout`, until the kernel has
    /// something for this runner: a CQE, or (DEFER_TASKRUN) deferred
    /// completions flagged by `IORING_SQ_TASKRUN`. The wait that follows
    /// then returns at once instead of sleeping, so the wake-up (which on a
    /// VM can cost tens of µs) is avoided. Queued SQEs are submitted first:
    /// the work being waited for may depend on them.
    ///
    /// The caller is about to wait: every way of giving it work ends in a
    /// CQE or in deferred work (a wake-up is an eventfd write, which the
    /// multishot poll turns into a completion), so the spin sees each of
    /// them. Multi-threaded, the lock is released between two looks so
    /// the other runners keep using the ring; one of them may reap the
    /// CQE meant for this leader meanwhile, which the run queue's re-wake
    /// rule covers exactly as for a leader asleep in the kernel. A missed
    /// look would only mean sleeping as without the spin.
    fn spin_before_park<'a>(
        &'a self,
        mut core: ModeGuard<'a, Core>,
        ring: &IoUring,
        timeout: Option<Duration>,
    ) -> ModeGuard<'a, Core> {
        let limit = match timeout {
            Some(t) => t.min(self.cfg.spin_before_park),
            None => self.cfg.spin_before_park,
        };
        if limit.is_zero() {
            return core;
        }
        // SAFETY: under the core lock (the guard): the only live SQ view.
        if !unsafe { ring.submission_shared() }.is_empty() {
            // EBUSY/EINTR: the wait that follows submits them again.
            let _ = self.enter_submit(ring, core.cq_held);
            self.sync_sq_hint(ring);
        }
        let start = Instant::now();
        loop {
            {
                // SAFETY: under the core lock (the guard): the only live
                // queue views.
                let (sq, cq) = unsafe { (ring.submission_shared(), ring.completion_shared()) };
                if sq.taskrun() || sq.cq_overflow() || core.has_new_cqes(cq.len()) {
                    self.counters.spin_hits.fetch_add(1, Ordering::Relaxed);
                    return core;
                }
            }
            if start.elapsed() >= limit {
                return core;
            }
            if self.core.is_locking() {
                drop(core);
                spin_pause();
                // SAFETY: multi-threaded mode: a real mutex is taken.
                core = unsafe { self.core.lock_unchecked() };
            } else {
                spin_pause();
            }
        }
    }
}
