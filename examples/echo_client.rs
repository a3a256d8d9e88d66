//! A TCP echo load generator on ringio: C connections each ping-pong
//! S-byte messages for a fixed time, checking every echoed byte.
//!
//! ```text
//! cargo run --release --example echo_client -- [--addr ADDR] [--conns C] [--size S] [--secs T]
//! ```
//!
//! Without `--addr` it starts an echo server of its own on another thread
//! (its own single-threaded context) and also reports that server's
//! `io_uring_enter` calls per echoed message. Defaults: 64 connections,
//! 64-byte messages, 2 seconds.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringio::buf::IoBuf;
use ringio::net::{TcpListener, TcpStream};
use ringio::IoContext;

struct Args {
    addr: Option<SocketAddr>,
    conns: usize,
    size: usize,
    secs: f64,
}

fn parse() -> io::Result<Args> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("bad {what}"));
    let mut a = Args {
        addr: None,
        conns: 64,
        size: 64,
        secs: 2.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().ok_or_else(|| bad(&flag))?;
        match flag.as_str() {
            "--addr" => a.addr = Some(v.parse().map_err(|_| bad("--addr"))?),
            "--conns" => a.conns = v.parse().map_err(|_| bad("--conns"))?,
            "--size" => a.size = v.parse().map_err(|_| bad("--size"))?,
            "--secs" => a.secs = v.parse().map_err(|_| bad("--secs"))?,
            _ => return Err(bad(&flag)),
        }
    }
    if a.conns == 0 || a.size == 0 {
        return Err(bad("--conns/--size (must be > 0)"));
    }
    Ok(a)
}

/// Starts an in-process echo server; returns its address and context.
fn start_server() -> io::Result<(SocketAddr, IoContext)> {
    let ctx = IoContext::builder().single_threaded(true).build()?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let runner = ctx.clone();
    std::thread::spawn(move || {
        runner.block_on(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                ringio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let (res, b) = stream.read(buf).await;
                        match res {
                            Ok(n) if n > 0 => {
                                let (res, b) = stream.write_all(b.slice(..n)).await;
                                if res.is_err() {
                                    return;
                                }
                                buf = b.into_inner();
                            }
                            _ => return,
                        }
                    }
                });
            }
        })
    });
    Ok((addr, ctx))
}

fn main() -> io::Result<()> {
    let args = parse()?;
    let (addr, server) = match args.addr {
        Some(a) => (a, None),
        None => {
            let (a, ctx) = start_server()?;
            (a, Some(ctx))
        }
    };
    let client = IoContext::builder().single_threaded(true).build()?;
    let messages = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let size = args.size;
    let deadline = Duration::from_secs_f64(args.secs);
    let server_before = server.as_ref().map(|s| s.metrics());
    let client_before = client.metrics();
    let started = Instant::now();
    client.block_on(async {
        let mut tasks = Vec::new();
        for c in 0..args.conns {
            let (messages, stop) = (messages.clone(), stop.clone());
            tasks.push(ringio::spawn(async move {
                let stream = TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                let msg: Vec<u8> = (0..size).map(|i| (i * 31 + c) as u8).collect();
                let mut out = msg.clone();
                let mut back = Vec::with_capacity(size);
                while !stop.load(Ordering::Relaxed) {
                    let (res, o) = stream.write_all(out).await;
                    res?;
                    out = o;
                    back.clear();
                    let (res, b) = stream.read_exact(back).await;
                    res?;
                    back = b;
                    if back != msg {
                        return Err(io::Error::new(io::ErrorKind::InvalidData, "echo mismatch"));
                    }
                    messages.fetch_add(1, Ordering::Relaxed);
                }
                io::Result::Ok(())
            }));
        }
        ringio::time::sleep(deadline).await;
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.map_err(io::Error::other)??;
        }
        io::Result::Ok(())
    })?;
    let elapsed = started.elapsed().as_secs_f64();
    let n = messages.load(Ordering::Relaxed);
    println!(
        "{} connections x {} B: {} messages in {:.2} s = {:.0} msgs/s",
        args.conns,
        size,
        n,
        elapsed,
        n as f64 / elapsed
    );
    let per = |after: u64, before: u64| (after - before) as f64 / n.max(1) as f64;
    let cm = client.metrics();
    println!(
        "client: {:.3} io_uring_enter per message, {:.3} inline completions per message",
        per(cm.enter_calls, client_before.enter_calls),
        per(cm.inline_completions, client_before.inline_completions)
    );
    if let (Some(s), Some(before)) = (server, server_before) {
        let sm = s.metrics();
        println!(
            "server: {:.3} io_uring_enter per message, {:.3} inline completions per message",
            per(sm.enter_calls, before.enter_calls),
            per(sm.inline_completions, before.inline_completions)
        );
    }
    Ok(())
}
