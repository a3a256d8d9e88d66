//! Multishot `IORING_OP_RECV` selecting buffers from a [`BufRing`](crate::buf::BufRing): one
//! SQE, one CQE per chunk received.
//!
//! Each CQE that carries data names the ring buffer it filled
//! (`IORING_CQE_F_BUFFER`); [`RecvMulti::item`] lends that buffer out as a
//! [`RingBuf`]. A CQE that arrives after the stream was dropped (the cancel
//! lost the race) still carries bytes taken out of the socket: they go to
//! the socket's [`Carry`] for the next read, and the buffer goes straight
//! back to the ring, so nothing is lost and no buffer leaks.
//!
//! The op holds the ring's memory (`Arc`) until its data is dropped, which
//! is after its final CQE (`driver::slots`, rule 2).

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

use io_uring::{cqueue, opcode, squeue, types};

use crate::buf::ring::Inner;
use crate::buf::RingBuf;
use crate::driver::slots::{CancelledOp, Completion};
use crate::driver::stream::MultiOpCode;
use crate::net::carry::{Carry, Settle};

pub(crate) struct RecvMulti {
    fd: RawFd,
    bgid: u16,
    ring: Arc<Inner>,
    carry: Option<Arc<Carry>>,
    /// Set when the stream was dropped with the op in flight.
    _settle: Option<Settle>,
}

/// One completion of a multishot receive.
pub(crate) enum Chunk<T> {
    /// What was received into a ring buffer.
    Data(T),
    /// The peer closed its write side.
    Eof,
    Failed(io::Error),
}

impl RecvMulti {
    pub(crate) fn new(fd: RawFd, bgid: u16, ring: Arc<Inner>, carry: Option<Arc<Carry>>) -> Self {
        RecvMulti {
            fd,
            bgid,
            ring,
            carry,
            _settle: None,
        }
    }

    /// The buffer a CQE filled, lent out (`None` if it names none).
    fn take_buffer(&self, c: &Completion) -> Option<RingBuf> {
        let bid = cqueue::buffer_select(c.flags)?;
        let len = *c.result.as_ref().unwrap_or(&0) as usize;
        // SAFETY: the flag and id come from a CQE of a receive on this ring.
        Some(unsafe { self.ring.lend(bid, 0, len) })
    }
}

impl CancelledOp for RecvMulti {
    fn on_drop_in_flight(&mut self) {
        if let Some(carry) = &self.carry {
            carry.read_cancelled();
            self._settle = Some(Settle::new(carry.clone()));
        }
    }

    fn on_cqe(&mut self, c: &Completion) {
        // Keep the bytes for the next read; the buffer returns to the ring
        // when `got` drops.
        if let Some(got) = self.take_buffer(c) {
            if let Some(carry) = &self.carry {
                carry.keep(&got);
            }
        }
    }
}

impl MultiOpCode for RecvMulti {
    type Item = Chunk<RingBuf>;

    fn sqe(&mut self) -> squeue::Entry {
        opcode::RecvMulti::new(types::Fd(self.fd), self.bgid).build()
    }

    fn fd(&self) -> Option<RawFd> {
        Some(self.fd)
    }

    fn item(&mut self, c: Completion) -> Chunk<RingBuf> {
        let buf = self.take_buffer(&c);
        match (c.result, buf) {
            (Ok(0), _) => Chunk::Eof,
            (Ok(_), Some(buf)) => Chunk::Data(buf),
            (Ok(n), None) => Chunk::Failed(io::Error::other(format!(
                "ringio: a multishot receive completed with {n} bytes but no buffer"
            ))),
            (Err(e), _) => Chunk::Failed(e),
        }
    }
}
