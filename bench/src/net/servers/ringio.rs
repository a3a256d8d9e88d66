//! The servers on ringio: one single-threaded `IoContext`
//! (`SINGLE_ISSUER | DEFER_TASKRUN`), multishot accept, owned buffers.

use std::io;

use ringio::buf::IoBuf;
use ringio::net::{TcpListener, TcpStream};
use ringio::IoContext;

use super::{Requests, Service, READ_BUF};

/// Serves `service` on `addr` until the process is killed.
pub fn serve(service: Service, addr: &str) -> io::Result<()> {
    let ctx = IoContext::builder().single_threaded(true).build()?;
    ctx.block_on(async move {
        let listener = TcpListener::bind(addr)?;
        super::ready(listener.local_addr()?.port())?;
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    super::nodelay(stream.set_nodelay(true));
                    match service {
                        Service::Echo => drop(ringio::spawn(echo(stream))),
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
