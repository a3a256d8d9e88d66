//! [`OpenOptions`]: how to open a [`File`].

use std::io;
use std::path::Path;

use super::error::with_path;
use super::{cstring, File};
use crate::driver::op::Op;
use crate::driver::ops::open::OpenAt;

/// Options for opening a [`File`], as `std::fs::OpenOptions`: choose the
/// access (`read`, `write`, `append`) and creation behaviour (`create`,
/// `create_new`, `truncate`), then [`open`](OpenOptions::open) a path
/// through `IORING_OP_OPENAT`. Descriptors are always `O_CLOEXEC`.
///
/// ```
/// # let ctx = ringio::IoContext::new().unwrap();
/// # ctx.block_on(async {
/// use ringio::fs::OpenOptions;
/// let path = std::env::temp_dir().join(format!("ringio-doc-opts-{}", std::process::id()));
/// let file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).await?;
/// let (res, _) = file.write_all_at(b"log line\n".to_vec(), 0).await;
/// res?;
/// assert!(OpenOptions::new().write(true).create_new(true).open(&path).await.is_err());
/// ringio::fs::remove_file(&path).await
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct OpenOptions {
    read: bool,
    write: bool,
    append: bool,
    truncate: bool,
    create: bool,
    create_new: bool,
    mode: u32,
    custom_flags: i32,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions::new()
    }
}

impl OpenOptions {
    /// Everything off; mode `0o666` (before the umask).
    pub fn new() -> Self {
        OpenOptions {
            read: false,
            write: false,
            append: false,
            truncate: false,
            create: false,
            create_new: false,
            mode: 0o666,
            custom_flags: 0,
        }
    }

    /// Open for reading.
    pub fn read(&mut self, yes: bool) -> &mut Self {
        self.read = yes;
        self
    }

    /// Open for writing.
    pub fn write(&mut self, yes: bool) -> &mut Self {
        self.write = yes;
        self
    }

    /// Open for appending (implies writing): every write, positional or
    /// not, lands at the end of the file (`O_APPEND`; as `pwrite(2)` on
    /// Linux, the offset is ignored).
    pub fn append(&mut self, yes: bool) -> &mut Self {
        self.append = yes;
        self
    }

    /// Truncate to length 0 on open (needs `write`).
    pub fn truncate(&mut self, yes: bool) -> &mut Self {
        self.truncate = yes;
        self
    }

    /// Create the file if it does not exist (needs `write` or `append`).
    pub fn create(&mut self, yes: bool) -> &mut Self {
        self.create = yes;
        self
    }

    /// Create the file, failing with `AlreadyExists` if it exists
    /// (`O_CREAT | O_EXCL`; overrides `create` and `truncate`).
    pub fn create_new(&mut self, yes: bool) -> &mut Self {
        self.create_new = yes;
        self
    }

    /// Permission bits for a file this call creates (before the umask).
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode;
        self
    }

    /// Extra `open(2)` flags, or-ed in (the access mode bits are ignored).
    pub fn custom_flags(&mut self, flags: i32) -> &mut Self {
        self.custom_flags = flags;
        self
    }

    /// Opens `path` with these options.
    ///
    /// Errors name the path and keep the OS error's kind (see
    /// [`PathError`](super::PathError)); contradictory options (no access
    /// mode, `truncate` without `write`, ...) and paths with a NUL byte are
    /// `InvalidInput`.
    pub async fn open(&self, path: impl AsRef<Path>) -> io::Result<File> {
        let path = path.as_ref();
        let opened = async {
            let flags = self.flags()?;
            let fd = Op::new(OpenAt::new(cstring(path)?, flags, self.mode)).await?;
            Ok(File::from_owned(fd, 0, self.append))
        };
        opened.await.map_err(|e| with_path("open", path, e))
    }

    /// The `open(2)` flags, checked as std checks them.
    fn flags(&self) -> io::Result<i32> {
        let invalid = |why: &str| Err(io::Error::new(io::ErrorKind::InvalidInput, why.to_owned()));
        let access = match (self.read, self.write, self.append) {
            (true, false, false) => libc::O_RDONLY,
            (false, true, false) => libc::O_WRONLY,
            (true, true, false) => libc::O_RDWR,
            (false, _, true) => libc::O_WRONLY | libc::O_APPEND,
            (true, _, true) => libc::O_RDWR | libc::O_APPEND,
            (false, false, false) => {
                return invalid("no access mode: set read, write or append");
            }
        };
        match (self.write, self.append) {
            (true, false) => {}
            (false, false) if self.truncate || self.create || self.create_new => {
                return invalid("create, create_new and truncate need write or append");
            }
            (_, true) if self.truncate && !self.create_new => {
                return invalid("truncate and append contradict each other");
            }
            _ => {}
        }
        let creation = match (self.create, self.truncate, self.create_new) {
            (_, _, true) => libc::O_CREAT | libc::O_EXCL,
            (true, true, false) => libc::O_CREAT | libc::O_TRUNC,
            (true, false, false) => libc::O_CREAT,
            (false, true, false) => libc::O_TRUNC,
            (false, false, false) => 0,
        };
        Ok(access | creation | (self.custom_flags & !libc::O_ACCMODE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(f: impl FnOnce(&mut OpenOptions) -> &mut OpenOptions) -> io::Result<i32> {
        f(&mut OpenOptions::new()).flags()
    }

    #[test]
    fn access_and_creation_flags_follow_std() {
        use libc::*;
        assert_eq!(flags(|o| o.read(true)).unwrap(), O_RDONLY);
        assert_eq!(flags(|o| o.write(true)).unwrap(), O_WRONLY);
        assert_eq!(flags(|o| o.read(true).write(true)).unwrap(), O_RDWR);
        assert_eq!(flags(|o| o.append(true)).unwrap(), O_WRONLY | O_APPEND);
        assert_eq!(
            flags(|o| o.read(true).append(true).create(true)).unwrap(),
            O_RDWR | O_APPEND | O_CREAT
        );
        assert_eq!(
            flags(|o| o.write(true).create(true).truncate(true)).unwrap(),
            O_WRONLY | O_CREAT | O_TRUNC
        );
        assert_eq!(
            flags(|o| o.write(true).create(true).truncate(true).create_new(true)).unwrap(),
            O_WRONLY | O_CREAT | O_EXCL
        );
        // Custom flags cannot change the access mode.
        assert_eq!(
            flags(|o| o.read(true).custom_flags(O_RDWR | O_NOATIME)).unwrap(),
            O_RDONLY | O_NOATIME
        );
        for bad in [
            flags(|o| o),
            flags(|o| o.read(true).create(true)),
            flags(|o| o.read(true).create_new(true)),
            flags(|o| o.read(true).truncate(true)),
            flags(|o| o.append(true).truncate(true)),
        ] {
            assert_eq!(bad.unwrap_err().kind(), io::ErrorKind::InvalidInput);
        }
    }
}
