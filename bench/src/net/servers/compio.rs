//! The servers on compio: its io_uring driver, writes through
//! `AsyncWriteExt` (`BufResult`), and one of two receives ([`Recv`]): an
//! owned buffer per connection (`AsyncRead::read`, runtime `compio`), or
//! multishot receive into the runtime's provided-buffer pool
//! (`AsyncReadMulti::read_multi`, 512 × 16 KiB as ringio's ring, runtime
//! `compio-multishot`).

use std::io;
use std::num::NonZero;

use compio::driver::ProactorBuilder;
use compio::io::{AsyncRead, AsyncReadMulti, AsyncWriteExt};
use compio::net::{TcpListener, TcpStream};
use compio::BufResult;
use futures_util::StreamExt;

use super::{Requests, Service, READ_BUF};

/// Buffers in the provided-buffer pool (as ringio's ring).
const POOL_BUFFERS: u16 = 512;

/// How a server receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recv {
    Read,
    Multishot,
}

/// Serves `service` on `addr` until the process is killed.
pub fn serve(service: Service, addr: &str, recv: Recv) -> io::Result<()> {
    let multishot = recv == Recv::Multishot;
    let mut proactor = ProactorBuilder::new();
    proactor
        .buffer_pool_size(NonZero::new(POOL_BUFFERS).expect("non-zero"))
        .buffer_pool_buffer_len(READ_BUF);
    let rt = compio::runtime::RuntimeBuilder::new()
        .with_proactor(proactor)
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(addr).await?;
        super::ready(listener.local_addr()?.port())?;
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    super::nodelay(stream.set_nodelay(true));
                    match (service, multishot) {
                        (Service::Echo, true) => {
                            compio::runtime::spawn(echo_multishot(stream)).detach()
                        }
                        (Service::Echo, false) => compio::runtime::spawn(echo(stream)).detach(),
                        (Service::Http, true) => {
                            compio::runtime::spawn(http_multishot(stream)).detach()
                        }
                        (Service::Http, false) => compio::runtime::spawn(http(stream)).detach(),
                    }
                }
                Err(e) => super::accept_failed(&e),
            }
        }
    })
}

async fn echo(mut stream: TcpStream) {
    // A read sets the Vec's length to the bytes read; write_all sends them.
    let mut buf = Vec::with_capacity(READ_BUF);
    loop {
        let BufResult(res, b) = stream.read(buf).await;
        match res {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let BufResult(res, b) = stream.write_all(b).await;
        if res.is_err() {
            return;
        }
        buf = b;
    }
}

async fn http(mut stream: TcpStream) {
    let mut requests = Requests::default();
    let mut buf = Vec::with_capacity(READ_BUF);
    let mut out = Vec::new();
    loop {
        let BufResult(res, b) = stream.read(buf).await;
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
        let BufResult(res, o) = stream.write_all(out).await;
        if res.is_err() {
            return;
        }
        out = o;
    }
}

async fn echo_multishot(stream: TcpStream) {
    let mut reader = &stream;
    let mut writer = &stream;
    let mut incoming = std::pin::pin!(reader.read_multi(READ_BUF));
    while let Some(Ok(buf)) = incoming.next().await {
        if buf.is_empty() {
            return;
        }
        if writer.write_all(buf).await.0.is_err() {
            return;
        }
    }
}

async fn http_multishot(stream: TcpStream) {
    let mut requests = Requests::default();
    let mut reader = &stream;
    let mut writer = &stream;
    let mut incoming = std::pin::pin!(reader.read_multi(READ_BUF));
    let mut out = Vec::new();
    while let Some(Ok(buf)) = incoming.next().await {
        let count = match requests.feed(&buf) {
            _ if buf.is_empty() => return,
            Some(0) => continue,
            Some(count) => count,
            None => return,
        };
        drop(buf);
        Requests::respond(count, &mut out);
        let BufResult(res, o) = writer.write_all(out).await;
        if res.is_err() {
            return;
        }
        out = o;
    }
}
