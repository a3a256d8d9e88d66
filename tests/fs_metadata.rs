//! `fs::Metadata` field by field against std's `MetadataExt` (ids, blocks,
//! block size, device, links, permissions, times including creation time
//! and times set before the epoch), the file types of regular files,
//! directories, symlinks and FIFOs, `File::metadata` against
//! `fs::metadata`, the `Debug` output, and the stat errors of symlink
//! loops and over-long names. Both modes.

mod common;

use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{each_mode, fd_shared, TempDir};
use ringio::fs;

/// Every field of `m` equals std's for the same file.
fn assert_same_as_std(m: &fs::Metadata, s: &std::fs::Metadata, what: &str) {
    assert_eq!(m.len(), s.len(), "{what} len");
    assert_eq!(m.is_empty(), s.len() == 0, "{what} is_empty");
    assert_eq!(m.mode(), s.mode(), "{what} mode");
    // Documented: only the permission bits (std keeps the type bits too).
    assert_eq!(
        m.permissions().mode(),
        s.permissions().mode() & 0o7777,
        "{what} permissions"
    );
    assert_eq!(m.ino(), s.ino(), "{what} ino");
    assert_eq!(m.dev(), s.dev(), "{what} dev");
    assert_eq!(m.nlink(), s.nlink(), "{what} nlink");
    assert_eq!(m.uid(), s.uid(), "{what} uid");
    assert_eq!(m.gid(), s.gid(), "{what} gid");
    assert_eq!(m.blocks(), s.blocks(), "{what} blocks");
    assert_eq!(m.blksize(), s.blksize(), "{what} blksize");
    assert_eq!(m.is_file(), s.file_type().is_file(), "{what} is_file");
    assert_eq!(m.is_dir(), s.file_type().is_dir(), "{what} is_dir");
    assert_eq!(
        m.is_symlink(),
        s.file_type().is_symlink(),
        "{what} is_symlink"
    );
    assert_eq!(m.modified().unwrap(), s.modified().unwrap(), "{what} mtime");
    assert_eq!(m.accessed().unwrap(), s.accessed().unwrap(), "{what} atime");
    // std asks statx for the birth time too: both have it, or neither.
    match (m.created(), s.created()) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "{what} btime"),
        (Err(a), Err(_)) => assert_eq!(a.kind(), ErrorKind::Unsupported, "{what}"),
        (a, b) => panic!("{what} created: ringio {a:?}, std {b:?}"),
    }
}

#[test]
fn every_field_matches_std_for_files_dirs_and_symlinks() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let dir = TempDir::new("metafields");
        let file = dir.join("f");
        let link = dir.join("l");
        let hard = dir.join("h");
        std::fs::write(&file, vec![9u8; 10_000]).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        std::fs::hard_link(&file, &hard).unwrap();
        std::os::unix::fs::symlink("f", &link).unwrap();
        ctx.block_on(async {
            let m = fs::metadata(&file).await.unwrap();
            assert_same_as_std(
                &m,
                &std::fs::metadata(&file).unwrap(),
                &format!("[{mode}] file"),
            );
            assert_eq!(m.mode(), libc::S_IFREG | 0o640, "[{mode}]");
            assert_eq!(m.permissions().mode(), 0o640, "[{mode}]");
            assert_eq!(m.nlink(), 2, "[{mode}] two names");
            assert!(m.blocks() * 512 >= 10_000, "[{mode}] {} blocks", m.blocks());
            assert!(!m.is_empty(), "[{mode}]");

            let d = fs::metadata(dir.path()).await.unwrap();
            assert_same_as_std(
                &d,
                &std::fs::metadata(dir.path()).unwrap(),
                &format!("[{mode}] dir"),
            );
            assert_eq!(d.mode() & libc::S_IFMT, libc::S_IFDIR, "[{mode}]");

            let l = fs::symlink_metadata(&link).await.unwrap();
            assert_same_as_std(
                &l,
                &std::fs::symlink_metadata(&link).unwrap(),
                &format!("[{mode}] symlink"),
            );
            assert_eq!(
                l.len(),
                1,
                "[{mode}] a symlink's size is its target's length"
            );
            assert_eq!(l.permissions().mode(), 0o777, "[{mode}]");

            // The open file's metadata is the path's.
            let f = fs::File::open(&hard).await.unwrap();
            let fm = f.metadata().await.unwrap();
            assert_same_as_std(
                &fm,
                &std::fs::metadata(&file).unwrap(),
                &format!("[{mode}] fd"),
            );
        });
    });
}

#[test]
fn a_fifo_is_neither_file_dir_nor_symlink() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let dir = TempDir::new("metafifo");
        let fifo = dir.join("p");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: `c` is a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        ctx.block_on(async {
            // stat does not open the FIFO, so it does not block.
            let m = fs::metadata(&fifo).await.unwrap();
            assert!(!m.is_file() && !m.is_dir() && !m.is_symlink(), "[{mode}]");
            assert_eq!(m.mode(), libc::S_IFIFO | 0o600, "[{mode}]");
            assert_eq!((m.len(), m.is_empty()), (0, true), "[{mode}]");
            assert_same_as_std(
                &m,
                &std::fs::metadata(&fifo).unwrap(),
                &format!("[{mode}] fifo"),
            );
        });
    });
}

#[test]
fn times_set_explicitly_come_back_exactly_also_before_the_epoch() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let dir = TempDir::new("metatimes");
        let path = dir.join("t");
        let std_file = std::fs::File::create(&path).unwrap();
        let mtime = UNIX_EPOCH + Duration::new(1_234_567_890, 123_456_789);
        let atime = UNIX_EPOCH - Duration::new(86_400, 0) + Duration::from_nanos(250_000_000);
        std_file
            .set_times(
                std::fs::FileTimes::new()
                    .set_modified(mtime)
                    .set_accessed(atime),
            )
            .unwrap();
        drop(std_file);
        ctx.block_on(async {
            let m = fs::metadata(&path).await.unwrap();
            assert_eq!(m.modified().unwrap(), mtime, "[{mode}]");
            assert_eq!(m.accessed().unwrap(), atime, "[{mode}] before the epoch");
            // The birth time, where recorded, is the real creation: after
            // this test started, not the times set above.
            if let Ok(born) = m.created() {
                assert!(born > mtime, "[{mode}] {born:?}");
                assert!(born <= SystemTime::now(), "[{mode}] {born:?}");
            }
        });
    });
}

#[test]
fn debug_lists_the_main_fields() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let dir = TempDir::new("metadebug");
        let path = dir.join("d");
        std::fs::write(&path, b"12345").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o604)).unwrap();
        let s = std::fs::metadata(&path).unwrap();
        ctx.block_on(async {
            let m = fs::metadata(&path).await.unwrap();
            let dbg = format!("{m:?}");
            let want = format!(
                "Metadata {{ len: 5, mode: 0o100604, ino: {}, nlink: 1, uid: {}, gid: {}, \
                 modified: Some({:?}), .. }}",
                s.ino(),
                s.uid(),
                s.gid(),
                s.modified().unwrap()
            );
            assert_eq!(dbg, want, "[{mode}]");
        });
    });
}

#[test]
fn stat_errors_of_loops_and_long_names() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let dir = TempDir::new("metaerr");
        let a = dir.join("a");
        let b = dir.join("b");
        std::os::unix::fs::symlink("b", &a).unwrap();
        std::os::unix::fs::symlink("a", &b).unwrap();
        let long = dir.join(&"n".repeat(300));
        ctx.block_on(async {
            // Following a loop fails; the link itself is still a symlink.
            let e = fs::metadata(&a).await.unwrap_err();
            assert_eq!(fs::raw_os_error(&e), Some(libc::ELOOP), "[{mode}] {e}");
            assert!(
                e.to_string().contains(&*a.to_string_lossy()),
                "[{mode}] {e}"
            );
            let l = fs::symlink_metadata(&a).await.unwrap();
            assert!(l.is_symlink() && l.len() == 1, "[{mode}]");
            // A name over NAME_MAX.
            for follow in [true, false] {
                let e = if follow {
                    fs::metadata(&long).await.unwrap_err()
                } else {
                    fs::symlink_metadata(&long).await.unwrap_err()
                };
                assert_eq!(
                    fs::raw_os_error(&e),
                    Some(libc::ENAMETOOLONG),
                    "[{mode}] follow={follow} {e}"
                );
                assert_eq!(e.kind(), ErrorKind::InvalidFilename, "[{mode}]");
            }
        });
    });
}
