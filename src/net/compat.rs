//! `futures_io::AsyncRead` / `AsyncWrite` over a socket's owned-buffer ops.
//!
//! Those traits lend the runtime a `&mut [u8]` for one poll only, while the
//! kernel needs memory that stays put until the CQE. So the socket keeps an
//! internal buffer per direction:
//!
//! * **Read.** First any bytes left from an earlier internal read, then a
//!   speculative non-blocking `recv` straight into the caller's slice, else
//!   a `RECV` into the internal buffer. The op lives in the socket, not in
//!   the caller's future: if that future is dropped, the op keeps running
//!   and its bytes are handed out by the next `poll_read`, so none are lost.
//! * **Write (write-behind).** A speculative non-blocking `send` from the
//!   caller's slice; if the socket is full, the bytes are copied into the
//!   internal buffer, a `SEND` is started and `poll_write` reports them
//!   written. The next `poll_write`, `poll_flush` or `poll_close` first
//!   waits for that send (resubmitting the rest after a short send) and
//!   reports its error, if any. `poll_close` flushes, then shuts down the
//!   write side.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use crate::buf::{IoBuf, Slice};
use crate::driver::op::Op;
use crate::driver::ops::recv::{Received, Recv};
use crate::driver::ops::send::Send;
use crate::net::socket::Socket;

/// Largest internal read or write, per op.
const CHUNK: usize = 64 * 1024;

#[derive(Default)]
pub(crate) struct Compat {
    read: Option<Op<Recv<Vec<u8>>>>,
    /// Received bytes not yet handed out: `unread[read_pos..]`.
    unread: Vec<u8>,
    read_pos: usize,
    write: Option<Op<Send<Slice<Vec<u8>>>>>,
    /// A spare buffer for the next write-behind.
    spare: Vec<u8>,
}

impl std::fmt::Debug for Compat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compat")
            .field("reading", &self.read.is_some())
            .field("unread", &(self.unread.len() - self.read_pos))
            .field("writing", &self.write.is_some())
            .finish()
    }
}

impl Socket {
    pub(crate) fn poll_read_compat(
        &self,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut c = self.compat();
        if c.read_pos < c.unread.len() {
            let n = (c.unread.len() - c.read_pos).min(out.len());
            out[..n].copy_from_slice(&c.unread[c.read_pos..c.read_pos + n]);
            c.read_pos += n;
            return Poll::Ready(Ok(n));
        }
        if out.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if c.read.is_none() {
            if let Some(carry) = self.carry() {
                if !carry.is_idle() {
                    let mut buf = std::mem::take(&mut c.unread);
                    buf.clear();
                    buf.reserve(out.len().min(CHUNK));
                    let polled = carry.poll_take(cx, &mut buf);
                    c.unread = buf;
                    c.read_pos = 0;
                    match polled {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(_) => {
                            drop(c);
                            return self.poll_read_compat(cx, out);
                        }
                    }
                }
            }
            // SAFETY: `out` is a live, writable slice of `out.len()` bytes.
            let tried = self.speculate(&self.speculate_recv, || unsafe {
                libc::recv(
                    self.raw(),
                    out.as_mut_ptr().cast(),
                    out.len(),
                    libc::MSG_DONTWAIT,
                )
            });
            if let Some(res) = tried {
                return Poll::Ready(res);
            }
            let mut buf = std::mem::take(&mut c.unread);
            buf.clear();
            buf.reserve(out.len().min(CHUNK));
            self.ring_fd().begin_owned_op();
            c.read = Some(Op::new(Recv::new(
                self.raw(),
                buf,
                0,
                self.carry().cloned(),
            )));
        }
        let result = match self.poll_internal_read(&mut c, cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(result) => result,
        };
        match result {
            Ok(_) => {
                drop(c);
                // Hand out what arrived (or EOF: `unread` is empty).
                let mut c = self.compat();
                let n = c.unread.len().min(out.len());
                out[..n].copy_from_slice(&c.unread[..n]);
                c.read_pos = n;
                Poll::Ready(Ok(n))
            }
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// Polls the adapter's read in flight (there must be one); once done,
    /// its bytes become `unread` and its result is returned.
    fn poll_internal_read(&self, c: &mut Compat, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let op = c.read.as_mut().expect("a read in flight");
        let Received {
            result,
            buf,
            more_waiting,
        } = match Pin::new(op).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(done) => done,
        };
        c.read = None;
        self.ring_fd().finish_op();
        if more_waiting {
            self.speculate_recv.store(true, Ordering::Relaxed);
        }
        c.unread = buf;
        c.read_pos = 0;
        Poll::Ready(result)
    }

    /// For an owned-buffer read (see `Socket::recv`): copies up to `cap`
    /// bytes the adapter holds to `dst`, first waiting for its read in
    /// flight. `None` if it holds nothing and reads nothing.
    pub(crate) fn poll_compat_unread(
        &self,
        cx: &mut Context<'_>,
        dst: *mut u8,
        cap: usize,
    ) -> Poll<Option<io::Result<usize>>> {
        let mut c = self.compat();
        loop {
            if c.read_pos < c.unread.len() {
                let n = (c.unread.len() - c.read_pos).min(cap);
                // SAFETY: the caller's buffer is writable for `cap` bytes
                // and does not overlap the adapter's own buffer.
                unsafe { std::ptr::copy_nonoverlapping(c.unread[c.read_pos..].as_ptr(), dst, n) };
                c.read_pos += n;
                return Poll::Ready(Some(Ok(n)));
            }
            if c.read.is_none() {
                return Poll::Ready(None);
            }
            let result = match self.poll_internal_read(&mut c, cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(result) => result,
            };
            match result {
                Ok(0) => return Poll::Ready(Some(Ok(0))),
                Ok(_) => continue,
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
        }
    }

    /// Waits for the write-behind send, resubmitting after short sends.
    fn poll_write_behind(&self, c: &mut Compat, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(op) = c.write.as_mut() {
            let (res, slice) = match Pin::new(op).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(done) => done,
            };
            c.write = None;
            self.ring_fd().finish_op();
            let (begin, end) = (slice.begin(), slice.end());
            let buf = slice.into_inner();
            match res {
                Ok(n) if begin + n < end => {
                    let rest = buf.slice(begin + n..end);
                    self.ring_fd().begin_owned_op();
                    c.write = Some(Op::new(Send::new(self.raw(), rest)));
                }
                Ok(_) => {
                    self.speculate_send.store(true, Ordering::Relaxed);
                    c.spare = buf;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    self.ring_fd().begin_owned_op();
                    c.write = Some(Op::new(Send::new(self.raw(), buf.slice(begin..end))));
                }
                Err(e) => {
                    c.spare = buf;
                    return Poll::Ready(Err(e));
                }
            }
        }
        Poll::Ready(Ok(()))
    }

    pub(crate) fn poll_write_compat(
        &self,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut c = self.compat();
        match self.poll_write_behind(&mut c, cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => {}
        }
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if let Some(res) = self.speculate_send(data.as_ptr(), data.len()) {
            return Poll::Ready(res);
        }
        let n = data.len().min(CHUNK);
        let mut buf = std::mem::take(&mut c.spare);
        buf.clear();
        buf.extend_from_slice(&data[..n]);
        self.ring_fd().begin_owned_op();
        let len = buf.bytes_init();
        c.write = Some(Op::new(Send::new(self.raw(), buf.slice(..len))));
        // Start it now; its outcome is reported by the next call.
        if let Poll::Ready(Err(e)) = self.poll_write_behind(&mut c, cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    pub(crate) fn poll_flush_compat(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut c = self.compat();
        self.poll_write_behind(&mut c, cx)
    }

    pub(crate) fn poll_close_compat(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.poll_flush_compat(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        match self.sock_ref().shutdown(std::net::Shutdown::Write) {
            Err(e) if e.raw_os_error() != Some(libc::ENOTCONN) => Poll::Ready(Err(e)),
            _ => Poll::Ready(Ok(())),
        }
    }
}
