//! The "keep going until the whole buffer is done" loops behind every
//! `write_all` and `read_exact` (sockets, pipes, files), written once.
//!
//! Each step gets the not-yet-done part of the buffer as a [`Slice`] plus
//! how many bytes are done, and gives the slice back with its result.
//! `Interrupted` is retried; a write of 0 bytes is `WriteZero`; a read of 0
//! bytes before the end is `UnexpectedEof` (naming `what` ended). The whole
//! buffer is always handed back, with what was done in it.

use std::future::Future;
use std::io;

use super::{BufResult, IoBuf, IoBufMut, Slice};

/// Writes all of `buf[..bytes_init]` through `step`.
pub(crate) async fn write_all<B, F, Fut>(buf: B, mut step: F) -> BufResult<(), B>
where
    B: IoBuf,
    F: FnMut(Slice<B>, usize) -> Fut,
    Fut: Future<Output = BufResult<usize, Slice<B>>>,
{
    let total = buf.bytes_init();
    let mut done = 0;
    let mut buf = buf;
    while done < total {
        let (res, slice) = step(buf.slice(done..total), done).await;
        buf = slice.into_inner();
        match res {
            Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (Err(e), buf),
        }
    }
    (Ok(()), buf)
}

/// Fills `buf` to its capacity (`bytes_total`) through `step`.
pub(crate) async fn read_exact<B, F, Fut>(buf: B, what: &str, mut step: F) -> BufResult<(), B>
where
    B: IoBufMut,
    F: FnMut(Slice<B>, usize) -> Fut,
    Fut: Future<Output = BufResult<usize, Slice<B>>>,
{
    let total = buf.bytes_total();
    let mut done = 0;
    let mut buf = buf;
    while done < total {
        let (res, slice) = step(buf.slice(done..total), done).await;
        buf = slice.into_inner();
        match res {
            Ok(0) => {
                let e = io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{what} ended after {done} of {total} bytes"),
                );
                return (Err(e), buf);
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (Err(e), buf),
        }
    }
    (Ok(()), buf)
}
