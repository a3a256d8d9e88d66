//! Anonymous pipes driven through the ring.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::driver::fd::RingFd;
use crate::driver::op::Op;
use crate::driver::ops::read::{Read, CURRENT_POSITION};
use crate::driver::ops::write::Write;

/// Creates a pipe (`pipe2(O_CLOEXEC | O_NONBLOCK)`).
///
/// ```
/// # let ctx = ringio::IoContext::new().unwrap();
/// # ctx.block_on(async {
/// let (r, w) = ringio::io::pipe()?;
/// let (res, _) = w.write_all(b"ping".to_vec()).await;
/// res?;
/// let (res, buf) = r.read(Vec::with_capacity(16)).await;
/// assert_eq!(&buf[..res?], b"ping");
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
pub fn pipe() -> io::Result<(PipeReader, PipeWriter)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are fresh and owned by nobody else.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((
        PipeReader { fd: RingFd::new(r) },
        PipeWriter { fd: RingFd::new(w) },
    ))
}

/// The read end of a [`pipe`].
#[derive(Debug)]
pub struct PipeReader {
    fd: RingFd,
}

/// The write end of a [`pipe`].
#[derive(Debug)]
pub struct PipeWriter {
    fd: RingFd,
}

impl PipeReader {
    /// Reads into `buf` (from its start, up to its capacity). `Ok(0)` means
    /// every writer is gone.
    pub async fn read<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        self.fd.note_context();
        Op::new(Read::new(self.fd.raw(), buf, CURRENT_POSITION)).await
    }
}

impl PipeWriter {
    /// Writes `buf[..len]`; returns how many bytes went in.
    pub async fn write<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        self.fd.note_context();
        Op::new(Write::new(self.fd.raw(), buf, CURRENT_POSITION)).await
    }

    /// Writes all of `buf[..len]`, in as many writes as it takes.
    pub async fn write_all<B: IoBuf>(&self, buf: B) -> BufResult<(), B> {
        crate::buf::repeat::write_all(buf, |rest, _| self.write(rest)).await
    }
}

impl AsRawFd for PipeReader {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.raw()
    }
}

impl AsRawFd for PipeWriter {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.raw()
    }
}
