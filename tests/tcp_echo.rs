//! TCP echo: hundreds of concurrent connections carrying checksummed
//! pseudo-random data (IPv4 and IPv6), half-close, a 64-connection
//! ping-pong whose `io_uring_enter` count guards batching, and speculation
//! (`inline_completions`) on an idle socket. Both modes; the multi-threaded
//! context is also run by extra runner threads.

mod common;

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{each_mode, fd_shared, spawn_runners, watchdog, Mode};
use ringio::buf::IoBuf;
use ringio::net::{TcpListener, TcpStream};
use ringio::IoContext;

/// xorshift64*: a tiny deterministic generator for payloads and sizes.
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
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next() >> 32) as u8).collect()
    }
}

/// FNV-1a over a byte slice, continued from `h`.
fn fnv(mut h: u64, data: &[u8]) -> u64 {
    for &b in data {
        h ^= b as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}
const FNV0: u64 = 0xcbf2_9ce4_8422_2325;

/// Runs `fut` on `ctx` (3 extra runner threads in multi mode).
fn drive<F: std::future::Future>(mode: Mode, ctx: &IoContext, fut: F) -> F::Output {
    common::drive_with(mode, ctx, 3, fut)
}

/// Echoes until EOF, then shuts down its write side; returns the checksum
/// and count of everything echoed.
async fn echo(stream: TcpStream) -> io::Result<(u64, usize)> {
    let mut buf = vec![0u8; 16 * 1024];
    let (mut sum, mut total) = (FNV0, 0);
    loop {
        let (res, b) = stream.read(buf).await;
        let n = res?;
        if n == 0 {
            stream.shutdown(Shutdown::Write)?;
            return Ok((sum, total));
        }
        sum = fnv(sum, &b[..n]);
        total += n;
        let (res, b) = stream.write_all(b.slice(..n)).await;
        res?;
        buf = b.into_inner();
    }
}

/// `conns` clients each send a pseudo-random payload (0..64 KiB, in random
/// chunks) from one task and read the echo from another; every byte is
/// compared, and the server's checksums must match the clients'.
async fn echo_many(listen: &str, conns: usize) -> io::Result<()> {
    let listener = TcpListener::bind(listen)?;
    let addr = listener.local_addr()?;
    let server = ringio::spawn(async move {
        let mut echoes = Vec::new();
        for _ in 0..conns {
            let (s, peer) = listener.accept().await?;
            assert_eq!(peer, s.peer_addr()?);
            echoes.push(ringio::spawn(echo(s)));
        }
        let mut sums = Vec::new();
        for e in echoes {
            sums.push(e.await.expect("echo task")?);
        }
        io::Result::Ok(sums)
    });
    let mut clients = Vec::new();
    for c in 0..conns {
        clients.push(ringio::spawn(async move {
            let mut rng = Rng::new(c as u64 + 1);
            let len = rng.below(64 * 1024 + 1);
            let data = rng.bytes(len);
            let expect_sum = fnv(FNV0, &data);
            let stream = Arc::new(TcpStream::connect(addr).await?);
            let w = stream.clone();
            let writer = ringio::spawn(async move {
                let mut off = 0;
                while off < data.len() {
                    let n = (1 + rng.below(20_000)).min(data.len() - off);
                    let (res, _) = w.write_all(data[off..off + n].to_vec()).await;
                    res?;
                    off += n;
                }
                w.shutdown(Shutdown::Write)?;
                io::Result::Ok(data)
            });
            let mut got = Vec::with_capacity(len);
            loop {
                let (res, buf) = stream.read(Vec::with_capacity(8192)).await;
                let n = res?;
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            let data = writer.await.expect("writer task")?;
            assert_eq!(got.len(), data.len(), "conn {c}: echoed length");
            if let Some(i) = (0..got.len()).find(|&i| got[i] != data[i]) {
                panic!("conn {c}: echoed byte {i} differs");
            }
            io::Result::Ok((expect_sum, len))
        }));
    }
    let mut expected = Vec::new();
    for c in clients {
        expected.push(c.await.expect("client task")?);
    }
    let mut served = server.await.expect("server task")?;
    // The server saw the connections in accept order: compare as sets.
    expected.sort_unstable();
    served.sort_unstable();
    assert_eq!(expected, served, "server-side checksums");
    Ok(())
}

#[test]
fn echo_300_connections_ipv4() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        drive(mode, &ctx, echo_many("127.0.0.1:0", 300)).unwrap_or_else(|e| panic!("[{mode}] {e}"));
    });
}

#[test]
fn echo_300_connections_ipv6() {
    let _fd = fd_shared();
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        println!("note: [::1] cannot be bound here; IPv6 echo skipped");
        return;
    }
    each_mode(|mode, ctx| {
        drive(mode, &ctx, async {
            let l = TcpListener::bind("[::1]:0").unwrap();
            assert!(l.local_addr().unwrap().is_ipv6());
            drop(l);
            echo_many("[::1]:0", 300).await
        })
        .unwrap_or_else(|e| panic!("[{mode}] {e}"));
    });
}

#[test]
fn half_close_then_reply() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let server = ringio::spawn(async move {
                let (s, _) = listener.accept().await.unwrap();
                let mut got = Vec::new();
                loop {
                    let (res, buf) = s.read(Vec::with_capacity(7)).await;
                    match res.unwrap() {
                        0 => break,
                        n => got.extend_from_slice(&buf[..n]),
                    }
                }
                // EOF is sticky.
                let (res, _) = s.read(Vec::with_capacity(7)).await;
                assert_eq!(res.unwrap(), 0);
                // The write side still works after the peer's half-close.
                let reply = format!("got {} bytes", got.len()).into_bytes();
                let (res, _) = s.write_all(reply).await;
                res.unwrap();
                got
            });
            let c = TcpStream::connect(addr).await.unwrap();
            let (res, _) = c.write_all(b"question, then silence".to_vec()).await;
            res.unwrap();
            c.shutdown(Shutdown::Write).unwrap();
            // Writing after our own shutdown fails (EPIPE), no SIGPIPE.
            let (res, _) = c.write(b"x".to_vec()).await;
            assert_eq!(
                res.unwrap_err().kind(),
                io::ErrorKind::BrokenPipe,
                "[{mode}]"
            );
            let mut reply = Vec::new();
            loop {
                let (res, buf) = c.read(Vec::with_capacity(64)).await;
                match res.unwrap() {
                    0 => break,
                    n => reply.extend_from_slice(&buf[..n]),
                }
            }
            assert_eq!(reply, b"got 22 bytes", "[{mode}]");
            assert_eq!(server.await.unwrap(), b"question, then silence");
        });
    });
}

/// 64 connections × 200 round trips of 64 bytes, client and server on one
/// context: the batching must keep `io_uring_enter` far below one per
/// message.
#[test]
fn ping_pong_64_conns_batches_enters() {
    let _fd = fd_shared();
    const CONNS: usize = 64;
    const ROUNDS: usize = 200;
    each_mode(|mode, ctx| {
        let before = ctx.metrics();
        let trips = Arc::new(AtomicU64::new(0));
        let t = trips.clone();
        ctx.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let server = ringio::spawn(async move {
                let mut echoes = Vec::new();
                for _ in 0..CONNS {
                    let (s, _) = listener.accept().await.unwrap();
                    s.set_nodelay(true).unwrap();
                    echoes.push(ringio::spawn(echo(s)));
                }
                for e in echoes {
                    e.await.unwrap().unwrap();
                }
            });
            let mut clients = Vec::new();
            for c in 0..CONNS {
                let t = t.clone();
                clients.push(ringio::spawn(async move {
                    let s = TcpStream::connect(addr).await.unwrap();
                    s.set_nodelay(true).unwrap();
                    let msg: Vec<u8> = (0..64).map(|i| (i * 7 + c) as u8).collect();
                    let mut back = Vec::with_capacity(64);
                    for _ in 0..ROUNDS {
                        let (res, _) = s.write_all(msg.clone()).await;
                        res.unwrap();
                        back.clear();
                        let (res, b) = s.read_exact(back).await;
                        res.unwrap();
                        assert_eq!(b, msg);
                        back = b;
                        t.fetch_add(1, Ordering::Relaxed);
                    }
                    s.shutdown(Shutdown::Write).unwrap();
                }));
            }
            for c in clients {
                c.await.unwrap();
            }
            server.await.unwrap();
        });
        let after = ctx.metrics();
        let messages = trips.load(Ordering::Relaxed);
        assert_eq!(messages, (CONNS * ROUNDS) as u64);
        let enters = after.enter_calls - before.enter_calls;
        println!(
            "[{mode}] {messages} round trips: {enters} enters, {} inline",
            after.inline_completions - before.inline_completions
        );
        assert!(
            enters < messages / 4,
            "[{mode}] {enters} io_uring_enter calls for {messages} round trips: batching lost"
        );
    });
}

/// Reads the 800 bytes of eight 100-byte writes of `0u8..8` and checks them.
async fn read_eight_writes(s: &TcpStream) {
    let (res, buf) = s.read_exact(Vec::with_capacity(800)).await;
    res.unwrap();
    assert!(buf
        .chunks(100)
        .enumerate()
        .all(|(i, ch)| ch.iter().all(|&b| b == i as u8)));
}

/// Writes on an idle connected socket complete inline (a speculative
/// `send`), counted in `inline_completions`.
#[test]
fn writes_on_idle_socket_complete_inline() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let (before, after) = ctx.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let c = TcpStream::connect(addr).await.unwrap();
            let (s, _) = listener.accept().await.unwrap();
            let before = IoContext::current().metrics();
            for i in 0..8u8 {
                let (res, _) = c.write(vec![i; 100]).await;
                assert_eq!(res.unwrap(), 100);
            }
            let after = IoContext::current().metrics();
            read_eight_writes(&s).await;
            (before, after)
        });
        let inline = after.inline_completions - before.inline_completions;
        assert!(
            inline >= 8,
            "[{mode}] 8 writes on an idle socket, {inline} inline completions"
        );
        assert_eq!(
            after.sqes_submitted, before.sqes_submitted,
            "[{mode}] inline writes submitted SQEs"
        );
    });
}

/// A write while SQEs are already queued for the kernel does not
/// speculate: the pass's `io_uring_enter` carries it along with them (a
/// speculative `send` would be a syscall of its own), and it still
/// completes.
#[test]
fn writes_ride_along_with_queued_sqes() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let (before, after) = ctx.block_on(async {
            let (c, s) = common::tcp_pair().await;
            let before = IoContext::current().metrics();
            for i in 0..8u8 {
                // Queue a no-op SQE (polled once, not yet submitted), then
                // write in the same poll.
                let mut nop = std::pin::pin!(ringio::io::nop());
                assert!(common::poll_once(&mut nop.as_mut()).await.is_pending());
                let (res, _) = c.write(vec![i; 100]).await;
                assert_eq!(res.unwrap(), 100);
                nop.await.unwrap();
            }
            let after = IoContext::current().metrics();
            read_eight_writes(&s).await;
            (before, after)
        });
        assert_eq!(
            after.inline_completions, before.inline_completions,
            "[{mode}] a write speculated although SQEs were queued"
        );
        assert!(
            after.sqes_submitted - before.sqes_submitted >= 16,
            "[{mode}] 8 nops and 8 writes should have gone through the ring"
        );
    });
}

/// The echo of many connections also works when the whole context runs on
/// runner threads only (no `block_on`), accepting from one task.
#[test]
fn echo_on_runner_threads_only() {
    let _fd = fd_shared();
    watchdog(Duration::from_secs(20), || {
        let ctx = Mode::Multi.build();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let done = Arc::new(AtomicU64::new(0));
        let d = done.clone();
        drop(ctx.spawn(async move {
            for _ in 0..50 {
                let (s, _) = listener.accept().await.unwrap();
                let d = d.clone();
                drop(ringio::spawn(async move {
                    let (sum, n) = echo(s).await.unwrap();
                    assert_eq!(sum, fnv(FNV0, &vec![n as u8; n]));
                    d.fetch_add(1, Ordering::SeqCst);
                }));
            }
        }));
        for c in 0..50usize {
            drop(ctx.spawn(async move {
                let s = TcpStream::connect(addr).await.unwrap();
                let n = 100 + c;
                let (res, _) = s.write_all(vec![n as u8; n]).await;
                res.unwrap();
                s.shutdown(Shutdown::Write).unwrap();
                let (res, buf) = s.read_exact(Vec::with_capacity(n)).await;
                res.unwrap();
                assert!(buf.iter().all(|&b| b == n as u8));
                let (res, _) = s.read(Vec::with_capacity(1)).await;
                assert_eq!(res.unwrap(), 0);
            }));
        }
        for r in spawn_runners(&ctx, 4) {
            r.join().unwrap();
        }
        assert_eq!(done.load(Ordering::SeqCst), 50);
    });
}
