//! Multishot `IORING_OP_RECVMSG` selecting buffers from a [`BufRing`](crate::buf::BufRing): one
//! SQE, one CQE per datagram, each with its source address.
//!
//! The kernel lays every buffer out as `struct io_uring_recvmsg_out`, then
//! the source address in a field of `msg_namelen` bytes (a whole
//! `sockaddr_storage` here), then the payload; the CQE's result is the
//! length of all of it. [`RecvMsgMulti::item`] parses that layout and lends
//! the buffer out as a [`RingBuf`] whose bytes are just the payload. A
//! datagram longer than the room left is cut short, as `recvfrom(2)` cuts
//! it to the buffer it is given.
//!
//! The `msghdr` the SQE points at (only its name and control lengths
//! matter to the kernel) is boxed, so it stays put for the op's life. A
//! CQE that arrives after the stream was dropped only gives its buffer
//! back: a datagram may be dropped like that, as the network may drop one.

use std::io;
use std::mem;
use std::os::fd::RawFd;
use std::sync::Arc;

use io_uring::{cqueue, opcode, squeue, types};
use socket2::{SockAddr, SockAddrStorage};

use crate::buf::ring::Inner;
use crate::buf::RingBuf;
use crate::driver::ops::recv_multi::Chunk;
use crate::driver::slots::{CancelledOp, Completion};
use crate::driver::stream::MultiOpCode;

/// `struct io_uring_recvmsg_out`: four `u32`s (name, control and payload
/// lengths, flags).
const RECVMSG_OUT_BYTES: usize = 16;

/// Bytes of a ring buffer the kernel uses before the payload.
pub(crate) const HEADER_BYTES: usize = RECVMSG_OUT_BYTES + mem::size_of::<libc::sockaddr_storage>();

pub(crate) struct RecvMsgMulti {
    fd: RawFd,
    bgid: u16,
    ring: Arc<Inner>,
    msghdr: Box<libc::msghdr>,
}

// SAFETY: the msghdr holds no pointers (name and control pointers are
// null; the kernel only reads the two lengths).
unsafe impl Send for RecvMsgMulti {}

impl RecvMsgMulti {
    pub(crate) fn new(fd: RawFd, bgid: u16, ring: Arc<Inner>) -> Self {
        // SAFETY: all-zero is a valid msghdr (null pointers, zero lengths).
        let mut msghdr: Box<libc::msghdr> = Box::new(unsafe { mem::zeroed() });
        msghdr.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        RecvMsgMulti {
            fd,
            bgid,
            ring,
            msghdr,
        }
    }

    /// Parses one CQE's buffer: the payload lent out, and the source.
    fn datagram(&self, bid: u16, used: usize) -> io::Result<(RingBuf, SockAddr)> {
        // SAFETY: the buffer was just taken by the kernel for this CQE and
        // holds `used` bytes it wrote.
        let filled = unsafe { self.ring.filled(bid, used) };
        let parsed = types::RecvMsgOut::parse(filled, &self.msghdr);
        let (start, len, addr) = match parsed {
            Ok(out) => {
                let payload = out.payload_data();
                let start = payload.as_ptr() as usize - filled.as_ptr() as usize;
                let mut storage = SockAddrStorage::zeroed();
                let name = out.name_data();
                let n = name.len().min(storage.size_of() as usize);
                // SAFETY: `n` bytes fit in both; the storage is plain bytes.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        name.as_ptr(),
                        storage.view_as::<libc::sockaddr_storage>() as *mut _ as *mut u8,
                        n,
                    )
                };
                let name_len = (out.incoming_name_len() as usize).min(n);
                // SAFETY: the kernel wrote a socket address of `name_len` bytes.
                let addr = unsafe { SockAddr::new(storage, name_len as libc::socklen_t) };
                (start, payload.len(), Ok(addr))
            }
            Err(()) => (0, 0, Err(())),
        };
        // SAFETY: the id comes from a CQE of a receive on this ring, and
        // `start + len <= used <= size`.
        let buf = unsafe { self.ring.lend(bid, start, len) };
        match addr {
            Ok(addr) => Ok((buf, addr)),
            // `buf` goes back to the ring here.
            Err(()) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "ringio: a multishot recvmsg buffer too short for its header",
            )),
        }
    }
}

impl CancelledOp for RecvMsgMulti {
    fn on_cqe(&mut self, c: &Completion) {
        if let Some(bid) = cqueue::buffer_select(c.flags) {
            // Give the buffer back (the datagram is dropped).
            // SAFETY: the id comes from a CQE of a receive on this ring.
            drop(unsafe { self.ring.lend(bid, 0, 0) });
        }
    }
}

impl MultiOpCode for RecvMsgMulti {
    type Item = Chunk<(RingBuf, SockAddr)>;

    fn sqe(&mut self) -> squeue::Entry {
        opcode::RecvMsgMulti::new(types::Fd(self.fd), &*self.msghdr, self.bgid).build()
    }

    fn fd(&self) -> Option<RawFd> {
        Some(self.fd)
    }

    fn item(&mut self, c: Completion) -> Chunk<(RingBuf, SockAddr)> {
        let bid = cqueue::buffer_select(c.flags);
        match (c.result, bid) {
            (Ok(used), Some(bid)) => match self.datagram(bid, used as usize) {
                Ok(d) => Chunk::Data(d),
                Err(e) => Chunk::Failed(e),
            },
            (Ok(n), None) => Chunk::Failed(io::Error::other(format!(
                "ringio: a multishot recvmsg completed with {n} bytes but no buffer"
            ))),
            (Err(e), bid) => {
                if let Some(bid) = bid {
                    // SAFETY: as in `on_cqe`.
                    drop(unsafe { self.ring.lend(bid, 0, 0) });
                }
                Chunk::Failed(e)
            }
        }
    }
}
