//! `ToSocketAddrs` forms and their error paths (`src/net/addr.rs`): arrays
//! and slices of addresses tried in order (the first that works wins, else
//! the last error), empty lists, `(&str, u16)` and `(String, u16)` with
//! numeric hosts (no lookup), IPv6 scope ids, and strings that are not
//! addresses. Both modes.

mod common;

use std::io::ErrorKind;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};

use common::{each_mode, fd_shared};
use ringio::net::{TcpListener, TcpStream, UdpSocket};

/// TEST-NET-1: never a local address, so binding it fails at once.
const NOT_LOCAL: &str = "192.0.2.1:0";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn bind_tries_an_array_in_order_and_keeps_the_last_error() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            // The first fails, the second works.
            let s = UdpSocket::bind([addr(NOT_LOCAL), addr("127.0.0.1:0")]).unwrap();
            let local = s.local_addr().unwrap();
            assert_eq!(local.ip(), addr("127.0.0.1:0").ip(), "[{mode}]");
            assert_ne!(local.port(), 0, "[{mode}]");
            let l = TcpListener::bind([addr(NOT_LOCAL), addr("127.0.0.1:0")]).unwrap();
            assert_eq!(
                l.local_addr().unwrap().ip(),
                addr("127.0.0.1:0").ip(),
                "[{mode}]"
            );
            // All fail: the last address's error. The first taken is in
            // use (EADDRINUSE), the last is not local (EADDRNOTAVAIL).
            let e = UdpSocket::bind([local, addr(NOT_LOCAL)]).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::AddrNotAvailable, "[{mode}] {e}");
            let e = UdpSocket::bind([addr(NOT_LOCAL), local]).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::AddrInUse, "[{mode}] {e}");
            // A Vec works like the array.
            let e = UdpSocket::bind(vec![addr(NOT_LOCAL)]).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EADDRNOTAVAIL), "[{mode}]");
        });
    });
}

#[test]
fn empty_address_lists_are_invalid_input() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let none: [SocketAddr; 0] = [];
            for e in [
                UdpSocket::bind(none).unwrap_err(),
                UdpSocket::bind(&none[..]).unwrap_err(),
                TcpListener::bind(Vec::<SocketAddr>::new()).unwrap_err(),
                TcpStream::connect(none).await.unwrap_err(),
            ] {
                assert_eq!(e.kind(), ErrorKind::InvalidInput, "[{mode}] {e}");
                assert!(e.to_string().contains("empty address list"), "[{mode}] {e}");
            }
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            let e = s.connect(&none[..]).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "[{mode}] {e}");
        });
    });
}

#[test]
fn host_and_port_pairs_with_numeric_hosts() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let l = TcpListener::bind(("127.0.0.1", 0)).unwrap();
            let port = l.local_addr().unwrap().port();
            // `(&str, u16)` and `(String, u16)` with a numeric host: no
            // lookup, straight to the address.
            let c = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let (s, _) = l.accept().await.unwrap();
            assert_eq!(c.peer_addr().unwrap(), l.local_addr().unwrap(), "[{mode}]");
            assert_eq!(s.peer_addr().unwrap(), c.local_addr().unwrap(), "[{mode}]");
            let c2 = TcpStream::connect((String::from("127.0.0.1"), port))
                .await
                .unwrap();
            assert_eq!(c2.peer_addr().unwrap().port(), port, "[{mode}]");
            let u = UdpSocket::bind((String::from("127.0.0.1"), 0)).unwrap();
            assert_eq!(
                u.local_addr().unwrap().ip(),
                addr("127.0.0.1:0").ip(),
                "[{mode}]"
            );
            // IPv6 hosts are written without brackets in a pair.
            let u6 = UdpSocket::bind(("::1", 0)).unwrap();
            assert_eq!(
                u6.local_addr().unwrap().ip(),
                Ipv6Addr::LOCALHOST,
                "[{mode}]"
            );
            // `String` and `&String` as "host:port".
            let text = format!("127.0.0.1:{port}");
            let c3 = TcpStream::connect(&text).await.unwrap();
            assert_eq!(c3.peer_addr().unwrap().port(), port, "[{mode}]");
        });
    });
}

#[test]
fn ipv6_scope_ids_parse_and_bind() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            // A scope id in the text form is parsed, not looked up.
            let parsed: SocketAddrV6 = "[::1%1]:0".parse().unwrap();
            assert_eq!(parsed.scope_id(), 1);
            let s = UdpSocket::bind("[::1%1]:0").unwrap();
            let local = s.local_addr().unwrap();
            assert_eq!(local.ip(), Ipv6Addr::LOCALHOST, "[{mode}]");
            // Round trip to itself through `SocketAddrV6` and `(Ipv6Addr, u16)`.
            let to = SocketAddrV6::new(Ipv6Addr::LOCALHOST, local.port(), 0, 0);
            let (res, _) = s.send_to(b"six".to_vec(), to).await;
            assert_eq!(res.unwrap(), 3, "[{mode}]");
            let (res, buf) = s.recv_from(Vec::with_capacity(8)).await;
            let (n, from) = res.unwrap();
            assert_eq!((&buf[..n], from), (&b"six"[..], local), "[{mode}]");
            let (res, _) = s
                .send_to(b"pair".to_vec(), (Ipv6Addr::LOCALHOST, local.port()))
                .await;
            assert_eq!(res.unwrap(), 4, "[{mode}]");
            let (res, buf) = s.recv_from(Vec::with_capacity(8)).await;
            assert_eq!(&buf[..res.unwrap().0], b"pair", "[{mode}]");
            // A link-local address on an interface that does not exist.
            let e = UdpSocket::bind("[fe80::1%4000000]:0").unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::ENODEV), "[{mode}] {e}");
        });
    });
}

#[test]
fn text_that_is_not_an_address_fails_to_resolve() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            // No port: not an address, and not a "host:port" either.
            for bad in ["127.0.0.1", "[::1]", "127.0.0.1:99999"] {
                let e = UdpSocket::bind(bad).unwrap_err();
                assert_eq!(e.kind(), ErrorKind::InvalidInput, "[{mode}] {bad}: {e}");
                assert!(e.to_string().contains(bad), "[{mode}] names {bad}: {e}");
                let e = TcpStream::connect(bad).await.unwrap_err();
                assert_eq!(e.kind(), ErrorKind::InvalidInput, "[{mode}] {bad}: {e}");
            }
        });
    });
}
