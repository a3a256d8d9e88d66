//! `IORING_OP_SEND` from an owned buffer, with `MSG_NOSIGNAL` (a send to a
//! reset peer is an `EPIPE` error, never a `SIGPIPE`).

use std::os::fd::RawFd;

use io_uring::{opcode, squeue, types};

use crate::buf::{BufResult, IoBuf};
use crate::driver::op::OpCode;
use crate::driver::slots::{CancelledOp, Completion};

pub(crate) struct Send<B> {
    fd: RawFd,
    buf: B,
}

impl<B: IoBuf> Send<B> {
    pub(crate) fn new(fd: RawFd, buf: B) -> Self {
        Send { fd, buf }
    }
}

impl<B: IoBuf> CancelledOp for Send<B> {}

impl<B: IoBuf> OpCode for Send<B> {
    type Output = BufResult<usize, B>;

    fn sqe(&mut self) -> squeue::Entry {
        let len = u32::try_from(self.buf.bytes_init()).unwrap_or(u32::MAX);
        opcode::Send::new(types::Fd(self.fd), self.buf.stable_ptr(), len)
            .flags(libc::MSG_NOSIGNAL)
            .build()
    }

    fn fd(&self) -> Option<RawFd> {
        Some(self.fd)
    }

    fn complete(self, c: Completion) -> BufResult<usize, B> {
        (c.result.map(|n| n as usize), self.buf)
    }
}
