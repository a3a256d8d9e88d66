//! Ring operations: `ringio::io::nop`, pipe reads and writes (round trips,
//! large transfers, EOF, broken pipe, more ops than SQ/CQ entries),
//! cancellation on drop (before submission, in flight via `timeout`, after
//! the CQE arrived but before the re-poll, from a foreign thread),
//! operations outside any context, a single-threaded context moving between
//! threads, a multi-threaded read whose submitting thread exits, and
//! `Builder` settings (`entries` range, `sqpoll`). Both modes.
//!
//! Every test holds the binary's fd lock (shared, or exclusive for the
//! tests that count descriptors).

mod common;

use std::future::Future;
use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::thread;
use std::time::{Duration, Instant};

use common::{
    assert_fds_back_to, each_mode, fd_exclusive, fd_shared, open_fds, panic_text, poll_once,
    poll_outside, quiet_panics, spawn_runners, wait_until, watchdog, Mode,
};
use ringio::io::{PipeReader, PipeWriter};
use ringio::time::timeout;
use ringio::IoContext;

const PROMPT: Duration = Duration::from_secs(2);

/// Reads once and returns the bytes.
async fn read_some(r: &PipeReader, cap: usize) -> Vec<u8> {
    let (res, buf) = r.read(Vec::with_capacity(cap)).await;
    let n = res.expect("read");
    buf[..n].to_vec()
}

async fn write_all(w: &PipeWriter, data: &[u8]) {
    let (res, _) = w.write_all(data.to_vec()).await;
    res.expect("write_all");
}

/// Plain non-blocking write on the pipe's fd, outside the ring.
fn raw_write(w: &PipeWriter, data: &[u8]) -> isize {
    // SAFETY: `data` is valid for its length; the fd is open.
    unsafe { libc::write(w.as_raw_fd(), data.as_ptr().cast(), data.len()) }
}

/// Plain non-blocking read on the pipe's fd; `None` on EAGAIN.
fn raw_read(r: &PipeReader, max: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; max];
    // SAFETY: `buf` is valid for `max` bytes; the fd is open.
    let n = unsafe { libc::read(r.as_raw_fd(), buf.as_mut_ptr().cast(), max) };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        assert_eq!(e.kind(), ErrorKind::WouldBlock, "raw read: {e}");
        return None;
    }
    buf.truncate(n as usize);
    Some(buf)
}

fn in_flight(ctx: &IoContext) -> u64 {
    ctx.metrics().ops_in_flight
}

#[test]
fn nop_round_trips() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let m0 = ctx.metrics();
        ctx.block_on(async {
            for _ in 0..100 {
                ringio::io::nop().await.unwrap();
            }
        });
        let m1 = ctx.metrics();
        assert!(
            m1.sqes_submitted >= m0.sqes_submitted + 100,
            "[{mode:?}] {m1:?}"
        );
        assert!(m1.cqes_reaped >= m0.cqes_reaped + 100, "[{mode:?}] {m1:?}");
        assert_eq!(m1.ops_in_flight, 0, "[{mode:?}]");
        // Concurrently from many tasks.
        let done = Arc::new(AtomicUsize::new(0));
        for _ in 0..500 {
            let d = done.clone();
            drop(ctx.spawn(async move {
                for _ in 0..4 {
                    ringio::io::nop().await.unwrap();
                }
                d.fetch_add(1, Ordering::SeqCst);
            }));
        }
        ctx.restart();
        ctx.run();
        assert_eq!(done.load(Ordering::SeqCst), 500, "[{mode:?}]");
        assert_eq!(in_flight(&ctx), 0, "[{mode:?}]");
    });
}

#[test]
fn more_ops_in_one_pass_than_sq_and_cq_entries() {
    let _fd = fd_shared();
    for mode in Mode::ALL {
        watchdog(Duration::from_secs(20), move || {
            // SQ of 4 (CQ of 16) and 2000 nops submitted in one pass; then
            // the default ring (SQ 256, CQ 1024) with 3000.
            for (entries, tasks) in [(4u32, 2000usize), (256, 3000)] {
                let ctx = IoContext::builder()
                    .single_threaded(mode == Mode::Single)
                    .entries(entries)
                    .build()
                    .unwrap();
                let ok = Arc::new(AtomicUsize::new(0));
                let errs = Arc::new(Mutex::new(Vec::new()));
                for _ in 0..tasks {
                    let (ok, errs) = (ok.clone(), errs.clone());
                    drop(ctx.spawn(async move {
                        match ringio::io::nop().await {
                            Ok(()) => {
                                ok.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(e) => errs.lock().unwrap().push(e.to_string()),
                        }
                    }));
                }
                let t = Instant::now();
                ctx.run();
                let errs = errs.lock().unwrap();
                assert!(
                    errs.is_empty(),
                    "[{mode:?}] entries({entries}): {} nops failed, e.g. {:?}",
                    errs.len(),
                    errs.first()
                );
                assert_eq!(
                    ok.load(Ordering::SeqCst),
                    tasks,
                    "[{mode:?}] entries({entries})"
                );
                assert_eq!(in_flight(&ctx), 0);
                println!(
                    "[{mode:?}] entries({entries}): {tasks} nops in {:?}",
                    t.elapsed()
                );
            }
        });
    }
}

#[test]
fn pipe_round_trips() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let (r, w) = ringio::io::pipe().unwrap();
            for i in 0..50 {
                let msg = format!("message {i}");
                write_all(&w, msg.as_bytes()).await;
                assert_eq!(read_some(&r, 64).await, msg.as_bytes(), "[{mode:?}]");
            }
            // A zero-filled buffer: data lands at its start.
            let (res, n) = w.write(b"xyz".to_vec()).await;
            assert_eq!(res.unwrap(), 3);
            assert_eq!(n, b"xyz");
            let (res, buf) = r.read(vec![7u8; 10]).await;
            let n = res.unwrap();
            assert_eq!(n, 3);
            assert_eq!(&buf[..n], b"xyz");
            assert_eq!(buf.len(), 10, "[{mode:?}] length kept at max(len, n)");
            // A static buffer for the write.
            let (res, _) = w.write(&b"static"[..]).await;
            assert_eq!(res.unwrap(), 6);
            assert_eq!(read_some(&r, 6).await, b"static");
        });
    });
}

#[test]
fn read_waits_for_data_written_later_by_another_task() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let (r, w) = ringio::io::pipe().unwrap();
        let got = ctx.block_on(async move {
            let reader = ringio::spawn(async move { read_some(&r, 32).await });
            ringio::time::sleep(Duration::from_millis(20)).await;
            write_all(&w, b"late").await;
            reader.await.unwrap()
        });
        assert_eq!(got, b"late", "[{mode:?}]");
    });
}

#[test]
fn large_transfer_with_concurrent_reader_and_writer() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        const LEN: usize = 1 << 20; // 16 times a pipe's buffer
        let data: Vec<u8> = (0..LEN).map(|i| (i * 7 % 251) as u8).collect();
        let expect = data.clone();
        let (r, w) = ringio::io::pipe().unwrap();
        let guard = ctx.work_guard();
        let runners: Vec<_> = spawn_runners(&ctx, 2);
        let writer = ctx.spawn(async move {
            let (res, buf) = w.write_all(data).await;
            res.unwrap();
            buf.len()
        });
        let reader = ctx.spawn(async move {
            let mut all = Vec::with_capacity(LEN);
            let mut buf = vec![0u8; 8192];
            loop {
                let (res, b) = r.read(buf).await;
                buf = b;
                match res.unwrap() {
                    0 => break, // the writer is gone
                    n => all.extend_from_slice(&buf[..n]),
                }
            }
            all
        });
        let other = mode.build();
        let (written, got) = other.block_on(async move { (writer.await, reader.await) });
        assert_eq!(written.unwrap(), LEN, "[{mode:?}]");
        let got = got.unwrap();
        assert_eq!(got.len(), LEN, "[{mode:?}]");
        assert!(got == expect, "[{mode:?}] corrupted transfer");
        drop(guard);
        for r in runners {
            r.join().unwrap();
        }
    });
}

#[test]
fn read_returns_zero_once_the_writer_is_gone() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let (r, w) = ringio::io::pipe().unwrap();
            write_all(&w, b"last").await;
            drop(w);
            assert_eq!(read_some(&r, 16).await, b"last", "[{mode:?}]");
            let (res, _) = r.read(vec![0u8; 16]).await;
            assert_eq!(res.unwrap(), 0, "[{mode:?}] EOF");
            // A read pending when the writer goes away ends with EOF too.
            let (r, w) = ringio::io::pipe().unwrap();
            let reader = ringio::spawn(async move { r.read(vec![0u8; 16]).await.0.unwrap() });
            ringio::time::sleep(Duration::from_millis(10)).await;
            drop(w);
            assert_eq!(reader.await.unwrap(), 0, "[{mode:?}] pending read at EOF");
        });
    });
}

#[test]
fn write_to_a_pipe_without_reader_is_broken_pipe() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let (r, w) = ringio::io::pipe().unwrap();
            drop(r);
            let (res, buf) = w.write(b"nobody".to_vec()).await;
            let e = res.expect_err("write without a reader");
            assert_eq!(e.kind(), ErrorKind::BrokenPipe, "[{mode:?}] {e}");
            assert_eq!(buf, b"nobody", "[{mode:?}] buffer given back");
            let (res, _) = w.write_all(b"again".to_vec()).await;
            assert_eq!(res.unwrap_err().kind(), ErrorKind::BrokenPipe);
        });
    });
}

#[test]
fn read_cancelled_by_timeout_then_pipe_reused() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let (r, w) = ringio::io::pipe().unwrap();
        let before = ctx.metrics();
        ctx.block_on(async {
            for i in 0..20 {
                let t = Instant::now();
                let res = timeout(Duration::from_millis(5), r.read(vec![0u8; 64])).await;
                assert!(
                    res.is_err(),
                    "[{mode:?}] #{i}: read of an empty pipe completed"
                );
                assert!(t.elapsed() >= Duration::from_millis(5));
                // Data written after the cancel goes to the next read, not
                // to the dropped one.
                let msg = format!("after cancel {i}");
                write_all(&w, msg.as_bytes()).await;
                let got = timeout(PROMPT, read_some(&r, 64))
                    .await
                    .unwrap_or_else(|_| panic!("[{mode:?}] #{i}: data eaten by a cancelled read"));
                assert_eq!(got, msg.as_bytes(), "[{mode:?}] #{i}");
            }
        });
        let m = ctx.metrics();
        assert!(
            m.ops_cancelled >= before.ops_cancelled + 20,
            "[{mode:?}] {m:?}"
        );
        assert!(
            wait_until(PROMPT, || in_flight(&ctx) == 0),
            "[{mode:?}] {:?}",
            ctx.metrics()
        );
    });
}

#[test]
fn read_dropped_in_the_pass_that_submitted_it_then_pipe_reused() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let (r, w) = ringio::io::pipe().unwrap();
        ctx.block_on(async {
            for i in 0..20 {
                {
                    // SQE pushed, dropped before the pass ends: the cancel
                    // goes to the kernel in the same batch.
                    let mut read = Box::pin(r.read(vec![0u8; 32]));
                    assert!(poll_once(&mut read).await.is_pending(), "[{mode:?}]");
                }
                let msg = format!("fresh {i}");
                write_all(&w, msg.as_bytes()).await;
                let got = timeout(PROMPT, read_some(&r, 32))
                    .await
                    .unwrap_or_else(|_| panic!("[{mode:?}] #{i}: data eaten by a dropped read"));
                assert_eq!(got, msg.as_bytes(), "[{mode:?}] #{i}");
            }
        });
        assert!(wait_until(PROMPT, || in_flight(&ctx) == 0), "[{mode:?}]");
    });
}

#[test]
fn read_completed_then_dropped_before_repoll() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let (r, w) = ringio::io::pipe().unwrap();
        let c = ctx.clone();
        ctx.block_on(async {
            for i in 0..10 {
                let mut read = Box::pin(r.read(vec![0u8; 32]));
                assert!(poll_once(&mut read).await.is_pending());
                write_all(&w, format!("consumed {i}").as_bytes()).await;
                // Drive the ring until the read's CQE has been reaped,
                // without polling the read again.
                let start = Instant::now();
                while in_flight(&c) > 0 {
                    ringio::io::nop().await.unwrap();
                    assert!(
                        start.elapsed() < PROMPT,
                        "[{mode:?}] the read never completed: {:?}",
                        c.metrics()
                    );
                }
                drop(read); // completed in the kernel, never taken
                            // The pipe still works, and the next read gets only what
                            // is written now (the first message went with the dropped
                            // read's buffer).
                let msg = format!("next {i}");
                write_all(&w, msg.as_bytes()).await;
                let got = timeout(PROMPT, read_some(&r, 64)).await.expect("read hung");
                assert_eq!(got, msg.as_bytes(), "[{mode:?}] #{i}");
            }
        });
        assert_eq!(in_flight(&ctx), 0, "[{mode:?}]");
    });
}

#[test]
fn read_cancelled_by_timeout_as_block_on_returns_does_not_eat_later_data() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let (r, w) = ringio::io::pipe().unwrap();
        for i in 0..5 {
            // The read is dropped in the last poll of block_on: its cancel
            // must reach the kernel although nothing runs the context
            // afterwards.
            ctx.block_on(async {
                let res = timeout(Duration::from_millis(5), r.read(vec![0u8; 64])).await;
                assert!(res.is_err(), "[{mode:?}] read of an empty pipe completed");
            });
            let msg = format!("plain {i}");
            assert_eq!(raw_write(&w, msg.as_bytes()), msg.len() as isize);
            thread::sleep(Duration::from_millis(5));
            let got = raw_read(&r, 64);
            assert_eq!(
                got.as_deref(),
                Some(msg.as_bytes()),
                "[{mode:?}] #{i}: data written after the read was cancelled was eaten by it \
                 ({:?})",
                ctx.metrics()
            );
        }
    });
}

#[test]
fn read_cancelled_by_timeout_in_the_last_handler_of_run_does_not_eat_later_data() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let (r, w) = ringio::io::pipe().unwrap();
        let r = Arc::new(r);
        for i in 0..5 {
            // The only task times its read out and ends; run() then runs out
            // of work and returns with the read's cancel just queued.
            ctx.restart();
            let r2 = r.clone();
            drop(ctx.spawn(async move {
                let res = timeout(Duration::from_millis(5), r2.read(vec![0u8; 64])).await;
                assert!(res.is_err(), "read of an empty pipe completed");
            }));
            assert_eq!(ctx.run(), 2, "[{mode:?}]");
            let msg = format!("after run {i}");
            assert_eq!(raw_write(&w, msg.as_bytes()), msg.len() as isize);
            thread::sleep(Duration::from_millis(5));
            assert_eq!(
                raw_read(&r, 64).as_deref(),
                Some(msg.as_bytes()),
                "[{mode:?}] #{i}: data written after run() returned was eaten by the read \
                 cancelled in its last handler ({:?})",
                ctx.metrics()
            );
        }
    });
}

#[test]
fn write_cancelled_by_timeout_as_block_on_returns_writes_nothing_later() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let (r, w) = ringio::io::pipe().unwrap();
        // Fill the pipe outside the ring.
        let chunk = [0xAAu8; 4096];
        let mut filled = 0usize;
        while raw_write(&w, &chunk) > 0 {
            filled += chunk.len();
            assert!(filled < 64 << 20, "pipe never filled");
        }
        ctx.block_on(async {
            let res = timeout(Duration::from_millis(10), w.write(vec![0x55u8; 100])).await;
            assert!(
                res.is_err(),
                "[{mode:?}] a write into a full pipe completed"
            );
        });
        // Drain: only the filler is there.
        let mut drained = 0;
        while let Some(buf) = raw_read(&r, 65536) {
            assert!(
                buf.iter().all(|&b| b == 0xAA),
                "[{mode:?}] the cancelled write wrote"
            );
            drained += buf.len();
        }
        assert!(
            drained >= filled - 4096,
            "[{mode:?}] drained {drained} of {filled}"
        );
        // And the pipe works through the ring again.
        let got = ctx.block_on(async {
            write_all(&w, b"ok").await;
            read_some(&r, 8).await
        });
        assert_eq!(got, b"ok", "[{mode:?}]");
        assert!(wait_until(PROMPT, || in_flight(&ctx) == 0));
    });
}

/// A boxed read future that outlives the poll that submitted it.
type BoxedRead = Pin<Box<dyn Future<Output = (std::io::Result<usize>, Vec<u8>)> + Send>>;

#[test]
fn read_future_dropped_on_a_foreign_thread_is_cancelled() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let (r, w) = ringio::io::pipe().unwrap();
        let (r, w) = (Arc::new(r), Arc::new(w));
        let slot: Arc<Mutex<Option<BoxedRead>>> = Arc::default();
        let guard = ctx.work_guard();
        let run = {
            let ctx = ctx.clone();
            thread::spawn(move || ctx.run())
        };
        // A task submits the read and parks the future outside itself.
        let (s, r2) = (slot.clone(), r.clone());
        let h = ctx.spawn(async move {
            let mut fut: BoxedRead = Box::pin(async move { r2.read(vec![0u8; 32]).await });
            assert!(poll_once(&mut fut).await.is_pending());
            *s.lock().unwrap() = Some(fut);
        });
        assert!(wait_until(PROMPT, || h.is_finished()), "[{mode:?}]");
        assert_eq!(in_flight(&ctx), 1, "[{mode:?}] the read is in the kernel");
        // This thread runs no context: the drop must still cancel.
        let fut = slot.lock().unwrap().take().unwrap();
        drop(fut);
        assert!(
            wait_until(PROMPT, || in_flight(&ctx) == 0),
            "[{mode:?}] a read dropped on a foreign thread stayed in flight: {:?}",
            ctx.metrics()
        );
        let (r3, w3) = (r.clone(), w.clone());
        let h = ctx.spawn(async move {
            write_all(&w3, b"foreign").await;
            timeout(PROMPT, read_some(&r3, 32)).await
        });
        assert!(wait_until(PROMPT, || h.is_finished()), "[{mode:?}]");
        let mut h = h;
        match poll_outside(&mut h) {
            Poll::Ready(Ok(Ok(got))) => assert_eq!(got, b"foreign", "[{mode:?}]"),
            other => panic!("[{mode:?}] read after a foreign drop: {other:?}"),
        }
        drop(guard);
        run.join().unwrap();
    });
}

#[test]
fn ops_outside_any_context_return_an_error() {
    let _fd = fd_shared();
    let check = |e: &std::io::Error, what: &str| {
        assert!(
            e.to_string().contains("outside a running IoContext"),
            "{what}: unclear error: {e}"
        );
    };
    let mut nop = Box::pin(ringio::io::nop());
    match poll_outside(&mut nop) {
        Poll::Ready(Err(e)) => check(&e, "nop"),
        other => panic!("nop outside a context: {other:?}"),
    }
    let (r, w) = ringio::io::pipe().unwrap();
    let mut read = Box::pin(r.read(Vec::with_capacity(17)));
    match poll_outside(&mut read) {
        Poll::Ready((Err(e), buf)) => {
            check(&e, "read");
            assert_eq!(buf.capacity(), 17, "buffer given back");
        }
        other => panic!("read outside a context: {other:?}"),
    }
    let mut write = Box::pin(w.write(b"hi".to_vec()));
    match poll_outside(&mut write) {
        Poll::Ready((Err(e), buf)) => {
            check(&e, "write");
            assert_eq!(buf, b"hi");
        }
        other => panic!("write outside a context: {other:?}"),
    }
    // Also on a thread that is not running the context that exists.
    watchdog(Duration::from_secs(10), || {
        let ctx = Mode::Multi.build();
        let guard = ctx.work_guard();
        let run = {
            let ctx = ctx.clone();
            thread::spawn(move || ctx.run())
        };
        let mut nop = Box::pin(ringio::io::nop());
        assert!(matches!(poll_outside(&mut nop), Poll::Ready(Err(_))));
        drop(guard);
        run.join().unwrap();
    });
    // The pipe is untouched and works inside a context.
    let ctx = Mode::Single.build();
    let got = ctx.block_on(async {
        write_all(&w, b"inside").await;
        read_some(&r, 16).await
    });
    assert_eq!(got, b"inside");
}

#[test]
fn single_threaded_context_driven_by_one_thread_then_another() {
    let _fd = fd_shared();
    watchdog(Duration::from_secs(20), || {
        let ctx = Mode::Single.build();
        let (r, w) = ringio::io::pipe().unwrap();
        let (r, w) = (Arc::new(r), Arc::new(w));
        for round in 0..4 {
            let (c, r, w) = (ctx.clone(), r.clone(), w.clone());
            let got = thread::spawn(move || {
                c.block_on(async move {
                    ringio::io::nop().await.unwrap();
                    let msg = format!("thread {round}");
                    let reader = ringio::spawn({
                        let r = r.clone();
                        async move { read_some(&r, 32).await }
                    });
                    ringio::time::sleep(Duration::from_millis(2)).await;
                    write_all(&w, msg.as_bytes()).await;
                    let got = reader.await.unwrap();
                    assert_eq!(got, msg.as_bytes());
                    got
                })
            })
            .join()
            .unwrap();
            assert_eq!(got, format!("thread {round}").as_bytes());
            assert_eq!(in_flight(&ctx), 0);
        }
        // Tasks spawned on one thread, run by another.
        let hits = Arc::new(AtomicUsize::new(0));
        for _ in 0..10 {
            let h = hits.clone();
            drop(ctx.spawn(async move {
                ringio::io::nop().await.unwrap();
                h.fetch_add(1, Ordering::SeqCst);
            }));
        }
        let c = ctx.clone();
        thread::spawn(move || {
            c.restart();
            c.run()
        })
        .join()
        .unwrap();
        assert_eq!(hits.load(Ordering::SeqCst), 10);
    });
}

#[test]
fn single_threaded_read_cancelled_as_block_on_returns_then_another_thread_runs() {
    quiet_panics("ringio: this single-threaded IoContext has I/O in flight");
    let _fd = fd_shared();
    watchdog(Duration::from_secs(20), || {
        for exit_first in [false, true] {
            let ctx = Mode::Single.build();
            let (r, w) = ringio::io::pipe().unwrap();
            let (r, w) = (Arc::new(r), Arc::new(w));
            // Thread A: the read is dropped (cancelled) by the timeout in the
            // last poll of block_on. Nothing of the user's is in flight once
            // block_on has returned.
            let (c, r2) = (ctx.clone(), r.clone());
            let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
            let a = thread::spawn(move || {
                c.block_on(async {
                    let res = timeout(Duration::from_millis(5), r2.read(vec![0u8; 8])).await;
                    assert!(res.is_err());
                });
                if !exit_first {
                    let _ = done_rx.recv();
                }
            });
            let mut a = Some(a);
            if exit_first {
                a.take().unwrap().join().unwrap();
            } else {
                thread::sleep(Duration::from_millis(20));
            }
            // Thread B takes the context over.
            let (c, r3, w3) = (ctx.clone(), r.clone(), w.clone());
            let b = thread::spawn(move || {
                catch_unwind(AssertUnwindSafe(|| {
                    c.block_on(async {
                        write_all(&w3, b"B").await;
                        read_some(&r3, 8).await
                    })
                }))
            })
            .join()
            .unwrap();
            drop(done_tx);
            if let Some(a) = a {
                a.join().unwrap();
            }
            match b {
                Ok(got) => assert_eq!(got, b"B", "exit_first={exit_first}"),
                Err(p) => panic!(
                    "exit_first={exit_first}: thread B could not take over a single-threaded \
                     context whose only I/O was cancelled before block_on returned on A \
                     ({:?}): {}",
                    ctx.metrics(),
                    panic_text(&*p)
                ),
            }
        }
    });
}

#[test]
fn single_threaded_read_in_flight_pins_the_ring_to_its_thread() {
    quiet_panics("ringio: this single-threaded IoContext has I/O in flight");
    let _fd = fd_shared();
    watchdog(Duration::from_secs(20), || {
        let ctx = Mode::Single.build();
        let (r, w) = ringio::io::pipe().unwrap();
        let h = ctx.spawn(async move { read_some(&r, 32).await });
        let (to_a, a_rx) = std::sync::mpsc::channel::<()>();
        let (c, started) = (ctx.clone(), Instant::now());
        // Thread A submits the read and keeps the ring; it finishes the
        // read once told to.
        let a = thread::spawn(move || {
            while c.metrics().ops_in_flight == 0 {
                c.run_for(Duration::from_millis(5));
                assert!(started.elapsed() < PROMPT);
            }
            a_rx.recv().unwrap();
            c.restart();
            c.run()
        });
        assert!(wait_until(PROMPT, || in_flight(&ctx) == 1));
        // Another thread may not drive it meanwhile: a clear panic, not a
        // hang or a broken ring.
        let c = ctx.clone();
        let err = thread::spawn(move || {
            catch_unwind(AssertUnwindSafe(|| c.run_for(Duration::from_millis(10))))
        })
        .join()
        .unwrap()
        .expect_err("driving a bound ring with I/O in flight from another thread");
        let msg = panic_text(&*err);
        assert!(msg.contains("in flight"), "unclear panic: {msg}");
        assert_eq!(raw_write(&w, b"to A"), 4);
        to_a.send(()).unwrap();
        assert_eq!(a.join().unwrap(), 1, "thread A completes the read");
        assert!(h.is_finished());
        assert_eq!(ctx.block_on(h).unwrap(), b"to A");
    });
}

#[test]
fn multi_threaded_read_submitted_by_an_exited_thread_is_completed_by_another() {
    let _fd = fd_shared();
    watchdog(Duration::from_secs(20), || {
        for round in 0..5 {
            let ctx = Mode::Multi.build();
            let (r, w) = ringio::io::pipe().unwrap();
            let h = ctx.spawn(async move { read_some(&r, 32).await });
            // Thread A submits the read, then exits.
            let c = ctx.clone();
            thread::spawn(move || {
                let start = Instant::now();
                while c.metrics().ops_in_flight == 0 && start.elapsed() < PROMPT {
                    c.run_for(Duration::from_millis(5));
                }
            })
            .join()
            .unwrap();
            assert_eq!(in_flight(&ctx), 1, "round {round}: read not in flight");
            // Thread B waits in the kernel; the data arrives meanwhile.
            let c = ctx.clone();
            let b = thread::spawn(move || c.run());
            thread::sleep(Duration::from_millis(if round % 2 == 0 { 20 } else { 0 }));
            let msg = format!("round {round}");
            assert_eq!(raw_write(&w, msg.as_bytes()), msg.len() as isize);
            assert!(
                wait_until(PROMPT, || b.is_finished()),
                "round {round}: the read's completion never reached thread B"
            );
            assert_eq!(b.join().unwrap(), 1);
            let mut h = h;
            match poll_outside(&mut h) {
                Poll::Ready(Ok(got)) => assert_eq!(got, msg.as_bytes()),
                other => panic!("round {round}: {other:?}"),
            }
        }
    });
}

#[test]
fn token_ring_of_pipes_across_tasks_and_runners() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        // N tasks in a ring: task i reads a token from pipe i and writes it
        // plus one into pipe i+1 (task N-1 into pipe 0). The token goes
        // round ROUNDS times, every hop a read completion and a wake.
        const N: usize = 16;
        const ROUNDS: u64 = 30;
        let (mut readers, mut writers): (Vec<_>, Vec<_>) =
            (0..N).map(|_| ringio::io::pipe().unwrap()).unzip();
        assert_eq!(raw_write(&writers[0], &0u64.to_le_bytes()), 8);
        writers.rotate_left(1); // writers[i] now writes into pipe i+1
        let guard = ctx.work_guard();
        let runners: Vec<_> = spawn_runners(&ctx, 2);
        let handles: Vec<_> = readers
            .drain(..)
            .zip(writers.drain(..))
            .enumerate()
            .map(|(i, (r, w))| {
                ctx.spawn(async move {
                    let mut last = 0;
                    for _ in 0..ROUNDS {
                        let (res, buf) = r.read(vec![0u8; 8]).await;
                        assert_eq!(res.unwrap(), 8, "task {i}: short read");
                        last = u64::from_le_bytes(buf[..8].try_into().unwrap());
                        let (res, _) = w.write_all((last + 1).to_le_bytes().to_vec()).await;
                        res.unwrap();
                    }
                    // The pipe ends go out with the output, so no task
                    // writes into a pipe whose reader is already gone.
                    (last, r, w)
                })
            })
            .collect();
        let lasts = mode.build().block_on(async move {
            let mut v = Vec::new();
            for h in handles {
                v.push(h.await.unwrap());
            }
            v
        });
        let lasts: Vec<u64> = lasts.into_iter().map(|(last, _, _)| last).collect();
        for (i, last) in lasts.into_iter().enumerate() {
            assert_eq!(
                last,
                (ROUNDS - 1) * N as u64 + i as u64,
                "[{mode:?}] task {i}"
            );
        }
        drop(guard);
        for r in runners {
            r.join().unwrap();
        }
    });
}

#[test]
fn builder_entries_out_of_range_is_invalid_input() {
    let _fd = fd_shared();
    for single in [false, true] {
        for n in [0u32, 32_769, 100_000, u32::MAX] {
            match IoContext::builder()
                .single_threaded(single)
                .entries(n)
                .build()
            {
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::InvalidInput, "entries({n}): {e}");
                    assert!(
                        e.to_string().contains("entries"),
                        "entries({n}): unclear: {e}"
                    );
                }
                Ok(_) => panic!("entries({n}) built a context"),
            }
        }
        for n in [1u32, 3, 32_768] {
            let ctx = IoContext::builder()
                .single_threaded(single)
                .entries(n)
                .build()
                .unwrap_or_else(|e| panic!("entries({n}): {e}"));
            ctx.block_on(async {
                for _ in 0..10 {
                    ringio::io::nop().await.unwrap();
                }
            });
        }
    }
}

#[test]
fn sqpoll_context_runs_a_pipe_round_trip() {
    let _fd = fd_shared();
    for single in [false, true] {
        for cpu in [None, Some(0)] {
            watchdog(Duration::from_secs(20), move || {
                let ctx = IoContext::builder()
                    .single_threaded(single)
                    .sqpoll(Duration::from_millis(10), cpu)
                    .build()
                    .unwrap_or_else(|e| panic!("sqpoll single={single} cpu={cpu:?}: {e}"));
                let got = ctx.block_on(async {
                    let (r, w) = ringio::io::pipe().unwrap();
                    let reader = ringio::spawn(async move { read_some(&r, 32).await });
                    ringio::time::sleep(Duration::from_millis(30)).await; // SQ thread idles
                    write_all(&w, b"sqpoll").await;
                    ringio::io::nop().await.unwrap();
                    reader.await.unwrap()
                });
                assert_eq!(got, b"sqpoll", "single={single} cpu={cpu:?}");
                // Another thread's post wakes this thread, idle in run()
                // (block_on ended the work, which stopped the context).
                ctx.restart();
                let guard = ctx.work_guard();
                let ran = Arc::new(AtomicUsize::new(0));
                let poster = {
                    let (ctx, ran) = (ctx.clone(), ran.clone());
                    thread::spawn(move || {
                        thread::sleep(Duration::from_millis(30)); // SQ thread idles
                        ctx.post(move || {
                            ran.fetch_add(1, Ordering::SeqCst);
                            IoContext::current().stop();
                        });
                    })
                };
                let t = Instant::now();
                assert_eq!(ctx.run(), 1, "single={single} cpu={cpu:?}");
                assert!(
                    t.elapsed() < PROMPT,
                    "single={single} cpu={cpu:?}: late wake-up"
                );
                assert_eq!(ran.load(Ordering::SeqCst), 1);
                poster.join().unwrap();
                drop(guard);
            });
        }
    }
}

#[test]
fn no_fd_leak_from_ops_cancelled_in_every_way() {
    let _fd = fd_exclusive();
    let before = open_fds();
    each_mode(|_mode, ctx| {
        ctx.block_on(async {
            for _ in 0..5 {
                let (r, w) = ringio::io::pipe().unwrap();
                let _ = timeout(Duration::from_millis(2), r.read(vec![0u8; 8])).await;
                let mut read = Box::pin(r.read(vec![0u8; 8]));
                let _ = poll_once(&mut read).await;
                drop(read);
                write_all(&w, b"z").await;
                assert_eq!(read_some(&r, 8).await, b"z");
            }
        });
    });
    assert_fds_back_to(before, "pipes with cancelled ops");
}
