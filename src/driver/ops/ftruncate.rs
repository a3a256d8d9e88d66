//! `IORING_OP_FTRUNCATE` (Linux 6.9): set a file's length.

use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue, types};

use crate::driver::op::OpCode;
use crate::driver::slots::{CancelledOp, Completion};

pub(crate) struct Ftruncate {
    /// Kept open by the caller's handle (see [`super::fsync`]).
    fd: RawFd,
    len: u64,
}

impl Ftruncate {
    pub(crate) fn new(fd: RawFd, len: u64) -> Self {
        Ftruncate { fd, len }
    }
}

impl CancelledOp for Ftruncate {}

impl OpCode for Ftruncate {
    type Output = io::Result<()>;

    fn sqe(&mut self) -> squeue::Entry {
        opcode::Ftruncate::new(types::Fd(self.fd), self.len).build()
    }

    fn complete(self, c: Completion) -> io::Result<()> {
        c.result.map(|_| ())
    }
}
