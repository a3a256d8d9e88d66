//! UDP: datagram boundaries, zero-length datagrams, connected and
//! addressed I/O, IPv6, options, cancellation and bad input.

mod common;

use std::io;
use std::time::Duration;

use common::each_mode;
use ringio::net::UdpSocket;

#[test]
fn datagram_boundaries_are_kept() {
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let a = UdpSocket::bind("127.0.0.1:0").unwrap();
            let b = UdpSocket::bind("127.0.0.1:0").unwrap();
            let to = b.local_addr().unwrap();
            let sizes = [1usize, 7, 0, 1200, 3, 0, 512];
            for (i, &n) in sizes.iter().enumerate() {
                let msg = vec![i as u8; n];
                let (res, _) = a.send_to(msg, to).await;
                assert_eq!(res.unwrap(), n, "[{mode}] sent whole");
            }
            for (i, &n) in sizes.iter().enumerate() {
                let (res, buf) = b.recv_from(Vec::with_capacity(2048)).await;
                let (got, from) = res.unwrap();
                assert_eq!(got, n, "[{mode}] datagram {i} keeps its length");
                assert!(buf[..got].iter().all(|&x| x == i as u8));
                assert_eq!(from, a.local_addr().unwrap());
            }
        });
    });
}

#[test]
fn zero_length_datagram_is_received_as_such() {
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let (a, b) = connected_pair().await;
            let (res, _) = a.send(Vec::new()).await;
            assert_eq!(res.unwrap(), 0);
            let (res, _) = a.send(b"x".to_vec()).await;
            assert_eq!(res.unwrap(), 1);
            let (res, _) = b.recv(Vec::with_capacity(16)).await;
            assert_eq!(res.unwrap(), 0, "[{mode}] the empty datagram first");
            let (res, buf) = b.recv(Vec::with_capacity(16)).await;
            assert_eq!(&buf[..res.unwrap()], b"x");
        });
    });
}

async fn connected_pair() -> (UdpSocket, UdpSocket) {
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    a.connect(b.local_addr().unwrap()).await.unwrap();
    b.connect(a.local_addr().unwrap()).await.unwrap();
    (a, b)
}

#[test]
fn connected_send_recv_and_peer_addr() {
    each_mode(|_, ctx| {
        ctx.block_on(async {
            let (a, b) = connected_pair().await;
            assert_eq!(a.peer_addr().unwrap(), b.local_addr().unwrap());
            for i in 0..100u32 {
                let (res, _) = a.send(i.to_le_bytes().to_vec()).await;
                res.unwrap();
                let (res, buf) = b.recv(vec![0u8; 4]).await;
                assert_eq!(res.unwrap(), 4);
                assert_eq!(u32::from_le_bytes(buf[..4].try_into().unwrap()), i);
            }
        });
    });
}

#[test]
fn a_long_datagram_is_truncated_to_the_buffer() {
    each_mode(|_, ctx| {
        ctx.block_on(async {
            let (a, b) = connected_pair().await;
            let (res, _) = a.send(vec![9u8; 100]).await;
            res.unwrap();
            let (res, buf) = b.recv(Vec::with_capacity(10)).await;
            let n = res.unwrap();
            assert_eq!(n, buf.capacity().min(100), "filled to capacity, no more");
            // The rest of that datagram is gone: the next one is separate.
            let (res, _) = a.send(b"next".to_vec()).await;
            res.unwrap();
            let (res, buf) = b.recv(Vec::with_capacity(64)).await;
            assert_eq!(&buf[..res.unwrap()], b"next");
        });
    });
}

#[test]
fn ipv6_round_trip() {
    each_mode(|_, ctx| {
        ctx.block_on(async {
            let a = match UdpSocket::bind("[::1]:0") {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("skipping: ::1 unavailable ({e})");
                    return;
                }
            };
            let b = UdpSocket::bind("[::1]:0").unwrap();
            let (res, _) = a.send_to(b"six".to_vec(), b.local_addr().unwrap()).await;
            res.unwrap();
            let (res, buf) = b.recv_from(Vec::with_capacity(8)).await;
            let (n, from) = res.unwrap();
            assert_eq!(&buf[..n], b"six");
            assert!(from.is_ipv6());
        });
    });
}

#[test]
fn recv_cancelled_by_timeout_and_by_cancel() {
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let (a, b) = connected_pair().await;
            let r = ringio::time::timeout(Duration::from_millis(5), b.recv(vec![0u8; 8])).await;
            assert!(r.is_err(), "[{mode}] nothing sent: timed out");
            // cancel() from another task fails the pending recv.
            let b = std::sync::Arc::new(b);
            let reader = {
                let b = b.clone();
                ringio::spawn(async move { b.recv(vec![0u8; 8]).await.0 })
            };
            ringio::time::sleep(Duration::from_millis(5)).await;
            b.cancel();
            let err = reader.await.unwrap().unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::ECANCELED), "[{mode}] {err}");
            // Still usable.
            let (res, _) = a.send(b"ok".to_vec()).await;
            res.unwrap();
            let (res, buf) = b.recv(vec![0u8; 8]).await;
            assert_eq!(&buf[..res.unwrap()], b"ok");
        });
    });
}

#[test]
fn options_and_bad_input() {
    each_mode(|_, ctx| {
        ctx.block_on(async {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_broadcast(true).unwrap();
            assert!(s.broadcast().unwrap());
            s.set_ttl(7).unwrap();
            s.set_multicast_loop_v4(true).unwrap();
            s.set_multicast_ttl_v4(2).unwrap();
            let group = "239.255.0.77".parse().unwrap();
            s.join_multicast_v4(group, "127.0.0.1".parse().unwrap())
                .or_else(|_| s.join_multicast_v4(group, std::net::Ipv4Addr::UNSPECIFIED))
                .unwrap();
            s.leave_multicast_v4(group, "127.0.0.1".parse().unwrap())
                .or_else(|_| s.leave_multicast_v4(group, std::net::Ipv4Addr::UNSPECIFIED))
                .unwrap();
            // Not connected: send has no destination.
            let (res, _) = s.send(b"x".to_vec()).await;
            assert!(res.is_err());
            assert!(s.peer_addr().is_err());
            // An empty address list.
            let none: &[std::net::SocketAddr] = &[];
            let (res, _) = s.send_to(b"x".to_vec(), none).await;
            assert_eq!(res.unwrap_err().kind(), io::ErrorKind::InvalidInput);
            assert!(UdpSocket::bind("not an address").is_err());
            // From std.
            let std_sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let addr = std_sock.local_addr().unwrap();
            let s2 = UdpSocket::from(std_sock);
            assert_eq!(s2.local_addr().unwrap(), addr);
        });
    });
}

#[test]
fn names_resolve_off_the_runner_and_listener_options() {
    each_mode(|_, ctx| {
        ctx.block_on(async {
            // `send_to` and `connect` with a host name go through lookup_host.
            let a = UdpSocket::bind("localhost:0").unwrap();
            let b = UdpSocket::bind("127.0.0.1:0").unwrap();
            let port = b.local_addr().unwrap().port();
            let (res, _) = a.send_to(b"named".to_vec(), ("localhost", port)).await;
            match res {
                Ok(n) => {
                    assert_eq!(n, 5);
                    let (res, buf) = b.recv_from(Vec::with_capacity(8)).await;
                    assert_eq!(&buf[..res.unwrap().0], b"named");
                }
                // localhost resolved to ::1 only while `a` is IPv4: an
                // address-family error, not a panic or a hang.
                Err(e) => assert!(e.raw_os_error().is_some(), "{e}"),
            }
            let e = a.connect("no-such-host.invalid:9").await.unwrap_err();
            assert!(e.to_string().contains("no-such-host.invalid"), "{e}");
            // TcpListener options.
            let l = ringio::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.set_ttl(9).unwrap();
            let s = ringio::net::TcpStream::connect(l.local_addr().unwrap())
                .await
                .unwrap();
            s.set_linger(Some(Duration::from_secs(1))).unwrap();
            s.set_ttl(17).unwrap();
            assert!(!s.nodelay().unwrap());
        });
    });
}
