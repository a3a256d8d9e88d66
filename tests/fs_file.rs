//! `ringio::fs::File`: positional round trips of MiB-sized data at offsets,
//! EOF past the end, short reads, the stream cursor (never the kernel's
//! position), concurrent readers and writers on one file, append mode,
//! `set_len`/`sync_*`/`metadata`, `OpenOptions` checks, `From<std::fs::File>`,
//! and the error paths: directories, offsets past `i64::MAX`, buffers past
//! `u32::MAX`, use outside a context and after the context is gone. Both
//! modes.

mod common;

use std::io::{ErrorKind, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, SystemTime};

use common::{
    assert_fds_back_to, each_mode, fd_exclusive, fd_shared, open_fds, poll_outside, Mode, TempDir,
};
use ringio::buf::{IoBuf, IoBufMut};
use ringio::fs::{self, File, OpenOptions};
use ringio::IoContext;

/// `len` bytes of a pattern that differs with `seed` and with position.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(31)
                .wrapping_add(u32::from(seed) * 7) as u8
                ^ (i >> 12) as u8
        })
        .collect()
}

/// Read-write, created if missing.
fn rw() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.read(true).write(true).create(true);
    o
}

#[test]
fn mib_round_trips_at_offsets() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let dir = TempDir::new("mib");
        let path = dir.join("data");
        ctx.block_on(async {
            let file = rw().open(&path).await.unwrap();
            let big = pattern(3 << 20, 1);
            let offsets = [0u64, 12_345, (5 << 20) + 7];
            for (i, &off) in offsets.iter().enumerate() {
                let data = pattern(big.len() - i * 1000, i as u8);
                let (res, back) = file.write_all_at(data, off).await;
                res.unwrap_or_else(|e| panic!("[{mode}] write_all_at {off}: {e}"));
                assert_eq!(back.len(), big.len() - i * 1000, "buffer handed back whole");
            }
            let end = offsets[2] + (big.len() - 2000) as u64;
            assert_eq!(file.metadata().await.unwrap().len(), end, "[{mode}]");
            // The last write at each offset wins; check the two that do
            // not overlap a later one, and the hole between them.
            let (res, got) = file
                .read_exact_at(Vec::with_capacity(big.len() - 2000), offsets[2])
                .await;
            res.unwrap();
            assert!(
                got == pattern(big.len() - 2000, 2),
                "[{mode}] data at 5 MiB + 7"
            );
            let (res, got) = file.read_exact_at(vec![0xffu8; 12_345], 0).await;
            res.unwrap();
            assert_eq!(got, pattern(3 << 20, 0)[..12_345], "[{mode}] prefix");
            let hole_start = 12_345 + (big.len() - 1000) as u64;
            let hole = (offsets[2] - hole_start) as usize;
            let (res, got) = file.read_exact_at(vec![0xffu8; hole], hole_start).await;
            res.unwrap();
            assert!(
                got.iter().all(|&b| b == 0),
                "[{mode}] a hole reads as zeros"
            );
        });
    });
}

#[test]
fn reads_at_or_past_the_end_are_ok_zero_and_short_reads_are_not_errors() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let dir = TempDir::new("eof");
        let path = dir.join("hundred");
        std::fs::write(&path, pattern(100, 3)).unwrap();
        ctx.block_on(async {
            let file = File::open(&path).await.unwrap();
            for off in [100u64, 101, 1 << 40, i64::MAX as u64 - 64] {
                let (res, buf) = file.read_at(Vec::with_capacity(64), off).await;
                assert_eq!(res.unwrap(), 0, "[{mode}] read at {off}");
                assert!(buf.is_empty(), "[{mode}] nothing written into the buffer");
            }
            // Offset + length past i64::MAX: the kernel's EINVAL, not a panic.
            let (res, _) = file.read_at(Vec::with_capacity(64), i64::MAX as u64).await;
            assert_eq!(
                res.unwrap_err().raw_os_error(),
                Some(libc::EINVAL),
                "[{mode}]"
            );
            // A short read near the end.
            let (res, buf) = file.read_at(vec![0u8; 64], 80).await;
            assert_eq!(res.unwrap(), 20, "[{mode}]");
            assert_eq!(buf[..20], pattern(100, 3)[80..]);
            assert_eq!(buf.len(), 64, "set_init never shrinks");
            // read_exact_at reports the early end, with what it got.
            let (res, buf) = file.read_exact_at(Vec::with_capacity(64), 90).await;
            assert_eq!(
                res.unwrap_err().kind(),
                ErrorKind::UnexpectedEof,
                "[{mode}]"
            );
            assert_eq!(buf, pattern(100, 3)[90..], "[{mode}] partial data kept");
            // An empty buffer reads nothing, even mid-file.
            let (res, _) = file.read_at(Vec::new(), 0).await;
            assert_eq!(res.unwrap(), 0);
        });
    });
}

#[test]
fn stream_cursor_is_the_files_own_not_the_kernels() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let dir = TempDir::new("cursor");
        let path = dir.join("c");
        ctx.block_on(async {
            let file = rw().open(&path).await.unwrap();
            assert_eq!(file.position(), 0);
            let (res, _) = file.write(b"hello".to_vec()).await;
            assert_eq!(res.unwrap(), 5);
            let (res, _) = file.write_all(" world".to_string().into_bytes()).await;
            res.unwrap();
            assert_eq!(file.position(), 11, "[{mode}] advanced by each write");
            // The kernel's position never moved: every op had an offset.
            // SAFETY: plain lseek on an open descriptor.
            let kernel = unsafe { libc::lseek(file.as_raw_fd(), 0, libc::SEEK_CUR) };
            assert_eq!(kernel, 0, "[{mode}] kernel file position untouched");
            // Reading at the cursor (the end) gives EOF and leaves it.
            let (res, _) = file.read(Vec::with_capacity(8)).await;
            assert_eq!(res.unwrap(), 0);
            assert_eq!(file.position(), 11);
            file.set_position(0);
            let (res, buf) = file.read(Vec::with_capacity(5)).await;
            assert_eq!(&buf[..res.unwrap()], b"hello");
            assert_eq!(file.position(), 5);
            let (res, buf) = file.read(Vec::with_capacity(64)).await;
            assert_eq!(&buf[..res.unwrap()], b" world");
            assert_eq!(file.position(), 11);
            // Positional ops do not touch the cursor.
            let (res, _) = file.write_at(b"J".to_vec(), 0).await;
            res.unwrap();
            assert_eq!(file.position(), 11);
            // seek.
            assert_eq!(file.seek(SeekFrom::End(-5)).await.unwrap(), 6);
            let (res, buf) = file.read(Vec::with_capacity(64)).await;
            assert_eq!(&buf[..res.unwrap()], b"world");
            assert_eq!(file.seek(SeekFrom::Current(-11)).await.unwrap(), 0);
            let err = file.seek(SeekFrom::Current(-1)).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "[{mode}] before 0");
            let err = file.seek(SeekFrom::Start(u64::MAX)).await.unwrap_err();
            assert_eq!(
                err.kind(),
                ErrorKind::InvalidInput,
                "[{mode}] past i64::MAX"
            );
            assert_eq!(file.position(), 0, "a failed seek leaves the cursor");
            // Writing past the end through the cursor leaves a hole.
            file.set_position(20);
            let (res, _) = file.write(b"!".to_vec()).await;
            res.unwrap();
            assert_eq!(file.position(), 21);
        });
        let mut want = b"Jello world".to_vec();
        want.resize(20, 0);
        want.push(b'!');
        assert_eq!(std::fs::read(&path).unwrap(), want, "[{mode}]");
    });
}

#[test]
fn concurrent_writers_then_readers_on_disjoint_ranges() {
    let _fd = fd_shared();
    const TASKS: usize = 8;
    const CHUNK: usize = 256 * 1024;
    each_mode(|mode, ctx| {
        let dir = TempDir::new("concurrent");
        let path = dir.join("shared");
        let runners = ctx.block_on(async {
            let file = Arc::new(rw().open(&path).await.unwrap());
            let writers: Vec<_> = (0..TASKS)
                .map(|i| {
                    let file = file.clone();
                    ringio::spawn(async move {
                        // Several writes per task, interleaving with the others.
                        for part in 0..4 {
                            let data = pattern(CHUNK / 4, (i * 4 + part) as u8);
                            let off = (i * CHUNK + part * CHUNK / 4) as u64;
                            let (res, _) = file.write_all_at(data, off).await;
                            res.unwrap();
                        }
                    })
                })
                .collect();
            // A second thread runs the multi-threaded context too.
            let runners = if mode == Mode::Multi {
                common::spawn_runners(&IoContext::current(), 1)
            } else {
                Vec::new()
            };
            for w in writers {
                w.await.unwrap();
            }
            assert_eq!(file.metadata().await.unwrap().len(), (TASKS * CHUNK) as u64);
            let readers: Vec<_> = (0..TASKS)
                .map(|i| {
                    let file = file.clone();
                    ringio::spawn(async move {
                        let (res, got) = file
                            .read_exact_at(Vec::with_capacity(CHUNK), (i * CHUNK) as u64)
                            .await;
                        res.unwrap();
                        let want: Vec<u8> = (0..4)
                            .flat_map(|part| pattern(CHUNK / 4, (i * 4 + part) as u8))
                            .collect();
                        got == want
                    })
                })
                .collect();
            for (i, r) in readers.into_iter().enumerate() {
                assert!(r.await.unwrap(), "[{mode}] range {i} corrupted");
            }
            runners
        });
        for r in runners {
            r.join().unwrap();
        }
    });
}

#[test]
fn append_mode_writes_land_at_the_end() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let dir = TempDir::new("append");
        let path = dir.join("log");
        std::fs::write(&path, b"one\n").unwrap();
        ctx.block_on(async {
            let file = OpenOptions::new().append(true).open(&path).await.unwrap();
            let (res, _) = file.write_at(b"two\n".to_vec(), 0).await;
            assert_eq!(res.unwrap(), 4);
            let (res, _) = file.write_all(b"three\n".to_vec()).await;
            res.unwrap();
            assert_eq!(
                file.position(),
                0,
                "[{mode}] append writes leave the cursor"
            );
        });
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"one\ntwo\nthree\n",
            "[{mode}]"
        );
    });
}

#[test]
fn set_len_sync_and_metadata() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let dir = TempDir::new("meta");
        let path = dir.join("m");
        let started = SystemTime::now() - Duration::from_secs(5);
        ctx.block_on(async {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .await
                .unwrap();
            let (res, _) = file.write_all_at(pattern(10_000, 9), 0).await;
            res.unwrap();
            file.sync_all().await.unwrap();
            file.sync_data().await.unwrap();
            let m = file.metadata().await.unwrap();
            assert_eq!(m.len(), 10_000, "[{mode}]");
            assert!(m.is_file() && !m.is_dir() && !m.is_symlink() && !m.is_empty());
            assert_eq!(m.permissions().mode(), 0o600, "[{mode}] {m:?}");
            assert_eq!(m.mode() & 0o170000, 0o100000, "S_IFREG");
            assert_eq!(m.nlink(), 1);
            assert!(m.modified().unwrap() >= started, "[{mode}] {m:?}");
            assert!(m.accessed().unwrap() >= started);
            // SAFETY: plain getuid.
            assert_eq!(m.uid(), unsafe { libc::getuid() });
            let std_meta = std::fs::metadata(&path).unwrap();
            use std::os::unix::fs::MetadataExt;
            assert_eq!((m.ino(), m.dev()), (std_meta.ino(), std_meta.dev()));
            assert_eq!(m.modified().unwrap(), std_meta.modified().unwrap());

            file.set_len(100).await.unwrap();
            assert_eq!(file.metadata().await.unwrap().len(), 100, "[{mode}] shrunk");
            file.set_len(4096).await.unwrap();
            let (res, got) = file.read_exact_at(Vec::with_capacity(4096), 0).await;
            res.unwrap();
            assert_eq!(got[..100], pattern(100, 9)[..], "[{mode}] prefix kept");
            assert!(
                got[100..].iter().all(|&b| b == 0),
                "[{mode}] extended with zeros"
            );
            let err = file.set_len(u64::MAX).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput);

            // set_len needs a writable descriptor.
            let ro = File::open(&path).await.unwrap();
            let err = ro.set_len(0).await.unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "[{mode}] {err}");
            assert_eq!(ro.metadata().await.unwrap().len(), 4096);
        });
    });
}

#[test]
fn open_options_are_checked_like_std() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let dir = TempDir::new("opts");
        let path = dir.join("x");
        ctx.block_on(async {
            let invalid = [
                OpenOptions::new().clone(),
                OpenOptions::new().read(true).truncate(true).clone(),
                OpenOptions::new().read(true).create(true).clone(),
                OpenOptions::new().append(true).truncate(true).clone(),
            ];
            for o in &invalid {
                let err = o.open(&path).await.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::InvalidInput, "[{mode}] {o:?}: {err}");
            }
            assert!(!path.exists(), "nothing created by rejected options");
            let err = File::open(&path).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::NotFound, "[{mode}]");
            assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
            assert_eq!(fs::raw_os_error(&err), Some(libc::ENOENT));
            drop(File::create(&path).await.unwrap());
            let err = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::AlreadyExists, "[{mode}]");
            // A read-only file cannot be written.
            let ro = File::open(&path).await.unwrap();
            let (res, _) = ro.write_at(b"x".to_vec(), 0).await;
            assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::EBADF));
            // create alone keeps the contents; File::create truncates.
            std::fs::write(&path, b"old contents").unwrap();
            drop(
                OpenOptions::new()
                    .write(true)
                    .create(true)
                    .open(&path)
                    .await
                    .unwrap(),
            );
            assert_eq!(std::fs::read(&path).unwrap(), b"old contents", "[{mode}]");
            drop(File::create(&path).await.unwrap());
            assert_eq!(std::fs::metadata(&path).unwrap().len(), 0, "[{mode}]");
            // Custom flags reach the kernel.
            let link = dir.join("link");
            std::os::unix::fs::symlink(&path, &link).unwrap();
            let err = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&link)
                .await
                .unwrap_err();
            assert_eq!(fs::raw_os_error(&err), Some(libc::ELOOP), "[{mode}] {err}");
        });
    });
}

#[test]
fn from_std_file_keeps_position_and_append() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let dir = TempDir::new("std");
        let path = dir.join("s");
        std::fs::write(&path, b"0123456789").unwrap();
        let mut std_file = std::fs::File::open(&path).unwrap();
        std::io::Seek::seek(&mut std_file, SeekFrom::Start(4)).unwrap();
        let appender = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        ctx.block_on(async {
            let file = File::from(std_file);
            assert_eq!(file.position(), 4, "[{mode}]");
            let (res, buf) = file.read(Vec::with_capacity(64)).await;
            assert_eq!(&buf[..res.unwrap()], b"456789");
            let app = File::from(appender);
            let (res, _) = app.write_at(b"AB".to_vec(), 0).await;
            res.unwrap();
        });
        assert_eq!(std::fs::read(&path).unwrap(), b"0123456789AB", "[{mode}]");
    });
}

#[test]
fn directories_give_eisdir() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let dir = TempDir::new("isdir");
        ctx.block_on(async {
            let d = File::open(dir.path()).await.unwrap();
            let (res, _) = d.read_at(Vec::with_capacity(16), 0).await;
            assert_eq!(
                res.unwrap_err().raw_os_error(),
                Some(libc::EISDIR),
                "[{mode}]"
            );
            let (res, _) = d.read(Vec::with_capacity(16)).await;
            assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::EISDIR));
            assert_eq!(d.position(), 0);
            assert!(d.metadata().await.unwrap().is_dir());
            let err = File::create(dir.path()).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::IsADirectory, "[{mode}] {err}");
            assert!(err.to_string().contains("open"), "{err}");
            let err = fs::read(dir.path()).await.unwrap_err();
            assert_eq!(fs::raw_os_error(&err), Some(libc::EISDIR), "[{mode}] {err}");
            assert!(
                err.to_string().contains(&*dir.path().to_string_lossy()),
                "{err}"
            );
        });
    });
}

/// `len` bytes of address space (`MAP_NORESERVE`: only touched pages cost
/// memory), a buffer larger than one SQE can describe.
struct Reserved {
    ptr: *mut u8,
    len: usize,
    init: usize,
}

// SAFETY: the mapping is owned by this value alone.
unsafe impl Send for Reserved {}

impl Reserved {
    fn new(len: usize) -> Reserved {
        // SAFETY: an anonymous private mapping; the result is checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED, "mmap {len}");
        Reserved {
            ptr: ptr.cast(),
            len,
            init: 0,
        }
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

// SAFETY: the mapping is `len` bytes, stays put until drop, and `init`
// counts bytes written (anonymous memory reads as zeros anyway).
unsafe impl IoBuf for Reserved {
    fn stable_ptr(&self) -> *const u8 {
        self.ptr
    }
    fn bytes_init(&self) -> usize {
        self.init
    }
    fn bytes_total(&self) -> usize {
        self.len
    }
}

// SAFETY: as above; the mapping is writable.
unsafe impl IoBufMut for Reserved {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.ptr
    }
    unsafe fn set_init(&mut self, pos: usize) {
        self.init = self.init.max(pos);
    }
}

#[test]
fn huge_buffers_are_capped_and_huge_offsets_rejected() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let dir = TempDir::new("huge");
        let path = dir.join("h");
        std::fs::write(&path, pattern(100, 5)).unwrap();
        ctx.block_on(async {
            let file = rw().open(&path).await.unwrap();
            // Exactly 4 GiB: a length truncated to u32 would be 0.
            let (res, buf) = file.read_at(Reserved::new(1 << 32), 0).await;
            assert_eq!(res.unwrap(), 100, "[{mode}] capped, not wrapped to 0");
            // SAFETY: the kernel wrote 100 bytes at the start of the mapping.
            let got = unsafe { std::slice::from_raw_parts(buf.stable_ptr(), 100) };
            assert_eq!(got, pattern(100, 5), "[{mode}]");
            assert_eq!(buf.bytes_init(), 100);
            drop(buf);

            for off in [i64::MAX as u64 + 1, u64::MAX] {
                let (res, buf) = file.read_at(vec![7u8; 4], off).await;
                assert_eq!(res.unwrap_err().kind(), ErrorKind::InvalidInput, "[{mode}]");
                assert_eq!(buf, [7u8; 4], "buffer handed back untouched");
                let (res, _) = file.write_at(vec![7u8; 4], off).await;
                assert_eq!(res.unwrap_err().kind(), ErrorKind::InvalidInput);
                let (res, _) = file.write(vec![7u8; 4]).await; // cursor still 0: fine
                res.unwrap();
                file.set_position(off);
                let (res, _) = file.write(vec![7u8; 4]).await;
                assert_eq!(res.unwrap_err().kind(), ErrorKind::InvalidInput);
                assert_eq!(file.position(), off, "a failed write leaves the cursor");
                file.set_position(0);
            }
        });
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 100, "[{mode}]");
    });
}

#[test]
fn outside_a_context_every_op_fails_cleanly() {
    let _fd = fd_exclusive();
    let dir = TempDir::new("outside");
    let path = dir.join("o");
    std::fs::write(&path, b"data").unwrap();
    let before = open_fds();
    let mut open = Box::pin(File::open(path.clone()));
    match poll_outside(&mut open) {
        Poll::Ready(Err(e)) => assert!(e.to_string().contains("outside"), "{e}"),
        other => panic!("open outside a context: {:?}", other.map(|r| r.map(|_| ()))),
    }
    let file = File::from(std::fs::File::open(&path).unwrap());
    let mut read = Box::pin(file.read_at(vec![0u8; 4], 0));
    match poll_outside(&mut read) {
        Poll::Ready((Err(e), buf)) => {
            assert!(e.to_string().contains("outside"), "{e}");
            assert_eq!(buf, [0u8; 4]);
        }
        _ => panic!("read outside a context did not fail"),
    }
    drop(read);
    drop(file);
    assert_fds_back_to(before, "ops outside any context");
}

#[test]
fn a_file_outlives_its_context() {
    let _fd = fd_exclusive();
    let dir = TempDir::new("gone");
    let path = dir.join("g");
    std::fs::write(&path, b"survivor").unwrap();
    let before = open_fds();
    for mode in common::modes() {
        let file = {
            let ctx = mode.build();
            ctx.block_on(async {
                let file = File::open(&path).await.unwrap();
                let (res, _) = file.read_at(Vec::with_capacity(8), 0).await;
                assert_eq!(res.unwrap(), 8);
                file
            })
        }; // the context is gone
        let mut read = Box::pin(file.read_at(Vec::with_capacity(8), 0));
        assert!(
            matches!(poll_outside(&mut read), Poll::Ready((Err(_), _))),
            "[{mode}] read with no context"
        );
        drop(read);
        // Another context can still use it.
        let ctx = mode.build();
        let file = ctx.block_on(async move {
            let (res, buf) = file.read_at(Vec::with_capacity(8), 0).await;
            assert_eq!(&buf[..res.unwrap()], b"survivor", "[{mode}]");
            file.metadata().await.unwrap();
            file
        });
        drop(ctx);
        drop(file);
    }
    assert_fds_back_to(before, "files that outlived their contexts");
}

/// Regression: the `block_on` future's own op must reach the kernel while
/// another thread is the leader, asleep in `io_uring_enter` (the SQE was
/// queued but flushed by no one, and both threads slept forever).
#[test]
fn block_on_file_op_while_another_thread_leads_in_the_kernel() {
    let _fd = fd_shared();
    let dir = TempDir::new("leader");
    let path = dir.join("l");
    std::fs::write(&path, b"abc").unwrap();
    common::watchdog(Duration::from_secs(10), move || {
        let ctx = Mode::Multi.build();
        let guard = ctx.work_guard();
        let runners = common::spawn_runners(&ctx, 1);
        for i in 0..20 {
            // Let the runner become the leader and sleep in the kernel.
            std::thread::sleep(Duration::from_millis(2));
            let len = ctx.block_on(async {
                let file = File::open(&path).await.unwrap();
                file.metadata().await.unwrap().len()
            });
            assert_eq!(len, 3, "#{i}");
        }
        drop(guard);
        ctx.stop();
        for r in runners {
            r.join().unwrap();
        }
    });
}
