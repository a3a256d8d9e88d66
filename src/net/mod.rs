//! Networking: TCP, UDP and Unix-domain sockets driven through the ring.
//!
//! * [`TcpListener`] / [`TcpStream`], [`UdpSocket`], [`UnixListener`] /
//!   [`UnixStream`], [`UnixDatagram`].
//! * Buffers go in by value and come back ([`crate::buf`]); dropping any
//!   operation's future cancels it safely, and a cancelled stream read never
//!   loses bytes (the next read returns them).
//! * Reads and writes first try the non-blocking syscall when the socket is
//!   likely ready (speculation, bounded per handler), and go through the
//!   ring otherwise.
//! * Accepting is multishot: one SQE accepts many connections.
//! * Sends never raise `SIGPIPE`.
//! * Names resolve on the blocking pool: [`lookup_host`], [`lookup_addr`].

mod accept;
mod addr;
pub(crate) mod carry;
pub(crate) mod compat;
mod datagram;
mod recv_stream;
pub(crate) mod resolve;
pub(crate) mod socket;
mod stream_io;
mod tcp;
mod udp;
mod unix;

pub use addr::ToSocketAddrs;
pub use recv_stream::{RecvFromStream, RecvStream};
pub use resolve::{lookup_addr, lookup_host};
pub use tcp::{Incoming, TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixIncoming, UnixListener, UnixSocketAddr, UnixStream};
