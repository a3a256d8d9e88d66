//! TCP through `futures_io` (`futures_util::io::{AsyncReadExt,
//! AsyncWriteExt}` on `TcpStream` and `&TcpStream`: read_exact, write_all,
//! close, `io::copy` between streams, a `poll_read` future dropped in
//! flight or timed out again and again with no byte lost), plus the
//! conversions from std types, addresses and options, and vectored I/O.
//! Both modes.

mod common;

use std::net::Shutdown;
use std::time::Duration;

use common::{each_mode, fd_shared, poll_once, tcp_pair as pair};
// Inherent owned-buffer methods of the same names win over the traits:
// call the traits explicitly.
use futures_util::io::{AsyncReadExt as R, AsyncWriteExt as W};
use ringio::net::{TcpListener, TcpStream};
use ringio::time::{sleep, timeout};

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect()
}

#[test]
fn futures_io_round_trips_owned_and_shared() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let (mut c, s) = pair().await;
            // Owned stream writes, `&TcpStream` reads.
            W::write_all(&mut c, b"hello futures").await.unwrap();
            W::flush(&mut c).await.unwrap();
            let mut buf = [0u8; 13];
            R::read_exact(&mut &s, &mut buf).await.unwrap();
            assert_eq!(&buf, b"hello futures", "[{mode}]");
            // Large transfer both ways at once: write-behind and internal
            // reads, with a concurrent reader task.
            let big = pattern(1 << 20, 3);
            let expect = big.clone();
            let reader = ringio::spawn(async move {
                let mut got = Vec::new();
                R::read_to_end(&mut &s, &mut got).await.unwrap();
                // Reply through `&TcpStream` after EOF.
                W::write_all(&mut &s, b"bye").await.unwrap();
                W::close(&mut &s).await.unwrap();
                got
            });
            W::write_all(&mut c, &big).await.unwrap();
            W::close(&mut c).await.unwrap();
            let got = reader.await.unwrap();
            assert!(got == expect, "[{mode}] 1 MiB through futures-io differs");
            let mut tail = Vec::new();
            R::read_to_end(&mut c, &mut tail).await.unwrap();
            assert_eq!(tail, b"bye", "[{mode}]");
            // Writes after close fail (the write side is shut down).
            let e = W::write_all(&mut c, b"late").await.unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "[{mode}] {e}");
        });
    });
}

#[test]
fn futures_io_copy_between_streams() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let (mut a1, b1) = pair().await;
            let (mut a2, mut b2) = pair().await;
            let data = pattern(300_000, 9);
            let expect = data.clone();
            let proxy = ringio::spawn(async move {
                let n = futures_util::io::copy(&mut &b1, &mut a2).await.unwrap();
                W::close(&mut a2).await.unwrap();
                n
            });
            let writer = ringio::spawn(async move {
                for chunk in data.chunks(7777) {
                    W::write_all(&mut a1, chunk).await.unwrap();
                }
                W::close(&mut a1).await.unwrap();
            });
            let mut got = Vec::new();
            R::read_to_end(&mut b2, &mut got).await.unwrap();
            writer.await.unwrap();
            assert_eq!(proxy.await.unwrap(), expect.len() as u64, "[{mode}]");
            assert!(got == expect, "[{mode}] copied bytes differ");
        });
    });
}

#[test]
fn futures_io_dropped_read_loses_nothing() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let (c, mut s) = pair().await;
            // A read polled once (no data: the op goes in flight), then
            // dropped; the bytes it may receive are handed out next.
            for round in 0..10u8 {
                let mut buf = [0u8; 64];
                {
                    let mut fut = R::read(&mut s, &mut buf);
                    assert!(poll_once(&mut fut).await.is_pending(), "[{mode}]");
                }
                let msg = vec![round; 10];
                let (res, _) = c.write_all(msg.clone()).await;
                res.unwrap();
                let mut got = [0u8; 10];
                R::read_exact(&mut s, &mut got).await.unwrap();
                assert_eq!(&got[..], &msg[..], "[{mode}] round {round}");
            }
            // Timed-out reads again and again while a writer streams.
            const TOTAL: usize = 100_000;
            let writer = ringio::spawn(async move {
                let data = pattern(TOTAL, 5);
                for (i, chunk) in data.chunks(997).enumerate() {
                    let (res, _) = c.write_all(chunk.to_vec()).await;
                    res.unwrap();
                    if i % 3 == 0 {
                        sleep(Duration::from_micros(150)).await;
                    }
                }
                c.shutdown(Shutdown::Write).unwrap();
            });
            let mut got = Vec::new();
            let mut timeouts = 0;
            let mut k = 0u64;
            loop {
                k += 1;
                let mut buf = [0u8; 1500];
                let d = Duration::from_micros(k * 37 % 120);
                match timeout(d, R::read(&mut s, &mut buf)).await {
                    Ok(Ok(0)) => break,
                    Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
                    Ok(Err(e)) => panic!("[{mode}] {e}"),
                    Err(_) => timeouts += 1,
                }
            }
            writer.await.unwrap();
            assert!(
                got == pattern(TOTAL, 5),
                "[{mode}] {} bytes, out of order or lost",
                got.len()
            );
            assert!(timeouts > 5, "[{mode}] only {timeouts} reads timed out");
        });
    });
}

#[test]
fn std_conversions_addresses_and_options() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            // From<std::net::TcpListener> (blocking mode does not matter).
            let std_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = std_l.local_addr().unwrap();
            let listener = TcpListener::from(std_l);
            assert_eq!(listener.local_addr().unwrap(), addr);
            // From<std::net::TcpStream>: connected on a helper thread.
            let t = std::thread::spawn(move || std::net::TcpStream::connect(addr).unwrap());
            let (s, peer) = listener.accept().await.unwrap();
            let c = TcpStream::from(t.join().unwrap());
            assert_eq!(peer, c.local_addr().unwrap(), "[{mode}]");
            assert_eq!(s.peer_addr().unwrap(), c.local_addr().unwrap());
            assert_eq!(c.peer_addr().unwrap(), addr);
            assert_eq!(s.local_addr().unwrap(), addr);
            c.set_nodelay(true).unwrap();
            assert!(c.nodelay().unwrap());
            c.set_nodelay(false).unwrap();
            assert!(!c.nodelay().unwrap());
            // The adopted stream works through the ring both ways
            // (a read that has to wait, then a write).
            let r = ringio::spawn(async move {
                let (res, buf) = c.read_exact(Vec::with_capacity(5)).await;
                res.unwrap();
                let (res, _) = c.write_all(buf).await;
                res.unwrap();
                c
            });
            sleep(Duration::from_millis(2)).await;
            let (res, _) = s.write_all(b"adopt".to_vec()).await;
            res.unwrap();
            let (res, buf) = s.read_exact(Vec::with_capacity(5)).await;
            res.unwrap();
            assert_eq!(buf, b"adopt", "[{mode}]");
            let _c = r.await.unwrap();
        });
    });
}

#[test]
fn vectored_round_trip() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let (c, s) = pair().await;
            let (res, bufs) = c
                .writev(vec![
                    b"ab".to_vec(),
                    b"cde".to_vec(),
                    Vec::new(),
                    b"f".to_vec(),
                ])
                .await;
            assert_eq!(res.unwrap(), 6, "[{mode}]");
            assert_eq!(bufs.len(), 4);
            let (res, buf) = s.read_exact(Vec::with_capacity(6)).await;
            res.unwrap();
            assert_eq!(buf, b"abcdef");
            // readv spreads in order over the buffers (a read that waits
            // for the data, through the ring).
            let reader = ringio::spawn(async move {
                let (res, bufs) = s
                    .readv(vec![
                        Vec::with_capacity(2),
                        Vec::with_capacity(3),
                        Vec::with_capacity(10),
                    ])
                    .await;
                (res.unwrap(), bufs)
            });
            sleep(Duration::from_millis(2)).await;
            let (res, _) = c.write_all(b"ghijklm".to_vec()).await;
            res.unwrap();
            let (n, bufs) = reader.await.unwrap();
            assert_eq!(n, 7, "[{mode}]");
            assert_eq!(bufs[0], b"gh");
            assert_eq!(bufs[1], b"ijk");
            assert_eq!(&bufs[2][..2], b"lm");
        });
    });
}
