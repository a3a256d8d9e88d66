//! `IORING_OP_NOP`: a round trip through the ring.

use std::io;

use io_uring::{opcode, squeue};

use crate::driver::op::OpCode;
use crate::driver::slots::{CancelledOp, Completion};

pub(crate) struct Nop;

impl CancelledOp for Nop {}

impl OpCode for Nop {
    type Output = io::Result<()>;

    fn sqe(&mut self) -> squeue::Entry {
        opcode::Nop::new().build()
    }

    fn complete(self, c: Completion) -> io::Result<()> {
        c.result.map(|_| ())
    }
}
