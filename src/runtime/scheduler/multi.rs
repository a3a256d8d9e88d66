//! The multi-threaded loop: runners sharing one [`RunQueue`], one of them
//! at a time the leader that waits in the kernel (the protocol is in
//! [`crate::runtime::run_queue`]; the steps of a pass in the parent
//! module's docs).

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{min_opt, Queue, Runnable, Shared, EVENT_INTERVAL};
use crate::driver::slots::Effects;
use crate::runtime::frame::Frame;
use crate::runtime::metrics::Counters;
use crate::runtime::run_queue::{Next, RunQueue, WaitMode, Wake as QueueWake};

/// Tasks a multi-threaded runner may take ahead from the shared queue per
/// lock (besides the one it runs), at most half of what is left.
const STASH_MAX: usize = 16;

impl Shared {
    pub(super) fn do_one_multi(
        &self,
        frame: &Frame,
        wait: WaitMode,
        interrupt: &dyn Fn() -> bool,
        q: &RunQueue<Runnable>,
    ) -> usize {
        loop {
            if frame.since_flush.get() >= EVENT_INTERVAL {
                self.maintain_multi(frame, q);
            }
            let stashed = frame.stash.borrow_mut().pop_front();
            if let Some(r) = stashed {
                if interrupt() {
                    frame.stash.borrow_mut().push_front(r);
                    self.give_back_stash(frame);
                    return 0;
                }
                self.run_task(frame, r);
                return 1;
            }
            // Before this thread may sleep as a follower, the SQEs its
            // handlers queued must reach the kernel (the leader may be asleep
            // already): `next` asks for a flush first.
            let must_flush = frame.since_flush.get() > 0 && self.driver.sq_queued();
            // This runner's finished work and unused work credit are
            // published before it may lead, sleep or leave (see
            // `work_finished`), but not on every trip to the queue: the
            // count is written by every spawn from outside, so touching it
            // per task would bounce its cache line between feeder and
            // runners. `next` says when (`Next::Publish`).
            let next = q.next(
                wait,
                interrupt,
                || self.outstanding() > 0,
                (must_flush, frame.has_unpublished_work()),
                &mut frame.stash.borrow_mut(),
                STASH_MAX,
            );
            match next {
                Next::Run(r, wake) => {
                    if wake == QueueWake::Leader {
                        self.driver.wake();
                    }
                    self.run_task(frame, r);
                    return 1;
                }
                Next::Flush => {
                    frame.since_flush.set(0);
                    self.reaping(|| self.flush_ring());
                }
                Next::Publish => self.work_finished_n(frame.take_unpublished_work()),
                Next::Idle(wake) => {
                    if wake == QueueWake::Leader {
                        self.driver.wake();
                    }
                    return 0;
                }
                Next::Lead => {
                    if self.lead(frame, wait, interrupt, q) {
                        continue;
                    }
                    return 0;
                }
            }
        }
    }

    /// Step 2 of a pass, multi-threaded. While a leader is under way it
    /// reaps the ring itself (a parked leader wakes on any CQE), so a busy
    /// runner with no SQEs of its own to submit leaves the ring alone: its
    /// reap would only take CQEs the leader is woken for — among them the
    /// leader's own wake-up, which then has to be sent again. The leader
    /// check is a lock-free hint; a stale answer costs a skipped or an
    /// extra flush, never a wake-up (`reaping` covers every reap).
    fn maintain_multi(&self, frame: &Frame, q: &RunQueue<Runnable>) {
        if q.has_leader() && !self.driver.sq_queued() {
            frame.since_flush.set(0);
            frame.flush_tallies();
            self.expire_timers();
        } else {
            self.reaping(|| self.maintain(frame));
        }
    }

    /// Runs `flush`, a non-blocking look at the ring by a thread that is not
    /// the leader, and, multi-threaded, if it reaped anything, re-sends the
    /// wake of a parked leader that it may have consumed (see "A wake CQE
    /// reaped by someone else" in [`crate::runtime::run_queue`]). The driver's reaped
    /// count tells: this thread sees its own increments, and another
    /// thread's only make the check more eager.
    pub(super) fn reaping(&self, flush: impl FnOnce()) {
        let Queue::Multi(q) = &self.queue else {
            return flush();
        };
        let reaped = || self.driver.counters.cqes_reaped.load(Ordering::Relaxed);
        let before = reaped();
        flush();
        if reaped() != before && q.rewake() == QueueWake::Leader {
            self.driver.wake_surely();
        }
    }

    /// A multi-threaded runner that stops running gives the tasks it took
    /// ahead back to the shared queue.
    pub(super) fn give_back_stash(&self, frame: &Frame) {
        if let Queue::Multi(q) = &self.queue {
            let mut stash = frame.stash.borrow_mut();
            if q.give_back(&mut stash) == QueueWake::Leader {
                self.driver.wake();
            }
        }
    }

    /// One leadership: flush, reap, fire timers, and if nothing is ready
    /// wait in the kernel. Returns `false` if the caller must return 0
    /// (non-blocking mode with nothing found).
    fn lead(
        &self,
        frame: &Frame,
        wait: WaitMode,
        interrupt: &dyn Fn() -> bool,
        q: &RunQueue<Runnable>,
    ) -> bool {
        frame.since_flush.set(0);
        frame.flush_tallies();
        let mut fx = Effects::reuse();
        if let Some(mut core) = self.lock_driver() {
            self.driver.flush(&mut core, &mut fx);
        }
        // Dropping a cancelled op's data may wake a task (a read waiting for
        // a cancelled read to settle, `net::carry`): do it now, so the task
        // is queued before `park_leader` looks, not after the next wait.
        fx.garbage.clear();
        let now = Instant::now();
        self.expire_timers_into(now, &mut fx.wakers);
        let until = match wait {
            WaitMode::Poll => None,
            WaitMode::Block => Some(None),
            WaitMode::Until(d) => (now < d).then_some(Some(d)),
        };
        let Some(until) = until.filter(|_| fx.wakers.is_empty()) else {
            q.finish_lead(None);
            let found = !fx.wakers.is_empty();
            fx.run_and_recycle();
            return found || q.len() > 0;
        };
        let timeout = {
            let store = self.lock(&self.timers.store).expect("locking");
            min_opt(
                self.timers.leader_timeout(&store, now),
                until.map(|d| d.saturating_duration_since(now)),
            )
        };
        if q.park_leader(interrupt) {
            let core = self.lock_driver().expect("locking");
            Counters::bump(&self.metrics.leader_waits, 1);
            self.driver.wait(core, timeout, &mut fx);
        }
        self.timers.leader_awake();
        let now = Instant::now();
        self.expire_timers_into(now, &mut fx.wakers);
        q.finish_lead(None);
        fx.run_and_recycle();
        true
    }
}
