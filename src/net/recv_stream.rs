//! [`RecvStream`] and [`RecvFromStream`]: multishot receives into a
//! [`BufRing`], of a stream socket's bytes and of a datagram socket's
//! datagrams with their sources. Both are one [`Multishot`] loop over an
//! op kind ([`MultiRecv`]).
//!
//! # Life of the stream
//!
//! ```text
//!  (streams) first poll: bytes that come first? ──yes──▶ yield them (a RingBuf of owned bytes)
//!                  │ no
//!                  ▼
//!   ┌────────▶ Armed (one multishot RECV, IOSQE_BUFFER_SELECT)
//!   │              │ CQE with data ──▶ yield the ring buffer (F_MORE: stay armed)
//!   │              │ CQE res = 0   ──▶ Ended: yields None from then on (streams)
//!   │              │ ENOBUFS       ──▶ Starved ──(a buffer came back since
//!   │              │                     │        it armed)────┐
//!   │              │ other error   ──▶ yield Err               │
//!   └──────────────┴─ terminal CQE (no F_MORE) without EOF: re-arm on the next poll
//! ```
//!
//! * **Order** (streams). Bytes held by the futures-io adapter, then bytes carried from
//!   cancelled reads ([`crate::net::carry`]), come out before the receive is
//!   armed, so the stream order is kept whichever API read before.
//! * **Dropping** the stream cancels the receive; chunks the kernel still
//!   delivers go to the socket's carry (the next read or stream returns
//!   them; datagrams are dropped), and their buffers go back to the ring.
//! * **Back-pressure** is the ring: the kernel fills buffers until none is
//!   left, then ends the receive with `ENOBUFS`. The stream does not report
//!   that: it re-arms once a buffer has come back since it armed (at once
//!   if one already has), so a slow consumer only slows the sender down,
//!   and a receive starved by buffers that sit in another receive's
//!   completions waits instead of spinning.
//! * **Tickets.** An armed receive holds a ticket of the socket's
//!   [`RingFd`](crate::driver::fd::RingFd), finished when its terminal CQE
//!   is taken; a stream dropped while armed leaves it, so closing the
//!   socket then cancels and flushes before `close(2)`.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use socket2::SockAddr;

use crate::buf::{BufRing, RingBuf};
use crate::driver::ops::recv_multi::{Chunk, RecvMulti};
use crate::driver::ops::recvmsg_multi::{RecvMsgMulti, HEADER_BYTES};
use crate::driver::stream::{MultiOpCode, StreamOp};
use crate::net::socket::Socket;
use crate::runtime::scheduler::Shared;

/// What comes before anything a new receive gets.
pub(crate) enum First<T> {
    Nothing,
    Item(T),
    End,
    Failed(io::Error),
}

/// A kind of multishot receive.
pub(crate) trait MultiRecv: MultiOpCode<Item = Chunk<Self::Out>> {
    type Out;

    /// The op for `socket`, receiving into group `bgid` (`ring`'s id).
    fn for_socket(socket: &Socket, bgid: u16, ring: &BufRing) -> io::Result<Self>;

    /// What earlier reads left for this receive to hand out first.
    fn poll_first(socket: &Socket, cx: &mut Context<'_>, ring: &BufRing) -> Poll<First<Self::Out>>;
}

impl MultiRecv for RecvMulti {
    type Out = RingBuf;

    fn for_socket(socket: &Socket, bgid: u16, ring: &BufRing) -> io::Result<Self> {
        Ok(RecvMulti::new(
            socket.ring_fd().raw(),
            bgid,
            ring.inner().clone(),
            socket.carry().cloned(),
        ))
    }

    fn poll_first(socket: &Socket, cx: &mut Context<'_>, ring: &BufRing) -> Poll<First<RingBuf>> {
        socket
            .poll_bytes_first(cx, ring.buf_size())
            .map(|first| match first {
                None => First::Nothing,
                Some(Ok(bytes)) if bytes.is_empty() => First::End,
                Some(Ok(bytes)) => First::Item(RingBuf::owned(bytes)),
                Some(Err(e)) => First::Failed(e),
            })
    }
}

impl MultiRecv for RecvMsgMulti {
    type Out = (RingBuf, SockAddr);

    fn for_socket(socket: &Socket, bgid: u16, ring: &BufRing) -> io::Result<Self> {
        if ring.buf_size() <= HEADER_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "ringio: BufRing buffers of {} bytes leave no room for a datagram after its \
                     header and source address ({HEADER_BYTES} bytes)",
                    ring.buf_size()
                ),
            ));
        }
        Ok(RecvMsgMulti::new(
            socket.ring_fd().raw(),
            bgid,
            ring.inner().clone(),
        ))
    }

    fn poll_first(_: &Socket, _: &mut Context<'_>, _: &BufRing) -> Poll<First<Self::Out>> {
        Poll::Ready(First::Nothing)
    }
}

/// The loop both streams run (see the module docs).
struct Multishot<'a, K: MultiRecv> {
    socket: &'a Socket,
    ring: BufRing,
    op: Option<StreamOp<K>>,
    /// The kernel ran out of buffers: re-arm once one is back.
    starved: bool,
    /// The ring's return count when the receive last armed.
    armed_at: u64,
    /// End of stream seen.
    ended: bool,
}

impl<'a, K: MultiRecv> Multishot<'a, K> {
    fn new(socket: &'a Socket, ring: &BufRing) -> Self {
        Multishot {
            socket,
            ring: ring.clone(),
            op: None,
            starved: false,
            armed_at: 0,
            ended: false,
        }
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<K::Out>>> {
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
                    Poll::Ready(Some(Chunk::Data(item))) => return Poll::Ready(Some(Ok(item))),
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
                if !self.ring.poll_returned(self.armed_at, cx.waker()) {
                    return Poll::Pending;
                }
                self.starved = false;
            }
            match K::poll_first(self.socket, cx, &self.ring) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(First::Item(item)) => return Poll::Ready(Some(Ok(item))),
                Poll::Ready(First::End) => {
                    self.ended = true;
                    return Poll::Ready(None);
                }
                Poll::Ready(First::Failed(e)) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(First::Nothing) => {}
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
        let op = K::for_socket(self.socket, bgid, &self.ring)?;
        self.armed_at = self.ring.returns();
        self.socket.ring_fd().begin_owned_op();
        self.op = Some(StreamOp::new(op));
        Ok(())
    }
}

impl<K: MultiRecv> std::fmt::Debug for Multishot<'_, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Multishot")
            .field("ring", &self.ring)
            .field("armed", &self.op.is_some())
            .field("starved", &self.starved)
            .field("ended", &self.ended)
            .finish()
    }
}

/// The chunks a stream socket receives, each in a buffer of a [`BufRing`]:
/// one multishot receive serves them all. Made by
/// [`TcpStream::recv_multishot`](crate::net::TcpStream::recv_multishot) and
/// [`UnixStream::recv_multishot`](crate::net::UnixStream::recv_multishot).
///
/// Yields `Ok(RingBuf)` per chunk (never empty), `Err` for a receive error
/// (the next call tries again), and `None` once the peer has closed its
/// write side. Also a [`futures_core::Stream`].
#[derive(Debug)]
#[must_use = "streams do nothing unless polled"]
pub struct RecvStream<'a>(Multishot<'a, RecvMulti>);

impl<'a> RecvStream<'a> {
    pub(crate) fn new(socket: &'a Socket, ring: &BufRing) -> RecvStream<'a> {
        RecvStream(Multishot::new(socket, ring))
    }

    /// The next chunk received (see the type's docs).
    pub async fn next(&mut self) -> Option<io::Result<RingBuf>> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// [`next`](Self::next) as a poll function.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<RingBuf>>> {
        self.0.poll_recv(cx)
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
        self.0.ended
    }
}

/// The datagrams a UDP socket receives, each in a buffer of a [`BufRing`]
/// with its source address: one multishot `RECVMSG` serves them all. Made
/// by [`UdpSocket::recv_from_multishot`](crate::net::UdpSocket::recv_from_multishot).
///
/// Yields `Ok((payload, source))` per datagram (a zero-length datagram is
/// an empty payload), and `Err` for a receive error (the next call tries
/// again); it never ends by itself. Each ring buffer holds a header and the
/// source address (`HEADER_BYTES`, 144 bytes on Linux) before the payload,
/// so buffers must be larger than that, and a datagram longer than the
/// room left is cut short (like `recv_from` into a short buffer). Also a
/// [`futures_core::Stream`].
#[derive(Debug)]
#[must_use = "streams do nothing unless polled"]
pub struct RecvFromStream<'a>(Multishot<'a, RecvMsgMulti>);

impl<'a> RecvFromStream<'a> {
    pub(crate) fn new(socket: &'a Socket, ring: &BufRing) -> RecvFromStream<'a> {
        RecvFromStream(Multishot::new(socket, ring))
    }

    /// The next datagram and its source (see the type's docs).
    pub async fn next(&mut self) -> Option<io::Result<(RingBuf, SocketAddr)>> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// [`next`](Self::next) as a poll function.
    pub fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<(RingBuf, SocketAddr)>>> {
        self.0.poll_recv(cx).map(|item| {
            item.map(|res| {
                res.and_then(|(buf, addr)| {
                    let addr = addr.as_socket().ok_or_else(|| {
                        io::Error::new(
                            io::ErrorKind::InvalidData,
                            "datagram without an internet source address",
                        )
                    })?;
                    Ok((buf, addr))
                })
            })
        })
    }
}

impl futures_core::Stream for RecvFromStream<'_> {
    type Item = io::Result<(RingBuf, SocketAddr)>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_recv(cx)
    }
}
