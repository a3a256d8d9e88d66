//! Multishot `RECVMSG` of UDP datagrams into a `BufRing`
//! (`recv_from_multishot`): every datagram with its payload and source,
//! through a ring small enough to run dry while the reader holds buffers;
//! zero-length and cut-short datagrams; buffers too small for the header;
//! a stream dropped with datagrams in flight gives every buffer back; the
//! `Stream` trait. Both modes.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{drive_with, each_mode, Mode};
use ringio::buf::{BufRing, RingBuf};
use ringio::net::UdpSocket;
use ringio::time::timeout;
use ringio::IoContext;

/// The payload of datagram `i`: 8 bytes of index, then `i % 150` bytes.
fn payload(i: usize) -> Vec<u8> {
    let mut v = (i as u64).to_le_bytes().to_vec();
    v.extend((0..i % 150).map(|k| (k as u8) ^ (i as u8)));
    v
}

fn drive<F: std::future::Future>(mode: Mode, ctx: &IoContext, fut: F) -> F::Output {
    drive_with(mode, ctx, 2, fut)
}

#[test]
fn every_datagram_with_its_source_through_a_small_ring() {
    each_mode(|mode, ctx| {
        drive(mode, &ctx, async {
            let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
            let to = rx.local_addr().unwrap();
            let senders = [
                UdpSocket::bind("127.0.0.1:0").unwrap(),
                UdpSocket::bind("127.0.0.1:0").unwrap(),
            ];
            let from: Vec<SocketAddr> = senders.iter().map(|s| s.local_addr().unwrap()).collect();
            let ring = BufRing::new(8, 512).unwrap();
            let mut stream = rx.recv_from_multishot(&ring);
            let mut held: Vec<RingBuf> = Vec::new();
            const ROUNDS: usize = 40;
            const PER_ROUND: usize = 50;
            for round in 0..ROUNDS {
                // A round at a time, so the socket's receive buffer never
                // overflows (UDP would drop what does not fit).
                for k in 0..PER_ROUND {
                    let i = round * PER_ROUND + k;
                    let (res, _) = senders[i % 2].send_to(payload(i), to).await;
                    res.unwrap();
                }
                let mut next = [round * PER_ROUND, round * PER_ROUND + 1];
                for _ in 0..PER_ROUND {
                    let (buf, src) = timeout(Duration::from_secs(5), stream.next())
                        .await
                        .expect("a datagram")
                        .unwrap()
                        .unwrap();
                    let i = u64::from_le_bytes(buf[..8].try_into().unwrap()) as usize;
                    let s = i % 2;
                    assert_eq!(src, from[s], "[{mode}] source of datagram {i}");
                    assert_eq!(i, next[s], "[{mode}] order from sender {s}");
                    next[s] += 2;
                    assert_eq!(&buf[..], &payload(i)[..], "[{mode}] payload {i}");
                    held.push(buf);
                    // Hold up to 6 of the 8 buffers at a time.
                    if held.len() == 6 {
                        held.clear();
                    }
                }
            }
            drop(held);
            assert_eq!(ring.lent(), 0);
        });
    });
}

#[test]
fn empty_and_cut_short_datagrams() {
    each_mode(|mode, ctx| {
        drive(mode, &ctx, async {
            let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
            let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
            let to = rx.local_addr().unwrap();
            // 160-byte buffers: 144 for the header and source, 16 for data.
            let ring = BufRing::new(4, 160).unwrap();
            let mut stream = rx.recv_from_multishot(&ring);
            tx.send_to(Vec::new(), to).await.0.unwrap();
            let (empty, src) = stream.next().await.unwrap().unwrap();
            assert!(empty.is_empty(), "[{mode}]");
            assert_eq!(src, tx.local_addr().unwrap());
            let long: Vec<u8> = (0..40).collect();
            tx.send_to(long.clone(), to).await.0.unwrap();
            let (cut, _) = stream.next().await.unwrap().unwrap();
            assert_eq!(&cut[..], &long[..16], "[{mode}] cut to the room left");
        });
    });
}

#[test]
fn buffers_without_room_for_a_payload_are_refused() {
    each_mode(|_, ctx| {
        ctx.block_on(async {
            let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
            let ring = BufRing::new(4, 144).unwrap();
            let e = rx
                .recv_from_multishot(&ring)
                .next()
                .await
                .unwrap()
                .unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
            assert!(e.to_string().contains("144"), "{e}");
        });
    });
}

#[test]
fn a_dropped_stream_gives_every_buffer_back() {
    each_mode(|mode, ctx| {
        drive(mode, &ctx, async {
            let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
            let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
            let to = rx.local_addr().unwrap();
            let ring = BufRing::new(4, 256).unwrap();
            for round in 0..20 {
                let mut stream = rx.recv_from_multishot(&ring);
                for i in 0..3 {
                    tx.send_to(payload(round * 3 + i), to).await.0.unwrap();
                }
                // Take one; the others are queued or in flight when the
                // stream goes.
                let (buf, _) = stream.next().await.unwrap().unwrap();
                assert!(buf.len() >= 8);
                drop(buf);
                drop(stream);
                // Let the cancel and any late completion come through.
                ringio::io::nop().await.unwrap();
                ringio::time::sleep(Duration::from_millis(1)).await;
            }
            assert_eq!(ring.lent(), 0, "[{mode}] late datagrams' buffers went back");
            // And they are back in the ring: a fresh stream can hold all
            // four at once (a lost buffer would leave it starved here).
            let mut stream = rx.recv_from_multishot(&ring);
            for i in 0..4 {
                tx.send_to(payload(1000 + i), to).await.0.unwrap();
            }
            let mut held = Vec::new();
            for _ in 0..4 {
                let (buf, _) = timeout(Duration::from_secs(5), stream.next())
                    .await
                    .expect("every buffer is back in the ring")
                    .unwrap()
                    .unwrap();
                held.push(buf);
            }
            assert_eq!(ring.lent(), 4);
        });
    });
}

#[test]
fn the_stream_trait_yields_datagrams_with_their_sources() {
    use futures_util::stream::StreamExt;
    each_mode(|mode, ctx| {
        drive(mode, &ctx, async {
            let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
            let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
            let ring = BufRing::new(4, 512).unwrap();
            let mut stream = rx.recv_from_multishot(&ring);
            for i in 0..10 {
                let (res, _) = tx.send_to(payload(i), rx.local_addr().unwrap()).await;
                res.unwrap();
                let (buf, src) = timeout(Duration::from_secs(5), StreamExt::next(&mut stream))
                    .await
                    .expect("a datagram")
                    .expect("datagram streams do not end")
                    .unwrap();
                assert_eq!(src, tx.local_addr().unwrap(), "[{mode}]");
                assert_eq!(&buf[..], &payload(i)[..], "[{mode}] payload {i}");
            }
            let shown = format!("{stream:?}");
            assert!(shown.contains("armed: true"), "[{mode}] {shown}");
        });
    });
}
