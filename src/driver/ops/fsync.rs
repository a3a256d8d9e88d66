//! `IORING_OP_FSYNC`: flush a file's data (and, unless `data_only`, its
//! metadata) to the device.

use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue, types};

use crate::driver::op::OpCode;
use crate::driver::slots::{CancelledOp, Completion};

pub(crate) struct Fsync {
    /// Kept open by the caller's handle, which cancels its ops (and flushes
    /// the cancel) before it closes the fd.
    fd: RawFd,
    data_only: bool,
}

impl Fsync {
    pub(crate) fn new(fd: RawFd, data_only: bool) -> Self {
        Fsync { fd, data_only }
    }
}

impl CancelledOp for Fsync {}

impl OpCode for Fsync {
    type Output = io::Result<()>;

    fn sqe(&mut self) -> squeue::Entry {
        let flags = if self.data_only {
            types::FsyncFlags::DATASYNC
        } else {
            types::FsyncFlags::empty()
        };
        opcode::Fsync::new(types::Fd(self.fd)).flags(flags).build()
    }

    fn complete(self, c: Completion) -> io::Result<()> {
        c.result.map(|_| ())
    }
}
