//! `IORING_OP_READ` into an owned buffer, at an offset or (for streams and
//! the file cursor) at the current position.

use std::os::fd::RawFd;

use io_uring::{opcode, squeue, types};

use crate::buf::{BufResult, IoBufMut};
use crate::driver::op::OpCode;
use crate::driver::slots::{CancelledOp, Completion};

/// Offset meaning "the current file position" (streams, pipes).
pub(crate) const CURRENT_POSITION: u64 = u64::MAX;

pub(crate) struct Read<B> {
    /// Kept open by the caller's handle for the life of the op: handles
    /// cancel their ops (and flush the cancel) before they close the fd.
    fd: RawFd,
    buf: B,
    offset: u64,
}

impl<B: IoBufMut> Read<B> {
    pub(crate) fn new(fd: RawFd, buf: B, offset: u64) -> Self {
        Read { fd, buf, offset }
    }
}

impl<B: IoBufMut> CancelledOp for Read<B> {}

impl<B: IoBufMut> OpCode for Read<B> {
    type Output = BufResult<usize, B>;

    fn sqe(&mut self) -> squeue::Entry {
        let len = u32::try_from(self.buf.bytes_total()).unwrap_or(u32::MAX);
        opcode::Read::new(types::Fd(self.fd), self.buf.stable_mut_ptr(), len)
            .offset(self.offset)
            .build()
    }

    fn complete(mut self, c: Completion) -> BufResult<usize, B> {
        let res = c.result.map(|n| n as usize);
        if let Ok(n) = res {
            // SAFETY: the kernel initialised the first `n` bytes.
            unsafe { self.buf.set_init(n) };
        }
        (res, self.buf)
    }
}
