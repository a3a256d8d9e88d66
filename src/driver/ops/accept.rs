//! Multishot `IORING_OP_ACCEPT`: one SQE, one CQE per accepted connection.
//!
//! Each CQE carries a new fd (`SOCK_CLOEXEC`). If the stream is dropped,
//! connections the kernel accepted afterwards are closed in `on_cqe`, so a
//! cancelled accept never leaks a descriptor.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use io_uring::{opcode, squeue, types};

use crate::driver::slots::{CancelledOp, Completion};
use crate::driver::stream::MultiOpCode;

pub(crate) struct AcceptMulti {
    /// The listening socket, kept open by its owner for the op's life.
    fd: RawFd,
}

impl AcceptMulti {
    pub(crate) fn new(fd: RawFd) -> Self {
        AcceptMulti { fd }
    }
}

/// Takes ownership of the fd in a successful accept completion.
fn accepted_fd(c: &Completion) -> Option<OwnedFd> {
    match c.result {
        // SAFETY: the kernel just created this descriptor for us and nobody
        // else knows its number.
        Ok(fd) => Some(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }),
        Err(_) => None,
    }
}

impl CancelledOp for AcceptMulti {
    fn on_cqe(&mut self, c: &Completion) {
        // Nobody will take this connection: close it.
        drop(accepted_fd(c));
    }
}

impl MultiOpCode for AcceptMulti {
    type Item = io::Result<OwnedFd>;

    fn sqe(&mut self) -> squeue::Entry {
        opcode::AcceptMulti::new(types::Fd(self.fd))
            .flags(libc::SOCK_CLOEXEC)
            .build()
    }

    fn fd(&self) -> Option<RawFd> {
        Some(self.fd)
    }

    fn item(&mut self, c: Completion) -> io::Result<OwnedFd> {
        match accepted_fd(&c) {
            Some(fd) => Ok(fd),
            None => Err(c.result.expect_err("no fd means an error")),
        }
    }
}
