//! Name resolution: [`lookup_host`] (names to addresses) and
//! [`lookup_addr`] (an address to its names).
//!
//! # Protocol
//!
//! 1. The input is split into host and port *without* any blocking call:
//!    `"host:port"`, `"[v6]:port"` (brackets required around an IPv6
//!    address, so that its colons are not taken for the port separator).
//!    A missing or invalid port is `InvalidInput`.
//! 2. A numeric host (`127.0.0.1`, `::1`) is parsed in place and never
//!    touches the blocking pool, so it works even outside a context.
//! 3. A name is resolved by `getaddrinfo` (through std's `ToSocketAddrs`,
//!    which asks for stream sockets: one entry per address) on the context's
//!    blocking pool ([`crate::runtime::blocking::run`]): the C resolver
//!    blocks, possibly for seconds, and must not stall a runner.
//! 4. Errors name the host (std's own message does not), keep the resolver's
//!    kind, and an empty answer is an error too: callers such as
//!    `TcpStream::connect` may rely on "`Ok` means at least one address".
//!
//! Dropping a lookup's future before a pool thread started it skips the
//! call; one already in `getaddrinfo` finishes on its thread and its answer
//! is dropped.

use std::ffi::CStr;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use crate::runtime::blocking;

/// Resolves `"host:port"` into socket addresses.
///
/// `host` is a name, an IPv4 address, or an IPv6 address in brackets
/// (`"[::1]:8080"`). Numeric addresses are parsed without any system call;
/// names are resolved by the system resolver (`getaddrinfo`: `/etc/hosts`,
/// DNS, ...) on the context's blocking pool, so a name lookup must run
/// inside a context (from a task or `block_on`).
///
/// ```
/// # let ctx = ringio::IoContext::new()?;
/// # ctx.block_on(async {
/// let addrs: Vec<_> = ringio::net::lookup_host("localhost:80").await?.collect();
/// assert!(addrs.iter().all(|a| a.port() == 80 && a.ip().is_loopback()));
///
/// let v6: Vec<_> = ringio::net::lookup_host("[::1]:443").await?.collect();
/// assert_eq!(v6, ["[::1]:443".parse().unwrap()]);
/// # Ok::<(), std::io::Error>(())
/// # })?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
///
/// `InvalidInput` for a missing or invalid port, an empty host or an IPv6
/// address without brackets; the resolver's error, with the host named in
/// the message, for a name that does not resolve (or resolves to nothing);
/// an error for a name looked up outside a running context.
pub async fn lookup_host(host_port: &str) -> io::Result<impl Iterator<Item = SocketAddr>> {
    if let Ok(addr) = host_port.parse::<SocketAddr>() {
        return Ok(vec![addr].into_iter());
    }
    let (host, port) = split_host_port(host_port)?;
    Ok(resolve(host, port).await?.into_iter())
}

/// Resolves `host` (a name or a numeric address, without brackets) with
/// `port`. For `TcpStream::connect` and friends: numeric hosts skip the
/// pool; `Ok` always holds at least one address.
pub(crate) async fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    if host.is_empty() {
        return Err(invalid("empty host name".to_string()));
    }
    let name = host.to_owned();
    let answer = blocking::run(move || (name.as_str(), port).to_socket_addrs()).await?;
    match answer {
        Ok(addrs) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if addrs.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("failed to resolve {host:?}: no addresses"),
                ));
            }
            Ok(addrs)
        }
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("failed to resolve {host:?}: {e}"),
        )),
    }
}

/// Splits `"host:port"` / `"[host]:port"`; the host comes back without
/// brackets.
fn split_host_port(s: &str) -> io::Result<(&str, u16)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err(invalid(format!("unclosed '[' in {s:?}")));
        };
        match after.strip_prefix(':') {
            Some(port) => (host, port),
            None if after.is_empty() => {
                return Err(invalid(format!(
                    "missing port in {s:?} (expected \"[v6]:port\")"
                )))
            }
            None => return Err(invalid(format!("unexpected {after:?} after ']' in {s:?}"))),
        }
    } else {
        let Some((host, port)) = s.rsplit_once(':') else {
            return Err(invalid(format!(
                "missing port in {s:?} (expected \"host:port\")"
            )));
        };
        if host.contains(':') {
            return Err(invalid(format!(
                "an IPv6 address needs brackets: \"[{host}]:{port}\", not {s:?}"
            )));
        }
        (host, port)
    };
    if host.is_empty() {
        return Err(invalid(format!("empty host in {s:?}")));
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| invalid(format!("invalid port {port:?} in {s:?}")))?;
    Ok((host, port))
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Finds the host name of `ip` (a reverse lookup: `getnameinfo` with
/// `NI_NAMEREQD`, which consults `/etc/hosts` and DNS PTR records), on the
/// context's blocking pool.
///
/// The answer is a list for future use (aliases); today it holds the one
/// canonical name the system resolver reports.
///
/// ```
/// # let ctx = ringio::IoContext::new()?;
/// # ctx.block_on(async {
/// let names = ringio::net::lookup_addr("127.0.0.1".parse().unwrap()).await?;
/// assert!(!names.is_empty()); // "localhost" on most systems
/// # Ok::<(), std::io::Error>(())
/// # })?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
///
/// `NotFound`, with the address in the message, if the address has no name;
/// other resolver failures; an error outside a running context.
pub async fn lookup_addr(ip: IpAddr) -> io::Result<Vec<String>> {
    blocking::run(move || reverse(ip)).await?.map(|n| vec![n])
}

/// `getnameinfo(ip, NI_NAMEREQD)`. Blocks.
fn reverse(ip: IpAddr) -> io::Result<String> {
    // NI_MAXHOST of glibc; larger than any DNS name.
    const MAX_HOST: usize = 1025;
    let addr = socket2::SockAddr::from(SocketAddr::new(ip, 0));
    let mut host = [0 as libc::c_char; MAX_HOST];
    // SAFETY: `addr` is a valid sockaddr of `addr.len()` bytes; `host` is a
    // writable buffer of the length passed; no service buffer is asked for
    // (null with length 0). getnameinfo is thread-safe.
    let rc = unsafe {
        libc::getnameinfo(
            addr.as_ptr().cast::<libc::sockaddr>(),
            addr.len(),
            host.as_mut_ptr(),
            MAX_HOST as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        )
    };
    if rc != 0 {
        return Err(gai_error(rc, ip));
    }
    // SAFETY: on success getnameinfo wrote a NUL-terminated string into
    // `host` (it fails with EAI_OVERFLOW rather than truncating).
    let name = unsafe { CStr::from_ptr(host.as_ptr()) };
    Ok(name.to_string_lossy().into_owned())
}

/// An `io::Error` for a `getnameinfo` failure code, naming the address.
fn gai_error(rc: libc::c_int, ip: IpAddr) -> io::Error {
    if rc == libc::EAI_SYSTEM {
        let e = io::Error::last_os_error();
        return io::Error::new(e.kind(), format!("failed to look up {ip}: {e}"));
    }
    // SAFETY: gai_strerror returns a pointer to a static NUL-terminated
    // string for any code.
    let msg = unsafe { CStr::from_ptr(libc::gai_strerror(rc)) }.to_string_lossy();
    let kind = if rc == libc::EAI_NONAME {
        io::ErrorKind::NotFound
    } else {
        io::ErrorKind::Other
    };
    io::Error::new(kind, format!("failed to look up a name for {ip}: {msg}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_accepts_names_and_bracketed_v6() {
        assert_eq!(
            split_host_port("example.com:80").unwrap(),
            ("example.com", 80)
        );
        assert_eq!(split_host_port("[::1]:65535").unwrap(), ("::1", 65535));
        assert_eq!(
            split_host_port("[fe80::1%eth0]:22").unwrap(),
            ("fe80::1%eth0", 22)
        );
    }

    #[test]
    fn split_rejects_malformed_input() {
        for bad in [
            "example.com",
            "example.com:",
            "example.com:http",
            "example.com:65536",
            ":80",
            "::1",
            "::1:80",
            "[::1]",
            "[::1",
            "[::1]x80",
            "[]:80",
            "",
        ] {
            let e = split_host_port(bad).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}: {e}");
        }
    }
}
