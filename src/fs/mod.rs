//! Files through the ring: [`File`] (positional and stream I/O), and
//! path operations — [`read`], [`write()`], [`metadata()`], [`rename`],
//! [`remove_file`], [`create_dir_all`], ... — each one io_uring operation
//! (`OPENAT`, `READ`, `WRITE`, `STATX`, `FSYNC`, `FTRUNCATE`, `RENAMEAT`,
//! `UNLINKAT`, `MKDIRAT`) on the context running the calling task.
//!
//! ```
//! # let ctx = ringio::IoContext::new().unwrap();
//! # ctx.block_on(async {
//! let dir = std::env::temp_dir().join(format!("ringio-doc-fs-{}", std::process::id()));
//! ringio::fs::create_dir_all(dir.join("a/b")).await?;
//! ringio::fs::write(dir.join("a/b/greeting"), "hello").await?;
//! assert_eq!(ringio::fs::read(dir.join("a/b/greeting")).await?, b"hello");
//! ringio::fs::rename(dir.join("a/b/greeting"), dir.join("a/hi")).await?;
//! assert_eq!(ringio::fs::metadata(dir.join("a/hi")).await?.len(), 5);
//! # ringio::fs::remove_file(dir.join("a/hi")).await?;
//! # ringio::fs::remove_dir(dir.join("a/b")).await?;
//! # ringio::fs::remove_dir(dir.join("a")).await?;
//! # ringio::fs::remove_dir(&dir).await
//! # }).unwrap();
//! ```
//!
//! # Invariants
//!
//! 1. **Ownership.** Every buffer, path string (a `CString` on the heap)
//!    and `statx` buffer the kernel may touch is owned by the operation
//!    until its completion arrives — inside the future, then, if the future
//!    is dropped, inside the op's slot (see `driver::slots`). Buffers are
//!    handed back with the result ([`BufResult`](crate::buf::BufResult)).
//! 2. **Cancellation.** Dropping any future here cancels its operation. A
//!    cancelled write may or may not have written (part of) its data, never
//!    anything else; a cancelled open that still produced a descriptor has
//!    it closed when its completion arrives; a cancelled rename, unlink or
//!    mkdir has happened or not. Functions that loop (`read`, `write`,
//!    `create_dir_all`, `*_all`/`*_exact`) stop where they were.
//! 3. **Descriptors.** A `File` owns its descriptor. Dropping it cancels the
//!    ops still in flight on it and closes the descriptor only after that
//!    cancel has reached the kernel, so a recycled number is never hit.
//! 4. **Cursor.** Each `File` keeps its own stream position (an atomic in
//!    the `File`, starting at 0, or at a std file's position for
//!    `From<std::fs::File>`); the kernel's file position is never used or
//!    moved. [`File::read`]/[`File::write`] start at the cursor as they find
//!    it and, on success, advance it by the bytes transferred; a failed or
//!    cancelled call leaves it alone. Concurrent stream calls on one `File`
//!    may therefore overlap: share a `File` between tasks with the
//!    positional `*_at` methods, which never touch the cursor. In append
//!    mode writes go to the end of the file and do not move the cursor.
//! 5. **Errors.** `EOF` is `Ok(0)`. Errors of operations that take a path
//!    name the operation and the path ([`PathError`]) and keep the OS
//!    error's `kind()`; [`raw_os_error`] recovers its code. A path with a NUL
//!    byte, an offset or length above `i64::MAX`, contradictory
//!    [`OpenOptions`] are `InvalidInput` (a range that starts below
//!    `i64::MAX` and ends past it gets the kernel's `EINVAL`); a read or
//!    write of more than
//!    `u32::MAX` bytes is capped (a short count, as the kernel's own cap
//!    is). Nothing here panics on bad input; used outside a running
//!    `IoContext` every operation fails with an error.

mod error;
mod file;
mod metadata;
mod open_options;

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub use error::{raw_os_error, PathError};
pub use file::File;
pub use metadata::Metadata;
pub use open_options::OpenOptions;

use crate::buf::IoBuf;
use crate::driver::op::Op;
use crate::driver::ops::path_ops::{MkDir, Rename, Unlink};
use crate::driver::ops::statx::{Statx, StatxTarget};
use error::{with_path, with_paths};

/// The path as the kernel wants it.
fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "path contains an interior NUL byte",
        )
    })
}

/// Smallest buffer [`read`] starts with (or grows by): files such as those
/// in `/proc` report a size of 0 and still have contents.
const MIN_READ: usize = 8 * 1024;

/// Reads the whole file at `path`: opens it, asks for its size (STATX) to
/// size the buffer, then reads until end of file (the size is only a hint:
/// a file that grows meanwhile is read to its new end).
///
/// ```
/// # let ctx = ringio::IoContext::new().unwrap();
/// # ctx.block_on(async {
/// let path = std::env::temp_dir().join(format!("ringio-doc-read-{}", std::process::id()));
/// ringio::fs::write(&path, b"42\n".to_vec()).await?;
/// let bytes = ringio::fs::read(&path).await?;
/// assert_eq!(bytes, b"42\n");
/// ringio::fs::remove_file(&path).await?;
///
/// let err = ringio::fs::read(&path).await.unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
pub async fn read(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    let path = path.as_ref();
    let file = File::open(path).await?;
    read_to_end(&file)
        .await
        .map_err(|e| with_path("read", path, e))
}

async fn read_to_end(file: &File) -> io::Result<Vec<u8>> {
    let size = file.metadata().await?.len();
    // One spare byte so that the read that finds EOF needs no growth.
    let hint = usize::try_from(size)
        .unwrap_or(usize::MAX)
        .saturating_add(1)
        .max(MIN_READ);
    let mut buf = Vec::new();
    buf.try_reserve_exact(hint).map_err(out_of_memory)?;
    loop {
        if buf.len() == buf.capacity() {
            let more = buf.capacity().max(MIN_READ);
            buf.try_reserve(more).map_err(out_of_memory)?;
        }
        let start = buf.len();
        let (res, slice) = file.read_at(buf.slice(start..), start as u64).await;
        buf = slice.into_inner();
        match res {
            Ok(0) => return Ok(buf),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn out_of_memory(e: std::collections::TryReserveError) -> io::Error {
    io::Error::new(io::ErrorKind::OutOfMemory, e)
}

/// Reads the whole file at `path` as UTF-8 (`InvalidData` if it is not).
pub async fn read_to_string(path: impl AsRef<Path>) -> io::Result<String> {
    let path = path.as_ref();
    let bytes = read(path).await?;
    String::from_utf8(bytes).map_err(|e| {
        with_path(
            "read",
            path,
            io::Error::new(io::ErrorKind::InvalidData, e.utf8_error()),
        )
    })
}

/// Writes `contents` (`contents[..len]`, any owned [`IoBuf`]: a `Vec`, a
/// `&'static str`, ...) as the whole file at `path`, creating it or
/// truncating it first.
pub async fn write(path: impl AsRef<Path>, contents: impl IoBuf) -> io::Result<()> {
    let path = path.as_ref();
    let file = File::create(path).await?;
    let (res, _) = file.write_all_at(contents, 0).await;
    res.map_err(|e| with_path("write", path, e))
}

/// The metadata of `path`, following symlinks (`IORING_OP_STATX`).
pub async fn metadata(path: impl AsRef<Path>) -> io::Result<Metadata> {
    stat(path.as_ref(), true).await
}

/// The metadata of `path` itself, not following a final symlink.
pub async fn symlink_metadata(path: impl AsRef<Path>) -> io::Result<Metadata> {
    stat(path.as_ref(), false).await
}

async fn stat(path: &Path, follow: bool) -> io::Result<Metadata> {
    let stat = async {
        let target = StatxTarget::Path {
            path: cstring(path)?,
            follow,
        };
        Ok(Metadata::from_statx(Op::new(Statx::new(target)).await?))
    };
    stat.await.map_err(|e| with_path("stat", path, e))
}

/// Removes a file (or symlink); `IsADirectory` for a directory.
pub async fn remove_file(path: impl AsRef<Path>) -> io::Result<()> {
    unlink(path.as_ref(), false).await
}

/// Removes an empty directory.
pub async fn remove_dir(path: impl AsRef<Path>) -> io::Result<()> {
    unlink(path.as_ref(), true).await
}

async fn unlink(path: &Path, dir: bool) -> io::Result<()> {
    let unlink = async { Op::new(Unlink::new(cstring(path)?, dir)).await };
    let what = if dir { "remove_dir" } else { "remove_file" };
    unlink.await.map_err(|e| with_path(what, path, e))
}

/// Renames `from` to `to`, replacing `to` if it exists (`IORING_OP_RENAMEAT`).
pub async fn rename(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<()> {
    let (from, to) = (from.as_ref(), to.as_ref());
    let rename = async { Op::new(Rename::new(cstring(from)?, cstring(to)?)).await };
    rename.await.map_err(|e| with_paths("rename", from, to, e))
}

/// Creates a directory (mode `0o777` before the umask); `AlreadyExists` if
/// `path` exists, `NotFound` if its parent does not.
pub async fn create_dir(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref();
    mkdir(path)
        .await
        .map_err(|e| with_path("create_dir", path, e))
}

async fn mkdir(path: &Path) -> io::Result<()> {
    Op::new(MkDir::new(cstring(path)?, 0o777)).await
}

/// Creates a directory and every missing parent. A directory that exists
/// already (or is created concurrently) is fine; anything else in the way
/// is an error.
pub async fn create_dir_all(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref();
    create_dir_all_inner(path)
        .await
        .map_err(|e| with_path("create_dir_all", path, e))
}

async fn create_dir_all_inner(path: &Path) -> io::Result<()> {
    // Walk up until a directory exists or is made; then make the rest,
    // top down.
    let mut missing = Vec::new();
    let mut cur = path;
    loop {
        if cur.as_os_str().is_empty() {
            break; // "a/b" reached "": the current directory
        }
        match mkdir(cur).await {
            Ok(()) => break,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                missing.push(cur);
                match cur.parent() {
                    Some(parent) => cur = parent,
                    None => return Err(e),
                }
            }
            Err(e) => {
                if is_dir(cur).await {
                    break;
                }
                return Err(e);
            }
        }
    }
    while let Some(dir) = missing.pop() {
        if let Err(e) = mkdir(dir).await {
            if !is_dir(dir).await {
                return Err(e);
            }
        }
    }
    Ok(())
}

async fn is_dir(path: &Path) -> bool {
    stat(path, true).await.is_ok_and(|m| m.is_dir())
}
