//! The single-threaded loop: the owner thread's local queue, remote work
//! handed to it through the [`Inject`] queue, and its park in the kernel
//! (the [`Parker`] handshake of [`crate::runtime::park`]). Steps of a pass
//! as in the parent module's docs.

use std::sync::Arc;
use std::time::Instant;

use super::{min_opt, Queue, Remote, Shared, EVENT_INTERVAL};
use crate::driver::slots::Effects;
use crate::runtime::cell::{ModeGuard, ModeLock};
use crate::runtime::frame::{self, Frame};
use crate::runtime::metrics::Counters;
use crate::runtime::park::{Inject, Parker};
use crate::runtime::run_queue::WaitMode;
use crate::runtime::task::TaskQueue;

impl Shared {
    /// The local ready queue of a single-threaded context, for its owner
    /// (the caller runs it: `do_some_single`, `drain_inject`).
    #[inline]
    pub(super) fn owner_queue<'a>(
        &self,
        local: &'a ModeLock<TaskQueue>,
    ) -> ModeGuard<'a, TaskQueue> {
        debug_assert!(frame::is_running(self));
        // SAFETY: only called on the thread running this single-threaded
        // context (inside `with_runner`), which is its owner, with the
        // local queue of `Queue::Single`, always made non-locking; the
        // guard's re-entrancy flag still catches a nested borrow.
        unsafe { local.borrow_unlocked() }
    }

    /// Owner only: moves remote work into the local queue, runs remote calls.
    pub(super) fn drain_inject(&self) -> usize {
        let Queue::Single { local, inject, .. } = &self.queue else {
            return 0;
        };
        if inject.is_empty() {
            return 0;
        }
        let items = inject.take();
        let n = items.len();
        for item in items {
            match item {
                Remote::Task(r) => self.owner_queue(local).push_back(r),
                Remote::Call(f) => f(self),
            }
        }
        n
    }

    /// A closed single-threaded context has no owner: whoever queued remote
    /// work becomes one just long enough to run (or drop) it.
    pub(super) fn drain_closed_inject(&self) {
        let Queue::Single { inject, .. } = &self.queue else {
            return;
        };
        let _runner = self.runner.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: the caller holds a strong reference to `self` (every path
        // here starts from an `Arc<Shared>` or a task's metadata), so the
        // count can be bumped and an Arc rebuilt from the pointer.
        let arc = unsafe {
            Arc::increment_strong_count(self as *const Shared);
            Arc::from_raw(self as *const Shared)
        };
        let mut frame = Frame::detached(&arc);
        let _g = frame.enter();
        for item in inject.take() {
            match item {
                Remote::Task(r) => drop(r),
                Remote::Call(f) => f(self),
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn do_some_single(
        &self,
        frame: &Frame,
        wait: WaitMode,
        interrupt: &dyn Fn() -> bool,
        (max, interrupt_each): (usize, bool),
        local: &ModeLock<TaskQueue>,
        inject: &Inject<Remote>,
        parker: &Parker,
    ) -> usize {
        let mut ran = 0;
        loop {
            if (ran == 0 || interrupt_each) && interrupt() {
                return ran;
            }
            if frame.since_flush.get() >= EVENT_INTERVAL {
                self.maintain(frame);
            }
            let next = {
                let mut q = self.owner_queue(local);
                let next = q.pop_front();
                frame.others_ready.set(!q.is_empty());
                next
            };
            if let Some(r) = next {
                self.run_task(frame, r);
                ran += 1;
                if ran == max {
                    return ran;
                }
                continue;
            }
            if ran > 0 {
                // Nothing ready: let the caller decide whether to wait.
                return ran;
            }
            if self.drain_inject() > 0 || self.expire_timers() > 0 {
                continue;
            }
            // The frame's unused work credit goes back before the count is
            // read (see `crate::runtime::frame`).
            frame.flush_tallies();
            if self.outstanding() == 0 {
                return 0;
            }
            let until = match wait {
                WaitMode::Poll => None,
                WaitMode::Block => Some(None),
                WaitMode::Until(d) => (Instant::now() < d).then_some(Some(d)),
            };
            let Some(until) = until else {
                // May not block: one non-blocking look at the ring.
                frame.since_flush.set(0);
                self.flush_ring();
                if self.owner_queue(local).is_empty() {
                    return 0;
                }
                continue;
            };
            // Park (see `crate::runtime::park` for why no wake can be lost here).
            parker.prepare_park();
            // After the fence of `prepare_park`: a last finish by another
            // thread that did not see our own finishes is seen here (see
            // `work_finished`).
            if !inject.is_empty() || interrupt() {
                parker.finish_park();
                continue;
            }
            if self.outstanding() == 0 {
                parker.finish_park();
                self.stop();
                continue;
            }
            let now = Instant::now();
            let timeout = min_opt(
                self.timers.time_to_next(now),
                until.map(|d| d.saturating_duration_since(now)),
            );
            let mut fx = Effects::reuse();
            {
                let core = self.lock_driver().expect("owner");
                Counters::bump(&self.metrics.leader_waits, 1);
                self.driver.wait(core, timeout, &mut fx);
            }
            parker.finish_park();
            frame.since_flush.set(0);
            fx.run_and_recycle();
            self.expire_timers();
        }
    }
}
