//! Edge and error paths of the `futures_io` adapters of `TcpStream`
//! (`src/net/compat.rs`): zero-length reads and writes, the write-behind
//! under a peer that reads slowly (short sends resubmitted, bytes in order)
//! or resets (the error surfacing on the next write, flush or close), a
//! read in flight when the peer resets, a compat read right after an
//! owned-buffer read was dropped in flight (the carry), I/O polled outside
//! any context, and the `Debug` output of the adapter state; and mixing
//! the adapters with the owned-buffer methods on one stream (the stream
//! order is the order of the calls). Both modes.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::task::Poll;

use common::{each_mode, fd_shared, poll_once, poll_outside};
// Inherent owned-buffer methods of the same names win over the traits:
// call the traits explicitly.
use futures_util::io::{AsyncReadExt as R, AsyncWriteExt as W};
use ringio::net::TcpStream;
use socket2::{Domain, SockRef, Socket, Type};

/// Send and receive buffer size asked for (the kernel doubles it).
const SMALL_BUF: usize = 4096;

/// A ringio client with a small send buffer, connected to a std peer with
/// a small receive buffer (set on the listener, so the window is small from
/// the handshake on).
fn small_pair() -> (TcpStream, std::net::TcpStream) {
    let l = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    l.set_recv_buffer_size(SMALL_BUF).unwrap();
    l.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    l.listen(1).unwrap();
    let c = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    c.set_send_buffer_size(SMALL_BUF).unwrap();
    c.connect(&l.local_addr().unwrap()).unwrap();
    let (p, _) = l.accept().unwrap();
    (
        TcpStream::from(std::net::TcpStream::from(c)),
        std::net::TcpStream::from(p),
    )
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(29).wrapping_add(seed) ^ (i >> 10) as u8)
        .collect()
}

/// Writes 64 KiB chunks (polling each write once) until a write has been
/// accepted into the write-behind buffer (its send is in flight, stuck
/// because the peer does not read). Returns the bytes accepted in all.
/// Puts an internal read in flight, lets it receive `0123456789`, and
/// takes `012` through the adapter: 7 bytes stay in its buffer.
async fn leave_seven_unread(
    c: &mut TcpStream,
    peer: &mut std::net::TcpStream,
    mode: impl std::fmt::Display,
) {
    {
        let mut buf = [0u8; 16];
        let mut r = R::read(&mut *c, &mut buf);
        assert!(poll_once(&mut r).await.is_pending(), "[{mode}]");
    }
    peer.write_all(b"0123456789").unwrap();
    let mut three = [0u8; 3];
    R::read_exact(&mut *c, &mut three).await.unwrap();
    assert_eq!(&three, b"012", "[{mode}]");
}

async fn fill_until_write_behind(c: &mut TcpStream) -> usize {
    // Let the ring take what is queued for it (the context's wake-up poll
    // at start): a send with SQEs queued skips speculation and would go
    // behind before the socket is full, which these tests rely on.
    ringio::io::nop().await.unwrap();
    let chunk = vec![0x5au8; 64 * 1024];
    let mut accepted = 0;
    for _ in 0..200 {
        if format!("{c:?}").contains("writing: true") {
            return accepted;
        }
        let mut w = W::write(c, &chunk);
        match poll_once(&mut w).await {
            Poll::Ready(Ok(n)) => {
                assert!(n > 0 && n <= chunk.len(), "accepted {n}");
                accepted += n;
            }
            Poll::Ready(Err(e)) => panic!("write failed before the reset: {e}"),
            Poll::Pending => panic!("pending without a write-behind: {c:?}"),
        }
    }
    panic!("no write-behind after 200 writes of 64 KiB: {c:?}");
}

/// Resets the connection from the peer's side: `SO_LINGER` 0, then close.
fn reset(peer: std::net::TcpStream) {
    SockRef::from(&peer)
        .set_linger(Some(std::time::Duration::ZERO))
        .unwrap();
    drop(peer);
}

#[test]
fn zero_length_read_and_write_return_zero_at_once() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let (mut c, mut peer) = small_pair();
            // Nothing to read yet: an empty read must not wait for data.
            assert_eq!(R::read(&mut c, &mut []).await.unwrap(), 0, "[{mode}]");
            assert_eq!(W::write(&mut c, &[]).await.unwrap(), 0, "[{mode}]");
            // Nothing went out, and the stream still works both ways.
            W::write_all(&mut c, b"after").await.unwrap();
            W::flush(&mut c).await.unwrap();
            let mut got = [0u8; 5];
            peer.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"after", "[{mode}]");
            peer.write_all(b"back").unwrap();
            let mut back = [0u8; 4];
            R::read_exact(&mut c, &mut back).await.unwrap();
            assert_eq!(&back, b"back", "[{mode}]");
            // Bytes waiting, empty read: still zero, the bytes stay.
            peer.write_all(b"kept").unwrap();
            assert_eq!(R::read(&mut c, &mut []).await.unwrap(), 0, "[{mode}]");
            let mut kept = [0u8; 4];
            R::read_exact(&mut c, &mut kept).await.unwrap();
            assert_eq!(&kept, b"kept", "[{mode}]");
        });
    });
}

#[test]
fn write_behind_short_sends_keep_every_byte_in_order() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let (mut c, mut peer) = small_pair();
            const TOTAL: usize = 1 << 20;
            // The peer drains in small reads, so each write-behind send of
            // up to 64 KiB only finds room for part of it at a time.
            let reader = std::thread::spawn(move || {
                let mut got = Vec::with_capacity(TOTAL);
                let mut buf = [0u8; 1000];
                loop {
                    match peer.read(&mut buf).unwrap() {
                        0 => return got,
                        n => got.extend_from_slice(&buf[..n]),
                    }
                }
            });
            let data = pattern(TOTAL, 11);
            W::write_all(&mut c, &data).await.unwrap();
            W::flush(&mut c).await.unwrap();
            W::close(&mut c).await.unwrap();
            let got = reader.join().unwrap();
            assert_eq!(got.len(), TOTAL, "[{mode}]");
            assert!(got == data, "[{mode}] bytes reordered or corrupted");
        });
    });
}

#[test]
fn write_behind_reset_surfaces_on_next_flush() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let (mut c, peer) = small_pair();
            fill_until_write_behind(&mut c).await;
            reset(peer);
            let e = W::flush(&mut c).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ConnectionReset, "[{mode}] {e}");
            // Reported once. Since the socket was full, sends no longer
            // speculate: the next write is taken into the write-behind
            // buffer, and its own failure (EPIPE, the connection is dead)
            // comes out of the flush after it; then nothing is left.
            assert!(format!("{c:?}").contains("writing: false"), "[{mode}]");
            assert_eq!(W::write(&mut c, b"more").await.unwrap(), 4, "[{mode}]");
            assert!(format!("{c:?}").contains("writing: true"), "[{mode}]");
            let e = W::flush(&mut c).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::BrokenPipe, "[{mode}] {e}");
            W::flush(&mut c).await.unwrap();
        });
    });
}

#[test]
fn write_behind_reset_surfaces_on_next_write() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let (mut c, peer) = small_pair();
            fill_until_write_behind(&mut c).await;
            reset(peer);
            let e = W::write(&mut c, b"next").await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ConnectionReset, "[{mode}] {e}");
            // The next write is accepted behind (see above); its EPIPE
            // comes out of the write after it.
            assert_eq!(W::write(&mut c, b"again").await.unwrap(), 5, "[{mode}]");
            let e = W::write(&mut c, b"third").await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::BrokenPipe, "[{mode}] {e}");
        });
    });
}

#[test]
fn write_behind_reset_surfaces_on_close() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let (mut c, peer) = small_pair();
            fill_until_write_behind(&mut c).await;
            reset(peer);
            let e = W::close(&mut c).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ConnectionReset, "[{mode}] {e}");
            // The error was reported; a second close has nothing to flush
            // and shutting down a reset socket is not an error.
            W::close(&mut c).await.unwrap();
        });
    });
}

#[test]
fn read_in_flight_fails_when_the_peer_resets() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let (mut c, peer) = small_pair();
            let mut buf = [0u8; 32];
            {
                // No data: the read goes to the ring and stays in flight
                // (in the socket) after this future is dropped.
                let mut r = R::read(&mut c, &mut buf);
                assert!(poll_once(&mut r).await.is_pending(), "[{mode}]");
            }
            assert!(format!("{c:?}").contains("reading: true"), "[{mode}]");
            reset(peer);
            let e = R::read(&mut c, &mut buf).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ConnectionReset, "[{mode}] {e}");
            assert!(format!("{c:?}").contains("reading: false"), "[{mode}]");
        });
    });
}

#[test]
fn compat_read_after_a_dropped_owned_read_gets_the_bytes_in_order() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let (mut c, mut peer) = small_pair();
            for round in 0..20u8 {
                {
                    // An owned-buffer read in flight, then dropped: its
                    // cancellation is pending, so the socket's carry is busy.
                    let mut r = Box::pin(c.read(Vec::with_capacity(64)));
                    assert!(poll_once(&mut r).await.is_pending(), "[{mode}]");
                }
                let msg = [round, round ^ 0xff, 7, round];
                peer.write_all(&msg).unwrap();
                // Whether the cancelled read got the bytes (carried) or
                // not, the compat read returns exactly them.
                let mut got = [0u8; 4];
                R::read_exact(&mut c, &mut got).await.unwrap();
                assert_eq!(got, msg, "[{mode}] round {round}");
            }
            peer.shutdown(Shutdown::Write).unwrap();
            let mut rest = Vec::new();
            R::read_to_end(&mut c, &mut rest).await.unwrap();
            assert_eq!(rest, b"", "[{mode}] no stray bytes");
        });
    });
}

#[test]
fn compat_io_outside_a_context_is_an_error_and_the_stream_survives() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let (mut c, mut peer) = small_pair();
        // Outside any context: no speculation, and the ring op cannot
        // start. Both directions fail at once instead of hanging.
        let mut buf = [0u8; 8];
        let mut r = R::read(&mut c, &mut buf);
        match poll_outside(&mut r) {
            Poll::Ready(Err(e)) => {
                assert_eq!(e.kind(), ErrorKind::Other, "[{mode}] {e}");
                assert!(e.to_string().contains("outside a running IoContext"));
            }
            other => panic!("[{mode}] read outside a context: {other:?}"),
        }
        let mut w = W::write(&mut c, b"lost");
        match poll_outside(&mut w) {
            Poll::Ready(Err(e)) => {
                assert_eq!(e.kind(), ErrorKind::Other, "[{mode}] {e}");
                assert!(e.to_string().contains("outside a running IoContext"));
            }
            other => panic!("[{mode}] write outside a context: {other:?}"),
        }
        let mut f = W::flush(&mut c);
        assert!(
            matches!(poll_outside(&mut f), Poll::Ready(Ok(()))),
            "[{mode}] the failed write is not reported twice"
        );
        assert!(
            format!("{c:?}").contains("Compat { reading: false, unread: 0, writing: false }"),
            "[{mode}] {c:?}"
        );
        // Inside the context the stream works, and the failed write sent
        // nothing.
        ctx.block_on(async {
            W::write_all(&mut c, b"inside").await.unwrap();
            W::close(&mut c).await.unwrap();
        });
        let mut got = Vec::new();
        peer.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"inside", "[{mode}]");
    });
}

#[test]
fn debug_shows_unread_bytes_of_the_internal_buffer() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let (mut c, mut peer) = small_pair();
            leave_seven_unread(&mut c, &mut peer, mode).await;
            let dbg = format!("{c:?}");
            assert!(dbg.contains("unread: 7"), "[{mode}] {dbg}");
            let mut rest = [0u8; 7];
            R::read_exact(&mut c, &mut rest).await.unwrap();
            assert_eq!(&rest, b"3456789", "[{mode}]");
            assert!(format!("{c:?}").contains("unread: 0"), "[{mode}]");
        });
    });
}

#[test]

fn owned_write_after_a_compat_write_behind_does_not_overtake_it() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let (mut c, mut peer) = small_pair();
            // `W::write` reported these bytes written; part of them still
            // sits in the write-behind buffer, its send stuck (the peer does
            // not read yet).
            let accepted = fill_until_write_behind(&mut c).await;
            let tail = pattern(100_000, 1);
            let mut write = Box::pin(c.write_all(tail.clone()));
            assert!(poll_once(&mut write).await.is_pending(), "[{mode}]");
            let reader = std::thread::spawn(move || {
                let mut got = Vec::new();
                peer.read_to_end(&mut got).unwrap();
                got
            });
            let (res, _) = write.await;
            res.unwrap();
            W::close(&mut c).await.unwrap();
            let got = reader.join().unwrap();
            assert_eq!(got.len(), accepted + tail.len(), "[{mode}]");
            let first_tail = got.iter().position(|&b| b != 0x5a);
            assert_eq!(
                first_tail,
                Some(accepted),
                "[{mode}] the owned write's bytes must come after the {accepted} \
                 bytes `W::write` had already reported written"
            );
            assert!(got[accepted..] == tail[..], "[{mode}] tail intact");
        });
    });
}

#[test]

fn owned_read_after_a_compat_read_gets_the_buffered_bytes_first() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let (mut c, mut peer) = small_pair();
            leave_seven_unread(&mut c, &mut peer, mode).await;
            // 7 bytes wait in the adapter's buffer; later bytes arrive.
            peer.write_all(b"abc").unwrap();
            peer.shutdown(Shutdown::Write).unwrap();
            let mut got = Vec::new();
            for _ in 0..10 {
                let (res, buf) = c.read(Vec::with_capacity(64)).await;
                match res.unwrap() {
                    0 => break,
                    n => got.extend_from_slice(&buf[..n]),
                }
            }
            assert_eq!(got, b"3456789abc", "[{mode}] stream order");
        });
    });
}
