//! A TCP echo server on ringio.
//!
//! ```text
//! cargo run --release --example echo_server -- [ADDR] [--threads N] [--multishot] [--spin US]
//! ```
//!
//! ADDR defaults to 127.0.0.1:7878. With `--threads N` (N > 1) one
//! multi-threaded context is run by N threads; otherwise the context is
//! single-threaded (`SINGLE_ISSUER | DEFER_TASKRUN`). With `--multishot`
//! each connection receives with one multishot `RECV` into a shared
//! provided-buffer ring (`recv_multishot`) instead of `read` into its own
//! buffer. With `--spin US` the runner (multi-threaded: the leader) polls
//! its ring for up to US microseconds before it sleeps
//! (`Builder::spin_before_park`): lower latency, more CPU. Try it with the
//! `echo_client` example, or `nc 127.0.0.1 7878`.

use std::io;
use std::time::Duration;

use ringio::buf::{BufRing, IoBuf};
use ringio::net::{TcpListener, TcpStream};
use ringio::IoContext;

async fn echo(stream: TcpStream) -> io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let (res, b) = stream.read(buf).await;
        let n = res?;
        if n == 0 {
            return Ok(());
        }
        let (res, b) = stream.write_all(b.slice(..n)).await;
        res?;
        buf = b.into_inner();
    }
}

async fn echo_multishot(stream: TcpStream, ring: BufRing) -> io::Result<()> {
    let mut incoming = stream.recv_multishot(&ring);
    while let Some(chunk) = incoming.next().await {
        // The ring buffer itself is written back, then returns to the ring.
        stream.write_all(chunk?).await.0?;
    }
    Ok(())
}

fn main() -> io::Result<()> {
    let mut addr = "127.0.0.1:7878".to_string();
    let mut threads = 1;
    let mut multishot = false;
    let mut spin = Duration::ZERO;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--threads" => {
                threads = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "--threads N"))?
            }
            "--multishot" => multishot = true,
            "--spin" => {
                spin = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .map(Duration::from_micros)
                    .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "--spin US"))?
            }
            other => addr = other.to_string(),
        }
    }
    let ctx = IoContext::builder()
        .single_threaded(threads <= 1)
        .spin_before_park(spin)
        .build()?;
    let listener = TcpListener::bind(addr.as_str())?;
    // 512 buffers of 16 KiB, shared by every connection.
    let ring = BufRing::new(512, 16 * 1024)?;
    println!(
        "echo server on {} ({} thread{}, {}, spin {:?})",
        listener.local_addr()?,
        threads,
        if threads == 1 { "" } else { "s" },
        if multishot { "recv_multishot" } else { "read" },
        spin
    );
    let extra: Vec<_> = (1..threads)
        .map(|_| {
            let ctx = ctx.clone();
            let guard = ctx.work_guard();
            std::thread::spawn(move || {
                let _guard = guard;
                ctx.run();
            })
        })
        .collect();
    ctx.block_on(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _peer)) => {
                    let _ = stream.set_nodelay(true);
                    let ring = ring.clone();
                    ringio::spawn(async move {
                        let res = if multishot {
                            echo_multishot(stream, ring).await
                        } else {
                            echo(stream).await
                        };
                        if let Err(e) = res {
                            eprintln!("connection: {e}");
                        }
                    });
                }
                Err(e) => eprintln!("accept: {e}"),
            }
        }
    });
    for t in extra {
        let _ = t.join();
    }
    Ok(())
}
