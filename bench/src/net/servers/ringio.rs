//! The servers on ringio: one single-threaded `IoContext`
//! (`SINGLE_ISSUER | DEFER_TASKRUN`), multishot accept, and multishot
//! receive into one provided-buffer ring shared by all connections
//! (`recv_multishot`; each chunk's ring buffer is written back as is by the
//! echo). With `RINGIO_BENCH_RECV=read` in the environment they read into
//! an owned buffer per connection instead (`TcpStream::read`), to compare.

use std::io;
use std::time::Duration;

use ringio::buf::{BufRing, IoBuf};
use ringio::net::{TcpListener, TcpStream};
use ringio::IoContext;

use super::{Requests, Service, READ_BUF};

/// Buffers in the provided-buffer ring (of [`READ_BUF`] bytes each).
const RING_BUFFERS: u16 = 512;

/// Serves `service` on `addr` until the process is killed, spinning for
/// `spin` before each sleep (`Builder::spin_before_park`; zero: never).
pub fn serve(service: Service, addr: &str, spin: Duration) -> io::Result<()> {
    let ctx = IoContext::builder()
        .single_threaded(true)
        .spin_before_park(spin)
        .build()?;
    let multishot = std::env::var("RINGIO_BENCH_RECV").as_deref() != Ok("read");
    ctx.block_on(async move {
        // One buffer per connection in flight at 256 connections, doubled.
        let ring = BufRing::new(RING_BUFFERS, READ_BUF)?;
        let listener = TcpListener::bind(addr)?;
        super::ready(listener.local_addr()?.port())?;
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    super::nodelay(stream.set_nodelay(true));
                    match service {
                        Service::Echo if multishot => {
                            drop(ringio::spawn(echo_multishot(stream, ring.clone())))
                        }
                        Service::Echo => drop(ringio::spawn(echo(stream))),
                        Service::Http if multishot => {
                            drop(ringio::spawn(http_multishot(stream, ring.clone())))
                        }
                        Service::Http => drop(ringio::spawn(http(stream))),
                    }
                }
                Err(e) => super::accept_failed(&e),
            }
        }
    })
}

async fn echo(stream: TcpStream) {
    let mut buf = Vec::with_capacity(READ_BUF);
    loop {
        let (res, b) = stream.read(buf).await;
        let n = match res {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let (res, b) = stream.write_all(b.slice(..n)).await;
        if res.is_err() {
            return;
        }
        buf = b.into_inner();
    }
}

async fn echo_multishot(stream: TcpStream, ring: BufRing) {
    let mut incoming = stream.recv_multishot(&ring);
    while let Some(Ok(buf)) = incoming.next().await {
        if stream.write_all(buf).await.0.is_err() {
            return;
        }
    }
}

async fn http(stream: TcpStream) {
    let mut requests = Requests::default();
    let mut buf = Vec::with_capacity(READ_BUF);
    let mut out = Vec::new();
    loop {
        let (res, b) = stream.read(buf).await;
        buf = b;
        let n = match res {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let count = match requests.feed(&buf[..n]) {
            Some(0) => continue,
            Some(count) => count,
            None => return,
        };
        Requests::respond(count, &mut out);
        let (res, o) = stream.write_all(out).await;
        if res.is_err() {
            return;
        }
        out = o;
    }
}

async fn http_multishot(stream: TcpStream, ring: BufRing) {
    let mut requests = Requests::default();
    let mut incoming = stream.recv_multishot(&ring);
    let mut out = Vec::new();
    while let Some(Ok(buf)) = incoming.next().await {
        let count = match requests.feed(&buf) {
            Some(0) => continue,
            Some(count) => count,
            None => return,
        };
        drop(buf);
        Requests::respond(count, &mut out);
        let (res, o) = stream.write_all(out).await;
        if res.is_err() {
            return;
        }
        out = o;
    }
}
