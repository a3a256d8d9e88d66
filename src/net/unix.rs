//! Unix-domain sockets: [`UnixListener`], [`UnixStream`] and
//! [`UnixDatagram`].

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use socket2::{Domain, SockAddr, SockRef, Type};

use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::driver::fd::RingFd;
use crate::driver::op::Op;
use crate::driver::ops::connect::Connect;
use crate::net::accept::Acceptor;
use crate::net::socket::{Kind, Socket};
use crate::net::stream_io::stream_io;

/// Backlog of `listen(2)` for [`UnixListener::bind`].
const BACKLOG: i32 = 1024;

/// The address of a Unix-domain socket: a path, an abstract name, or
/// unnamed (a socket that never bound, like most clients).
#[derive(Clone)]
pub struct UnixSocketAddr(SockAddr);

impl UnixSocketAddr {
    /// The filesystem path, if the socket is bound to one.
    pub fn as_pathname(&self) -> Option<&Path> {
        self.0.as_pathname()
    }

    /// The abstract-namespace name (Linux), if the socket has one.
    pub fn as_abstract_name(&self) -> Option<&[u8]> {
        self.0.as_abstract_namespace()
    }

    /// Whether the socket has no address.
    pub fn is_unnamed(&self) -> bool {
        self.as_pathname().is_none() && self.as_abstract_name().is_none()
    }
}

impl fmt::Debug for UnixSocketAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = self.as_pathname() {
            write!(f, "{p:?} (pathname)")
        } else if let Some(n) = self.as_abstract_name() {
            write!(f, "{:?} (abstract)", String::from_utf8_lossy(n))
        } else {
            f.write_str("(unnamed)")
        }
    }
}

fn unix_addr(a: SockAddr) -> UnixSocketAddr {
    UnixSocketAddr(a)
}

/// A Unix-domain listening socket; accepting is multishot, as for
/// [`TcpListener`](crate::net::TcpListener).
#[derive(Debug)]
pub struct UnixListener {
    acceptor: Acceptor,
}

impl UnixListener {
    /// Binds and listens (synchronously) at `path`, which must not exist.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        let addr = SockAddr::unix(path)?;
        let s = socket2::Socket::new(Domain::UNIX, Type::STREAM.cloexec(), None)?;
        s.bind(&addr)?;
        s.listen(BACKLOG)?;
        Ok(UnixListener {
            acceptor: Acceptor::new(s.into()),
        })
    }

    /// Waits for the next connection; returns it with the peer's address.
    pub async fn accept(&self) -> io::Result<(UnixStream, UnixSocketAddr)> {
        let stream = UnixStream::from_fd(self.acceptor.accept().await?);
        let peer = stream.peer_addr()?;
        Ok((stream, peer))
    }

    /// The connections as a `Stream`; it never ends, errors are items.
    pub fn incoming(&self) -> UnixIncoming<'_> {
        UnixIncoming { listener: self }
    }

    /// The address this listener is bound to.
    pub fn local_addr(&self) -> io::Result<UnixSocketAddr> {
        Ok(unix_addr(
            SockRef::from(self.acceptor.ring_fd()).local_addr()?,
        ))
    }
}

impl From<std::os::unix::net::UnixListener> for UnixListener {
    /// Adopts a listening socket (its blocking mode does not matter).
    fn from(l: std::os::unix::net::UnixListener) -> UnixListener {
        UnixListener {
            acceptor: Acceptor::new(l.into()),
        }
    }
}

impl AsRawFd for UnixListener {
    fn as_raw_fd(&self) -> RawFd {
        self.acceptor.ring_fd().raw()
    }
}

/// The stream of [`UnixListener::incoming`].
#[derive(Debug)]
pub struct UnixIncoming<'a> {
    listener: &'a UnixListener,
}

impl futures_core::Stream for UnixIncoming<'_> {
    type Item = io::Result<UnixStream>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.listener
            .acceptor
            .poll_accept(cx)
            .map(|r| Some(r.map(UnixStream::from_fd)))
    }
}

/// A Unix-domain stream connection, with the same I/O methods as
/// [`TcpStream`](crate::net::TcpStream).
///
/// ```
/// # let ctx = ringio::IoContext::new().unwrap();
/// # ctx.block_on(async {
/// let (a, b) = ringio::net::UnixStream::pair()?;
/// let (res, _) = a.write_all(b"hi".to_vec()).await;
/// res?;
/// let (res, buf) = b.read(Vec::with_capacity(8)).await;
/// assert_eq!(&buf[..res?], b"hi");
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
#[derive(Debug)]
pub struct UnixStream {
    socket: Socket,
}

stream_io!(UnixStream);

impl UnixStream {
    fn from_fd(fd: OwnedFd) -> UnixStream {
        UnixStream {
            socket: Socket::new(fd, Kind::Stream),
        }
    }

    /// Connects to the socket at `path`.
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let addr = SockAddr::unix(path)?;
        let s = socket2::Socket::new(Domain::UNIX, Type::STREAM.cloexec(), None)?;
        let fd = RingFd::new_tracked(s.into());
        let ticket = fd.begin_op();
        let connected = Op::new(Connect::new(fd.raw(), addr)).await;
        ticket.finish();
        connected?;
        Ok(UnixStream {
            socket: Socket::from_ring_fd(fd, Kind::Stream),
        })
    }

    /// Two connected streams (`socketpair(2)`).
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = socket2::Socket::pair(Domain::UNIX, Type::STREAM.cloexec(), None)?;
        Ok((UnixStream::from_fd(a.into()), UnixStream::from_fd(b.into())))
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<UnixSocketAddr> {
        Ok(unix_addr(self.socket.sock_ref().peer_addr()?))
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<UnixSocketAddr> {
        Ok(unix_addr(self.socket.sock_ref().local_addr()?))
    }
}

impl From<std::os::unix::net::UnixStream> for UnixStream {
    /// Adopts a connected socket (its blocking mode does not matter).
    fn from(s: std::os::unix::net::UnixStream) -> UnixStream {
        // SAFETY: `into_raw_fd` hands over sole ownership of the fd.
        UnixStream::from_fd(unsafe { OwnedFd::from_raw_fd(s.into_raw_fd()) })
    }
}

/// A Unix-domain datagram socket: boundaries kept, zero-length datagrams
/// allowed, as for [`UdpSocket`](crate::net::UdpSocket).
#[derive(Debug)]
pub struct UnixDatagram {
    socket: Socket,
}

impl UnixDatagram {
    fn from_fd(fd: OwnedFd) -> UnixDatagram {
        UnixDatagram {
            socket: Socket::new(fd, Kind::Datagram),
        }
    }

    fn new_socket() -> io::Result<socket2::Socket> {
        socket2::Socket::new(Domain::UNIX, Type::DGRAM.cloexec(), None)
    }

    /// A socket bound to `path`, which must not exist.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixDatagram> {
        let s = Self::new_socket()?;
        s.bind(&SockAddr::unix(path)?)?;
        Ok(UnixDatagram::from_fd(s.into()))
    }

    /// A socket with no address (it can send; replies need an address).
    pub fn unbound() -> io::Result<UnixDatagram> {
        Ok(UnixDatagram::from_fd(Self::new_socket()?.into()))
    }

    /// Two connected datagram sockets (`socketpair(2)`).
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = socket2::Socket::pair(Domain::UNIX, Type::DGRAM.cloexec(), None)?;
        Ok((
            UnixDatagram::from_fd(a.into()),
            UnixDatagram::from_fd(b.into()),
        ))
    }

    /// Sets the default destination for [`send`](Self::send)
    /// (synchronous: nothing to wait for on a Unix datagram socket).
    pub fn connect(&self, path: impl AsRef<Path>) -> io::Result<()> {
        self.socket.sock_ref().connect(&SockAddr::unix(path)?)
    }

    /// Sends `buf[..len]` as one datagram to the connected peer.
    pub async fn send<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        self.socket.send(buf).await
    }

    /// Receives one datagram into `buf`.
    pub async fn recv<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        self.socket.recv(buf).await
    }

    /// Sends `buf[..len]` as one datagram to the socket at `path`.
    pub async fn send_to<B: IoBuf>(&self, buf: B, path: impl AsRef<Path>) -> BufResult<usize, B> {
        match SockAddr::unix(path) {
            Ok(addr) => self.socket.send_to_addr(buf, &addr).await,
            Err(e) => (Err(e), buf),
        }
    }

    /// Receives one datagram into `buf`; returns its length and source
    /// (unnamed if the sender never bound).
    pub async fn recv_from<B: IoBufMut>(&self, buf: B) -> BufResult<(usize, UnixSocketAddr), B> {
        let (res, buf) = self.socket.recv_from_addr(buf).await;
        let res = res.map(|(n, a)| {
            let a = a.unwrap_or_else(|| {
                // SAFETY: an all-zero storage with the length of just the
                // family field is an unnamed AF_UNIX address.
                unsafe {
                    let mut storage = socket2::SockAddrStorage::zeroed();
                    storage.view_as::<libc::sockaddr_un>().sun_family =
                        libc::AF_UNIX as libc::sa_family_t;
                    SockAddr::new(
                        storage,
                        std::mem::size_of::<libc::sa_family_t>() as libc::socklen_t,
                    )
                }
            });
            (n, unix_addr(a))
        });
        (res, buf)
    }

    /// Cancels every operation in flight on this socket (each fails with
    /// `ECANCELED`).
    pub fn cancel(&self) {
        self.socket.cancel()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<UnixSocketAddr> {
        Ok(unix_addr(self.socket.sock_ref().local_addr()?))
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<UnixSocketAddr> {
        Ok(unix_addr(self.socket.sock_ref().peer_addr()?))
    }

    /// Shuts down the read side, the write side, or both.
    pub fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        self.socket.sock_ref().shutdown(how)
    }
}

impl From<std::os::unix::net::UnixDatagram> for UnixDatagram {
    /// Adopts a socket (its blocking mode does not matter).
    fn from(s: std::os::unix::net::UnixDatagram) -> UnixDatagram {
        // SAFETY: `into_raw_fd` hands over sole ownership of the fd.
        UnixDatagram::from_fd(unsafe { OwnedFd::from_raw_fd(s.into_raw_fd()) })
    }
}

impl AsRawFd for UnixDatagram {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.raw()
    }
}

impl AsFd for UnixDatagram {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}
