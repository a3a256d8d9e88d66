//! Cancelled file operations (futures dropped after their first poll, or
//! by a zero `timeout`): no descriptor leaks (an OPENAT cancelled too late,
//! or completed and dropped before its re-poll, has its fd closed), no
//! corruption (a cancelled write leaves old or new bytes, never others;
//! later writes are not overtaken), the cursor left alone, path operations
//! all-or-nothing, and files dropped with their ops still in flight. Both
//! modes.
//!
//! Tests that count descriptors hold the binary's fd lock exclusively.

mod common;

use std::future::Future;
use std::task::Poll;
use std::time::{Duration, Instant};

use common::{
    assert_fds_back_to, each_mode, fd_exclusive, fd_shared, open_fds, poll_once, TempDir,
};
use ringio::fs::{self, File, OpenOptions};
use ringio::time::{sleep, timeout};
use ringio::IoContext;

/// Polls `f` once (submitting its SQE) and drops it unless it finished.
/// Every other call goes through a zero `timeout` instead, which polls the
/// future once and drops it on expiry. Returns whether it finished.
async fn start_then_drop<F: Future>(i: usize, f: F) -> bool {
    if i % 2 == 0 {
        let mut f = Box::pin(f);
        matches!(poll_once(&mut f).await, Poll::Ready(_))
    } else {
        timeout(Duration::ZERO, f).await.is_ok()
    }
}

/// Waits (on the ring) until no operation of this context is in flight:
/// every cancelled op has had its last CQE.
async fn settle() {
    let ctx = IoContext::current();
    let start = Instant::now();
    while ctx.metrics().ops_in_flight > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "cancelled ops never completed: {:?}",
            ctx.metrics()
        );
        sleep(Duration::from_millis(1)).await;
    }
}

#[test]
fn open_cancelled_in_flight_never_leaks_a_descriptor() {
    let _fd = fd_exclusive();
    let before = open_fds();
    each_mode(|mode, ctx| {
        let dir = TempDir::new("open");
        let path = dir.join("f");
        std::fs::write(&path, b"x").unwrap();
        let m0 = ctx.metrics();
        let finished = ctx.block_on(async move {
            let mut finished = 0;
            for i in 0..200 {
                finished += usize::from(start_then_drop(i, File::open(&path)).await);
            }
            settle().await;
            finished
        });
        let m = ctx.metrics();
        assert!(
            m.ops_cancelled - m0.ops_cancelled >= 150,
            "[{mode}] the opens were really cancelled in flight ({finished} finished): {m:?}"
        );
    });
    assert_fds_back_to(before, "opens cancelled in flight");
}

#[test]
fn open_completed_then_dropped_before_repoll_closes_its_fd() {
    let _fd = fd_exclusive();
    let before = open_fds();
    each_mode(|mode, ctx| {
        let dir = TempDir::new("open-done");
        let path = dir.join("f");
        std::fs::write(&path, b"x").unwrap();
        ctx.block_on(async move {
            let mut opens: Vec<_> = (0..20)
                .map(|_| Box::pin(File::open(path.clone())))
                .collect();
            for o in &mut opens {
                assert!(poll_once(o).await.is_pending(), "[{mode}]");
            }
            // The ring runs meanwhile: the CQEs arrive and wait in their
            // slots, never taken by the futures.
            sleep(Duration::from_millis(20)).await;
            settle().await;
            drop(opens);
        });
    });
    assert_fds_back_to(before, "opens completed but never re-polled");
}

#[test]
fn cancelled_writes_leave_old_or_new_bytes_and_are_not_overtaken() {
    let _fd = fd_shared();
    const LEN: usize = 1 << 20;
    const AT: u64 = 4096;
    each_mode(|mode, ctx| {
        let dir = TempDir::new("write");
        let path = dir.join("w");
        std::fs::write(&path, vec![0u8; LEN + 8192]).unwrap();
        ctx.block_on(async {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .await
                .unwrap();
            for i in 1..=30u8 {
                start_then_drop(usize::from(i), file.write_at(vec![i; LEN], AT)).await;
            }
            settle().await;
            let (res, got) = file.read_exact_at(Vec::with_capacity(LEN + 8192), 0).await;
            res.unwrap();
            assert!(
                got[..AT as usize].iter().all(|&b| b == 0),
                "[{mode}] before the range"
            );
            assert!(
                got[AT as usize + LEN..].iter().all(|&b| b == 0),
                "[{mode}] after it"
            );
            let stray = got[AT as usize..AT as usize + LEN]
                .iter()
                .find(|&&b| b > 30);
            assert_eq!(stray, None, "[{mode}] a byte no write wrote");
            // A write after the cancelled ones is final.
            let (res, _) = file.write_all_at(vec![0xEE; LEN], AT).await;
            res.unwrap();
            // A cancelled write still in the kernel would land now (settle()
            // says there is none).
            sleep(Duration::from_millis(5)).await;
            let (res, got) = file.read_exact_at(Vec::with_capacity(LEN), AT).await;
            res.unwrap();
            assert!(
                got.iter().all(|&b| b == 0xEE),
                "[{mode}] overtaken by a cancelled write"
            );
            assert_eq!(file.metadata().await.unwrap().len(), (LEN + 8192) as u64);
        });
    });
}

#[test]
fn cancelled_stream_ops_leave_the_cursor() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let dir = TempDir::new("cursor");
        let path = dir.join("c");
        std::fs::write(&path, b"abcdef").unwrap();
        ctx.block_on(async {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .await
                .unwrap();
            for i in 0..10 {
                let done = start_then_drop(i, file.read(Vec::with_capacity(64))).await;
                assert!(!done, "[{mode}] a ring read finished within its first poll");
                assert_eq!(
                    file.position(),
                    0,
                    "[{mode}] cancelled read moved the cursor"
                );
                let done = start_then_drop(i, file.write(b"ABCDEF".to_vec())).await;
                assert!(!done);
                assert_eq!(
                    file.position(),
                    0,
                    "[{mode}] cancelled write moved the cursor"
                );
            }
            settle().await;
            let (res, buf) = file.read(Vec::with_capacity(64)).await;
            let text = buf[..res.unwrap()].to_ascii_lowercase();
            assert_eq!(text, b"abcdef", "[{mode}] old or new bytes, from 0");
            assert_eq!(file.position(), 6);
        });
    });
}

#[test]
fn cancelled_path_ops_are_all_or_nothing() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let dir = TempDir::new("paths");
        ctx.block_on(async {
            for i in 0..20 {
                let d = dir.join(&format!("d{i}"));
                start_then_drop(i, fs::create_dir(&d)).await;
                let deep = dir.join(&format!("t{i}/a/b/c"));
                start_then_drop(i, fs::create_dir_all(&deep)).await;
                let (from, to) = (dir.join(&format!("from{i}")), dir.join(&format!("to{i}")));
                std::fs::write(&from, b"payload").unwrap();
                start_then_drop(i, fs::rename(&from, &to)).await;
                let gone = dir.join(&format!("gone{i}"));
                std::fs::write(&gone, b"").unwrap();
                start_then_drop(i, fs::remove_file(&gone)).await;
                start_then_drop(i, fs::metadata(&from)).await;
                start_then_drop(i, fs::read(&to)).await;
                start_then_drop(i, fs::write(dir.join(&format!("w{i}")), "data")).await;
                settle().await;

                assert!(!d.exists() || d.is_dir(), "[{mode}] #{i}");
                let mut p = deep.clone();
                while p != dir.path() {
                    assert!(!p.exists() || p.is_dir(), "[{mode}] #{i} {}", p.display());
                    p.pop();
                }
                // A cancelled create_dir_all can simply be run again.
                fs::create_dir_all(&deep).await.unwrap();
                assert!(
                    from.exists() != to.exists(),
                    "[{mode}] #{i}: rename half done: {} {}",
                    from.exists(),
                    to.exists()
                );
                let moved = if to.exists() { &to } else { &from };
                assert_eq!(std::fs::read(moved).unwrap(), b"payload", "[{mode}] #{i}");
                let w = dir.join(&format!("w{i}"));
                if let Ok(data) = std::fs::read(&w) {
                    assert!(b"data".starts_with(&data), "[{mode}] #{i}: {data:?}");
                }
            }
        });
    });
}

#[test]
fn cancelled_file_ops_then_set_len_sync_and_metadata_still_agree() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let dir = TempDir::new("trunc");
        let path = dir.join("t");
        std::fs::write(&path, vec![1u8; 10_000]).unwrap();
        ctx.block_on(async {
            let file = OpenOptions::new().write(true).open(&path).await.unwrap();
            for i in 0..20 {
                start_then_drop(i, file.set_len(5_000)).await;
                start_then_drop(i, file.sync_all()).await;
                start_then_drop(i, file.sync_data()).await;
                start_then_drop(i, file.metadata()).await;
            }
            settle().await;
            let len = file.metadata().await.unwrap().len();
            assert!(len == 10_000 || len == 5_000, "[{mode}] length {len}");
            file.set_len(7).await.unwrap();
            file.sync_all().await.unwrap();
            assert_eq!(file.metadata().await.unwrap().len(), 7, "[{mode}]");
        });
        assert_eq!(std::fs::read(&path).unwrap(), [1u8; 7], "[{mode}]");
    });
}

#[test]
fn files_dropped_with_ops_in_flight_leak_nothing() {
    let _fd = fd_exclusive();
    let before = open_fds();
    each_mode(|mode, ctx| {
        let dir = TempDir::new("drop-file");
        let path = dir.join("big");
        std::fs::write(&path, vec![3u8; 1 << 20]).unwrap();
        ctx.block_on(async {
            for i in 0..30 {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)
                    .await
                    .unwrap();
                let mut read = Box::pin(file.read_at(Vec::with_capacity(1 << 20), 0));
                let mut write = Box::pin(file.write_at(vec![3u8; 4096], (i * 4096) as u64));
                let mut stat = Box::pin(file.metadata());
                assert!(poll_once(&mut read).await.is_pending(), "[{mode}]");
                assert!(poll_once(&mut write).await.is_pending(), "[{mode}]");
                assert!(poll_once(&mut stat).await.is_pending(), "[{mode}]");
                drop((read, write, stat));
                drop(file); // cancel by fd, flushed, then close
            }
            settle().await;
        });
        let intact = std::fs::read(&path).unwrap() == vec![3u8; 1 << 20];
        assert!(intact, "[{mode}] file changed");
    });
    assert_fds_back_to(before, "files dropped with ops in flight");
}
