//! Addressed datagram I/O shared by [`UdpSocket`](crate::net::UdpSocket)
//! and [`UnixDatagram`](crate::net::UnixDatagram): `SENDMSG` / `RECVMSG`
//! with the address owned by the op. Connected sends and receives use the
//! socket's plain [`send`](Socket::send) / [`recv`](Socket::recv).

use socket2::SockAddr;

use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::driver::op::Op;
use crate::driver::ops::msg::{RecvMsg, SendMsg};
use crate::net::socket::Socket;

impl Socket {
    /// Sends one datagram of `buf[..bytes_init]` to `addr`.
    pub(crate) async fn send_to_addr<B: IoBuf>(
        &self,
        buf: B,
        addr: &SockAddr,
    ) -> BufResult<usize, B> {
        let ticket = self.ring_fd().begin_op();
        let (res, mut bufs) = Op::new(SendMsg::new(self.raw(), vec![buf], Some(addr))).await;
        ticket.finish();
        (res, bufs.pop().expect("one buffer in, one out"))
    }

    /// Receives one datagram into `buf` and its source address (`None` for
    /// an unnamed Unix peer). A datagram longer than the buffer is truncated.
    pub(crate) async fn recv_from_addr<B: IoBufMut>(
        &self,
        buf: B,
    ) -> BufResult<(usize, Option<SockAddr>), B> {
        let ticket = self.ring_fd().begin_op();
        let done = Op::new(RecvMsg::new(self.raw(), vec![buf], true)).await;
        ticket.finish();
        let mut bufs = done.bufs;
        let buf = bufs.pop().expect("one buffer in, one out");
        (done.result.map(|n| (n, done.addr)), buf)
    }
}
