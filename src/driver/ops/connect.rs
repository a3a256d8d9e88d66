//! `IORING_OP_CONNECT`, with the address owned by the op.

use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue, types};
use socket2::SockAddr;

use crate::driver::op::OpCode;
use crate::driver::slots::{CancelledOp, Completion};

pub(crate) struct Connect {
    fd: RawFd,
    /// Boxed: the kernel reads it after submission, wherever the op moves.
    addr: Box<SockAddr>,
}

impl Connect {
    pub(crate) fn new(fd: RawFd, addr: SockAddr) -> Self {
        Connect {
            fd,
            addr: Box::new(addr),
        }
    }
}

impl CancelledOp for Connect {}

impl OpCode for Connect {
    type Output = io::Result<()>;

    fn sqe(&mut self) -> squeue::Entry {
        opcode::Connect::new(
            types::Fd(self.fd),
            self.addr.as_ptr().cast::<libc::sockaddr>(),
            self.addr.len(),
        )
        .build()
    }

    fn fd(&self) -> Option<RawFd> {
        Some(self.fd)
    }

    fn complete(self, c: Completion) -> io::Result<()> {
        c.result.map(drop)
    }
}
