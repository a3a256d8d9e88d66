//! TCP: [`TcpListener`] (multishot accept) and [`TcpStream`].

use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use socket2::{Domain, SockAddr, Type};

use crate::driver::fd::RingFd;
use crate::driver::op::Op;
use crate::driver::ops::connect::Connect;
use crate::net::accept::Acceptor;
use crate::net::addr::{each_addr, resolve, resolve_sync, ToSocketAddrs};
use crate::net::socket::{Kind, Socket};
use crate::net::stream_io::stream_io;

/// Backlog of `listen(2)` for [`TcpListener::bind`].
const BACKLOG: i32 = 1024;

/// A TCP listening socket.
///
/// Accepting is a multishot `IORING_OP_ACCEPT` underneath: one submission
/// keeps accepting, and connections queue until [`accept`](Self::accept)
/// takes them (see the crate's networking docs for the bound and the
/// `EMFILE` back-off).
///
/// ```
/// # let ctx = ringio::IoContext::new().unwrap();
/// # ctx.block_on(async {
/// use ringio::net::{TcpListener, TcpStream};
///
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let addr = listener.local_addr()?;
/// let client = ringio::spawn(async move {
///     let stream = TcpStream::connect(addr).await?;
///     let (res, _) = stream.write_all(b"hello".to_vec()).await;
///     res
/// });
/// let (stream, _peer) = listener.accept().await?;
/// let (res, buf) = stream.read_exact(Vec::with_capacity(5)).await;
/// res?;
/// assert_eq!(buf, b"hello");
/// client.await.unwrap()?;
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
#[derive(Debug)]
pub struct TcpListener {
    acceptor: Acceptor,
}

impl TcpListener {
    /// Binds and listens (synchronously) on the first address that works,
    /// with `SO_REUSEADDR` and a backlog of 1024. Names are resolved on the
    /// calling thread; pass a numeric address to never block.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        let addrs = resolve_sync(&addr)?;
        each_addr(&addrs, |a| {
            let s = socket2::Socket::new(Domain::for_address(*a), Type::STREAM.cloexec(), None)?;
            s.set_reuse_address(true)?;
            s.bind(&SockAddr::from(*a))?;
            s.listen(BACKLOG)?;
            Ok(TcpListener::from_listening(s.into()))
        })
    }

    fn from_listening(fd: OwnedFd) -> TcpListener {
        TcpListener {
            acceptor: Acceptor::new(fd),
        }
    }

    /// Waits for the next connection; returns it with the peer's address.
    /// Several tasks may accept on one listener at once.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        loop {
            let stream = TcpStream::from_fd(self.acceptor.accept().await?);
            match stream.peer_addr() {
                Ok(peer) => return Ok((stream, peer)),
                // Reset before we looked: skip it, like a failed accept.
                Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The connections as a `Stream` (`futures_core::Stream`), without
    /// their peer addresses. It never ends; errors are items.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The address this listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        local_addr(self.acceptor.ring_fd())
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        socket2::SockRef::from(self.acceptor.ring_fd()).set_ttl_v4(ttl)
    }
}

fn local_addr(fd: &RingFd) -> io::Result<SocketAddr> {
    as_inet(socket2::SockRef::from(fd).local_addr()?)
}

fn as_inet(a: SockAddr) -> io::Result<SocketAddr> {
    a.as_socket()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not an internet socket address"))
}

impl From<std::net::TcpListener> for TcpListener {
    /// Adopts a listening socket (its blocking mode does not matter).
    fn from(l: std::net::TcpListener) -> TcpListener {
        TcpListener::from_listening(l.into())
    }
}

impl std::os::fd::AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.acceptor.ring_fd().raw()
    }
}

/// The stream of [`TcpListener::incoming`].
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl futures_core::Stream for Incoming<'_> {
    type Item = io::Result<TcpStream>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.listener
            .acceptor
            .poll_accept(cx)
            .map(|r| Some(r.map(TcpStream::from_fd)))
    }
}

/// A TCP connection.
///
/// Reads and writes take the buffer by value and give it back
/// ([`crate::buf`]); `&TcpStream` is enough for both, so one task may read
/// while another writes. `futures_io::AsyncRead`/`AsyncWrite` are
/// implemented for `TcpStream` and `&TcpStream` (with an internal buffer).
#[derive(Debug)]
pub struct TcpStream {
    socket: Socket,
}

stream_io!(TcpStream);

impl TcpStream {
    pub(crate) fn from_fd(fd: OwnedFd) -> TcpStream {
        TcpStream {
            socket: Socket::new(fd, Kind::Stream),
        }
    }

    /// Connects to `addr`, trying each address it resolves to in turn
    /// (names are resolved off the ring's threads). A refused connection
    /// is `ErrorKind::ConnectionRefused`.
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        let addrs = resolve(&addr).await?;
        let mut last = None;
        for a in addrs {
            match Self::connect_one(a).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("resolve returns at least one address"))
    }

    async fn connect_one(addr: SocketAddr) -> io::Result<TcpStream> {
        let s = socket2::Socket::new(Domain::for_address(addr), Type::STREAM.cloexec(), None)?;
        let fd = RingFd::new_tracked(s.into());
        let ticket = fd.begin_op();
        let connected = Op::new(Connect::new(fd.raw(), SockAddr::from(addr))).await;
        ticket.finish();
        connected?;
        Ok(TcpStream {
            socket: Socket::from_ring_fd(fd, Kind::Stream),
        })
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        as_inet(self.socket.sock_ref().peer_addr()?)
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        local_addr(self.socket.ring_fd())
    }

    /// Sets `TCP_NODELAY` (disables Nagle's algorithm).
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.socket.sock_ref().set_tcp_nodelay(on)
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.socket.sock_ref().tcp_nodelay()
    }

    /// Sets `SO_LINGER` (`Some(0)` makes close send a reset).
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        self.socket.sock_ref().set_linger(linger)
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.socket.sock_ref().set_ttl_v4(ttl)
    }
}

impl From<std::net::TcpStream> for TcpStream {
    /// Adopts a connected socket (its blocking mode does not matter).
    fn from(s: std::net::TcpStream) -> TcpStream {
        // SAFETY: `into_raw_fd` hands over sole ownership of the fd.
        TcpStream::from_fd(unsafe { OwnedFd::from_raw_fd(s.into_raw_fd()) })
    }
}
