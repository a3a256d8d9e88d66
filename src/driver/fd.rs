//! [`RingFd`]: a descriptor used with the ring, closed in the right order.
//!
//! A SQE names its file by number, resolved when the kernel *consumes* the
//! SQE. Closing the descriptor while an SQE naming it (or an op using it) is
//! still queued could let the number be reused by another file, and the op
//! would then act on that file. So dropping a `RingFd` first submits
//! `ASYNC_CANCEL` for every op on the fd and flushes the submission queue to
//! the kernel, and only then calls `close(2)` (the reference scheduler's
//! `cancel_and_flush` lesson).
//!
//! # Skipping the cancel (tracked fds)
//!
//! That cancel costs an SQE and an `io_uring_enter` per close, which adds
//! up when connections are short. A *tracked* `RingFd` (sockets) counts its
//! unfinished ops: [`RingFd::begin_op`] before submitting, and
//! [`OpTicket::finish`] once the op's future has its completion. A future
//! dropped before that never finishes its ticket, so the count stays up. If
//! the count is zero at drop, every op on the fd has delivered its final
//! completion — the kernel consumed their SQEs and holds no reference to
//! the file — and a plain `close(2)` is safe. Otherwise the full
//! cancel-flush-close runs.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use crate::runtime::scheduler::Shared;

#[derive(Debug)]
pub(crate) struct RingFd {
    fd: Option<OwnedFd>,
    /// The context this fd's ops were submitted to.
    ctx: OnceLock<Weak<Shared>>,
    /// Tracked fds: ops begun and not finished (see the module docs).
    unfinished: Option<AtomicUsize>,
}

/// One op's claim on a tracked fd; see [`RingFd::begin_op`].
#[must_use = "an op's ticket is finished when its completion arrives"]
pub(crate) struct OpTicket<'a>(Option<&'a AtomicUsize>);

impl OpTicket<'_> {
    /// The op's future has its final completion: the kernel is done with it.
    pub(crate) fn finish(self) {
        if let Some(n) = self.0 {
            n.fetch_sub(1, Ordering::Release);
        }
    }
}

impl RingFd {
    pub(crate) fn new(fd: OwnedFd) -> Self {
        RingFd {
            fd: Some(fd),
            ctx: OnceLock::new(),
            unfinished: None,
        }
    }

    /// A `RingFd` whose ops go through [`begin_op`](Self::begin_op), so a
    /// close with nothing in flight skips the cancel (module docs).
    pub(crate) fn new_tracked(fd: OwnedFd) -> Self {
        RingFd {
            fd: Some(fd),
            ctx: OnceLock::new(),
            unfinished: Some(AtomicUsize::new(0)),
        }
    }

    /// Call before submitting an op on this fd: records the context (as
    /// [`note_context`](Self::note_context)) and, if tracked, counts the op
    /// until its ticket is finished.
    pub(crate) fn begin_op(&self) -> OpTicket<'_> {
        self.note_context();
        if let Some(n) = &self.unfinished {
            n.fetch_add(1, Ordering::Relaxed);
        }
        OpTicket(self.unfinished.as_ref())
    }

    /// [`begin_op`](Self::begin_op) for an op that outlives the caller's
    /// borrow (kept inside the socket): pair with
    /// [`finish_op`](Self::finish_op) when its completion is taken.
    pub(crate) fn begin_owned_op(&self) {
        // The ticket only counts; dropping it unfinished leaves the op
        // counted until `finish_op`.
        let _ticket = self.begin_op();
    }

    /// Ends an op begun with [`begin_owned_op`](Self::begin_owned_op).
    pub(crate) fn finish_op(&self) {
        OpTicket(self.unfinished.as_ref()).finish();
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.fd.as_ref().map_or(-1, |f| f.as_raw_fd())
    }

    /// Records the context an op on this fd is about to go to (the one
    /// running this thread). Call before submitting.
    pub(crate) fn note_context(&self) {
        if self.ctx.get().is_none() {
            if let Some(shared) = Shared::current() {
                let _ = self.ctx.set(Arc::downgrade(&shared));
            }
        }
    }
}

impl RingFd {
    /// Cancels every op in flight on this fd (they finish with
    /// `ECANCELED`). Nothing to do if no op was ever submitted.
    pub(crate) fn cancel_all(&self) {
        if let Some(shared) = self.ctx.get().and_then(Weak::upgrade) {
            shared.cancel_fd(self.raw());
        }
    }
}

impl AsFd for RingFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // `fd` is only taken by Drop, so it is present whenever a borrow
        // can be made.
        self.fd.as_ref().expect("fd present until drop").as_fd()
    }
}

impl Drop for RingFd {
    fn drop(&mut self) {
        let Some(fd) = self.fd.take() else { return };
        if let Some(n) = &self.unfinished {
            if n.load(Ordering::Acquire) == 0 {
                return; // every op finished: a plain close (module docs)
            }
        }
        let Some(shared) = self.ctx.get().and_then(Weak::upgrade) else {
            return; // never used with a ring: a plain close
        };
        let close = move |s: &Shared| {
            if let Some(mut core) = s.lock_driver() {
                // Best effort: if even the cancel cannot be queued, the ops
                // still complete on their own before the number is reused
                // by us, because close happens only after this flush.
                let _ = s.driver.cancel_fd_and_flush(&mut core, fd.as_raw_fd());
            }
            drop(fd);
        };
        if shared.lock_driver().is_some() {
            close(&shared);
        } else {
            shared.remote(Box::new(close));
        }
    }
}
