//! `IORING_OP_RECV` into an owned buffer.
//!
//! A stream socket's recv carries the socket's [`Carry`]: if its future is
//! dropped while the op is in flight, bytes the kernel still delivers are
//! kept there for the next read instead of being lost (see
//! [`crate::net::carry`]).

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

use io_uring::{opcode, squeue, types};

use crate::buf::IoBufMut;
use crate::driver::op::OpCode;
use crate::driver::slots::{CancelledOp, Completion};
use crate::net::carry::{Carry, Settle};

/// `IORING_CQE_F_SOCK_NONEMPTY`: the socket still had data after this recv.
const CQE_F_SOCK_NONEMPTY: u32 = 1 << 2;

pub(crate) struct Recv<B: IoBufMut> {
    fd: RawFd,
    buf: B,
    flags: i32,
    carry: Option<Arc<Carry>>,
    /// Set when the future was dropped with the op in flight; dropped with
    /// the op's data after its last CQE.
    _settle: Option<Settle>,
}

/// A finished recv: the result, the buffer, and whether the kernel saw
/// more data waiting in the socket.
pub(crate) struct Received<B> {
    pub(crate) result: io::Result<usize>,
    pub(crate) buf: B,
    pub(crate) more_waiting: bool,
}

impl<B: IoBufMut> Recv<B> {
    pub(crate) fn new(fd: RawFd, buf: B, flags: i32, carry: Option<Arc<Carry>>) -> Self {
        Recv {
            fd,
            buf,
            flags,
            carry,
            _settle: None,
        }
    }
}

impl<B: IoBufMut> CancelledOp for Recv<B> {
    fn on_drop_in_flight(&mut self) {
        if let Some(carry) = &self.carry {
            carry.read_cancelled();
            self._settle = Some(Settle::new(carry.clone()));
        }
    }

    fn on_cqe(&mut self, c: &Completion) {
        if let (Some(carry), Ok(n)) = (&self.carry, &c.result) {
            let n = (*n as usize).min(self.buf.bytes_total());
            // SAFETY: the kernel initialised the first `n` bytes of the
            // buffer's memory, which this op still owns.
            let got = unsafe { std::slice::from_raw_parts(self.buf.stable_ptr(), n) };
            carry.keep(got);
        }
    }
}

impl<B: IoBufMut> OpCode for Recv<B> {
    type Output = Received<B>;

    fn sqe(&mut self) -> squeue::Entry {
        let len = u32::try_from(self.buf.bytes_total()).unwrap_or(u32::MAX);
        opcode::Recv::new(types::Fd(self.fd), self.buf.stable_mut_ptr(), len)
            .flags(self.flags)
            .build()
    }

    fn fd(&self) -> Option<RawFd> {
        Some(self.fd)
    }

    fn complete(mut self, c: Completion) -> Received<B> {
        let result = c.result.map(|n| n as usize);
        if let Ok(n) = result {
            // SAFETY: the kernel initialised the first `n` bytes.
            unsafe { self.buf.set_init(n) };
        }
        Received {
            result,
            buf: self.buf,
            more_waiting: c.flags & CQE_F_SOCK_NONEMPTY != 0,
        }
    }
}
