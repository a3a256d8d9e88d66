//! `ringio::fs` path functions: `read`/`write`/`read_to_string` round
//! trips (empty, MiB-sized, files that report size 0 like `/proc`),
//! `create_dir`/`create_dir_all` (nested, idempotent, concurrent, blocked by
//! a file), `rename`, `remove_file`/`remove_dir`, `metadata` and
//! `symlink_metadata`, and every error path: missing files, wrong kinds,
//! non-empty directories, interior NUL bytes — each error naming its path
//! and keeping its OS code. Both modes.

mod common;

use std::io::{self, ErrorKind};
use std::path::Path;

use common::{each_mode, fd_shared, TempDir};
use ringio::fs;

/// Asserts `err` has `kind`, the OS code `errno`, and names `path`.
#[track_caller]
fn assert_path_error(err: &io::Error, kind: ErrorKind, errno: i32, path: &Path) {
    assert_eq!(err.kind(), kind, "{err}");
    assert_eq!(fs::raw_os_error(err), Some(errno), "{err}");
    assert!(
        err.to_string().contains(&*path.to_string_lossy()),
        "error does not name {}: {err}",
        path.display()
    );
    let detail = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<fs::PathError>())
        .unwrap_or_else(|| panic!("no PathError in {err:?}"));
    assert_eq!(detail.io_error().raw_os_error(), Some(errno));
}

#[test]
fn read_and_write_whole_files() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let dir = TempDir::new("rw");
        ctx.block_on(async {
            let small = dir.join("small");
            fs::write(&small, "hello").await.unwrap();
            assert_eq!(fs::read(&small).await.unwrap(), b"hello", "[{mode}]");
            // write truncates what was there.
            fs::write(&small, b"hi".to_vec()).await.unwrap();
            assert_eq!(fs::read_to_string(&small).await.unwrap(), "hi", "[{mode}]");

            let empty = dir.join("empty");
            fs::write(&empty, Vec::new()).await.unwrap();
            assert!(fs::read(&empty).await.unwrap().is_empty(), "[{mode}]");

            let big = dir.join("big");
            let data: Vec<u8> = (0..(2 << 20) + 123).map(|i| (i % 251) as u8).collect();
            fs::write(&big, data.clone()).await.unwrap();
            let back = fs::read(&big).await.unwrap();
            assert!(back == data, "[{mode}] 2 MiB round trip");
            assert_eq!(
                std::fs::read(&big).unwrap(),
                data,
                "[{mode}] as std sees it"
            );
            // Exactly a multiple of the minimum read size: EOF is still found.
            let exact = vec![9u8; 16 * 1024];
            fs::write(&big, exact.clone()).await.unwrap();
            assert_eq!(fs::read(&big).await.unwrap(), exact);

            // A file that says its size is 0 but has contents.
            let status = fs::read_to_string("/proc/self/status").await.unwrap();
            assert!(status.contains("Pid:"), "[{mode}] {status:.80}");

            std::fs::write(&small, [0xff, 0xfe]).unwrap();
            let err = fs::read_to_string(&small).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidData, "[{mode}] {err}");
            assert!(err.to_string().contains("small"), "{err}");

            let missing = dir.join("missing");
            let err = fs::read(&missing).await.unwrap_err();
            assert_path_error(&err, ErrorKind::NotFound, libc::ENOENT, &missing);
            let err = fs::write(dir.join("no/such/dir/f"), "x").await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::NotFound, "[{mode}] {err}");
        });
    });
}

#[test]
fn create_dir_all_nested_idempotent_and_blocked_by_a_file() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let dir = TempDir::new("mkdir");
        ctx.block_on(async {
            let deep = dir.join("a/b/c/d");
            fs::create_dir_all(&deep).await.unwrap();
            assert!(deep.is_dir(), "[{mode}]");
            fs::create_dir_all(&deep).await.unwrap();
            fs::create_dir_all(dir.join("a/b")).await.unwrap();
            fs::create_dir_all(dir.join("a/b/c/d/")).await.unwrap();
            fs::create_dir_all("/").await.unwrap();
            fs::create_dir_all("").await.unwrap();

            let file = dir.join("a/file");
            std::fs::write(&file, b"").unwrap();
            let err = fs::create_dir_all(file.join("sub")).await.unwrap_err();
            assert_path_error(&err, ErrorKind::NotADirectory, libc::ENOTDIR, &file);
            let err = fs::create_dir_all(&file).await.unwrap_err();
            assert_path_error(&err, ErrorKind::AlreadyExists, libc::EEXIST, &file);

            let err = fs::create_dir(dir.join("a")).await.unwrap_err();
            assert_path_error(&err, ErrorKind::AlreadyExists, libc::EEXIST, &dir.join("a"));
            let orphan = dir.join("x/y");
            let err = fs::create_dir(&orphan).await.unwrap_err();
            assert_path_error(&err, ErrorKind::NotFound, libc::ENOENT, &orphan);
            fs::create_dir(dir.join("x")).await.unwrap();
            fs::create_dir(&orphan).await.unwrap();
            assert!(orphan.is_dir(), "[{mode}]");
        });
    });
}

#[test]
fn concurrent_create_dir_all_of_one_tree() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let dir = TempDir::new("mkdir-race");
        let root = dir.path().to_path_buf();
        ctx.block_on(async move {
            let tasks: Vec<_> = (0..8)
                .map(|i| {
                    let path = root.join(format!("p/q/r/s{}", i % 2));
                    ringio::spawn(async move { fs::create_dir_all(&path).await })
                })
                .collect();
            for t in tasks {
                t.await.unwrap().unwrap_or_else(|e| panic!("[{mode}] {e}"));
            }
        });
        assert!(dir.join("p/q/r/s0").is_dir() && dir.join("p/q/r/s1").is_dir());
    });
}

#[test]
fn rename_and_remove() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let dir = TempDir::new("rename");
        ctx.block_on(async {
            let a = dir.join("a");
            let b = dir.join("b");
            fs::write(&a, "A").await.unwrap();
            fs::rename(&a, &b).await.unwrap();
            assert!(!a.exists() && b.exists(), "[{mode}]");
            // Replaces an existing destination.
            fs::write(&a, "new").await.unwrap();
            fs::rename(&a, &b).await.unwrap();
            assert_eq!(fs::read(&b).await.unwrap(), b"new", "[{mode}]");
            // Directories too.
            fs::create_dir(dir.join("d1")).await.unwrap();
            fs::rename(dir.join("d1"), dir.join("d2")).await.unwrap();
            assert!(dir.join("d2").is_dir());

            let err = fs::rename(&a, dir.join("c")).await.unwrap_err();
            assert_path_error(&err, ErrorKind::NotFound, libc::ENOENT, &a);
            assert!(
                err.to_string().contains(&*dir.join("c").to_string_lossy()),
                "{err}"
            );
            let detail = err
                .get_ref()
                .unwrap()
                .downcast_ref::<fs::PathError>()
                .unwrap();
            assert_eq!(detail.operation(), "rename");
            assert_eq!((detail.path(), detail.to()), (&*a, Some(&*dir.join("c"))));

            // remove_file / remove_dir, right and wrong.
            let err = fs::remove_file(dir.join("d2")).await.unwrap_err();
            assert_path_error(&err, ErrorKind::IsADirectory, libc::EISDIR, &dir.join("d2"));
            let err = fs::remove_dir(&b).await.unwrap_err();
            assert_path_error(&err, ErrorKind::NotADirectory, libc::ENOTDIR, &b);
            std::fs::write(dir.join("d2/inner"), b"").unwrap();
            let err = fs::remove_dir(dir.join("d2")).await.unwrap_err();
            assert_path_error(
                &err,
                ErrorKind::DirectoryNotEmpty,
                libc::ENOTEMPTY,
                &dir.join("d2"),
            );
            fs::remove_file(dir.join("d2/inner")).await.unwrap();
            fs::remove_dir(dir.join("d2")).await.unwrap();
            fs::remove_file(&b).await.unwrap();
            assert!(!b.exists() && !dir.join("d2").exists(), "[{mode}]");
            let err = fs::remove_file(&b).await.unwrap_err();
            assert_path_error(&err, ErrorKind::NotFound, libc::ENOENT, &b);
            let err = fs::remove_dir(&b).await.unwrap_err();
            assert_path_error(&err, ErrorKind::NotFound, libc::ENOENT, &b);
        });
    });
}

#[test]
fn metadata_of_paths_and_symlinks() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let dir = TempDir::new("meta");
        let file = dir.join("f");
        let link = dir.join("link");
        std::fs::write(&file, [1u8; 1234]).unwrap();
        std::os::unix::fs::symlink(&file, &link).unwrap();
        ctx.block_on(async {
            let m = fs::metadata(&file).await.unwrap();
            assert!(m.is_file() && m.len() == 1234, "[{mode}] {m:?}");
            let d = fs::metadata(dir.path()).await.unwrap();
            assert!(d.is_dir() && !d.is_file(), "[{mode}] {d:?}");
            let via = fs::metadata(&link).await.unwrap();
            assert!(
                via.is_file() && via.ino() == m.ino(),
                "[{mode}] follows the link"
            );
            let l = fs::symlink_metadata(&link).await.unwrap();
            assert!(l.is_symlink() && l.ino() != m.ino(), "[{mode}] {l:?}");
            // Relative paths start at the current directory.
            let here = fs::metadata(".").await.unwrap();
            assert!(here.is_dir());
            let err = fs::metadata(dir.join("nope")).await.unwrap_err();
            assert_path_error(&err, ErrorKind::NotFound, libc::ENOENT, &dir.join("nope"));
            let err = fs::metadata(file.join("under-a-file")).await.unwrap_err();
            assert_eq!(
                fs::raw_os_error(&err),
                Some(libc::ENOTDIR),
                "[{mode}] {err}"
            );
            std::fs::remove_file(&file).unwrap();
            let err = fs::metadata(&link).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::NotFound, "[{mode}] dangling link");
            assert!(fs::symlink_metadata(&link).await.unwrap().is_symlink());
        });
    });
}

#[test]
fn interior_nul_bytes_are_invalid_input_everywhere() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let dir = TempDir::new("nul");
        let ok = dir.join("ok");
        std::fs::write(&ok, b"x").unwrap();
        let bad = dir.join("bad\0name");
        ctx.block_on(async {
            let results: Vec<(&str, io::Result<()>)> = vec![
                ("open", fs::File::open(&bad).await.map(drop)),
                ("create", fs::File::create(&bad).await.map(drop)),
                ("read", fs::read(&bad).await.map(drop)),
                ("write", fs::write(&bad, "x").await),
                ("metadata", fs::metadata(&bad).await.map(drop)),
                (
                    "symlink_metadata",
                    fs::symlink_metadata(&bad).await.map(drop),
                ),
                ("remove_file", fs::remove_file(&bad).await),
                ("remove_dir", fs::remove_dir(&bad).await),
                ("rename from", fs::rename(&bad, &ok).await),
                ("rename to", fs::rename(&ok, &bad).await),
                ("create_dir", fs::create_dir(&bad).await),
                ("create_dir_all", fs::create_dir_all(bad.join("sub")).await),
            ];
            for (what, res) in results {
                let err = res.expect_err(what);
                assert_eq!(
                    err.kind(),
                    ErrorKind::InvalidInput,
                    "[{mode}] {what}: {err}"
                );
                assert!(err.to_string().contains("NUL"), "[{mode}] {what}: {err}");
            }
            assert!(ok.exists(), "[{mode}] nothing happened to the good path");
        });
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "[{mode}]"
        );
    });
}

#[test]
fn read_of_a_file_too_big_for_memory_is_an_error_not_an_abort() {
    let _fd = fd_shared();
    // With `vm.overcommit_memory = 1` the kernel grants any allocation and
    // `read` would really try to read 8 TiB of zeros.
    let mode = std::fs::read_to_string("/proc/sys/vm/overcommit_memory").unwrap_or_default();
    if mode.trim() == "1" {
        eprintln!("skipped: vm.overcommit_memory = 1 grants any allocation");
        return;
    }
    each_mode(|mode, ctx| {
        let dir = TempDir::new("sparse");
        let path = dir.join("sparse");
        let f = std::fs::File::create(&path).unwrap();
        // Sparse: no blocks are allocated.
        if let Err(e) = f.set_len(1 << 43) {
            panic!(
                "cannot make an 8 TiB sparse file in {}: {e}",
                dir.path().display()
            );
        }
        ctx.block_on(async {
            let err = fs::read(&path).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::OutOfMemory, "[{mode}] {err}");
            assert!(err.to_string().contains("sparse"), "{err}");
            // The file itself is fine to read at an offset.
            let file = fs::File::open(&path).await.unwrap();
            let (res, buf) = file.read_at(vec![1u8; 16], (1 << 43) - 8).await;
            assert_eq!(res.unwrap(), 8, "[{mode}]");
            assert_eq!(buf[..8], [0u8; 8]);
        });
    });
}
