//! [`RecvStream`]: a stream socket's multishot receive into a [`BufRing`].
//!
//! # Life of the stream
//!
//! ```text
//!            first poll: bytes that come first? ──yes──▶ yield them (a RingBuf of owned bytes)
//!                  │ no
//!                  ▼
//!   ┌────────▶ Armed (one multishot RECV, IOSQE_BUFFER_SELECT)
//!   │              │ CQE with data ──▶ yield the ring buffer (F_MORE: stay armed)
//!   │              │ CQE res = 0   ──▶ Ended: yields None from then on
//!   │              │ ENOBUFS       ──▶ Starved ──(a buffer is back, or some
//!   │              │                     │        never left)──┐
//!   │              │ other error   ──▶ yield Err               │
//!   └──────────────┴─ terminal CQE (no F_MORE) without EOF: re-arm on the next poll
//! ```
//!
//! * **Order.** Bytes held by the futures-io adapter, then bytes carried from
//!   cancelled reads ([`crate::net::carry`]), come out before the receive is
//!   armed, so the stream order is kept whichever API read before.
//! * **Dropping** the stream cancels the receive; chunks the kernel still
//!   delivers go to the socket's carry (the next read or stream returns
//!   them), and their buffers go back to the ring.
//! * **Back-pressure** is the ring: the kernel fills buffers until none is
//!   left, then ends the receive with `ENOBUFS`. The stream does not report
//!   that: it re-arms once a buffer is back (at once if some buffer was
//!   never lent out), so a slow consumer only slows the sender down.
//! * **Tickets.** An armed receive holds a ticket of the socket's
//!   [`RingFd`](crate::driver::fd::RingFd), finished when its terminal CQE
//!   is taken; a stream dropped while armed leaves it, so closing the
//!   socket then cancels and flushes before `close(2)`.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::buf::{BufRing, RingBuf};
use crate::driver::ops::recv_multi::{Chunk, RecvMulti};
use crate::driver::stream::StreamOp;
use crate::net::socket::Socket;
use crate::runtime::scheduler::Shared;

/// The chunks a stream socket receives, each in a buffer of a [`BufRing`]:
/// one multishot receive serves them all. Made by
/// [`TcpStream::recv_multishot`](crate::net::TcpStream::recv_multishot) and
/// [`UnixStream::recv_multishot`](crate::net::UnixStream::recv_multishot).
///
/// Yields `Ok(RingBuf)` per chunk (never empty), `Err` for a receive error
/// (the next call tries again), and `None` once the peer has closed its
/// write side. Also a [`futures_core::Stream`].
#[must_use = "streams do nothing unless polled"]
pub struct RecvStream<'a> {
    socket: &'a Socket,
    ring: BufRing,
    op: Option<StreamOp<RecvMulti>>,
    /// The kernel ran out of buffers: re-arm once one is back.
    starved: bool,
    /// End of stream seen.
    ended: bool,
}

impl<'a> RecvStream<'a> {
    pub(crate) fn new(socket: &'a Socket, ring: &BufRing) -> RecvStream<'a> {
        RecvStream {
            socket,
            ring: ring.clone(),
            op: None,
            starved: false,
            ended: false,
        }
    }

    /// The next chunk received (see the type's docs).
    pub async fn next(&mut self) -> Option<io::Result<RingBuf>> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// [`next`](Self::next) as a poll function.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<RingBuf>>> {
        loop {
            if self.ended {
                return Poll::Ready(None);
            }
            if let Some(op) = &mut self.op {
                let polled = op.poll_next(cx);
                if polled.is_pending() {
                    return Poll::Pending;
                }
                if op.is_finished() {
                    // The terminal CQE is taken: the kernel is done with the fd.
                    self.op = None;
                    self.socket.ring_fd().finish_op();
                }
                match polled {
                    Poll::Ready(Some(Chunk::Data(buf))) => return Poll::Ready(Some(Ok(buf))),
                    Poll::Ready(Some(Chunk::Eof)) => {
                        self.ended = true;
                        return Poll::Ready(None);
                    }
                    Poll::Ready(Some(Chunk::Failed(e))) => {
                        if e.raw_os_error() == Some(libc::ENOBUFS) {
                            self.starved = true;
                            continue;
                        }
                        return Poll::Ready(Some(Err(e)));
                    }
                    // Finished without a chunk: re-arm below.
                    Poll::Ready(None) | Poll::Pending => {}
                }
                continue;
            }
            if self.starved {
                if !self.ring.poll_returned(cx.waker()) {
                    return Poll::Pending;
                }
                self.starved = false;
            }
            match self.socket.poll_bytes_first(cx, self.ring.buf_size()) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(bytes))) if bytes.is_empty() => {
                    self.ended = true;
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Ok(bytes))) => {
                    return Poll::Ready(Some(Ok(RingBuf::owned(bytes))))
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => {}
            }
            if let Err(e) = self.arm() {
                return Poll::Ready(Some(Err(e)));
            }
        }
    }

    fn arm(&mut self) -> io::Result<()> {
        let shared = Shared::current().ok_or_else(|| {
            crate::driver::no_context_completion()
                .result
                .expect_err("an error completion")
        })?;
        let bgid = self.ring.bind(&shared)?;
        let fd = self.socket.ring_fd();
        fd.begin_owned_op();
        self.op = Some(StreamOp::new(RecvMulti::new(
            fd.raw(),
            bgid,
            self.ring.inner().clone(),
            self.socket.carry().cloned(),
        )));
        Ok(())
    }
}

impl std::fmt::Debug for RecvStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvStream")
            .field("ring", &self.ring)
            .field("armed", &self.op.is_some())
            .field("starved", &self.starved)
            .field("ended", &self.ended)
            .finish()
    }
}

impl futures_core::Stream for RecvStream<'_> {
    type Item = io::Result<RingBuf>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_recv(cx)
    }
}

impl futures_core::FusedStream for RecvStream<'_> {
    fn is_terminated(&self) -> bool {
        self.ended
    }
}
