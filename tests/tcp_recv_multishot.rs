//! Multishot receive into a provided-buffer ring (`BufRing`,
//! `recv_multishot`): every byte in order through a ring far smaller than
//! the data (the kernel runs out of buffers and the stream resumes), a
//! consumer holding every buffer (the stream waits, then resumes), streams
//! dropped mid-flow (late chunks are carried to the next read), echo with
//! ring buffers as send buffers, Unix streams, the ring's bounds, one ring
//! per context, teardown in every order, a reset peer (an error, then the
//! end), and the `Stream`/`FusedStream` traits. Both modes.

mod common;

use std::net::Shutdown;
use std::time::Duration;

use common::{each_mode, fd_shared, tcp_pair as pair, watchdog, Mode};
use ringio::buf::{BufRing, RingBuf};
use ringio::net::{TcpStream, UnixStream};
use ringio::time::{sleep, timeout};
use ringio::IoContext;

/// The known sequence: byte `i` of the stream.
fn seq_byte(i: usize) -> u8 {
    let x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x >> 56) as u8 ^ (i / 251) as u8
}

fn seq(from: usize, len: usize) -> Vec<u8> {
    (from..from + len).map(seq_byte).collect()
}

/// A fresh connected pair whose server side sent `msg`, and the chunk the
/// client's first `recv_multishot` on `ring` got (checked to be `msg`).
async fn first_chunk(ring: &BufRing, msg: &'static [u8]) -> (RingBuf, TcpStream, TcpStream) {
    let (c, s) = pair().await;
    let (res, _) = s.write_all(msg).await;
    res.unwrap();
    let chunk = c.recv_multishot(ring).next().await.unwrap().unwrap();
    assert_eq!(&chunk[..], msg);
    (chunk, c, s)
}

/// Runs `fut` on `ctx` (2 extra runner threads in multi mode).
fn drive<F: std::future::Future>(mode: Mode, ctx: &IoContext, fut: F) -> F::Output {
    common::drive_with(mode, ctx, 2, fut)
}

/// Writes `total` bytes of the sequence in `chunk`-byte writes, then
/// shuts down the write side.
fn writer(w: TcpStream, total: usize, chunk: usize) -> ringio::JoinHandle<()> {
    ringio::spawn(async move {
        let mut at = 0;
        while at < total {
            let n = chunk.min(total - at);
            let (res, _) = w.write_all(seq(at, n)).await;
            res.unwrap();
            at += n;
        }
        w.shutdown(Shutdown::Write).unwrap();
    })
}

#[test]
fn every_byte_in_order_through_a_small_ring() {
    each_mode(|mode, ctx| {
        const TOTAL: usize = 1 << 20;
        let (got, chunks, sqes) = drive(mode, &ctx, async {
            let (c, s) = pair().await;
            let w = writer(s, TOTAL, 3000);
            // 8 buffers of 512 B for 1 MiB: the kernel runs dry again and
            // again while the reader holds some of them.
            let ring = BufRing::new(8, 512).unwrap();
            let before = ringio::IoContext::current().metrics().sqes_submitted;
            let mut stream = c.recv_multishot(&ring);
            let (mut got, mut chunks) = (Vec::with_capacity(TOTAL), 0usize);
            let mut held: Vec<RingBuf> = Vec::new();
            while let Some(buf) = stream.next().await {
                let buf = buf.unwrap();
                assert!(
                    !buf.is_empty() && buf.len() <= 512,
                    "chunk of {} bytes",
                    buf.len()
                );
                got.extend_from_slice(&buf);
                chunks += 1;
                held.push(buf);
                // Hold up to 5 buffers, then let them all go at once.
                if held.len() == 5 {
                    held.clear();
                }
            }
            drop(held);
            assert!(stream.next().await.is_none(), "ended streams stay ended");
            assert_eq!(ring.lent(), 0, "every buffer went back");
            let sqes = ringio::IoContext::current().metrics().sqes_submitted - before;
            w.await.unwrap();
            (got, chunks, sqes)
        });
        assert_eq!(got.len(), TOTAL, "[{mode}]");
        assert!(got == seq(0, TOTAL), "[{mode}] bytes out of order or wrong");
        assert!(chunks >= TOTAL / 512, "[{mode}] {chunks} chunks");
        // One SQE serves many chunks (the writer's own SQEs count too: at
        // most one per 3000-byte write).
        assert!(
            (sqes as usize) < chunks,
            "[{mode}] {sqes} SQEs for {chunks} chunks: the receive was not multishot"
        );
    });
}

#[test]
fn a_consumer_holding_every_buffer_makes_the_stream_wait() {
    each_mode(|mode, ctx| {
        drive(mode, &ctx, async {
            let (c, s) = pair().await;
            let ring = BufRing::new(2, 16).unwrap();
            let mut stream = c.recv_multishot(&ring);
            // 64 bytes wait in the socket: 4 buffers' worth, the ring has 2.
            let (res, _) = s.write_all(seq(0, 64)).await;
            res.unwrap();
            let mut got = Vec::new();
            let a = stream.next().await.unwrap().unwrap();
            let b = stream.next().await.unwrap().unwrap();
            got.extend_from_slice(&a);
            got.extend_from_slice(&b);
            assert_eq!(ring.lent(), 2);
            assert!(
                timeout(Duration::from_millis(50), stream.next())
                    .await
                    .is_err(),
                "[{mode}] no buffer left: the stream must wait"
            );
            drop(a);
            let c3 = timeout(Duration::from_secs(5), stream.next())
                .await
                .expect("a returned buffer resumes the stream")
                .unwrap()
                .unwrap();
            got.extend_from_slice(&c3);
            drop((b, c3));
            while got.len() < 64 {
                got.extend_from_slice(&stream.next().await.unwrap().unwrap());
            }
            assert_eq!(got, seq(0, 64), "[{mode}]");
        });
    });
}

#[test]
fn a_receive_starved_by_anothers_untaken_chunks_waits_without_spinning() {
    each_mode(|mode, ctx| {
        drive(mode, &ctx, async {
            let ring = BufRing::new(2, 16).unwrap();
            let (a, a_peer) = pair().await;
            let (b, b_peer) = pair().await;
            // A arms, then both buffers fill with A's data, which nobody
            // takes: the buffers sit in A's completions, lent to no one.
            let mut sa = a.recv_multishot(&ring);
            assert!(common::poll_once(&mut std::pin::pin!(sa.next()))
                .await
                .is_pending());
            a_peer.write_all(seq(0, 32)).await.0.unwrap();
            sleep(Duration::from_millis(10)).await;
            let ring_b = ring.clone();
            let got_b = ringio::spawn(async move {
                let mut sb = b.recv_multishot(&ring_b);
                let first = sb.next().await.unwrap().unwrap();
                first.to_vec()
            });
            b_peer.write_all(&b"bee"[..]).await.0.unwrap();
            // B's receive ends with ENOBUFS and must wait, not re-arm in a
            // loop (one SQE and one CQE per pass).
            sleep(Duration::from_millis(10)).await;
            let before = ringio::IoContext::current().metrics().sqes_submitted;
            sleep(Duration::from_millis(50)).await;
            let spent = ringio::IoContext::current().metrics().sqes_submitted - before;
            assert!(
                spent < 10,
                "[{mode}] {spent} SQEs in 50 ms: the starved receive spun"
            );
            // A's stream goes: its chunks move to A's carry, the buffers
            // back to the ring, and B's receive re-arms and gets its bytes.
            drop(sa);
            let got = timeout(Duration::from_secs(5), got_b)
                .await
                .expect("B resumes once buffers are back")
                .unwrap();
            assert_eq!(got, b"bee", "[{mode}]");
            let (res, carried) = a.read(Vec::with_capacity(64)).await;
            let n = res.unwrap();
            assert_eq!(&carried[..n], &seq(0, 32)[..n], "[{mode}] A's bytes kept");
        });
    });
}

#[test]
fn dropped_streams_lose_no_bytes() {
    each_mode(|mode, ctx| {
        const TOTAL: usize = 200_000;
        let got = drive(mode, &ctx, async {
            let (c, s) = pair().await;
            let w = writer(s, TOTAL, 1000);
            let ring = BufRing::new(16, 256).unwrap();
            let mut got = Vec::with_capacity(TOTAL);
            let mut round = 0u32;
            'outer: loop {
                round += 1;
                // Alternate: a stream for a few chunks (dropped while armed,
                // often with chunks in flight), then a plain read.
                {
                    let mut stream = c.recv_multishot(&ring);
                    for _ in 0..(round % 4) {
                        match stream.next().await {
                            Some(buf) => got.extend_from_slice(&buf.unwrap()),
                            None => break 'outer,
                        }
                    }
                }
                let (res, buf) = c.read(Vec::with_capacity(700)).await;
                match res.unwrap() {
                    0 => break,
                    n => got.extend_from_slice(&buf[..n]),
                }
            }
            w.await.unwrap();
            assert_eq!(ring.lent(), 0, "late chunks' buffers went back");
            got
        });
        assert_eq!(got.len(), TOTAL, "[{mode}]");
        assert!(got == seq(0, TOTAL), "[{mode}] bytes out of order or wrong");
    });
}

#[test]
fn timed_out_next_calls_lose_no_bytes() {
    each_mode(|mode, ctx| {
        const TOTAL: usize = 100_000;
        let got = drive(mode, &ctx, async {
            let (c, s) = pair().await;
            let w = ringio::spawn(async move {
                let mut at = 0;
                while at < TOTAL {
                    let n = 777.min(TOTAL - at);
                    let (res, _) = s.write_all(seq(at, n)).await;
                    res.unwrap();
                    at += n;
                    sleep(Duration::from_micros(50)).await;
                }
                s.shutdown(Shutdown::Write).unwrap();
            });
            let ring = BufRing::new(4, 128).unwrap();
            let mut got = Vec::with_capacity(TOTAL);
            loop {
                // A new stream each time, cut short by a tiny timeout.
                let mut stream = c.recv_multishot(&ring);
                match timeout(Duration::from_micros(30), stream.next()).await {
                    Ok(Some(buf)) => got.extend_from_slice(&buf.unwrap()),
                    Ok(None) => break,
                    Err(_) => {}
                }
            }
            w.await.unwrap();
            got
        });
        assert!(
            got == seq(0, TOTAL),
            "[{mode}] {} bytes, out of order or wrong",
            got.len()
        );
    });
}

#[test]
fn echo_sends_ring_buffers_back_as_they_are() {
    each_mode(|mode, ctx| {
        drive(mode, &ctx, async {
            let (c, s) = pair().await;
            // 100-byte messages echo as 64 + 36 bytes: without NODELAY the
            // second write waits for a delayed ACK (40 ms a round).
            s.set_nodelay(true).unwrap();
            c.set_nodelay(true).unwrap();
            let server = ringio::spawn(async move {
                let ring = BufRing::new(4, 64).unwrap();
                let mut stream = s.recv_multishot(&ring);
                let mut echoed = 0;
                while let Some(buf) = stream.next().await {
                    let (res, buf) = s.write_all(buf.unwrap()).await;
                    res.unwrap();
                    echoed += buf.len();
                }
                echoed
            });
            let mut back = Vec::new();
            for round in 0..200 {
                let msg = seq(round * 100, 100);
                let (res, _) = c.write_all(msg.clone()).await;
                res.unwrap();
                let (res, buf) = c.read_exact(vec![0u8; 100]).await;
                res.unwrap();
                assert_eq!(buf, msg, "[{mode}] round {round}");
                back.extend_from_slice(&buf);
            }
            c.shutdown(Shutdown::Write).unwrap();
            assert_eq!(server.await.unwrap(), 20_000);
        });
    });
}

#[test]
fn unix_streams_receive_multishot_too() {
    each_mode(|mode, ctx| {
        drive(mode, &ctx, async {
            let (a, b) = UnixStream::pair().unwrap();
            let ring = BufRing::new(4, 1024).unwrap();
            let w = ringio::spawn(async move {
                let (res, _) = b.write_all(seq(0, 50_000)).await;
                res.unwrap();
            });
            let mut got = Vec::new();
            let mut stream = a.recv_multishot(&ring);
            while let Some(buf) = stream.next().await {
                got.extend_from_slice(&buf.unwrap());
            }
            w.await.unwrap();
            assert!(got == seq(0, 50_000), "[{mode}] {} bytes", got.len());
        });
    });
}

#[test]
fn ring_bounds_are_checked() {
    for (count, size) in [(0u16, 64usize), (3, 64), (12, 64), (64, 0)] {
        let e = BufRing::new(count, size).unwrap_err();
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::InvalidInput,
            "{count} x {size}"
        );
    }
    #[cfg(target_pointer_width = "64")]
    {
        let e = BufRing::new(1, u32::MAX as usize + 1).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    }
    let r = BufRing::new(1, 1).unwrap();
    assert_eq!((r.count(), r.buf_size(), r.lent()), (1, 1, 0));
    assert!(BufRing::new(ringio::buf::MAX_BUFFERS, 1).is_ok());
}

#[test]
fn a_ring_serves_one_context() {
    let _fd = fd_shared();
    watchdog(Duration::from_secs(20), || {
        let ring = BufRing::new(4, 64).unwrap();
        let first = IoContext::new().unwrap();
        let second = IoContext::new().unwrap();
        first.block_on(first_chunk(&ring, b"hi"));
        second.block_on(async {
            let (c, _s) = pair().await;
            let e = c.recv_multishot(&ring).next().await.unwrap().unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
            assert!(e.to_string().contains("another IoContext"), "{e}");
        });
    });
}

#[test]
fn outside_a_context_is_an_error() {
    let _fd = fd_shared();
    let ctx = IoContext::new().unwrap();
    let (c, _s) = ctx.block_on(pair());
    let ring = BufRing::new(4, 64).unwrap();
    let mut stream = c.recv_multishot(&ring);
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    match stream.poll_recv(&mut cx) {
        std::task::Poll::Ready(Some(Err(e))) => {
            assert!(e.to_string().contains("outside a running IoContext"), "{e}")
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn teardown_in_any_order_frees_everything() {
    let _fd = fd_shared();
    watchdog(Duration::from_secs(30), || {
        for mode in Mode::ALL {
            // 1. The context goes first, with a stream armed in a task and
            //    buffers lent out; the ring and a buffer outlive it.
            let ctx = mode.build();
            let ring = BufRing::new(4, 64).unwrap();
            let (held, peer) = ctx.block_on({
                let ring = ring.clone();
                async move {
                    let (held, c, s) = first_chunk(&ring, b"abc").await;
                    ringio::spawn(async move {
                        let mut stream = c.recv_multishot(&ring);
                        while stream.next().await.is_some() {}
                    });
                    ringio::spawn(async {}).await.unwrap();
                    (held, s)
                }
            });
            assert_eq!(&held[..], b"abc");
            drop(ctx);
            drop(peer);
            assert_eq!(ring.lent(), 1);
            drop(held);
            assert_eq!(ring.lent(), 0);
            drop(ring);

            // 2. The ring's last handle is dropped on another thread while
            //    the context lives on (a single-threaded context unregisters
            //    it on its owner thread).
            let ctx = mode.build();
            let ring = BufRing::new(4, 64).unwrap();
            ctx.block_on(first_chunk(&ring, b"x"));
            std::thread::spawn(move || drop(ring)).join().unwrap();
            // The context still works, and a fresh ring registers (reusing
            // the freed group id).
            let fresh = BufRing::new(2, 8).unwrap();
            ctx.block_on(first_chunk(&fresh, b"again"));
        }
    });
}

#[test]
fn a_registered_ring_pins_a_single_threaded_context_to_its_thread() {
    let _fd = fd_shared();
    watchdog(Duration::from_secs(20), || {
        let ctx = Mode::Single.build();
        let ring = BufRing::new(2, 8).unwrap();
        ctx.block_on(first_chunk(&ring, b"x"));
        let moved = ctx.clone();
        let err = std::thread::spawn(move || moved.block_on(async {}))
            .join()
            .expect_err("another thread cannot take the ring over");
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("BufRing"), "{msg}");
        // Once the ring is gone, the context may move.
        drop(ring);
        let moved = ctx.clone();
        std::thread::spawn(move || moved.block_on(async { 7 }))
            .join()
            .map(|v| assert_eq!(v, 7))
            .expect("free to move once the ring is dropped");
    });
}

#[test]
fn a_reset_peer_is_an_error_then_the_end() {
    each_mode(|mode, ctx| {
        let (first, then) = drive(mode, &ctx, async {
            let (c, s) = pair().await;
            let ring = BufRing::new(4, 64).unwrap();
            let mut stream = c.recv_multishot(&ring);
            // The receive is armed and waiting when the reset arrives.
            let resetter = ringio::spawn(async move {
                sleep(Duration::from_millis(20)).await;
                s.set_linger(Some(Duration::ZERO)).unwrap();
                drop(s);
            });
            let first = timeout(Duration::from_secs(5), stream.next())
                .await
                .expect("a reset wakes the receive");
            resetter.await.unwrap();
            let then = timeout(Duration::from_secs(5), stream.next())
                .await
                .expect("the stream does not hang after a reset");
            assert_eq!(ring.lent(), 0, "no buffer held by an error");
            (first, then)
        });
        match first {
            Some(Err(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "[{mode}]"),
            other => panic!("[{mode}] expected a reset error, got {other:?}"),
        }
        assert!(then.is_none(), "[{mode}] after the reset: {then:?}");
    });
}

#[test]
fn the_stream_trait_yields_the_same_bytes_and_fuses() {
    use futures_util::stream::{FusedStream, StreamExt};
    each_mode(|mode, ctx| {
        drive(mode, &ctx, async {
            let (c, s) = pair().await;
            let ring = BufRing::new(4, 64).unwrap();
            let w = writer(s, 1000, 100);
            let mut stream = c.recv_multishot(&ring);
            assert!(!stream.is_terminated(), "[{mode}]");
            let mut got = Vec::new();
            while let Some(chunk) = StreamExt::next(&mut stream).await {
                let chunk = chunk.unwrap();
                let bytes: &[u8] = chunk.as_ref();
                got.extend_from_slice(bytes);
                let shown = format!("{stream:?} {chunk:?} {ring:?}");
                assert!(
                    shown.contains("armed: true") && shown.contains("bgid: Some("),
                    "[{mode}] {shown}"
                );
            }
            assert!(stream.is_terminated(), "[{mode}] ended at EOF");
            assert!(StreamExt::next(&mut stream).await.is_none(), "[{mode}]");
            w.await.unwrap();
            assert!(got == seq(0, 1000), "[{mode}] bytes out of order or wrong");
        });
    });
}
