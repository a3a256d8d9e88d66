//! [`ToSocketAddrs`]: what `connect`, `bind` and `send_to` accept.
//!
//! Like `std::net::ToSocketAddrs`, but a host *name* is not resolved on the
//! calling thread: async callers (`TcpStream::connect`, `UdpSocket::send_to`)
//! resolve it with [`lookup_host`](crate::net::lookup_host) off the ring's
//! threads. Synchronous `bind` resolves names in place (binding to a name is
//! rare; numeric addresses never block).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

mod sealed {
    use std::net::SocketAddr;

    pub trait Sealed {}

    /// Either addresses in hand, or a `"host:port"` still to be resolved.
    #[derive(Debug)]
    pub enum Addrs {
        /// Already numeric.
        Resolved(Vec<SocketAddr>),
        /// A name to resolve (`"host:port"`).
        Lookup(String),
    }
}

use sealed::Addrs;

/// Types that name one or more socket addresses: `SocketAddr`,
/// `(IpAddr, u16)`, `"host:port"`, `("host", port)`, `&[SocketAddr]`, …
///
/// Sealed: it exists to be passed to ringio's networking functions.
pub trait ToSocketAddrs: sealed::Sealed {
    #[doc(hidden)]
    fn to_addrs(&self) -> Addrs;
}

macro_rules! numeric {
    ($($t:ty => |$v:ident| $e:expr;)*) => {$(
        impl sealed::Sealed for $t {}
        impl ToSocketAddrs for $t {
            fn to_addrs(&self) -> Addrs {
                let $v = self;
                Addrs::Resolved($e)
            }
        }
    )*};
}

numeric! {
    SocketAddr => |a| vec![*a];
    SocketAddrV4 => |a| vec![SocketAddr::V4(*a)];
    SocketAddrV6 => |a| vec![SocketAddr::V6(*a)];
    (IpAddr, u16) => |a| vec![SocketAddr::new(a.0, a.1)];
    (Ipv4Addr, u16) => |a| vec![SocketAddr::new(IpAddr::V4(a.0), a.1)];
    (Ipv6Addr, u16) => |a| vec![SocketAddr::new(IpAddr::V6(a.0), a.1)];
    [SocketAddr] => |a| a.to_vec();
    Vec<SocketAddr> => |a| a.clone();
}

impl<const N: usize> sealed::Sealed for [SocketAddr; N] {}
impl<const N: usize> ToSocketAddrs for [SocketAddr; N] {
    fn to_addrs(&self) -> Addrs {
        Addrs::Resolved(self.to_vec())
    }
}

impl sealed::Sealed for str {}
impl ToSocketAddrs for str {
    fn to_addrs(&self) -> Addrs {
        match self.parse::<SocketAddr>() {
            Ok(a) => Addrs::Resolved(vec![a]),
            Err(_) => Addrs::Lookup(self.to_owned()),
        }
    }
}

impl sealed::Sealed for String {}
impl ToSocketAddrs for String {
    fn to_addrs(&self) -> Addrs {
        self.as_str().to_addrs()
    }
}

impl sealed::Sealed for (&str, u16) {}
impl ToSocketAddrs for (&str, u16) {
    fn to_addrs(&self) -> Addrs {
        match self.0.parse::<IpAddr>() {
            Ok(ip) => Addrs::Resolved(vec![SocketAddr::new(ip, self.1)]),
            Err(_) => Addrs::Lookup(format!("{}:{}", self.0, self.1)),
        }
    }
}

impl sealed::Sealed for (String, u16) {}
impl ToSocketAddrs for (String, u16) {
    fn to_addrs(&self) -> Addrs {
        (self.0.as_str(), self.1).to_addrs()
    }
}

impl<T: ToSocketAddrs + ?Sized> sealed::Sealed for &T {}
impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {
    fn to_addrs(&self) -> Addrs {
        (**self).to_addrs()
    }
}

fn no_addresses() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "no socket address to use (empty address list)",
    )
}

/// Resolves `addr` without blocking the ring's threads.
pub(crate) async fn resolve(addr: &(impl ToSocketAddrs + ?Sized)) -> io::Result<Vec<SocketAddr>> {
    let addrs = match addr.to_addrs() {
        Addrs::Resolved(v) => v,
        Addrs::Lookup(name) => crate::net::lookup_host(&name).await?.collect(),
    };
    if addrs.is_empty() {
        return Err(no_addresses());
    }
    Ok(addrs)
}

/// Resolves `addr` on the calling thread (synchronous `bind`).
pub(crate) fn resolve_sync(addr: &(impl ToSocketAddrs + ?Sized)) -> io::Result<Vec<SocketAddr>> {
    let addrs = match addr.to_addrs() {
        Addrs::Resolved(v) => v,
        Addrs::Lookup(name) => std::net::ToSocketAddrs::to_socket_addrs(name.as_str())
            .map_err(|e| io::Error::new(e.kind(), format!("failed to resolve {name:?}: {e}")))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(no_addresses());
    }
    Ok(addrs)
}

/// Runs `attempt` on each address in turn; the first success wins,
/// otherwise the last error is returned.
pub(crate) fn each_addr<T>(
    addrs: &[SocketAddr],
    mut attempt: impl FnMut(&SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for a in addrs {
        match attempt(a) {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(no_addresses))
}
