//! UDP: [`UdpSocket`].

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

use socket2::{Domain, SockAddr, Type};

use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::net::addr::{each_addr, resolve, resolve_sync, ToSocketAddrs};
use crate::net::socket::{Kind, Socket};

/// A UDP socket. Each send is one datagram and each receive returns one
/// datagram (boundaries are kept; zero-length datagrams are sent and
/// received as such; a datagram longer than the buffer is truncated).
///
/// ```
/// # let ctx = ringio::IoContext::new().unwrap();
/// # ctx.block_on(async {
/// use ringio::net::UdpSocket;
///
/// let a = UdpSocket::bind("127.0.0.1:0")?;
/// let b = UdpSocket::bind("127.0.0.1:0")?;
/// let (res, _) = a.send_to(b"ping".to_vec(), b.local_addr()?).await;
/// res?;
/// let (res, buf) = b.recv_from(Vec::with_capacity(64)).await;
/// let (n, from) = res?;
/// assert_eq!((&buf[..n], from), (&b"ping"[..], a.local_addr()?));
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
#[derive(Debug)]
pub struct UdpSocket {
    socket: Socket,
}

fn inet(a: Option<SockAddr>) -> io::Result<SocketAddr> {
    a.and_then(|a| a.as_socket()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "datagram without an internet source address",
        )
    })
}

impl UdpSocket {
    /// Binds (synchronously) to the first address that works. Names are
    /// resolved on the calling thread; pass a numeric address to never block.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        let addrs = resolve_sync(&addr)?;
        each_addr(&addrs, |a| {
            let s = socket2::Socket::new(Domain::for_address(*a), Type::DGRAM.cloexec(), None)?;
            s.bind(&SockAddr::from(*a))?;
            Ok(UdpSocket::from_fd(s.into()))
        })
    }

    fn from_fd(fd: OwnedFd) -> UdpSocket {
        UdpSocket {
            socket: Socket::new(fd, Kind::Datagram),
        }
    }

    /// Sets the default destination of [`send`](Self::send) and the only
    /// source [`recv`](Self::recv) accepts (names resolved off the ring's
    /// threads; the first address that works is used).
    pub async fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        let addrs = resolve(&addr).await?;
        each_addr(&addrs, |a| {
            self.socket.sock_ref().connect(&SockAddr::from(*a))
        })
    }

    /// Sends `buf[..len]` as one datagram to the connected peer.
    pub async fn send<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        self.socket.send(buf).await
    }

    /// Receives one datagram from the connected peer into `buf`.
    pub async fn recv<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        self.socket.recv(buf).await
    }

    /// Sends `buf[..len]` as one datagram to `addr` (the first address it
    /// resolves to).
    pub async fn send_to<B: IoBuf>(&self, buf: B, addr: impl ToSocketAddrs) -> BufResult<usize, B> {
        match resolve(&addr).await {
            Ok(addrs) => {
                self.socket
                    .send_to_addr(buf, &SockAddr::from(addrs[0]))
                    .await
            }
            Err(e) => (Err(e), buf),
        }
    }

    /// Receives one datagram into `buf`; returns its length and source.
    pub async fn recv_from<B: IoBufMut>(&self, buf: B) -> BufResult<(usize, SocketAddr), B> {
        let (res, buf) = self.socket.recv_from_addr(buf).await;
        (res.and_then(|(n, a)| Ok((n, inet(a)?))), buf)
    }

    /// Receives datagrams into the buffers of `ring`, with one multishot
    /// `RECVMSG` for all of them: the returned
    /// [`RecvFromStream`](crate::net::RecvFromStream) yields each
    /// datagram's payload as a [`RingBuf`](crate::buf::RingBuf) (back to
    /// the ring when dropped) with its source address. Ring buffers must be
    /// larger than the 144 bytes the kernel writes before each payload.
    pub fn recv_from_multishot<'a>(
        &'a self,
        ring: &crate::buf::BufRing,
    ) -> crate::net::RecvFromStream<'a> {
        crate::net::RecvFromStream::new(&self.socket, ring)
    }

    /// Cancels every operation in flight on this socket (each fails with
    /// `ECANCELED`).
    pub fn cancel(&self) {
        self.socket.cancel()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        inet(Some(self.socket.sock_ref().local_addr()?))
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        inet(Some(self.socket.sock_ref().peer_addr()?))
    }

    /// Sets `SO_BROADCAST`.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.socket.sock_ref().set_broadcast(on)
    }

    /// Whether `SO_BROADCAST` is set.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.socket.sock_ref().broadcast()
    }

    /// Joins an IPv4 multicast group on `interface` (`0.0.0.0`: any).
    pub fn join_multicast_v4(&self, group: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
        self.socket.sock_ref().join_multicast_v4(&group, &interface)
    }

    /// Leaves an IPv4 multicast group.
    pub fn leave_multicast_v4(&self, group: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
        self.socket
            .sock_ref()
            .leave_multicast_v4(&group, &interface)
    }

    /// Joins an IPv6 multicast group on interface index `interface` (0: any).
    pub fn join_multicast_v6(&self, group: Ipv6Addr, interface: u32) -> io::Result<()> {
        self.socket.sock_ref().join_multicast_v6(&group, interface)
    }

    /// Leaves an IPv6 multicast group.
    pub fn leave_multicast_v6(&self, group: Ipv6Addr, interface: u32) -> io::Result<()> {
        self.socket.sock_ref().leave_multicast_v6(&group, interface)
    }

    /// Sets `IP_MULTICAST_LOOP` (whether this host receives its own
    /// multicast datagrams).
    pub fn set_multicast_loop_v4(&self, on: bool) -> io::Result<()> {
        self.socket.sock_ref().set_multicast_loop_v4(on)
    }

    /// Sets `IPV6_MULTICAST_LOOP`.
    pub fn set_multicast_loop_v6(&self, on: bool) -> io::Result<()> {
        self.socket.sock_ref().set_multicast_loop_v6(on)
    }

    /// Sets `IP_MULTICAST_TTL`.
    pub fn set_multicast_ttl_v4(&self, ttl: u32) -> io::Result<()> {
        self.socket.sock_ref().set_multicast_ttl_v4(ttl)
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.socket.sock_ref().set_ttl_v4(ttl)
    }
}

impl From<std::net::UdpSocket> for UdpSocket {
    /// Adopts a socket (its blocking mode does not matter).
    fn from(s: std::net::UdpSocket) -> UdpSocket {
        // SAFETY: `into_raw_fd` hands over sole ownership of the fd.
        UdpSocket::from_fd(unsafe { OwnedFd::from_raw_fd(s.into_raw_fd()) })
    }
}

impl AsRawFd for UdpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.raw()
    }
}

impl AsFd for UdpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}
