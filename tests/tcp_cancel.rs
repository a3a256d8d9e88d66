//! TCP cancellation: reads cancelled again and again by very short
//! `timeout`s while a writer streams a known sequence (every byte must come
//! out, in order: the carry of cancelled reads), `TcpStream::cancel` from
//! another task and another thread (`ECANCELED`, the stream usable
//! afterwards), and a dropped write. Both modes.

mod common;

use std::net::Shutdown;
use std::sync::Arc;
use std::time::Duration;

use common::{each_mode, fd_shared, tcp_pair as pair, watchdog, Mode};
use ringio::time::{sleep, timeout};
use ringio::IoContext;

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The known sequence: byte `i` of the stream.
fn seq_byte(i: usize) -> u8 {
    let x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x >> 56) as u8 ^ (i / 251) as u8
}

/// Runs `fut` on `ctx` (2 extra runner threads in multi mode).
fn drive<F: std::future::Future>(mode: Mode, ctx: &IoContext, fut: F) -> F::Output {
    common::drive_with(mode, ctx, 2, fut)
}

#[test]
fn timed_out_reads_lose_no_bytes() {
    let _fd = fd_shared();
    const TOTAL: usize = 300_000;
    each_mode(|mode, ctx| {
        let before = ctx.metrics();
        let (got, timeouts) = drive(mode, &ctx, async {
            let (c, s) = pair().await;
            let writer = ringio::spawn(async move {
                let mut rng = Rng::new(7);
                let mut off = 0;
                while off < TOTAL {
                    let n = (1 + rng.below(3000)).min(TOTAL - off);
                    let chunk: Vec<u8> = (off..off + n).map(seq_byte).collect();
                    let (res, _) = c.write_all(chunk).await;
                    res.unwrap();
                    off += n;
                    match rng.below(4) {
                        0 => sleep(Duration::from_micros(rng.below(300) as u64)).await,
                        1 => common::yield_now().await,
                        _ => {}
                    }
                }
                c.shutdown(Shutdown::Write).unwrap();
            });
            let mut rng = Rng::new(11);
            let mut got = Vec::with_capacity(TOTAL);
            let mut timeouts = 0usize;
            loop {
                let cap = 1 + rng.below(4096);
                let d = Duration::from_micros(rng.below(201) as u64);
                match timeout(d, s.read(Vec::with_capacity(cap))).await {
                    Ok((res, buf)) => {
                        let n = res.unwrap();
                        if n == 0 {
                            break;
                        }
                        assert!(n <= cap);
                        got.extend_from_slice(&buf[..n]);
                    }
                    Err(_) => timeouts += 1,
                }
            }
            writer.await.unwrap();
            (got, timeouts)
        });
        let cancelled = ctx.metrics().ops_cancelled - before.ops_cancelled;
        println!("[{mode}] {timeouts} timed-out reads, {cancelled} ops cancelled");
        assert_eq!(got.len(), TOTAL, "[{mode}] bytes received");
        if let Some(i) = (0..TOTAL).find(|&i| got[i] != seq_byte(i)) {
            panic!("[{mode}] byte {i} out of sequence ({} timeouts)", timeouts);
        }
        assert!(
            timeouts >= 20 && cancelled >= 20,
            "[{mode}] the test did not exercise cancellation: {timeouts} timeouts, {cancelled} cancels"
        );
    });
}

#[test]
fn cancel_from_another_task_then_reuse() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let (c, s) = pair().await;
            let s = Arc::new(s);
            for round in 0..5 {
                let r = s.clone();
                let reader = ringio::spawn(async move {
                    let (res, _) = r.read(Vec::with_capacity(100)).await;
                    res
                });
                // Let the read reach the ring (it finds nothing inline).
                sleep(Duration::from_millis(10)).await;
                let k = s.clone();
                ringio::spawn(async move { k.cancel() }).await.unwrap();
                let e = reader.await.unwrap().expect_err("cancelled read");
                assert_eq!(
                    e.raw_os_error(),
                    Some(libc::ECANCELED),
                    "[{mode}] round {round}: {e}"
                );
                // Still usable, both ways.
                let msg = format!("after cancel {round}").into_bytes();
                let (res, _) = c.write_all(msg.clone()).await;
                res.unwrap();
                let (res, buf) = s.read_exact(Vec::with_capacity(msg.len())).await;
                res.unwrap();
                assert_eq!(buf, msg, "[{mode}]");
                let (res, _) = s.write_all(b"pong".to_vec()).await;
                res.unwrap();
                let (res, buf) = c.read_exact(Vec::with_capacity(4)).await;
                res.unwrap();
                assert_eq!(buf, b"pong");
            }
            // Cancel with nothing in flight is a no-op.
            s.cancel();
            let (res, _) = c.write_all(b"z".to_vec()).await;
            res.unwrap();
            let (res, buf) = s.read(Vec::with_capacity(1)).await;
            assert_eq!(res.unwrap(), 1);
            assert_eq!(buf, b"z");
        });
    });
}

#[test]
fn cancel_from_a_foreign_thread() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let (c, s) = pair().await;
            let s = Arc::new(s);
            let k = s.clone();
            let t = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                k.cancel();
            });
            let (res, _) = s.read(Vec::with_capacity(100)).await;
            let e = res.expect_err("cancelled read");
            assert_eq!(e.raw_os_error(), Some(libc::ECANCELED), "[{mode}] {e}");
            t.join().unwrap();
            let (res, _) = c.write_all(b"still here".to_vec()).await;
            res.unwrap();
            let (res, buf) = s.read_exact(Vec::with_capacity(10)).await;
            res.unwrap();
            assert_eq!(buf, b"still here", "[{mode}]");
        });
    });
}

/// A write parked in the ring (peer not reading) and cancelled by a
/// timeout: the stream stays consistent (the peer reads a prefix of what
/// was written, then the later data, with nothing interleaved).
#[test]
fn timed_out_write_keeps_stream_consistent() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let (c, s) = pair().await;
            // Fill the socket buffers until a write parks.
            let mut sent = 0usize;
            loop {
                match timeout(Duration::from_millis(20), c.write(vec![1u8; 64 * 1024])).await {
                    Ok((res, _)) => sent += res.unwrap(),
                    Err(_) => break,
                }
                assert!(sent < 64 << 20, "[{mode}] socket buffer never filled");
            }
            let reader = ringio::spawn(async move {
                let mut ones = 0usize;
                let mut tail = Vec::new();
                loop {
                    let (res, buf) = s.read(Vec::with_capacity(64 * 1024)).await;
                    let n = res.unwrap();
                    if n == 0 {
                        break;
                    }
                    for &b in &buf[..n] {
                        if b == 1 && tail.is_empty() {
                            ones += 1;
                        } else {
                            tail.push(b);
                        }
                    }
                }
                (ones, tail)
            });
            let (res, _) = c.write_all(b"end".to_vec()).await;
            res.unwrap();
            c.shutdown(Shutdown::Write).unwrap();
            let (ones, tail) = reader.await.unwrap();
            assert!(ones >= sent, "[{mode}] {ones} of {sent} bytes");
            assert!(
                ones - sent <= 64 * 1024,
                "[{mode}] more than the cancelled write"
            );
            assert_eq!(tail, b"end", "[{mode}]");
        });
    });
}

/// Regression test for a lost wake-up in the multi-threaded scheduler:
/// a read waiting for a cancelled read to settle is woken when that read's
/// data is dropped (as reaped garbage); the leader must not park in the
/// kernel holding that garbage (`lead()` in src/runtime/scheduler/mod.rs
/// drops it before deciding to park).
#[test]
fn read_after_cancelled_read_is_woken() {
    let _fd = fd_shared();
    for mode in common::modes() {
        watchdog(Duration::from_secs(5), move || {
            let ctx = mode.build();
            ctx.block_on(async {
                let (c, s) = pair().await;
                assert!(
                    timeout(Duration::from_millis(2), s.read(Vec::with_capacity(8)))
                        .await
                        .is_err()
                );
                let (res, _) = c.write_all(b"ok".to_vec()).await;
                res.unwrap();
                // No timer, no other task: only the settle can wake us.
                let (res, buf) = s.read_exact(Vec::with_capacity(2)).await;
                res.unwrap();
                assert_eq!(buf, b"ok", "[{mode}]");
            });
        });
    }
}
