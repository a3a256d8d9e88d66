//! `IORING_OP_SEND_ZC`: a send the kernel makes from the buffer's own pages,
//! without copying them into the socket, with `MSG_NOSIGNAL`.
//!
//! Two completions: the send's result (flagged `F_MORE` when a
//! notification follows), then the notification (`F_NOTIF`) once the
//! kernel holds no reference to the pages any more, which may be long after
//! the bytes were queued (for TCP: once they are acknowledged). The buffer
//! belongs to the op until that second completion, so it runs as a
//! multishot op ([`StreamOp`](crate::driver::stream::StreamOp)): a dropped
//! send keeps the buffer in its slot until the notification arrives.

use std::io;
use std::os::fd::RawFd;

use io_uring::{cqueue, opcode, squeue, types};

use crate::buf::IoBuf;
use crate::driver::slots::{CancelledOp, Completion};
use crate::driver::stream::MultiOpCode;

pub(crate) struct SendZc<B> {
    fd: RawFd,
    buf: B,
}

impl<B: IoBuf> SendZc<B> {
    pub(crate) fn new(fd: RawFd, buf: B) -> Self {
        SendZc { fd, buf }
    }

    pub(crate) fn into_buf(self) -> B {
        self.buf
    }
}

impl<B: IoBuf> CancelledOp for SendZc<B> {}

/// One completion of a zero-copy send.
pub(crate) enum ZcEvent {
    /// The send's result.
    Sent(io::Result<usize>),
    /// The kernel let go of the buffer.
    Released,
}

impl<B: IoBuf> MultiOpCode for SendZc<B> {
    type Item = ZcEvent;

    fn sqe(&mut self) -> squeue::Entry {
        let len = u32::try_from(self.buf.bytes_init()).unwrap_or(u32::MAX);
        opcode::SendZc::new(types::Fd(self.fd), self.buf.stable_ptr(), len)
            .flags(libc::MSG_NOSIGNAL)
            .build()
    }

    fn fd(&self) -> Option<RawFd> {
        Some(self.fd)
    }

    fn item(&mut self, c: Completion) -> ZcEvent {
        if cqueue::notif(c.flags) {
            ZcEvent::Released
        } else {
            ZcEvent::Sent(c.result.map(|n| n as usize))
        }
    }
}
