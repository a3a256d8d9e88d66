//! The servers under test, one file per runtime, each written the way that
//! runtime's users would write it (owned buffers on the io_uring runtimes,
//! `&mut [u8]` on tokio and glommio), all single-threaded, all with
//! `TCP_NODELAY` on accepted sockets. Two services:
//!
//! * **echo**: per connection, read up to [`READ_BUF`] bytes, write all of
//!   them back, until EOF or an error.
//! * **http**: HTTP/1.1 keep-alive; every complete request (ending in
//!   `\r\n\r\n`, pipelining-safe through [`Requests`]) is answered with
//!   [`HTTP_RESPONSE`], the answers to one read going out in one write.
//!
//! The request framing and the response are shared here so every runtime
//! does exactly the same work per byte.

use std::io::{self, Write};

mod compio;
mod glommio;
mod monoio;
mod ringio;
mod tokio;

/// Bytes a server reads at most per read.
pub const READ_BUF: usize = 16 * 1024;

/// The answer to every HTTP request.
pub const HTTP_RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, world!";

/// A request head larger than this without its terminator closes the
/// connection (a bound on per-connection memory).
const MAX_PENDING: usize = 64 * 1024;

/// Which service a server runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// Echo every byte back.
    Echo,
    /// HTTP/1.1 keep-alive, one fixed response per request.
    Http,
}

impl Service {
    /// `echo` or `http`.
    pub fn parse(s: &str) -> Result<Service, String> {
        match s {
            "echo" => Ok(Service::Echo),
            "http" => Ok(Service::Http),
            other => Err(format!("unknown service {other:?} (echo or http)")),
        }
    }
}

/// Runs `service` on `runtime`, bound to `addr`, until the process is
/// killed. Prints `READY <port>` once listening.
pub fn serve(runtime: &str, service: Service, addr: &str) -> Result<(), String> {
    let res = match runtime {
        "ringio" => ringio::serve(service, addr, std::time::Duration::ZERO),
        "ringio-spin" => ringio::serve(service, addr, super::SPIN),
        "tokio" => tokio::serve(service, addr),
        "monoio" => monoio::serve(service, addr),
        "compio" => compio::serve(service, addr, compio::Recv::Read),
        "compio-multishot" => compio::serve(service, addr, compio::Recv::Multishot),
        "glommio" => glommio::serve(service, addr, std::time::Duration::ZERO),
        "glommio-spin" => glommio::serve(service, addr, super::SPIN),
        other => return Err(format!("no server for runtime {other:?}")),
    };
    res.map_err(|e| format!("{runtime} {service:?} server: {e}"))
}

/// Tells the parent the server listens on `port` (`READY <port>`).
fn ready(port: u16) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "READY {port}")?;
    out.flush()
}

/// Logs a failure to set `TCP_NODELAY` (a connection already reset by
/// its peer); the connection is served anyway and fails on its own.
fn nodelay<E: std::fmt::Display>(res: Result<(), E>) {
    if let Err(e) = res {
        eprintln!("TCP_NODELAY: {e}");
    }
}

/// Logs an accept error; the accept loop carries on.
fn accept_failed(e: &io::Error) {
    eprintln!("accept: {e}");
}

/// Request framing of one HTTP connection: bytes of an unfinished request
/// carried over between reads.
#[derive(Default)]
pub struct Requests {
    pending: Vec<u8>,
}

impl Requests {
    /// Takes freshly read bytes; returns how many requests they complete,
    /// or `None` when an unfinished request grew past a sane size.
    pub fn feed(&mut self, data: &[u8]) -> Option<usize> {
        let (count, consumed) = if self.pending.is_empty() {
            // Common case: whole requests in one read, nothing copied.
            let (count, consumed) = complete_requests(data);
            self.pending.extend_from_slice(&data[consumed..]);
            (count, 0)
        } else {
            self.pending.extend_from_slice(data);
            complete_requests(&self.pending)
        };
        self.pending.drain(..consumed);
        (self.pending.len() <= MAX_PENDING).then_some(count)
    }

    /// Fills `out` with the answers to `count` requests.
    pub fn respond(count: usize, out: &mut Vec<u8>) {
        out.clear();
        for _ in 0..count {
            out.extend_from_slice(HTTP_RESPONSE);
        }
    }
}

/// Counts the complete requests (each ending in `\r\n\r\n`) at the start
/// of `buf`; returns the count and the bytes they span.
fn complete_requests(buf: &[u8]) -> (usize, usize) {
    let (mut count, mut consumed) = (0, 0);
    while let Some(end) = buf[consumed..].windows(4).position(|w| w == b"\r\n\r\n") {
        consumed += end + 4;
        count += 1;
    }
    (count, consumed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

    #[test]
    fn one_request_per_read() {
        let mut r = Requests::default();
        assert_eq!(r.feed(GET), Some(1));
        assert_eq!(r.feed(GET), Some(1));
        assert!(r.pending.is_empty());
    }

    #[test]
    fn pipelined_requests_in_one_read() {
        let mut r = Requests::default();
        let three = [GET, GET, GET].concat();
        assert_eq!(r.feed(&three), Some(3));
        let mut out = Vec::new();
        Requests::respond(3, &mut out);
        assert_eq!(out.len(), 3 * HTTP_RESPONSE.len());
    }

    #[test]
    fn request_split_inside_terminator() {
        let mut r = Requests::default();
        let two = [GET, GET].concat();
        let cut = GET.len() + GET.len() - 2; // between "\r\n" and "\r\n"
        assert_eq!(r.feed(&two[..cut]), Some(1));
        assert_eq!(r.feed(&two[cut..]), Some(1));
        assert!(r.pending.is_empty());
    }

    #[test]
    fn byte_at_a_time() {
        let mut r = Requests::default();
        let total: usize = GET.iter().map(|b| r.feed(&[*b]).unwrap()).sum();
        assert_eq!(total, 1);
    }

    #[test]
    fn oversized_head_is_refused() {
        let mut r = Requests::default();
        assert_eq!(r.feed(&vec![b'a'; MAX_PENDING]), Some(0));
        assert_eq!(r.feed(b"a"), None);
    }
}
