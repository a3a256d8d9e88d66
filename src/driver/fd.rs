//! [`RingFd`]: a descriptor used with the ring, closed in the right order.
//!
//! A SQE names its file by number, resolved when the kernel *consumes* the
//! SQE. Closing the descriptor while an SQE naming it (or an op using it) is
//! still queued could let the number be reused by another file, and the op
//! would then act on that file. So dropping a `RingFd` first submits
//! `ASYNC_CANCEL` for every op on the fd and flushes the submission queue to
//! the kernel, and only then calls `close(2)` (the reference scheduler's
//! `cancel_and_flush` lesson).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::{Arc, OnceLock, Weak};

use crate::runtime::scheduler::Shared;

#[derive(Debug)]
pub(crate) struct RingFd {
    fd: Option<OwnedFd>,
    /// The context this fd's ops were submitted to.
    ctx: OnceLock<Weak<Shared>>,
}

impl RingFd {
    pub(crate) fn new(fd: OwnedFd) -> Self {
        RingFd {
            fd: Some(fd),
            ctx: OnceLock::new(),
        }
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
