//! The servers on glommio: one `LocalExecutor` (io_uring), the streams
//! through the `futures` `AsyncRead`/`AsyncWrite` traits glommio implements.

use std::io;
use std::time::Duration;

use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use glommio::{LocalExecutorBuilder, Placement};

use super::{Requests, Service, READ_BUF};

/// Serves `service` on `addr` until the process is killed, spinning for
/// `spin` before each sleep (glommio's `spin_before_park`; zero: never).
pub fn serve(service: Service, addr: &str, spin: Duration) -> io::Result<()> {
    // Unbound: the process already pinned itself to the server CPU. glommio
    // ignores `spin_before_park` unless it binds the executor itself, so a
    // spinning server binds to that same CPU.
    let placement = if spin.is_zero() {
        Placement::Unbound
    } else {
        Placement::Fixed(crate::pin::SERVER_CPU)
    };
    let ex = LocalExecutorBuilder::new(placement)
        .spin_before_park(spin)
        .make()
        .map_err(|e| io::Error::other(e.to_string()))?;
    ex.run(async move {
        let listener = TcpListener::bind(addr)?;
        super::ready(listener.local_addr()?.port())?;
        loop {
            match listener.accept().await {
                Ok(stream) => {
                    super::nodelay(stream.set_nodelay(true));
                    match service {
                        Service::Echo => glommio::spawn_local(echo(stream)).detach(),
                        Service::Http => glommio::spawn_local(http(stream)).detach(),
                    };
                }
                Err(e) => super::accept_failed(&e.into()),
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
