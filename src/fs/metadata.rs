//! [`Metadata`]: what `statx(2)` says about a file.

use std::fmt;
use std::fs::Permissions;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Information about a file, from `IORING_OP_STATX`: returned by
/// [`File::metadata`](super::File::metadata), [`metadata`](fn@super::metadata)
/// and [`symlink_metadata`](super::symlink_metadata).
///
/// `std::fs::Metadata` cannot be built outside std, hence this type; its
/// methods are named like std's (and `std::os::unix::fs::MetadataExt`'s).
#[derive(Clone, Copy)]
pub struct Metadata {
    stx: libc::statx,
}

impl Metadata {
    pub(crate) fn from_statx(stx: libc::statx) -> Self {
        Metadata { stx }
    }

    /// Size in bytes.
    pub fn len(&self) -> u64 {
        self.stx.stx_size
    }

    /// Whether the size is zero.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn file_type(&self) -> u32 {
        u32::from(self.stx.stx_mode) & libc::S_IFMT
    }

    /// A regular file.
    pub fn is_file(&self) -> bool {
        self.file_type() == libc::S_IFREG
    }

    /// A directory.
    pub fn is_dir(&self) -> bool {
        self.file_type() == libc::S_IFDIR
    }

    /// A symbolic link (only from [`symlink_metadata`](super::symlink_metadata)).
    pub fn is_symlink(&self) -> bool {
        self.file_type() == libc::S_IFLNK
    }

    /// The whole `st_mode`: file type and permission bits.
    pub fn mode(&self) -> u32 {
        u32::from(self.stx.stx_mode)
    }

    /// The permission bits (`mode() & 0o7777`) as std's `Permissions`.
    pub fn permissions(&self) -> Permissions {
        Permissions::from_mode(self.mode() & 0o7777)
    }

    /// Last modification time.
    pub fn modified(&self) -> io::Result<SystemTime> {
        Ok(time(self.stx.stx_mtime))
    }

    /// Last access time.
    pub fn accessed(&self) -> io::Result<SystemTime> {
        Ok(time(self.stx.stx_atime))
    }

    /// Creation (birth) time; `Unsupported` where the filesystem does not
    /// record it.
    pub fn created(&self) -> io::Result<SystemTime> {
        if self.stx.stx_mask & libc::STATX_BTIME == 0 {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "creation time is not available on this filesystem",
            ));
        }
        Ok(time(self.stx.stx_btime))
    }

    /// Inode number.
    pub fn ino(&self) -> u64 {
        self.stx.stx_ino
    }

    /// Device the file lives on.
    pub fn dev(&self) -> u64 {
        libc::makedev(self.stx.stx_dev_major, self.stx.stx_dev_minor)
    }

    /// Number of hard links.
    pub fn nlink(&self) -> u64 {
        u64::from(self.stx.stx_nlink)
    }

    /// Owner's user id.
    pub fn uid(&self) -> u32 {
        self.stx.stx_uid
    }

    /// Owner's group id.
    pub fn gid(&self) -> u32 {
        self.stx.stx_gid
    }

    /// 512-byte blocks allocated.
    pub fn blocks(&self) -> u64 {
        self.stx.stx_blocks
    }

    /// Preferred I/O block size.
    pub fn blksize(&self) -> u64 {
        u64::from(self.stx.stx_blksize)
    }
}

fn time(t: libc::statx_timestamp) -> SystemTime {
    let nanos = Duration::from_nanos(u64::from(t.tv_nsec));
    if t.tv_sec >= 0 {
        UNIX_EPOCH + Duration::from_secs(t.tv_sec as u64) + nanos
    } else {
        UNIX_EPOCH - Duration::from_secs(t.tv_sec.unsigned_abs()) + nanos
    }
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metadata")
            .field("len", &self.len())
            .field("mode", &format_args!("{:#o}", self.mode()))
            .field("ino", &self.ino())
            .field("nlink", &self.nlink())
            .field("uid", &self.uid())
            .field("gid", &self.gid())
            .field("modified", &self.modified().ok())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_before_and_after_the_epoch() {
        let t = |tv_sec, tv_nsec| {
            // SAFETY: all-zero bytes are a valid `statx_timestamp`.
            let mut ts: libc::statx_timestamp = unsafe { std::mem::zeroed() };
            ts.tv_sec = tv_sec;
            ts.tv_nsec = tv_nsec;
            time(ts)
        };
        assert_eq!(t(0, 0), UNIX_EPOCH);
        assert_eq!(t(2, 5), UNIX_EPOCH + Duration::new(2, 5));
        assert_eq!(
            t(-1, 250_000_000),
            UNIX_EPOCH - Duration::from_millis(750),
            "tv_nsec counts forward from tv_sec"
        );
    }

    #[test]
    fn file_type_bits() {
        // SAFETY: all-zero bytes are a valid `statx`.
        let mut stx: libc::statx = unsafe { std::mem::zeroed() };
        stx.stx_mode = (libc::S_IFDIR | 0o755) as u16;
        let m = Metadata::from_statx(stx);
        assert!(m.is_dir() && !m.is_file() && !m.is_symlink());
        assert_eq!(m.permissions().mode(), 0o755);
        stx.stx_mask = libc::STATX_BASIC_STATS;
        let err = Metadata::from_statx(stx).created().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);
    }
}
