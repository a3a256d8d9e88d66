//! Cancelling ops: a dropped future's op, an op its owner still polls, and
//! every op on a file descriptor (before it is closed). Each is an
//! `ASYNC_CANCEL` SQE whose CQE only counts down `inflight`; the op itself
//! completes (`ECANCELED` or its result) through its slot.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;

use io_uring::{opcode, types};

use super::slots::{AfterDrop, CancelledOp, Effects};
use super::{Core, Driver, CANCEL_TOKEN};

impl Driver {
    /// The future or stream owning `key` was dropped.
    pub(crate) fn drop_op(
        &self,
        core: &mut Core,
        key: usize,
        data: Box<dyn CancelledOp>,
        fx: &mut Effects,
    ) {
        if core.slots.drop_op(key, data, fx) == AfterDrop::SubmitCancel {
            self.counters.ops_cancelled.fetch_add(1, Ordering::Relaxed);
            self.cancel_key(core, key);
        }
    }

    /// Cancels an op whose owner still polls it (its slot stays live and
    /// receives the `ECANCELED` completion).
    pub(crate) fn cancel_owned(&self, core: &mut Core, key: usize) {
        if core.closed || !core.slots.is_live(key) {
            return;
        }
        core.slots.cancel_requested(key);
        self.counters.ops_cancelled.fetch_add(1, Ordering::Relaxed);
        self.cancel_key(core, key);
    }

    /// Asks the kernel to cancel the op in slot `key`. Best effort: if the
    /// cancel cannot be queued the op still completes on its own, and its
    /// slot is freed then.
    pub(super) fn cancel_key(&self, core: &mut Core, key: usize) {
        crate::trace::trace_event!(key, "cancel");
        let sqe = opcode::AsyncCancel::new(key as u64)
            .build()
            .user_data(CANCEL_TOKEN);
        if self.push(core, &sqe).is_ok() {
            self.inflight.fetch_add(1, Ordering::Release);
        }
    }

    /// Cancels every op on `fd` and flushes the cancel to the kernel *now*,
    /// while `fd` is still open (the number may be reused after close).
    pub(crate) fn cancel_fd_and_flush(&self, core: &mut Core, fd: RawFd) -> io::Result<()> {
        if core.closed {
            return Ok(());
        }
        self.cancel_fd(core, fd)?;
        if self.may_enter(core) {
            let ring = self.ring().expect("open ring");
            let _ = self.enter_submit(ring, core.cq_held);
            // With DEFER_TASKRUN the cancelled requests finish (and drop
            // their reference to the file) only when task work runs, which
            // takes an enter with GETEVENTS: without it a closed listener
            // would keep accepting until the next wait. `submit` adds
            // GETEVENTS when the kernel flags pending task work.
            // SAFETY: under the core lock: the only live SubmissionQueue.
            if unsafe { ring.submission_shared() }.taskrun() {
                let _ = self.enter_submit(ring, core.cq_held);
            }
            self.sync_sq_hint(ring);
        }
        Ok(())
    }

    /// Queues `ASYNC_CANCEL` for every op on `fd`; those ops report
    /// `ECANCELED` (none is resubmitted). Submitted with the pass's batch.
    pub(crate) fn cancel_fd(&self, core: &mut Core, fd: RawFd) -> io::Result<()> {
        if core.closed {
            return Ok(());
        }
        core.slots.cancel_requested_fd(fd);
        let sqe = opcode::AsyncCancel2::new(types::CancelBuilder::fd(types::Fd(fd)).all())
            .build()
            .user_data(CANCEL_TOKEN);
        self.push(core, &sqe)?;
        self.inflight.fetch_add(1, Ordering::Release);
        Ok(())
    }
}
