//! `IORING_OP_SENDMSG` / `IORING_OP_RECVMSG`: vectored stream I/O
//! (`writev`/`readv`) and datagrams with addresses (`send_to`/`recv_from`).
//!
//! The `msghdr`, its iovec array and the address storage the kernel reads
//! or fills are boxed in a [`Header`] owned by the op, so their addresses
//! stay put while the op (or, after a drop, its slot) carries them.

use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue, types};
use socket2::{SockAddr, SockAddrStorage};

use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::driver::op::OpCode;
use crate::driver::slots::{CancelledOp, Completion};

struct Header {
    msg: libc::msghdr,
    iov: Vec<libc::iovec>,
    /// Destination of a send, or where a recv writes the source.
    addr: SockAddrStorage,
}

// SAFETY: the raw pointers in `msg` and `iov` point into this header's own
// allocations and the op's buffers, which move between threads with it.
unsafe impl Send for Header {}

impl Header {
    fn new(count: usize) -> Box<Header> {
        Box::new(Header {
            // SAFETY: an all-zero msghdr is a valid (empty) one.
            msg: unsafe { std::mem::zeroed() },
            iov: Vec::with_capacity(count),
            addr: SockAddrStorage::zeroed(),
        })
    }

    /// Points the msghdr at the iovecs (filled by the caller) and, if
    /// `name_len > 0`, at the address storage.
    fn link(&mut self, name_len: libc::socklen_t) {
        self.msg.msg_iov = self.iov.as_mut_ptr();
        self.msg.msg_iovlen = self.iov.len();
        if name_len > 0 {
            self.msg.msg_name = (&mut self.addr as *mut SockAddrStorage).cast();
            self.msg.msg_namelen = name_len;
        }
    }
}

/// Sends `bufs[i][..bytes_init]` in order, to `addr` if given.
pub(crate) struct SendMsg<B> {
    fd: RawFd,
    bufs: Vec<B>,
    hdr: Box<Header>,
    addr_len: libc::socklen_t,
}

impl<B: IoBuf> SendMsg<B> {
    pub(crate) fn new(fd: RawFd, bufs: Vec<B>, addr: Option<&SockAddr>) -> Self {
        let mut hdr = Header::new(bufs.len());
        let addr_len = match addr {
            Some(a) => {
                // SAFETY: `a.len()` bytes of a valid address are copied into
                // storage large enough for any socket address.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        a.as_ptr().cast::<u8>(),
                        (&mut hdr.addr as *mut SockAddrStorage).cast::<u8>(),
                        a.len() as usize,
                    )
                };
                a.len()
            }
            None => 0,
        };
        SendMsg {
            fd,
            bufs,
            hdr,
            addr_len,
        }
    }
}

impl<B: IoBuf> CancelledOp for SendMsg<B> {}

impl<B: IoBuf> OpCode for SendMsg<B> {
    type Output = BufResult<usize, Vec<B>>;

    fn sqe(&mut self) -> squeue::Entry {
        self.hdr.iov.clear();
        for b in &self.bufs {
            self.hdr.iov.push(libc::iovec {
                iov_base: b.stable_ptr() as *mut libc::c_void,
                iov_len: b.bytes_init(),
            });
        }
        self.hdr.link(self.addr_len);
        opcode::SendMsg::new(types::Fd(self.fd), &self.hdr.msg)
            .flags(libc::MSG_NOSIGNAL as u32)
            .build()
    }

    fn fd(&self) -> Option<RawFd> {
        Some(self.fd)
    }

    fn complete(self, c: Completion) -> BufResult<usize, Vec<B>> {
        (c.result.map(|n| n as usize), self.bufs)
    }
}

/// Receives into `bufs` in order (each from its start up to its capacity),
/// and the source address if asked.
pub(crate) struct RecvMsg<B> {
    fd: RawFd,
    bufs: Vec<B>,
    hdr: Box<Header>,
    want_addr: bool,
}

/// A finished `RecvMsg`.
pub(crate) struct ReceivedMsg<B> {
    pub(crate) result: io::Result<usize>,
    pub(crate) bufs: Vec<B>,
    /// The source, when asked for and known (unnamed Unix peers have none).
    pub(crate) addr: Option<SockAddr>,
}

impl<B: IoBufMut> RecvMsg<B> {
    pub(crate) fn new(fd: RawFd, bufs: Vec<B>, want_addr: bool) -> Self {
        let hdr = Header::new(bufs.len());
        RecvMsg {
            fd,
            bufs,
            hdr,
            want_addr,
        }
    }
}

impl<B: IoBufMut> CancelledOp for RecvMsg<B> {}

impl<B: IoBufMut> OpCode for RecvMsg<B> {
    type Output = ReceivedMsg<B>;

    fn sqe(&mut self) -> squeue::Entry {
        self.hdr.iov.clear();
        for b in &mut self.bufs {
            self.hdr.iov.push(libc::iovec {
                iov_base: b.stable_mut_ptr().cast(),
                iov_len: b.bytes_total(),
            });
        }
        let name_len = if self.want_addr {
            self.hdr.addr.size_of()
        } else {
            0
        };
        self.hdr.link(name_len);
        opcode::RecvMsg::new(types::Fd(self.fd), &mut self.hdr.msg).build()
    }

    fn fd(&self) -> Option<RawFd> {
        Some(self.fd)
    }

    fn complete(mut self, c: Completion) -> ReceivedMsg<B> {
        let result = c.result.map(|n| n as usize);
        let mut addr = None;
        if let Ok(n) = result {
            let mut left = n;
            for b in &mut self.bufs {
                let here = left.min(b.bytes_total());
                // SAFETY: the kernel filled the iovecs in order; this
                // buffer's first `here` bytes are initialised.
                unsafe { b.set_init(here) };
                left -= here;
            }
            if self.want_addr && self.hdr.msg.msg_namelen > 0 {
                // SAFETY: the kernel wrote a socket address of
                // `msg_namelen` bytes into the storage.
                addr = Some(unsafe {
                    SockAddr::new(
                        std::mem::replace(&mut self.hdr.addr, SockAddrStorage::zeroed()),
                        self.hdr.msg.msg_namelen,
                    )
                });
            }
        }
        ReceivedMsg {
            result,
            bufs: self.bufs,
            addr,
        }
    }
}
