//! Dropping the last `IoContext`: every task is dropped (never polled,
//! pending with no waker anywhere, pending on a pipe read, pending on a
//! sleep), `JoinHandle`s held outside report cancellation, in-flight reads
//! are cancelled without a hang, spawns from destructors during shutdown
//! are refused, stray wakes afterwards are harmless, and no descriptor
//! leaks (`/proc/self/fd` comes back to where it was). Both modes.
//!
//! Every test holds the binary's fd lock (shared, or exclusive for the
//! tests that count descriptors), so counts are never disturbed by another
//! test of this file.

mod common;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    assert_fds_back_to, each_mode, fd_exclusive, fd_shared, open_fds, poll_outside, watchdog,
    DropFlag, Mode,
};
use ringio::io::{PipeReader, PipeWriter};
use ringio::{IoContext, JoinError, JoinHandle};

/// A shutdown that must not wait: well below the driver's 2 s grace period
/// for completions that never come.
const QUICK_DROP: Duration = Duration::from_millis(1500);

fn cancelled<T>(mut h: JoinHandle<T>, what: &str) {
    assert!(
        h.is_finished(),
        "{what}: handle not finished after the context was dropped"
    );
    match poll_outside(&mut h) {
        Poll::Ready(Err(e)) => assert!(e.is_cancelled(), "{what}: {e:?}"),
        Poll::Ready(Ok(_)) => panic!("{what}: task completed instead of being dropped"),
        Poll::Pending => panic!("{what}: JoinHandle pending after the context was dropped"),
    }
}

fn timed_drop(ctx: IoContext, mode: Mode, what: &str) -> Duration {
    let t = Instant::now();
    drop(ctx);
    let e = t.elapsed();
    println!("[{mode:?}] {what}: context dropped in {e:?}");
    assert!(
        e < QUICK_DROP,
        "[{mode:?}] {what}: dropping the context took {e:?}"
    );
    e
}

fn pipes(n: usize) -> Vec<(Arc<PipeReader>, Arc<PipeWriter>)> {
    (0..n)
        .map(|_| {
            let (r, w) = ringio::io::pipe().unwrap();
            (Arc::new(r), Arc::new(w))
        })
        .collect()
}

/// Spawns a task that holds a drop flag and reads `r` forever.
fn spawn_reader(ctx: &IoContext, r: &Arc<PipeReader>) -> (JoinHandle<usize>, Arc<AtomicBool>) {
    let (flag, dropped) = DropFlag::new();
    let r = r.clone();
    let h = ctx.spawn(async move {
        let _flag = flag;
        let (res, _buf) = r.read(vec![0u8; 128]).await;
        res.unwrap_or(usize::MAX)
    });
    (h, dropped)
}

/// Polls the context until `n` ops are in the kernel.
fn until_in_flight(ctx: &IoContext, n: u64, mode: Mode) {
    let start = Instant::now();
    while ctx.metrics().ops_in_flight < n {
        ctx.poll();
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "[{mode:?}] only {} of {n} ops in flight",
            ctx.metrics().ops_in_flight
        );
        thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn drop_with_never_polled_tasks_drops_their_futures() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let mut flags = Vec::new();
        let mut handles = Vec::new();
        let polled = Arc::new(AtomicUsize::new(0));
        for _ in 0..10 {
            let (flag, dropped) = DropFlag::new();
            let p = polled.clone();
            handles.push(ctx.spawn(async move {
                let _flag = flag;
                p.fetch_add(1, Ordering::SeqCst);
            }));
            flags.push(dropped);
        }
        timed_drop(ctx, mode, "10 never-polled tasks");
        assert_eq!(
            polled.load(Ordering::SeqCst),
            0,
            "[{mode:?}] shutdown ran a task"
        );
        assert!(
            flags.iter().all(|f| f.load(Ordering::SeqCst)),
            "[{mode:?}] future leaked"
        );
        for h in handles {
            cancelled(h, &format!("[{mode:?}] never polled"));
        }
    });
}

#[test]
fn drop_with_tasks_pending_forever_with_no_waker_anywhere() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let mut flags = Vec::new();
        let mut handles = Vec::new();
        for _ in 0..10 {
            let (flag, dropped) = DropFlag::new();
            handles.push(ctx.spawn(async move {
                let _flag = flag;
                // Drops its waker: nothing but the context knows the task.
                std::future::pending::<()>().await;
            }));
            flags.push(dropped);
        }
        assert_eq!(ctx.poll(), 10, "[{mode:?}]");
        assert_eq!(ctx.metrics().outstanding_work, 10);
        assert!(flags.iter().all(|f| !f.load(Ordering::SeqCst)));
        timed_drop(ctx, mode, "10 tasks pending forever");
        assert!(
            flags.iter().all(|f| f.load(Ordering::SeqCst)),
            "[{mode:?}] future leaked"
        );
        for h in handles {
            cancelled(h, &format!("[{mode:?}] pending forever"));
        }
    });
}

#[test]
fn drop_with_tasks_pending_on_sleep() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let mut flags = Vec::new();
        let mut handles = Vec::new();
        for i in 0..10u64 {
            let (flag, dropped) = DropFlag::new();
            handles.push(ctx.spawn(async move {
                let _flag = flag;
                ringio::time::sleep(Duration::from_secs(3600 + i)).await;
            }));
            flags.push(dropped);
        }
        // Some polled (timer armed), the last two never polled.
        for _ in 0..8 {
            assert_eq!(ctx.poll_one(), 1);
        }
        timed_drop(ctx, mode, "10 sleeping tasks");
        assert!(
            flags.iter().all(|f| f.load(Ordering::SeqCst)),
            "[{mode:?}] future leaked"
        );
        for h in handles {
            cancelled(h, &format!("[{mode:?}] sleeping"));
        }
    });
}

#[test]
fn drop_with_tasks_pending_on_pipe_reads_cancels_them_without_a_hang() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let ps = pipes(8);
        let mut tasks = Vec::new();
        for (r, _) in &ps {
            tasks.push(spawn_reader(&ctx, r));
        }
        until_in_flight(&ctx, 8, mode);
        timed_drop(ctx, mode, "8 reads in flight");
        for (h, dropped) in tasks {
            assert!(
                dropped.load(Ordering::SeqCst),
                "[{mode:?}] reader future leaked"
            );
            cancelled(h, &format!("[{mode:?}] reading"));
        }
        // The pipes are intact: a plain write and read still work.
        for (r, w) in &ps {
            let n = unsafe_write(w, b"x");
            assert_eq!(n, 1);
            assert_eq!(unsafe_read(r), b"x", "[{mode:?}] a cancelled read ate data");
        }
    });
}

#[test]
fn drop_with_mixed_pending_work_and_a_live_work_guard() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let ps = pipes(2);
        let guard = ctx.work_guard();
        let (a, a_dropped) = spawn_reader(&ctx, &ps[0].0);
        let (flag, b_dropped) = DropFlag::new();
        let b = ctx.spawn(async move {
            let _flag = flag;
            ringio::time::sleep(Duration::from_secs(600)).await;
        });
        let (flag, c_dropped) = DropFlag::new();
        let c = ctx.spawn(async move {
            let _flag = flag;
            std::future::pending::<()>().await;
        });
        let (flag, d_dropped) = DropFlag::new();
        let d = ctx.spawn(async move {
            let _flag = flag;
        });
        let done = ctx.spawn(async { 11 });
        assert_eq!(ctx.poll_one(), 1); // a
        assert_eq!(ctx.poll_one(), 1); // b
        assert_eq!(ctx.poll_one(), 1); // c
        until_in_flight(&ctx, 1, mode);
        // `done` and `d` were polled by the loop above or are still queued.
        timed_drop(ctx, mode, "read + sleep + pending + queued, guard alive");
        for (f, what) in [
            (&a_dropped, "read"),
            (&b_dropped, "sleep"),
            (&c_dropped, "pending"),
            (&d_dropped, "queued"),
        ] {
            assert!(f.load(Ordering::SeqCst), "[{mode:?}] {what} future leaked");
        }
        cancelled(a, "read");
        cancelled(b, "sleep");
        cancelled(c, "pending");
        // d may have run before the drop (it was ready): either is fine.
        drop(d);
        let mut done = done;
        match poll_outside(&mut done) {
            Poll::Ready(Ok(11)) | Poll::Ready(Err(_)) => {}
            other => panic!("[{mode:?}] {other:?}"),
        }
        // The guard outlives the context: dropping it now is harmless.
        drop(guard);
    });
}

#[test]
fn completed_output_survives_the_context() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let h = ctx.spawn(async { String::from("kept") });
        ctx.run();
        drop(ctx);
        let mut h = h;
        match poll_outside(&mut h) {
            Poll::Ready(Ok(s)) => assert_eq!(s, "kept", "[{mode:?}]"),
            other => panic!("[{mode:?}] {other:?}"),
        }
    });
}

#[test]
fn join_handle_awaited_in_another_context_sees_the_cancellation() {
    let _fd = fd_shared();
    for (m, waiter_mode) in [(Mode::Multi, Mode::Single), (Mode::Single, Mode::Multi)] {
        watchdog(Duration::from_secs(20), move || {
            let ctx = m.build();
            let other = waiter_mode.build();
            let h = ctx.spawn(std::future::pending::<()>());
            ctx.poll();
            let dropper = thread::spawn(move || {
                thread::sleep(Duration::from_millis(30));
                drop(ctx);
            });
            // The waiter sleeps in `other` until the shutdown wakes it.
            let r: Result<(), JoinError> = other.block_on(h);
            assert!(r.unwrap_err().is_cancelled(), "[{m:?}]");
            dropper.join().unwrap();
        });
    }
}

/// Spawns (through `ringio::spawn`) from its destructor, which runs during
/// shutdown, and records what came back.
struct SpawnOnDrop {
    out: Arc<Mutex<Option<JoinHandle<()>>>>,
    ran: Arc<AtomicBool>,
    child_dropped: DropFlag,
}

impl Drop for SpawnOnDrop {
    fn drop(&mut self) {
        let ran = self.ran.clone();
        let (flag, _) = DropFlag::new();
        let child_flag = std::mem::replace(&mut self.child_dropped, flag);
        let h = ringio::spawn(async move {
            let _flag = child_flag;
            ran.store(true, Ordering::SeqCst);
        });
        *self.out.lock().unwrap() = Some(h);
    }
}

#[test]
fn spawn_from_a_destructor_during_shutdown_is_refused_and_reports_cancelled() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let out = Arc::new(Mutex::new(None));
        let ran = Arc::new(AtomicBool::new(false));
        let (child_dropped, child_flag) = DropFlag::new();
        let guard = SpawnOnDrop {
            out: out.clone(),
            ran: ran.clone(),
            child_dropped,
        };
        drop(ctx.spawn(async move {
            let _g = guard;
            std::future::pending::<()>().await;
        }));
        ctx.poll();
        timed_drop(ctx, mode, "a destructor spawning during shutdown");
        let h = out
            .lock()
            .unwrap()
            .take()
            .expect("the destructor ran during shutdown");
        assert!(
            !ran.load(Ordering::SeqCst),
            "[{mode:?}] a task spawned during shutdown ran"
        );
        assert!(
            child_flag.load(Ordering::SeqCst),
            "[{mode:?}] refused future not dropped"
        );
        cancelled(h, &format!("[{mode:?}] spawned during shutdown"));
    });
}

#[test]
fn stray_wakes_after_shutdown_are_harmless() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let stash: Arc<Mutex<Vec<Waker>>> = Arc::default();
        let mut flags = Vec::new();
        for _ in 0..4 {
            let s = stash.clone();
            let (flag, dropped) = DropFlag::new();
            flags.push(dropped);
            drop(ctx.spawn(async move {
                let _flag = flag;
                std::future::poll_fn(|cx| {
                    s.lock().unwrap().push(cx.waker().clone());
                    Poll::<()>::Pending
                })
                .await;
            }));
        }
        ctx.poll();
        assert_eq!(stash.lock().unwrap().len(), 4);
        // One wake right before the drop, from another thread.
        let w = stash.lock().unwrap()[0].clone();
        thread::spawn(move || w.wake()).join().unwrap();
        timed_drop(ctx, mode, "tasks with wakers held outside");
        assert!(flags.iter().all(|f| f.load(Ordering::SeqCst)), "[{mode:?}]");
        // Wakes after the context is gone, here and from other threads.
        let wakers = std::mem::take(&mut *stash.lock().unwrap());
        for (i, w) in wakers.into_iter().enumerate() {
            if i % 2 == 0 {
                w.wake_by_ref();
                w.wake();
            } else {
                thread::spawn(move || w.wake()).join().unwrap();
            }
        }
    });
}

#[test]
fn wake_racing_with_shutdown_from_another_thread() {
    let _fd = fd_shared();
    each_mode(|mode, _ctx| {
        for round in 0..20 {
            let ctx = mode.build();
            let stash: Arc<Mutex<Option<Waker>>> = Arc::default();
            let (flag, dropped) = DropFlag::new();
            let s = stash.clone();
            let h = ctx.spawn(async move {
                let _flag = flag;
                std::future::poll_fn(|cx| {
                    *s.lock().unwrap() = Some(cx.waker().clone());
                    Poll::<()>::Pending
                })
                .await;
            });
            ctx.poll();
            let w = stash.lock().unwrap().take().unwrap();
            let waker_thread = thread::spawn(move || {
                for _ in 0..200 {
                    w.wake_by_ref();
                }
            });
            drop(ctx);
            waker_thread.join().unwrap();
            assert!(dropped.load(Ordering::SeqCst), "[{mode:?}] round {round}");
            cancelled(h, &format!("[{mode:?}] round {round}"));
        }
    });
}

#[test]
fn multi_threaded_drop_after_runner_threads_left() {
    let _fd = fd_shared();
    watchdog(Duration::from_secs(20), || {
        let ctx = Mode::Multi.build();
        let ps = pipes(4);
        let mut tasks = Vec::new();
        for (r, _) in &ps {
            tasks.push(spawn_reader(&ctx, r));
        }
        // Several runners submit the reads and leave.
        let runners: Vec<_> = (0..3)
            .map(|_| {
                let ctx = ctx.clone();
                thread::spawn(move || ctx.run_for(Duration::from_millis(30)))
            })
            .collect();
        for r in runners {
            r.join().unwrap();
        }
        assert_eq!(ctx.metrics().ops_in_flight, 4, "{:?}", ctx.metrics());
        timed_drop(ctx, Mode::Multi, "reads submitted by exited threads");
        for (h, dropped) in tasks {
            assert!(dropped.load(Ordering::SeqCst));
            cancelled(h, "reader");
        }
    });
}

#[test]
fn context_dropped_on_another_thread_than_the_one_that_ran_it() {
    let _fd = fd_shared();
    for mode in Mode::ALL {
        watchdog(Duration::from_secs(20), move || {
            let ctx = mode.build();
            let ps = pipes(2);
            let mut tasks = Vec::new();
            for (r, _) in &ps {
                tasks.push(spawn_reader(&ctx, r));
            }
            // Run (and, single-threaded, bind the ring) on thread A...
            let ctx = thread::spawn(move || {
                until_in_flight(&ctx, 2, mode);
                ctx
            })
            .join()
            .unwrap();
            // ...and drop on this thread, A being gone.
            timed_drop(ctx, mode, "dropped on a thread other than its runner");
            for (h, dropped) in tasks {
                assert!(dropped.load(Ordering::SeqCst), "[{mode:?}]");
                cancelled(h, &format!("[{mode:?}] reader"));
            }
        });
    }
}

#[test]
fn context_dropped_while_its_runner_thread_is_still_alive() {
    let _fd = fd_shared();
    for mode in Mode::ALL {
        watchdog(Duration::from_secs(20), move || {
            let ctx = mode.build();
            let ps = pipes(1);
            let (h, dropped) = spawn_reader(&ctx, &ps[0].0);
            let (tx, rx) = std::sync::mpsc::channel::<IoContext>();
            let (back_tx, back_rx) = std::sync::mpsc::channel::<()>();
            // Thread A runs the context (binding a single-threaded ring)
            // and stays alive while another thread drops it.
            let a = thread::spawn(move || {
                until_in_flight(&ctx, 1, mode);
                tx.send(ctx).unwrap();
                back_rx.recv().unwrap();
            });
            let ctx = rx.recv().unwrap();
            timed_drop(ctx, mode, "dropped while the runner thread lives");
            back_tx.send(()).unwrap();
            a.join().unwrap();
            assert!(dropped.load(Ordering::SeqCst), "[{mode:?}]");
            cancelled(h, &format!("[{mode:?}] reader"));
        });
    }
}

#[test]
fn no_fd_leak_after_contexts_with_reads_in_flight_are_dropped() {
    let _fd = fd_exclusive();
    let before = open_fds();
    each_mode(|mode, ctx| {
        let ps = pipes(6);
        let mut tasks = Vec::new();
        for (r, _) in &ps {
            tasks.push(spawn_reader(&ctx, r));
        }
        until_in_flight(&ctx, 6, mode);
        timed_drop(ctx, mode, "fd check");
        drop(tasks);
        drop(ps);
    });
    assert_fds_back_to(before, "contexts dropped with reads in flight");
}

#[test]
fn no_fd_leak_over_many_contexts() {
    let _fd = fd_exclusive();
    let before = open_fds();
    watchdog(Duration::from_secs(30), || {
        for i in 0..40 {
            let mode = Mode::ALL[i % 2];
            let ctx = mode.build();
            let got = ctx.block_on(async {
                let (r, w) = ringio::io::pipe().unwrap();
                let (res, _) = w.write_all(b"abc".to_vec()).await;
                res.unwrap();
                let (res, buf) = r.read(Vec::with_capacity(8)).await;
                buf[..res.unwrap()].to_vec()
            });
            assert_eq!(got, b"abc");
            if i % 4 == 0 {
                // Never-run contexts too.
                drop(mode.build());
            }
        }
    });
    assert_fds_back_to(before, "40 contexts with a pipe round trip");
}

#[test]
fn no_fd_leak_when_a_single_threaded_context_changes_threads() {
    let _fd = fd_exclusive();
    let before = open_fds();
    watchdog(Duration::from_secs(30), move || {
        let ctx = Mode::Single.build();
        for _ in 0..10 {
            let c = ctx.clone();
            thread::spawn(move || {
                c.block_on(async { ringio::io::nop().await.unwrap() });
            })
            .join()
            .unwrap();
        }
        let during = open_fds();
        drop(ctx);
        println!("fds: before {before}, while alive {during}");
    });
    assert_fds_back_to(before, "single-threaded context rebound 10 times");
}

#[test]
fn no_fd_leak_when_tasks_owning_pipes_are_dropped_by_shutdown() {
    let _fd = fd_exclusive();
    let before = open_fds();
    each_mode(|mode, ctx| {
        let mut flags = Vec::new();
        for _ in 0..5 {
            let (r, w) = ringio::io::pipe().unwrap();
            let (flag, dropped) = DropFlag::new();
            flags.push(dropped);
            // The task owns both ends: shutdown drops the read future, then
            // the pipe (cancel-and-flush before close).
            drop(ctx.spawn(async move {
                let _flag = flag;
                let _w = w;
                let (res, _buf) = r.read(vec![0u8; 16]).await;
                res.unwrap_or(0)
            }));
        }
        until_in_flight(&ctx, 5, mode);
        timed_drop(ctx, mode, "tasks owning their pipes");
        assert!(flags.iter().all(|f| f.load(Ordering::SeqCst)), "[{mode:?}]");
    });
    assert_fds_back_to(before, "tasks owning pipes dropped by shutdown");
}

// ---- plain (non-ring) pipe I/O for checks after a context is gone --------

fn unsafe_write(w: &PipeWriter, data: &[u8]) -> isize {
    use std::os::fd::AsRawFd;
    // SAFETY: `data` is valid for `data.len()` bytes; the fd is open.
    unsafe { libc::write(w.as_raw_fd(), data.as_ptr().cast(), data.len()) }
}

fn unsafe_read(r: &PipeReader) -> Vec<u8> {
    use std::os::fd::AsRawFd;
    let mut buf = [0u8; 64];
    // SAFETY: `buf` is valid for 64 bytes; the fd is open (non-blocking).
    let n = unsafe { libc::read(r.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    assert!(n >= 0, "read: {}", std::io::Error::last_os_error());
    buf[..n as usize].to_vec()
}

/// An op future owned outside any task (here: kept by the test after one
/// poll) is still in the kernel when the context is dropped: shutdown cancels
/// it and waits for its CQE, and the future, polled afterwards, gives its
/// buffer back with ECANCELED instead of hanging or freeing memory the
/// kernel could still write.
#[test]
fn op_future_outside_any_task_in_flight_at_shutdown_reports_cancelled() {
    let _fds = fd_shared();
    watchdog(Duration::from_secs(20), || {
        // After the drop, the multi-threaded future is polled to its
        // ECANCELED result; the single-threaded one (whose context has no
        // owner any more) is dropped, which runs its slot release through
        // the closed context's remote queue.
        for mode in [Mode::Multi, Mode::Single] {
            let ctx = mode.build();
            let (r, _w) = ringio::io::pipe().unwrap();
            let mut read = Box::pin(r.read(vec![0u8; 16]));
            let first = ctx.block_on(std::future::poll_fn(|cx| {
                Poll::Ready(read.as_mut().poll(cx))
            }));
            assert!(first.is_pending(), "[{mode}] the read waits for data");
            assert_eq!(ctx.metrics().ops_in_flight, 1, "[{mode}]");
            let start = Instant::now();
            drop(ctx);
            assert!(
                start.elapsed() < QUICK_DROP,
                "[{mode}] shutdown waited for a cancellable read"
            );
            match mode {
                Mode::Multi => match poll_outside(&mut read) {
                    Poll::Ready((res, buf)) => {
                        assert_eq!(
                            res.unwrap_err().raw_os_error(),
                            Some(libc::ECANCELED),
                            "[{mode}]"
                        );
                        assert_eq!(buf.len(), 16, "[{mode}] the buffer comes back");
                    }
                    Poll::Pending => panic!("[{mode}] the cancelled read never completed"),
                },
                // The owner thread is gone with the context; dropping the
                // future must still be safe.
                Mode::Single => drop(read),
            }
        }
    });
}

/// A pipe used on a single-threaded context outlives the context and is
/// dropped on another thread: nobody owns the context any more, so the
/// dropping thread does the close itself (cancel-by-fd is moot, the ring is
/// gone) — no hang, no leaked descriptor.
#[test]
fn pipe_of_a_dropped_single_threaded_context_closed_on_another_thread() {
    let _fds = fd_exclusive();
    let before = open_fds();
    watchdog(Duration::from_secs(20), move || {
        let ctx = Mode::Single.build();
        let (r, w) = ringio::io::pipe().unwrap();
        ctx.block_on(async {
            let (res, _) = w.write_all(b"x".to_vec()).await;
            res.unwrap();
            let (res, _) = r.read(vec![0u8; 4]).await;
            assert_eq!(res.unwrap(), 1);
        });
        drop(ctx);
        thread::spawn(move || {
            drop(r);
            drop(w);
        })
        .join()
        .unwrap();
    });
    assert_fds_back_to(before, "pipe closed on another thread after its context");
}

/// `Sleep::reset` on a thread that does not own the single-threaded context
/// the sleep is registered with drops the registration (through the
/// owner) and re-arms on the next poll, on the owner.
#[test]
fn sleep_reset_on_a_foreign_thread_rearms_on_the_owner() {
    let _fds = fd_shared();
    watchdog(Duration::from_secs(20), || {
        let ctx = Mode::Single.build();
        let mut sleep = Box::pin(ringio::time::Sleep::new(
            Instant::now() + Duration::from_secs(3600),
        ));
        let first = ctx.block_on(std::future::poll_fn(|cx| {
            Poll::Ready(sleep.as_mut().poll(cx))
        }));
        assert!(first.is_pending());
        let sleep = thread::spawn(move || {
            let mut s = sleep;
            s.as_mut().reset(Instant::now() + Duration::from_millis(5));
            s
        })
        .join()
        .unwrap();
        let start = Instant::now();
        ctx.block_on(sleep);
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the reset deadline was used"
        );
    });
}
