//! [`Socket`]: the I/O core shared by every socket type (TCP and Unix
//! streams, UDP and Unix datagrams).
//!
//! # Speculation (DESIGN.md §3)
//!
//! Before submitting a `RECV` or `SEND`, a socket may try the non-blocking
//! syscall once (`MSG_DONTWAIT`); if it succeeds the operation completes
//! inline, with no SQE, no CQE and no extra task wake-up. Two bounds keep
//! this cheap:
//! * the per-handler inline budget of the run frame
//!   ([`crate::runtime::frame::take_inline_budget`]), so one busy socket
//!   cannot keep a handler from yielding;
//! * per direction, a socket that saw `EAGAIN` stops speculating until a
//!   completion shows readiness again: a recv CQE flagged
//!   `IORING_CQE_F_SOCK_NONEMPTY` (more data waits), or any successful send
//!   CQE (the send buffer had room again).
//!
//! Inline completions are counted in `Metrics::inline_completions`.
//!
//! # Mixing the owned-buffer and futures-io APIs
//!
//! Once the futures-io adapter ([`crate::net::compat`]) has been used on a
//! socket (`compat_used`), every owned-buffer read first hands out the bytes
//! that adapter already took from the kernel (waiting for its read in
//! flight), and every owned-buffer send first waits for its write-behind
//! send: the stream order is the order of the calls, whichever API made
//! them. (`shutdown` is synchronous and does not wait: flush or close
//! through the adapter first.)
//!
//! # Reads and cancellation
//!
//! Stream reads go through the socket's [`Carry`], so bytes a cancelled
//! read still received come out of the next read, in order (see
//! [`crate::net::carry`]). Datagram sockets do not carry: a datagram a
//! cancelled recv received is dropped, as a datagram may be by the network.

use std::future::poll_fn;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use socket2::SockRef;

use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::driver::fd::RingFd;
use crate::driver::op::Op;
use crate::driver::ops::msg::{RecvMsg, SendMsg};
use crate::driver::ops::recv::Recv;
use crate::driver::ops::send::Send;
use crate::driver::ops::send_zc::{SendZc, ZcEvent};
use crate::driver::stream::StreamOp;
use crate::net::carry::{Carry, Take};
use crate::net::compat::Compat;
use crate::runtime::frame;

#[derive(Debug)]
pub(crate) struct Socket {
    fd: RingFd,
    /// Stream sockets only.
    carry: Option<Arc<Carry>>,
    pub(crate) speculate_recv: AtomicBool,
    pub(crate) speculate_send: AtomicBool,
    /// State of the `futures_io` adapters ([`crate::net::compat`]).
    compat: Mutex<Compat>,
    /// The futures-io adapter has been used (see the module docs).
    compat_used: AtomicBool,
}

/// Stream (byte-ordered, carries cancelled reads) or datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Stream,
    Datagram,
}

impl Socket {
    pub(crate) fn new(fd: OwnedFd, kind: Kind) -> Socket {
        Socket::from_ring_fd(RingFd::new_tracked(fd), kind)
    }

    pub(crate) fn from_ring_fd(fd: RingFd, kind: Kind) -> Socket {
        Socket {
            fd,
            carry: (kind == Kind::Stream).then(Arc::default),
            speculate_recv: AtomicBool::new(true),
            speculate_send: AtomicBool::new(true),
            compat: Mutex::default(),
            compat_used: AtomicBool::new(false),
        }
    }

    pub(crate) fn carry(&self) -> Option<&Arc<Carry>> {
        self.carry.as_ref()
    }

    pub(crate) fn compat(&self) -> MutexGuard<'_, Compat> {
        if !self.compat_used.load(Ordering::Relaxed) {
            self.compat_used.store(true, Ordering::Relaxed);
        }
        self.compat.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Owned-buffer reads: the bytes the futures-io adapter holds come
    /// first. `Some` with them (or its read's error, or `Ok(0)` at its end
    /// of stream), `None` if it holds nothing.
    async fn take_compat_unread<B: IoBufMut>(&self, buf: &mut B) -> Option<io::Result<usize>> {
        if !self.compat_used.load(Ordering::Relaxed) {
            return None;
        }
        let res = poll_fn(|cx| {
            let (dst, cap) = (buf.stable_mut_ptr(), buf.bytes_total());
            self.poll_compat_unread(cx, dst, cap)
        })
        .await;
        if let Some(Ok(n)) = res {
            // SAFETY: the first `n` bytes were copied in.
            unsafe { buf.set_init(n) };
        }
        res
    }

    /// For a multishot receive about to arm: bytes that must come before
    /// anything it receives — what the futures-io adapter holds, then bytes
    /// carried from cancelled reads (waiting for those reads to settle) —
    /// copied into a `Vec` of up to `cap` bytes. `Ready(None)`: nothing
    /// comes first. `Ready(Some(Ok(empty)))` is the adapter's end of stream.
    pub(crate) fn poll_bytes_first(
        &self,
        cx: &mut Context<'_>,
        cap: usize,
    ) -> Poll<Option<io::Result<Vec<u8>>>> {
        if self.compat_used.load(Ordering::Relaxed) {
            let mut v = Vec::with_capacity(cap);
            match self.poll_compat_unread(cx, v.as_mut_ptr(), cap) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(n))) => {
                    // SAFETY: `n <= cap` bytes were copied in.
                    unsafe { v.set_len(n) };
                    return Poll::Ready(Some(Ok(v)));
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => {}
            }
        }
        let Some(carry) = &self.carry else {
            return Poll::Ready(None);
        };
        if carry.is_idle() {
            return Poll::Ready(None);
        }
        let mut v = Vec::with_capacity(cap);
        match carry.poll_take(cx, &mut v) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Take::Served(_)) => Poll::Ready(Some(Ok(v))),
            Poll::Ready(Take::Empty) => Poll::Ready(None),
        }
    }

    /// Owned-buffer sends: the futures-io adapter's write-behind goes
    /// first; its error, if any, is reported here.
    async fn settle_compat_writes(&self) -> io::Result<()> {
        if !self.compat_used.load(Ordering::Relaxed) {
            return Ok(());
        }
        poll_fn(|cx| self.poll_flush_compat(cx)).await
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.fd.raw()
    }

    pub(crate) fn ring_fd(&self) -> &RingFd {
        &self.fd
    }

    pub(crate) fn sock_ref(&self) -> SockRef<'_> {
        SockRef::from(&self.fd)
    }

    /// Reads into `buf` from its start up to its capacity. `Ok(0)` is end of
    /// stream (or an empty buffer, or a zero-length datagram).
    pub(crate) async fn recv<B: IoBufMut>(&self, mut buf: B) -> BufResult<usize, B> {
        // Why: a zero-length recv on an idle TCP socket blocks until data
        // arrives (the kernel's loop wants at least one byte ready), so an
        // empty-buffer read hung instead of returning `Ok(0)` as documented.
        if self.carry.is_some() && buf.bytes_total() == 0 {
            return (Ok(0), buf);
        }
        if let Some(res) = self.take_compat_unread(&mut buf).await {
            return (res, buf);
        }
        if let Some(carry) = &self.carry {
            if !carry.is_idle() {
                if let Take::Served(n) = poll_fn(|cx| carry.poll_take(cx, &mut buf)).await {
                    return (Ok(n), buf);
                }
            }
        }
        // SAFETY: the buffer's memory is writable for `bytes_total` bytes.
        let tried = self.speculate(&self.speculate_recv, || unsafe {
            libc::recv(
                self.raw(),
                buf.stable_mut_ptr().cast(),
                buf.bytes_total(),
                libc::MSG_DONTWAIT,
            )
        });
        if let Some(res) = tried {
            if let Ok(n) = res {
                // SAFETY: recv initialised the first `n` bytes.
                unsafe { buf.set_init(n) };
            }
            return (res, buf);
        }
        let ticket = self.fd.begin_op();
        let done = Op::new(Recv::new(self.raw(), buf, 0, self.carry.clone())).await;
        ticket.finish();
        if done.more_waiting {
            self.speculate_recv.store(true, Ordering::Relaxed);
        }
        (done.result, done.buf)
    }

    /// Speculation (see the module docs): runs `syscall` (a non-blocking
    /// `recv`/`send` returning the count or -1) if the direction's flag and
    /// the handler's inline budget allow. `None`: go through the ring.
    pub(crate) fn speculate(
        &self,
        direction: &AtomicBool,
        syscall: impl FnOnce() -> isize,
    ) -> Option<io::Result<usize>> {
        if !direction.load(Ordering::Relaxed) || !frame::take_inline_budget() {
            return None;
        }
        let n = syscall();
        if n >= 0 {
            frame::note_inline_completion();
            return Some(Ok(n as usize));
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::WouldBlock => {
                direction.store(false, Ordering::Relaxed);
                None
            }
            io::ErrorKind::Interrupted => None,
            _ => Some(Err(e)),
        }
    }

    /// A non-blocking `send(2)` of `len` bytes at `ptr`, speculatively.
    ///
    /// Skipped when the pass ends in an `io_uring_enter` anyway (other
    /// handlers are ready, or SQEs are queued): that enter then carries this
    /// send too, for less than a syscall of its own (measured: 64-connection
    /// echo +21% for ready handlers; queued SQEs halve the syscalls of a
    /// saturated echo server whose pass ends with an empty queue).
    pub(crate) fn speculate_send(&self, ptr: *const u8, len: usize) -> Option<io::Result<usize>> {
        if frame::pass_will_enter() {
            return None;
        }
        // SAFETY: the caller's buffer holds `len` initialised bytes at `ptr`.
        self.speculate(&self.speculate_send, || unsafe {
            libc::send(
                self.raw(),
                ptr.cast(),
                len,
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        })
    }

    /// Sends `buf[..bytes_init]`; returns how many bytes went.
    pub(crate) async fn send<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        if let Err(e) = self.settle_compat_writes().await {
            return (Err(e), buf);
        }
        if let Some(res) = self.speculate_send(buf.stable_ptr(), buf.bytes_init()) {
            return (res, buf);
        }
        let ticket = self.fd.begin_op();
        let (res, buf) = Op::new(Send::new(self.raw(), buf)).await;
        ticket.finish();
        if res.is_ok() {
            self.speculate_send.store(true, Ordering::Relaxed);
        }
        (res, buf)
    }

    /// Sends `buf[..bytes_init]` with `SEND_ZC` (see
    /// [`crate::driver::ops::send_zc`]); returns how many bytes went, and
    /// the buffer once the kernel has let go of it.
    pub(crate) async fn send_zc<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        if let Err(e) = self.settle_compat_writes().await {
            return (Err(e), buf);
        }
        let ticket = self.fd.begin_op();
        let mut op = StreamOp::new(SendZc::new(self.raw(), buf));
        let mut result = None;
        while let Some(event) = poll_fn(|cx| op.poll_next(cx)).await {
            if let ZcEvent::Sent(res) = event {
                result = Some(res);
            }
        }
        let Some(data) = op.into_data() else {
            // Abandoned at shutdown: the kernel may still read the buffer,
            // which is leaked; this send never completes (as `Op`).
            return std::future::pending().await;
        };
        ticket.finish();
        let result = result.unwrap_or_else(|| {
            Err(io::Error::other(
                "ringio: a zero-copy send ended without a result",
            ))
        });
        (result, data.into_buf())
    }

    /// [`send_all`](Self::send_all) with zero-copy sends.
    pub(crate) async fn send_all_zc<B: IoBuf>(&self, buf: B) -> BufResult<(), B> {
        crate::buf::repeat::write_all(buf, |rest, _| self.send_zc(rest)).await
    }

    /// Sends all of `buf[..bytes_init]`, in as many sends as it takes.
    pub(crate) async fn send_all<B: IoBuf>(&self, buf: B) -> BufResult<(), B> {
        crate::buf::repeat::write_all(buf, |rest, _| self.send(rest)).await
    }

    /// Fills `buf` up to its capacity (`bytes_total`), or fails with
    /// `UnexpectedEof` if the stream ends first.
    pub(crate) async fn recv_exact<B: IoBufMut>(&self, buf: B) -> BufResult<(), B> {
        crate::buf::repeat::read_exact(buf, "stream", |rest, _| self.recv(rest)).await
    }

    /// Reads into several buffers in order (`RECVMSG` with an iovec each).
    pub(crate) async fn recv_vectored<B: IoBufMut>(
        &self,
        mut bufs: Vec<B>,
    ) -> BufResult<usize, Vec<B>> {
        // Why: as in `recv`, no capacity at all must not wait for data.
        if self.carry.is_some() && bufs.iter().all(|b| b.bytes_total() == 0) {
            return (Ok(0), bufs);
        }
        if let Some(first) = bufs.iter_mut().find(|b| b.bytes_total() > 0) {
            if let Some(res) = self.take_compat_unread(first).await {
                return (res, bufs);
            }
        }
        if let (Some(carry), Some(first)) = (&self.carry, bufs.first_mut()) {
            if !carry.is_idle() {
                if let Take::Served(n) = poll_fn(|cx| carry.poll_take(cx, first)).await {
                    return (Ok(n), bufs);
                }
            }
        }
        let ticket = self.fd.begin_op();
        let done = Op::new(RecvMsg::new(self.raw(), bufs, false)).await;
        ticket.finish();
        (done.result, done.bufs)
    }

    /// Sends several buffers in order (`SENDMSG`, `MSG_NOSIGNAL`).
    pub(crate) async fn send_vectored<B: IoBuf>(&self, bufs: Vec<B>) -> BufResult<usize, Vec<B>> {
        if let Err(e) = self.settle_compat_writes().await {
            return (Err(e), bufs);
        }
        let ticket = self.fd.begin_op();
        let done = Op::new(SendMsg::new(self.raw(), bufs, None)).await;
        ticket.finish();
        done
    }

    /// Cancels every operation in flight on this socket; each fails with
    /// `ECANCELED` (reads that already received data keep it for the next
    /// read).
    pub(crate) fn cancel(&self) {
        self.fd.cancel_all();
    }
}

impl AsRawFd for Socket {
    fn as_raw_fd(&self) -> RawFd {
        self.raw()
    }
}

impl AsFd for Socket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
