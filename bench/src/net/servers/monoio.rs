//! The servers on monoio: the io_uring driver (`IoUringDriver`), owned
//! buffers through `AsyncReadRent`/`AsyncWriteRentExt`.

use std::io;

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};

use super::{Requests, Service, READ_BUF};

/// Serves `service` on `addr` until the process is killed.
pub fn serve(service: Service, addr: &str) -> io::Result<()> {
    let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .enable_timer()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(addr)?;
        super::ready(listener.local_addr()?.port())?;
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    super::nodelay(stream.set_nodelay(true));
                    match service {
                        Service::Echo => drop(monoio::spawn(echo(stream))),
                        Service::Http => drop(monoio::spawn(http(stream))),
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
        let (res, b) = stream.read(buf).await;
        match res {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let (res, mut b) = stream.write_all(b).await;
        if res.is_err() {
            return;
        }
        b.clear();
        buf = b;
    }
}

async fn http(mut stream: TcpStream) {
    let mut requests = Requests::default();
    let mut buf = Vec::with_capacity(READ_BUF);
    let mut out = Vec::new();
    loop {
        let (res, mut b) = stream.read(buf).await;
        let n = match res {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let count = requests.feed(&b[..n]);
        b.clear();
        buf = b;
        let count = match count {
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
