//! The completion side of the ring: [`Driver::reap`] dispatches CQEs to
//! their op slots, and on `DEFER_TASKRUN` rings holds the batch it took.
//!
//! # Held completions (`DEFER_TASKRUN` rings)
//!
//! On a `DEFER_TASKRUN` ring completions are posted only inside our own
//! `io_uring_enter`, and since Linux 6.13 each enter runs at most
//! `max(20, min_complete)` deferred completions per pass, in two passes
//! (`IO_LOCAL_TW_DEFAULT_MAX`): with `min_complete` 0 a busy server gets
//! 40 completions per syscall, whatever is pending. A larger `min_complete`
//! lifts that cap, but makes the enter wait until that many CQEs are in the
//! ring. So [`reap`](Driver::reap) leaves the CQEs it has just dispatched
//! in the CQ (their count is `Core::cq_held`; the head is not moved past
//! them), and every enter asks for `cq_held` CQEs (`cq_held + 1` when it
//! means to sleep). Those are already there: a non-blocking enter never
//! waits, a blocking one waits for one new CQE as before, and each pass
//! runs as many deferred completions as the last batch had CQEs (at least
//! 20), or all that are pending. Rules:
//!
//! * the first `cq_held` CQEs at the head were dispatched already: every
//!   reader of the CQ skips them (`reap` moves the head past them first,
//!   giving their room back; `has_pending` and the spin count only the
//!   rest);
//! * a batch larger than a quarter of the CQ is not held (its room goes
//!   back at once), so the kernel always has most of the CQ to post into;
//! * a new ring starts with nothing held.
//!
//! Measured on `socket.syscalls` (64 connections, 64 B, a saturated server
//! under strace): 40 → 49 messages per enter; echo throughput the same
//! within the machine's noise (16 × 64 B, 8 alternated runs: medians 173 k
//! and 177 k msgs/s without), server CPU at a fixed 50 k msgs/s 35.3%
//! against 37.7% (4 runs).

use std::sync::atomic::Ordering;

use super::slots::Effects;
use super::wakeup::WAKEUP_TOKEN;
use super::{Core, Driver, CANCEL_TOKEN, NOP_WAKE_TOKEN};

impl Driver {
    /// Dispatches every visible CQE to its slot (never to anyone else's).
    pub(super) fn reap(&self, core: &mut Core, fx: &mut Effects) {
        let Some(ring) = self.ring() else { return };
        let mut done = 0usize;
        let mut seen = 0u64;
        let mut rearm = false;
        let mut resubmit = Vec::new();
        {
            // SAFETY: under the core lock: the only live CompletionQueue.
            let mut cq = unsafe { ring.completion_shared() };
            if core.cq_held > 0 {
                // Dispatched by the previous reap: give their room back.
                for _ in (&mut cq).take(core.cq_held as usize) {}
                cq.sync();
                core.cq_held = 0;
            }
            for cqe in &mut cq {
                seen += 1;
                match cqe.user_data() {
                    WAKEUP_TOKEN => {
                        self.wakeup.drain();
                        if !io_uring::cqueue::more(cqe.flags()) {
                            rearm = true;
                        }
                    }
                    CANCEL_TOKEN => done += 1,
                    NOP_WAKE_TOKEN => {}
                    key => {
                        crate::trace::trace_event!(
                            key,
                            res = cqe.result(),
                            more = io_uring::cqueue::more(cqe.flags()),
                            "complete"
                        );
                        let d = core
                            .slots
                            .dispatch(key as usize, cqe.result(), cqe.flags(), fx);
                        if d.last {
                            done += 1;
                        }
                        resubmit.extend(d.resubmit);
                    }
                }
            }
            if self.cfg.defer_taskrun() && seen > 0 && seen <= (cq.capacity() / 4) as u64 {
                // Not moving the head keeps them counted by the kernel, so
                // the next enter may ask for them (module docs, "Held
                // completions"). The view owns nothing: forgetting it only
                // skips the head store of its `Drop`.
                core.cq_held = seen as u32;
                std::mem::forget(cq);
            }
        }
        if done > 0 {
            self.inflight.fetch_sub(done, Ordering::AcqRel);
        }
        if seen > 0 {
            self.counters.cqes_reaped.fetch_add(seen, Ordering::Relaxed);
        }
        // Pushed only now: `push` may enter the ring and reap again, which
        // must not happen while the CQ view above is alive.
        let pushed = (rearm || !resubmit.is_empty()) && !core.closed;
        if rearm && !core.closed {
            // Nothing else can be done if even a flush cannot make room;
            // `push` only fails when the ring is gone or unenterable.
            let _ = self.push(core, &self.wakeup.arm_sqe());
        }
        for sqe in resubmit {
            self.counters
                .ops_resubmitted
                .fetch_add(1, Ordering::Relaxed);
            if let Err(e) = self.push(core, &sqe) {
                // The ring is gone: complete the op with the error instead.
                let key = sqe.get_user_data() as usize;
                core.slots.cancel_requested(key);
                let errno = e.raw_os_error().unwrap_or(libc::ECANCELED);
                core.slots.dispatch(key, -errno, 0, fx);
                self.inflight.fetch_sub(1, Ordering::AcqRel);
            }
        }
        // Submit them now. A leader may already wait in the kernel, and
        // this thread may go to sleep next without entering the ring: a
        // re-arm of the wake-up poll left in the SQ would leave every later
        // wake-up unheard (multi-threaded mode), a resubmitted op hung.
        if pushed && self.may_enter(core) {
            let _ = self.enter_submit(ring, core.cq_held);
            self.sync_sq_hint(ring);
        }
    }
}

impl Core {
    /// Whether a CQ holding `cq_len` entries has any not dispatched yet
    /// (the first `cq_held` were).
    pub(super) fn has_new_cqes(&self, cq_len: usize) -> bool {
        cq_len > self.cq_held as usize
    }
}
