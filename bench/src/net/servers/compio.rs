//! The servers on compio: its io_uring driver, owned buffers through
//! `AsyncRead`/`AsyncWriteExt` (`BufResult`).

use std::io;

use compio::io::{AsyncRead, AsyncWriteExt};
use compio::net::{TcpListener, TcpStream};
use compio::BufResult;

use super::{Requests, Service, READ_BUF};

/// Serves `service` on `addr` until the process is killed.
pub fn serve(service: Service, addr: &str) -> io::Result<()> {
    let rt = compio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(addr).await?;
        super::ready(listener.local_addr()?.port())?;
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    super::nodelay(stream.set_nodelay(true));
                    match service {
                        Service::Echo => compio::runtime::spawn(echo(stream)).detach(),
                        Service::Http => compio::runtime::spawn(http(stream)).detach(),
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
