//! The servers on tokio: a `current_thread` runtime (epoll), borrowed
//! buffers through `AsyncReadExt`/`AsyncWriteExt`.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{Requests, Service, READ_BUF};

/// Serves `service` on `addr` until the process is killed.
pub fn serve(service: Service, addr: &str) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(addr).await?;
        super::ready(listener.local_addr()?.port())?;
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    super::nodelay(stream.set_nodelay(true));
                    match service {
                        Service::Echo => drop(tokio::spawn(echo(stream))),
                        Service::Http => drop(tokio::spawn(http(stream))),
                    }
                }
                Err(e) => super::accept_failed(&e),
            }
        }
    })
}

async fn echo(mut stream: TcpStream) {
    let mut buf = vec![0u8; READ_BUF];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stream.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn http(mut stream: TcpStream) {
    let mut requests = Requests::default();
    let mut buf = vec![0u8; READ_BUF];
    let mut out = Vec::new();
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let count = match requests.feed(&buf[..n]) {
            Some(0) => continue,
            Some(count) => count,
            None => return,
        };
        Requests::respond(count, &mut out);
        if stream.write_all(&out).await.is_err() {
            return;
        }
    }
}
