//! UDP error and edge paths (`src/net/udp.rs`): ICMP port-unreachable on a
//! connected socket (`ConnectionRefused` on the next recv), oversized
//! datagrams (`EMSGSIZE`), connecting to an address of the other family,
//! IPv6 multicast options, the raw descriptor, and an adopted socket that
//! is not an internet socket (`InvalidData` instead of a bogus address).
//! Both modes.

mod common;

use std::io::ErrorKind;
use std::net::{Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd};

use common::{each_mode, fd_shared};
use ringio::net::UdpSocket;
use socket2::SockRef;

/// A loopback port with nothing bound to it (bound, then released).
fn closed_port() -> SocketAddr {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap()
}

#[test]
fn connected_send_to_a_closed_port_makes_the_next_recv_refused() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.connect(closed_port()).await.unwrap();
            let (res, _) = s.send(b"anyone?".to_vec()).await;
            assert_eq!(res.unwrap(), 7, "[{mode}] the datagram leaves");
            // The ICMP port unreachable comes back as the socket's error.
            let (res, buf) = s.recv(Vec::with_capacity(16)).await;
            let e = res.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "[{mode}] {e}");
            assert_eq!(buf.len(), 0, "[{mode}]");
            // Reported once: the socket works again with a live peer.
            let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.connect(peer.local_addr().unwrap()).await.unwrap();
            peer.connect(s.local_addr().unwrap()).await.unwrap();
            let (res, _) = peer.send(b"alive".to_vec()).await;
            assert_eq!(res.unwrap(), 5);
            let (res, buf) = s.recv(Vec::with_capacity(16)).await;
            assert_eq!(&buf[..res.unwrap()], b"alive", "[{mode}]");
        });
    });
}

#[test]
fn oversized_datagrams_fail_with_emsgsize() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let a = UdpSocket::bind("127.0.0.1:0").unwrap();
            let b = UdpSocket::bind("127.0.0.1:0").unwrap();
            // Over the 65507-byte UDP/IPv4 payload limit.
            let big = vec![1u8; 65_508];
            let (res, back) = a.send_to(big, b.local_addr().unwrap()).await;
            let e = res.unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EMSGSIZE), "[{mode}] {e}");
            assert_eq!(back.len(), 65_508, "[{mode}] the buffer comes back");
            a.connect(b.local_addr().unwrap()).await.unwrap();
            let (res, _) = a.send(back).await;
            assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::EMSGSIZE));
            // The limit itself goes through whole.
            let (res, _) = a.send(vec![2u8; 65_507]).await;
            assert_eq!(res.unwrap(), 65_507, "[{mode}]");
            let (res, buf) = b.recv(Vec::with_capacity(70_000)).await;
            let n = res.unwrap();
            assert_eq!(n, 65_507, "[{mode}]");
            assert!(buf.iter().all(|&x| x == 2), "[{mode}]");
        });
    });
}

#[test]
fn connect_to_the_other_family_fails_and_keeps_the_socket_unconnected() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            let e = s.connect("[::1]:9").await.unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EAFNOSUPPORT), "[{mode}] {e}");
            assert_eq!(s.peer_addr().unwrap_err().kind(), ErrorKind::NotConnected);
            // With a working address after it, the working one is used.
            let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
            let to = peer.local_addr().unwrap();
            let six: SocketAddr = "[::1]:9".parse().unwrap();
            s.connect(&[six, to][..]).await.unwrap();
            assert_eq!(s.peer_addr().unwrap(), to, "[{mode}]");
            // `send_to` uses the first address only.
            let (res, _) = s.send_to(b"x".to_vec(), [six, to]).await;
            assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::EAFNOSUPPORT));
        });
    });
}

#[test]
fn ipv6_multicast_options() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let s = UdpSocket::bind("[::1]:0").unwrap();
            s.set_multicast_loop_v6(false).unwrap();
            assert!(!SockRef::from(&s).multicast_loop_v6().unwrap(), "[{mode}]");
            s.set_multicast_loop_v6(true).unwrap();
            assert!(SockRef::from(&s).multicast_loop_v6().unwrap(), "[{mode}]");
            let group: Ipv6Addr = "ff02::1:2".parse().unwrap();
            // Leaving a group never joined.
            let e = s.leave_multicast_v6(group, 1).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EADDRNOTAVAIL), "[{mode}] {e}");
            // A unicast address is no group.
            let e = s.join_multicast_v6(Ipv6Addr::LOCALHOST, 1).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "[{mode}] {e}");
            // IPv6 options on an IPv4 socket.
            let v4 = UdpSocket::bind("127.0.0.1:0").unwrap();
            let e = v4.join_multicast_v6(group, 0).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::ENOPROTOOPT), "[{mode}] {e}");
            let e4 = v4.set_multicast_loop_v6(false).unwrap_err();
            assert_eq!(e4.raw_os_error(), e.raw_os_error(), "[{mode}] {e4}");
        });
    });
}

#[test]
fn raw_fd_and_as_fd_name_the_socket() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            assert_eq!(s.as_fd().as_raw_fd(), s.as_raw_fd(), "[{mode}]");
            // The descriptor is the bound socket itself.
            let via_fd = SockRef::from(&s.as_fd()).local_addr().unwrap();
            assert_eq!(
                via_fd.as_socket(),
                Some(s.local_addr().unwrap()),
                "[{mode}]"
            );
        });
    });
}

#[test]
fn an_adopted_non_internet_socket_reports_invalid_data() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            // A Unix datagram pair passed off as a UDP socket.
            let (a, b) = std::os::unix::net::UnixDatagram::pair().unwrap();
            // SAFETY: `into_raw_fd` hands over sole ownership of the fd.
            let std_sock = unsafe { std::net::UdpSocket::from_raw_fd(a.into_raw_fd()) };
            let s = UdpSocket::from(std_sock);
            let e = s.local_addr().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidData, "[{mode}] {e}");
            assert!(e.to_string().contains("internet"), "[{mode}] {e}");
            let e = s.peer_addr().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidData, "[{mode}] {e}");
            // A datagram arrives, but has no internet source address.
            b.send(b"unix").unwrap();
            let (res, buf) = s.recv_from(Vec::with_capacity(16)).await;
            let e = res.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidData, "[{mode}] {e}");
            assert_eq!(&buf[..], b"unix", "[{mode}] the bytes are in the buffer");
        });
    });
}
