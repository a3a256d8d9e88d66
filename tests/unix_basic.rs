//! Unix-domain sockets: stream pairs and listeners, datagram pairs and
//! addressed datagrams, addresses, errors, fd hygiene.

mod common;

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::each_mode;
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use ringio::net::{UnixDatagram, UnixListener, UnixStream};

fn temp_path(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let p = std::env::temp_dir().join(format!(
        "ringio-{}-{tag}-{}.sock",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_file(&p);
    p
}

#[test]
fn stream_pair_round_trip_both_ways() {
    each_mode(|_, ctx| {
        let _fds = common::fd_shared();
        ctx.block_on(async {
            let (a, b) = UnixStream::pair().unwrap();
            let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
            let expect = data.clone();
            let writer = ringio::spawn(async move {
                let (res, _) = a.write_all(data).await;
                res.unwrap();
                a.shutdown(std::net::Shutdown::Write).unwrap();
                a
            });
            let mut got = Vec::new();
            let mut buf = Vec::with_capacity(8192);
            loop {
                buf.clear();
                let (res, b2) = b.read(buf).await;
                buf = b2;
                match res.unwrap() {
                    0 => break,
                    n => got.extend_from_slice(&buf[..n]),
                }
            }
            assert_eq!(got, expect);
            let a = writer.await.unwrap();
            let (res, _) = b.write_all(b"back".to_vec()).await;
            res.unwrap();
            let (res, buf) = a.read_exact(Vec::with_capacity(4)).await;
            res.unwrap();
            assert_eq!(buf, b"back");
            assert!(a.peer_addr().unwrap().is_unnamed());
        });
    });
}

#[test]
fn listener_accepts_connects_and_reports_addresses() {
    each_mode(|_, ctx| {
        let _fds = common::fd_shared();
        let path = temp_path("listen");
        ctx.block_on(async {
            let listener = UnixListener::bind(&path).unwrap();
            assert_eq!(
                listener.local_addr().unwrap().as_pathname(),
                Some(path.as_path())
            );
            let p2 = path.clone();
            let clients = ringio::spawn(async move {
                for i in 0..20u8 {
                    let s = UnixStream::connect(&p2).await.unwrap();
                    let (res, _) = s.write_all(vec![i; 3]).await;
                    res.unwrap();
                    let (res, buf) = s.read_exact(Vec::with_capacity(3)).await;
                    res.unwrap();
                    assert_eq!(buf, vec![i + 1; 3]);
                }
            });
            for _ in 0..20 {
                let (s, peer) = listener.accept().await.unwrap();
                assert!(peer.is_unnamed(), "{peer:?}");
                let (res, buf) = s.read_exact(Vec::with_capacity(3)).await;
                res.unwrap();
                let (res, _) = s.write_all(vec![buf[0] + 1; 3]).await;
                res.unwrap();
            }
            clients.await.unwrap();
        });
        std::fs::remove_file(&path).unwrap();
    });
}

#[test]
fn futures_io_traits_on_unix_streams() {
    each_mode(|_, ctx| {
        let _fds = common::fd_shared();
        ctx.block_on(async {
            let (mut a, b) = UnixStream::pair().unwrap();
            // The inherent owned-buffer `write_all` shadows the trait method.
            AsyncWriteExt::write_all(&mut a, b"through futures-io")
                .await
                .unwrap();
            a.close().await.unwrap();
            let mut s = String::new();
            (&b).read_to_string(&mut s).await.unwrap();
            assert_eq!(s, "through futures-io");
        });
    });
}

#[test]
fn datagram_pair_keeps_boundaries_and_empty_datagrams() {
    each_mode(|_, ctx| {
        let _fds = common::fd_shared();
        ctx.block_on(async {
            let (a, b) = UnixDatagram::pair().unwrap();
            for msg in [&b"one"[..], b"", b"three", b""] {
                let (res, _) = a.send(msg.to_vec()).await;
                assert_eq!(res.unwrap(), msg.len());
            }
            for msg in [&b"one"[..], b"", b"three", b""] {
                let (res, buf) = b.recv(Vec::with_capacity(64)).await;
                assert_eq!(&buf[..res.unwrap()], msg);
            }
        });
    });
}

#[test]
fn addressed_datagrams_report_their_source() {
    each_mode(|_, ctx| {
        let _fds = common::fd_shared();
        let (pa, pb) = (temp_path("dga"), temp_path("dgb"));
        ctx.block_on(async {
            let a = UnixDatagram::bind(&pa).unwrap();
            let b = UnixDatagram::bind(&pb).unwrap();
            let (res, _) = a.send_to(b"hello".to_vec(), &pb).await;
            res.unwrap();
            let (res, buf) = b.recv_from(Vec::with_capacity(16)).await;
            let (n, from) = res.unwrap();
            assert_eq!(&buf[..n], b"hello");
            assert_eq!(from.as_pathname(), Some(pa.as_path()));
            // An unbound sender has an unnamed address.
            let anon = UnixDatagram::unbound().unwrap();
            let (res, _) = anon.send_to(b"x".to_vec(), &pb).await;
            res.unwrap();
            let (res, _) = b.recv_from(Vec::with_capacity(16)).await;
            assert!(res.unwrap().1.is_unnamed());
            // connect + send
            anon.connect(&pa).unwrap();
            let (res, _) = anon.send(b"y".to_vec()).await;
            res.unwrap();
            let (res, buf) = a.recv(Vec::with_capacity(4)).await;
            assert_eq!(&buf[..res.unwrap()], b"y");
        });
        std::fs::remove_file(&pa).unwrap();
        std::fs::remove_file(&pb).unwrap();
    });
}

#[test]
fn errors_are_errors() {
    each_mode(|_, ctx| {
        let _fds = common::fd_shared();
        ctx.block_on(async {
            let missing = temp_path("missing");
            let e = UnixStream::connect(&missing).await.unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
            let (res, _) = UnixDatagram::unbound()
                .unwrap()
                .send_to(b"x".to_vec(), &missing)
                .await;
            assert!(res.is_err());
            // A path too long for sockaddr_un.
            let long = "x".repeat(200);
            assert!(UnixListener::bind(&long).is_err());
            // Binding twice.
            let p = temp_path("twice");
            let _l = UnixListener::bind(&p).unwrap();
            assert_eq!(
                UnixListener::bind(&p).unwrap_err().kind(),
                io::ErrorKind::AddrInUse
            );
            std::fs::remove_file(&p).unwrap();
            // Writing to a closed peer: an error, not SIGPIPE.
            let (a, b) = UnixStream::pair().unwrap();
            drop(b);
            let (res, _) = a.write(b"x".to_vec()).await;
            assert_eq!(res.unwrap_err().kind(), io::ErrorKind::BrokenPipe);
        });
    });
}

#[test]
fn no_fd_leak_across_many_pairs_and_connections() {
    common::watchdog(std::time::Duration::from_secs(30), || {
        let _fds = common::fd_exclusive();
        let path = temp_path("leak");
        for mode in common::modes() {
            let ctx = mode.build();
            let before = common::open_fds();
            ctx.block_on(async {
                let listener = UnixListener::bind(&path).unwrap();
                for _ in 0..200 {
                    let (a, b) = UnixStream::pair().unwrap();
                    let (res, _) = a.write(b"z".to_vec()).await;
                    res.unwrap();
                    let (res, _) = b.read(vec![0u8; 1]).await;
                    res.unwrap();
                    let c = UnixStream::connect(&path).await.unwrap();
                    let (s, _) = listener.accept().await.unwrap();
                    drop((c, s));
                }
            });
            std::fs::remove_file(&path).unwrap();
            common::assert_fds_back_to(before, &format!("[{mode}] unix churn"));
            drop(ctx);
        }
    });
}

#[test]
fn incoming_std_conversions_and_datagram_addresses() {
    use futures_util::StreamExt;
    each_mode(|_, ctx| {
        let _fds = common::fd_shared();
        let (pl, pd) = (temp_path("inc"), temp_path("dgaddr"));
        ctx.block_on(async {
            // A std listener adopted, accepting through `incoming()`.
            let std_listener = std::os::unix::net::UnixListener::bind(&pl).unwrap();
            let listener = UnixListener::from(std_listener);
            let p2 = pl.clone();
            let client = ringio::spawn(async move {
                let s = UnixStream::connect(&p2).await.unwrap();
                let (res, _) = s.write_all(b"in".to_vec()).await;
                res.unwrap();
            });
            let mut incoming = listener.incoming();
            let s = incoming.next().await.unwrap().unwrap();
            let (res, buf) = s.read_exact(Vec::with_capacity(2)).await;
            res.unwrap();
            assert_eq!(buf, b"in");
            assert_eq!(s.local_addr().unwrap().as_pathname(), Some(pl.as_path()));
            client.await.unwrap();

            // A std stream adopted.
            let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
            let (a, b) = (UnixStream::from(a), UnixStream::from(b));
            let (res, _) = a.write(b"x".to_vec()).await;
            res.unwrap();
            let (res, _) = b.read(Vec::with_capacity(1)).await;
            assert_eq!(res.unwrap(), 1);

            // Datagram addresses, shutdown, and a std datagram adopted.
            let d = UnixDatagram::from(std::os::unix::net::UnixDatagram::bind(&pd).unwrap());
            assert_eq!(d.local_addr().unwrap().as_pathname(), Some(pd.as_path()));
            assert!(d.peer_addr().is_err(), "not connected");
            let (x, y) = UnixDatagram::pair().unwrap();
            assert!(x.peer_addr().unwrap().is_unnamed());
            y.shutdown(std::net::Shutdown::Read).unwrap();
            let (res, _) = y.recv(Vec::with_capacity(4)).await;
            assert_eq!(res.unwrap(), 0, "read side shut down: end of data");
            let name = format!("{:?}", x.local_addr().unwrap());
            assert!(name.contains("unnamed"), "{name}");
        });
        std::fs::remove_file(&pl).unwrap();
        std::fs::remove_file(&pd).unwrap();
    });
}
