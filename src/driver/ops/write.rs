//! `IORING_OP_WRITE` from an owned buffer, at an offset or (for streams and
//! the file cursor) at the current position.

use std::os::fd::RawFd;

use io_uring::{opcode, squeue, types};

use crate::buf::{BufResult, IoBuf};
use crate::driver::op::OpCode;
use crate::driver::slots::{CancelledOp, Completion};

pub(crate) struct Write<B> {
    /// Kept open by the caller's handle for the life of the op.
    fd: RawFd,
    buf: B,
    offset: u64,
}

impl<B: IoBuf> Write<B> {
    pub(crate) fn new(fd: RawFd, buf: B, offset: u64) -> Self {
        Write { fd, buf, offset }
    }
}

impl<B: IoBuf> CancelledOp for Write<B> {}

impl<B: IoBuf> OpCode for Write<B> {
    type Output = BufResult<usize, B>;

    fn sqe(&mut self) -> squeue::Entry {
        let len = u32::try_from(self.buf.bytes_init()).unwrap_or(u32::MAX);
        opcode::Write::new(types::Fd(self.fd), self.buf.stable_ptr(), len)
            .offset(self.offset)
            .build()
    }

    fn complete(self, c: Completion) -> BufResult<usize, B> {
        (c.result.map(|n| n as usize), self.buf)
    }
}
