//! [`File`]: positional and stream I/O on a file through the ring.

use std::io::{self, SeekFrom};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Metadata, OpenOptions};
use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::driver::fd::RingFd;
use crate::driver::op::Op;
use crate::driver::ops::fsync::Fsync;
use crate::driver::ops::ftruncate::Ftruncate;
use crate::driver::ops::read::Read;
use crate::driver::ops::statx::{Statx, StatxTarget};
use crate::driver::ops::write::Write;

/// The largest offset a file operation accepts: the kernel's `loff_t` is
/// signed, and io_uring reads `-1` as "the kernel's file position", which
/// `File` never uses.
const MAX_OFFSET: u64 = i64::MAX as u64;

/// An open file, read and written through the ring.
///
/// * Positional I/O — [`read_at`](File::read_at), [`write_at`](File::write_at)
///   and their loops [`read_exact_at`](File::read_exact_at),
///   [`write_all_at`](File::write_all_at) — takes `&self`, so any number of
///   tasks may use one `File` (in an `Arc`) at once.
/// * Stream I/O — [`read`](File::read), [`write`](File::write),
///   [`write_all`](File::write_all) — goes through the `File`'s own cursor
///   (see [the module docs](super) for its rules), never through the
///   kernel's file position.
///
/// Buffers go in by value and come back with the result ([`BufResult`]).
/// Dropping the `File` cancels its operations still in flight and closes
/// the descriptor after the cancel has reached the kernel.
///
/// ```
/// # let ctx = ringio::IoContext::new().unwrap();
/// # ctx.block_on(async {
/// use ringio::fs::File;
/// let path = std::env::temp_dir().join(format!("ringio-doc-file-{}", std::process::id()));
///
/// let file = File::create(&path).await?;
/// let (res, _) = file.write_all_at(b"hello, ring".to_vec(), 0).await;
/// res?;
/// file.sync_all().await?;
///
/// let file = File::open(&path).await?;
/// let (res, buf) = file.read_at(Vec::with_capacity(64), 7).await;
/// assert_eq!(&buf[..res?], b"ring");
/// let (res, _) = file.read_at(Vec::with_capacity(64), 100).await;
/// assert_eq!(res?, 0, "past the end: EOF");
/// assert_eq!(file.metadata().await?.len(), 11);
/// ringio::fs::remove_file(&path).await
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct File {
    fd: RingFd,
    /// The stream cursor: where the next `read`/`write` starts.
    pos: AtomicU64,
    /// Opened `O_APPEND`: writes land at the end whatever the offset.
    append: bool,
}

impl File {
    pub(crate) fn from_owned(fd: OwnedFd, pos: u64, append: bool) -> Self {
        File {
            fd: RingFd::new(fd),
            pos: AtomicU64::new(pos),
            append,
        }
    }

    /// Opens `path` read-only.
    pub async fn open(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new().read(true).open(path).await
    }

    /// Opens `path` write-only, creating it if needed and truncating it.
    pub async fn create(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .await
    }

    /// A new [`OpenOptions`] (as `OpenOptions::new()`).
    pub fn options() -> OpenOptions {
        OpenOptions::new()
    }

    /// Reads into `buf` (from its start, up to its capacity; at most
    /// `u32::MAX` bytes at once) from `offset`. `Ok(0)` at or past the end
    /// of the file; fewer bytes than asked is not an error. A directory
    /// gives `EISDIR`; an offset above `i64::MAX`, `InvalidInput`.
    pub async fn read_at<B: IoBufMut>(&self, buf: B, offset: u64) -> BufResult<usize, B> {
        if let Err(e) = check_offset(offset) {
            return (Err(e), buf);
        }
        self.fd.note_context();
        Op::new(Read::new(self.fd.raw(), buf, offset)).await
    }

    /// Writes `buf[..len]` (at most `u32::MAX` bytes at once) at `offset`;
    /// returns how many bytes went in. On a file opened for
    /// [`append`](OpenOptions::append), the data lands at the end instead.
    pub async fn write_at<B: IoBuf>(&self, buf: B, offset: u64) -> BufResult<usize, B> {
        if let Err(e) = check_offset(offset) {
            return (Err(e), buf);
        }
        self.fd.note_context();
        Op::new(Write::new(self.fd.raw(), buf, offset)).await
    }

    /// Fills `buf` to its capacity ([`IoBuf::bytes_total`]) from `offset`,
    /// in as many reads as it takes. `UnexpectedEof` if the file ends first
    /// (the bytes read so far are in `buf`).
    pub async fn read_exact_at<B: IoBufMut>(&self, buf: B, offset: u64) -> BufResult<(), B> {
        crate::buf::repeat::read_exact(buf, "file", |rest, done| {
            self.read_at(rest, offset.saturating_add(done as u64))
        })
        .await
    }

    /// Writes all of `buf[..len]` at `offset`, in as many writes as it
    /// takes.
    pub async fn write_all_at<B: IoBuf>(&self, buf: B, offset: u64) -> BufResult<(), B> {
        crate::buf::repeat::write_all(buf, |rest, done| {
            self.write_at(rest, offset.saturating_add(done as u64))
        })
        .await
    }

    /// Reads into `buf` at the cursor and advances the cursor by the count.
    /// `Ok(0)` at the end of the file.
    pub async fn read<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        let (res, buf) = self.read_at(buf, self.position()).await;
        if let Ok(n) = res {
            self.pos.fetch_add(n as u64, Ordering::Relaxed);
        }
        (res, buf)
    }

    /// Writes `buf[..len]` at the cursor and advances the cursor by the
    /// count. On an append-mode file the data lands at the end of the file
    /// and the cursor is left alone.
    pub async fn write<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        let (res, buf) = self.write_at(buf, self.position()).await;
        if let Ok(n) = res {
            if !self.append {
                self.pos.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
        (res, buf)
    }

    /// Writes all of `buf[..len]` at the cursor, advancing it as each write
    /// completes (see [`write`](File::write)).
    pub async fn write_all<B: IoBuf>(&self, buf: B) -> BufResult<(), B> {
        crate::buf::repeat::write_all(buf, |rest, _| self.write(rest)).await
    }

    /// The cursor: where the next stream [`read`](File::read) or
    /// [`write`](File::write) starts.
    pub fn position(&self) -> u64 {
        self.pos.load(Ordering::Relaxed)
    }

    /// Moves the cursor (no I/O; past the end is allowed, as with
    /// `lseek(2)`).
    pub fn set_position(&self, pos: u64) {
        self.pos.store(pos, Ordering::Relaxed);
    }

    /// Moves the cursor like `std::io::Seek::seek` and returns the new
    /// position. `SeekFrom::End` asks the kernel for the size (STATX). A
    /// position before 0 or past `i64::MAX` is `InvalidInput`, and leaves
    /// the cursor where it was.
    pub async fn seek(&self, to: SeekFrom) -> io::Result<u64> {
        let (base, delta) = match to {
            SeekFrom::Start(n) => (n, 0),
            SeekFrom::Current(d) => (self.position(), d),
            SeekFrom::End(d) => (self.metadata().await?.len(), d),
        };
        let new = base
            .checked_add_signed(delta)
            .filter(|&p| p <= MAX_OFFSET)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("seek to {base} {delta:+} leaves 0..=i64::MAX"),
                )
            })?;
        self.set_position(new);
        Ok(new)
    }

    /// Flushes data and metadata to the device (`IORING_OP_FSYNC`).
    pub async fn sync_all(&self) -> io::Result<()> {
        self.fd.note_context();
        Op::new(Fsync::new(self.fd.raw(), false)).await
    }

    /// Flushes data, and only the metadata needed to read it back
    /// (`IORING_OP_FSYNC` with `IORING_FSYNC_DATASYNC`).
    pub async fn sync_data(&self) -> io::Result<()> {
        self.fd.note_context();
        Op::new(Fsync::new(self.fd.raw(), true)).await
    }

    /// Truncates or extends (with zeros) the file to `size` bytes
    /// (`IORING_OP_FTRUNCATE`); the cursor does not move. Needs a file
    /// opened for writing (`EINVAL` otherwise); a size above `i64::MAX` is
    /// `InvalidInput`.
    pub async fn set_len(&self, size: u64) -> io::Result<()> {
        check_offset(size)?;
        self.fd.note_context();
        Op::new(Ftruncate::new(self.fd.raw(), size)).await
    }

    /// The file's metadata (`IORING_OP_STATX` on the descriptor).
    pub async fn metadata(&self) -> io::Result<Metadata> {
        self.fd.note_context();
        let stx = Op::new(Statx::new(StatxTarget::Fd(self.fd.raw()))).await?;
        Ok(Metadata::from_statx(stx))
    }
}

fn check_offset(offset: u64) -> io::Result<()> {
    if offset > MAX_OFFSET {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("file offset {offset} is past i64::MAX"),
        ));
    }
    Ok(())
}

impl From<std::fs::File> for File {
    /// Takes over a std file. The cursor starts at the std file's current
    /// position, and append mode is kept.
    fn from(file: std::fs::File) -> Self {
        let fd = OwnedFd::from(file);
        // SAFETY: plain syscalls on a descriptor we own.
        let (pos, fl) = unsafe {
            (
                libc::lseek(fd.as_raw_fd(), 0, libc::SEEK_CUR),
                libc::fcntl(fd.as_raw_fd(), libc::F_GETFL),
            )
        };
        // Not seekable (a pipe given as a file): start at 0.
        let pos = u64::try_from(pos).unwrap_or(0);
        let append = fl >= 0 && fl & libc::O_APPEND != 0;
        File::from_owned(fd, pos, append)
    }
}

impl AsRawFd for File {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.raw()
    }
}
