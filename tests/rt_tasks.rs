//! Tasks and `JoinHandle`: output, `abort()` (before the first poll, while
//! pending on a sleep or a pipe read, while being polled, after the end),
//! `is_finished`, `JoinError` (`is_cancelled`, `is_panic`, `into_panic`,
//! `try_into_panic`, `Display`), panics in tasks, detaching by dropping the
//! handle, wakers that outlive their task, wake coalescing. Both modes.

mod common;

use std::panic::catch_unwind;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    each_mode, panic_text, poll_outside, quiet_panics, wait_until, yield_now, DropFlag, Mode,
};
use ringio::{IoContext, JoinError, JoinHandle};

const PROMPT: Duration = Duration::from_secs(2);

/// The result of a finished handle, read without any context.
fn result_of<T>(mut h: JoinHandle<T>) -> Result<T, JoinError> {
    assert!(
        wait_until(PROMPT, || h.is_finished()),
        "the task did not finish"
    );
    match poll_outside(&mut h) {
        Poll::Ready(r) => r,
        Poll::Pending => panic!("a finished JoinHandle returned Pending"),
    }
}

fn runner(ctx: &IoContext) -> thread::JoinHandle<usize> {
    let ctx = ctx.clone();
    thread::spawn(move || ctx.run())
}

#[test]
fn join_handle_yields_the_output() {
    each_mode(|mode, ctx| {
        // Awaited inside block_on.
        let v = ctx.block_on(async {
            let h = ringio::spawn(async { vec![1, 2, 3] });
            h.await.unwrap()
        });
        assert_eq!(v, vec![1, 2, 3], "[{mode:?}]");
        // Finished before anyone awaits it.
        ctx.restart();
        let h = ctx.spawn(async { String::from("done") });
        assert!(!h.is_finished(), "[{mode:?}] not run yet");
        assert_eq!(ctx.run(), 1, "[{mode:?}]");
        assert!(h.is_finished(), "[{mode:?}]");
        assert_eq!(ctx.block_on(h).unwrap(), "done", "[{mode:?}]");
        // Awaited from another task of the same context.
        ctx.restart();
        let inner = ctx.spawn(async {
            ringio::time::sleep(Duration::from_millis(2)).await;
            7
        });
        let outer = ctx.spawn(async move { inner.await.unwrap() * 6 });
        ctx.run();
        assert_eq!(result_of(outer).unwrap(), 42, "[{mode:?}]");
    });
}

#[test]
fn join_handle_awaited_by_another_context_on_another_thread() {
    for (task_mode, waiter_mode) in [
        (Mode::Multi, Mode::Single),
        (Mode::Single, Mode::Multi),
        (Mode::Single, Mode::Single),
    ] {
        common::watchdog(Duration::from_secs(20), move || {
            let ctx = task_mode.build();
            let other = waiter_mode.build();
            let h = ctx.spawn(async {
                ringio::time::sleep(Duration::from_millis(20)).await;
                99
            });
            let r = runner(&ctx);
            let v = other.block_on(h).unwrap();
            assert_eq!(v, 99, "[{task_mode:?} awaited from {waiter_mode:?}]");
            assert_eq!(r.join().unwrap(), 2);
        });
    }
}

#[test]
fn abort_before_first_poll_never_polls_the_future() {
    each_mode(|mode, ctx| {
        let polled = Arc::new(AtomicBool::new(false));
        let (flag, dropped) = DropFlag::new();
        let p = polled.clone();
        let h = ctx.spawn(async move {
            let _flag = flag;
            p.store(true, Ordering::SeqCst);
        });
        h.abort();
        h.abort(); // twice is fine
        ctx.run();
        assert!(
            !polled.load(Ordering::SeqCst),
            "[{mode:?}] aborted task was polled"
        );
        assert!(
            dropped.load(Ordering::SeqCst),
            "[{mode:?}] future not dropped"
        );
        let e = result_of(h).expect_err("aborted");
        assert!(e.is_cancelled() && !e.is_panic(), "[{mode:?}] {e:?}");
        assert_eq!(ctx.metrics().outstanding_work, 0, "[{mode:?}]");
    });
}

#[test]
fn abort_before_first_poll_from_another_thread() {
    each_mode(|mode, ctx| {
        let (flag, dropped) = DropFlag::new();
        let polled = Arc::new(AtomicBool::new(false));
        let p = polled.clone();
        let h = ctx.spawn(async move {
            let _flag = flag;
            p.store(true, Ordering::SeqCst);
        });
        let h = thread::spawn(move || {
            h.abort();
            h
        })
        .join()
        .unwrap();
        ctx.run();
        assert!(!polled.load(Ordering::SeqCst), "[{mode:?}]");
        assert!(dropped.load(Ordering::SeqCst), "[{mode:?}]");
        assert!(result_of(h).unwrap_err().is_cancelled(), "[{mode:?}]");
    });
}

#[test]
fn abort_while_pending_on_sleep_drops_the_future() {
    each_mode(|mode, ctx| {
        let started = Arc::new(AtomicBool::new(false));
        let reached = Arc::new(AtomicBool::new(false));
        let (flag, dropped) = DropFlag::new();
        let (s, r) = (started.clone(), reached.clone());
        let h = ctx.spawn(async move {
            let _flag = flag;
            s.store(true, Ordering::SeqCst);
            ringio::time::sleep(Duration::from_secs(60)).await;
            r.store(true, Ordering::SeqCst);
        });
        // No guard: the task is the only work, so run() returns once the
        // abort has dropped it.
        let run = runner(&ctx);
        assert!(
            wait_until(PROMPT, || started.load(Ordering::SeqCst)),
            "[{mode:?}]"
        );
        thread::sleep(Duration::from_millis(20)); // the runner sleeps in the kernel
        let t = Instant::now();
        h.abort();
        assert!(
            wait_until(PROMPT, || run.is_finished()),
            "[{mode:?}] abort did not end the task (run still waiting)"
        );
        println!("[{mode:?}] abort of a sleeping task took {:?}", t.elapsed());
        run.join().unwrap();
        assert!(dropped.load(Ordering::SeqCst), "[{mode:?}]");
        assert!(!reached.load(Ordering::SeqCst), "[{mode:?}]");
        assert!(result_of(h).unwrap_err().is_cancelled(), "[{mode:?}]");
        assert_eq!(ctx.metrics().outstanding_work, 0, "[{mode:?}]");
    });
}

#[test]
fn abort_from_another_task_of_the_same_context() {
    each_mode(|mode, ctx| {
        let (flag, dropped) = DropFlag::new();
        let victim = ctx.spawn(async move {
            let _flag = flag;
            std::future::pending::<()>().await;
        });
        let out = ctx.block_on(async move {
            ringio::time::sleep(Duration::from_millis(5)).await; // victim is pending now
            let killer = ringio::spawn(async move {
                victim.abort();
                victim.await
            });
            killer.await.unwrap()
        });
        assert!(out.unwrap_err().is_cancelled(), "[{mode:?}]");
        assert!(dropped.load(Ordering::SeqCst), "[{mode:?}]");
    });
}

#[test]
fn abort_while_pending_on_pipe_read_cancels_the_read_and_the_pipe_is_reusable() {
    each_mode(|mode, ctx| {
        let (r, w) = ringio::io::pipe().unwrap();
        let (r, w) = (Arc::new(r), Arc::new(w));
        let guard = ctx.work_guard();
        let run = runner(&ctx);
        let (flag, dropped) = DropFlag::new();
        let completed = Arc::new(AtomicBool::new(false));
        let (r2, c2) = (r.clone(), completed.clone());
        let before = ctx.metrics();
        let h = ctx.spawn(async move {
            let _flag = flag;
            let (res, buf) = r2.read(vec![0u8; 64]).await;
            c2.store(true, Ordering::SeqCst);
            (res.map(|n| n as u64).unwrap_or(u64::MAX), buf)
        });
        assert!(
            wait_until(PROMPT, || ctx.metrics().ops_in_flight >= 1),
            "[{mode:?}] the read never reached the kernel"
        );
        h.abort();
        let e = result_of(h).unwrap_err();
        assert!(e.is_cancelled(), "[{mode:?}] {e}");
        assert!(dropped.load(Ordering::SeqCst), "[{mode:?}]");
        assert!(!completed.load(Ordering::SeqCst), "[{mode:?}]");
        assert!(
            wait_until(PROMPT, || ctx.metrics().ops_in_flight == 0),
            "[{mode:?}] the cancelled read is still in flight: {:?}",
            ctx.metrics()
        );
        let m = ctx.metrics();
        assert!(m.ops_cancelled > before.ops_cancelled, "[{mode:?}] {m:?}");

        // The pipe works; nothing written later is eaten by the dead read.
        let (r3, w3) = (r.clone(), w.clone());
        let h = ctx.spawn(async move {
            let (res, _) = w3.write_all(b"after abort".to_vec()).await;
            res.unwrap();
            let (res, buf) = r3.read(Vec::with_capacity(64)).await;
            buf[..res.unwrap()].to_vec()
        });
        assert_eq!(result_of(h).unwrap(), b"after abort", "[{mode:?}]");
        drop(guard);
        run.join().unwrap();
    });
}

#[test]
fn abort_while_the_task_is_being_polled_on_another_thread() {
    each_mode(|mode, ctx| {
        let in_poll = Arc::new(AtomicBool::new(false));
        let go_on = Arc::new(AtomicBool::new(false));
        let (flag, dropped) = DropFlag::new();
        let (ip, go) = (in_poll.clone(), go_on.clone());
        let h = ctx.spawn(async move {
            let _flag = flag;
            ip.store(true, Ordering::SeqCst);
            // Block this poll until the abort has been issued...
            assert!(wait_until(Duration::from_secs(5), || go.load(Ordering::SeqCst)));
            // ...then park with no waker anywhere: only the abort's own
            // wake can bring the task back.
            std::future::pending::<()>().await;
        });
        let run = runner(&ctx);
        assert!(
            wait_until(PROMPT, || in_poll.load(Ordering::SeqCst)),
            "[{mode:?}]"
        );
        h.abort();
        go_on.store(true, Ordering::SeqCst);
        assert!(
            wait_until(PROMPT, || h.is_finished()),
            "[{mode:?}] an abort issued during the poll was lost"
        );
        assert!(result_of(h).unwrap_err().is_cancelled(), "[{mode:?}]");
        assert!(dropped.load(Ordering::SeqCst), "[{mode:?}]");
        assert!(wait_until(PROMPT, || run.is_finished()), "[{mode:?}]");
        run.join().unwrap();
    });
}

#[test]
fn abort_after_completion_changes_nothing() {
    each_mode(|mode, ctx| {
        let h = ctx.spawn(async { 5 });
        ctx.run();
        assert!(h.is_finished());
        h.abort();
        assert!(h.is_finished());
        assert_eq!(result_of(h).unwrap(), 5, "[{mode:?}] abort after the end");
    });
}

#[test]
fn is_finished_tracks_the_task() {
    each_mode(|mode, ctx| {
        let h = ctx.spawn(async {
            yield_now().await;
        });
        assert!(!h.is_finished(), "[{mode:?}]");
        assert_eq!(ctx.run_one(), 1);
        assert!(!h.is_finished(), "[{mode:?}] after the first of two polls");
        assert_eq!(ctx.run_one(), 1);
        assert!(h.is_finished(), "[{mode:?}]");
        let _ = format!("{h:?}");
        ctx.restart();
        let h2 = ctx.spawn(std::future::pending::<()>());
        ctx.poll();
        assert!(!h2.is_finished());
        h2.abort();
        ctx.poll();
        assert!(h2.is_finished(), "[{mode:?}] finished after abort");
    });
}

#[test]
fn join_error_of_a_panicking_task() {
    quiet_panics("rt_tasks: boom");
    each_mode(|mode, ctx| {
        let (flag, dropped) = DropFlag::new();
        let h = ctx.spawn(async move {
            let _flag = flag;
            yield_now().await;
            panic!("rt_tasks: boom");
        });
        let h2 = ctx.spawn(async {
            let n = 7;
            panic!("rt_tasks: boom {n}");
        });
        assert_eq!(ctx.run(), 3, "[{mode:?}]");
        assert!(
            dropped.load(Ordering::SeqCst),
            "[{mode:?}] panicked future dropped"
        );
        let e = result_of(h).unwrap_err();
        assert!(e.is_panic() && !e.is_cancelled(), "[{mode:?}] {e:?}");
        assert!(e.to_string().contains("rt_tasks: boom"), "[{mode:?}] {e}");
        assert!(format!("{e:?}").contains("Panic"), "[{mode:?}] {e:?}");
        let payload = e.into_panic();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"rt_tasks: boom"));

        let e2 = result_of(h2).unwrap_err();
        let payload = e2.try_into_panic().expect("a panic");
        assert_eq!(
            payload.downcast_ref::<String>().map(String::as_str),
            Some("rt_tasks: boom 7")
        );
        assert_eq!(ctx.metrics().outstanding_work, 0, "[{mode:?}]");
    });
}

#[test]
fn join_error_of_a_cancelled_task() {
    quiet_panics("ringio: JoinError::into_panic on a cancellation");
    each_mode(|mode, ctx| {
        let h = ctx.spawn(async {});
        h.abort();
        ctx.run();
        let e = result_of(h).unwrap_err();
        assert!(e.is_cancelled() && !e.is_panic(), "[{mode:?}]");
        assert!(e.to_string().contains("cancelled"), "[{mode:?}] {e}");
        let e = e.try_into_panic().expect_err("not a panic");
        assert!(e.is_cancelled());
        let io: std::io::Error = e.into();
        assert!(io.to_string().contains("cancelled"), "{io}");

        ctx.restart();
        let h = ctx.spawn(async {});
        h.abort();
        ctx.run();
        let e = result_of(h).unwrap_err();
        let p = catch_unwind(move || e.into_panic()).expect_err("into_panic on cancel panics");
        assert!(
            panic_text(&*p).contains("cancellation"),
            "{}",
            panic_text(&*p)
        );
    });
}

#[test]
fn panicking_tasks_do_not_kill_the_runners() {
    quiet_panics("rt_tasks: task panic");
    each_mode(|mode, ctx| {
        let hits = Arc::new(AtomicUsize::new(0));
        let guard = ctx.work_guard();
        let runners: Vec<_> = (0..2).map(|_| runner(&ctx)).collect();
        let mut handles = Vec::new();
        for i in 0..100 {
            if i % 3 == 0 {
                handles.push(ctx.spawn(async move {
                    yield_now().await;
                    panic!("rt_tasks: task panic {i}");
                }));
            } else {
                let h = hits.clone();
                handles.push(ctx.spawn(async move {
                    h.fetch_add(1, Ordering::SeqCst);
                }));
            }
        }
        assert!(
            wait_until(Duration::from_secs(5), || handles
                .iter()
                .all(|h| h.is_finished())),
            "[{mode:?}] runners died"
        );
        let panics = handles
            .into_iter()
            .map(result_of)
            .filter(|r| r.as_ref().is_err_and(|e| e.is_panic()))
            .count();
        assert_eq!(panics, 34, "[{mode:?}]");
        assert_eq!(hits.load(Ordering::SeqCst), 66, "[{mode:?}]");
        // Runners are alive and still serve work.
        let (tx, rx) = std::sync::mpsc::channel();
        ctx.post(move || tx.send(()).unwrap());
        rx.recv_timeout(PROMPT).expect("runner alive after panics");
        drop(guard);
        for r in runners {
            assert!(wait_until(PROMPT, || r.is_finished()), "[{mode:?}]");
            r.join().expect("a runner thread panicked");
        }
    });
}

#[test]
fn dropping_the_join_handle_detaches_the_task() {
    each_mode(|mode, ctx| {
        let done = Arc::new(AtomicUsize::new(0));
        let d = done.clone();
        drop(ctx.spawn(async move {
            ringio::time::sleep(Duration::from_millis(10)).await;
            ringio::io::nop().await.unwrap();
            d.fetch_add(1, Ordering::SeqCst);
        }));
        // Dropped from another thread while the task is pending.
        let d = done.clone();
        let h = ctx.spawn(async move {
            ringio::time::sleep(Duration::from_millis(30)).await;
            d.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(ctx.run_one(), 1);
        assert_eq!(ctx.run_one(), 1);
        thread::spawn(move || drop(h)).join().unwrap();
        ctx.run();
        assert_eq!(
            done.load(Ordering::SeqCst),
            2,
            "[{mode:?}] detached tasks ran"
        );
    });
}

#[test]
fn output_is_dropped_with_the_handle_or_at_once_when_detached() {
    each_mode(|mode, ctx| {
        let (kept, kept_dropped) = DropFlag::new();
        let (gone, gone_dropped) = DropFlag::new();
        let h = ctx.spawn(async move { kept });
        drop(ctx.spawn(async move { gone }));
        ctx.run();
        assert!(
            gone_dropped.load(Ordering::SeqCst),
            "[{mode:?}] detached output leaked"
        );
        assert!(
            !kept_dropped.load(Ordering::SeqCst),
            "[{mode:?}] output dropped early"
        );
        drop(h);
        assert!(
            kept_dropped.load(Ordering::SeqCst),
            "[{mode:?}] unjoined output leaked"
        );
    });
}

#[test]
fn waker_outliving_its_task_is_harmless() {
    each_mode(|mode, ctx| {
        let stash: Arc<Mutex<Option<Waker>>> = Arc::default();
        let s = stash.clone();
        let h = ctx.spawn(async move {
            std::future::poll_fn(|cx| {
                *s.lock().unwrap() = Some(cx.waker().clone());
                Poll::Ready(())
            })
            .await;
        });
        assert_eq!(ctx.run(), 1);
        assert!(result_of(h).is_ok());
        let w = stash.lock().unwrap().take().unwrap();
        // Wake the finished task here and from another thread.
        w.wake_by_ref();
        let w2 = w.clone();
        thread::spawn(move || w2.wake()).join().unwrap();
        ctx.restart();
        assert_eq!(ctx.poll(), 0, "[{mode:?}] a finished task was polled again");
        assert_eq!(ctx.metrics().outstanding_work, 0);
        // And after the context is gone.
        drop(ctx);
        w.wake();
    });
}

#[test]
fn many_wakes_while_queued_coalesce_into_one_poll() {
    each_mode(|mode, ctx| {
        let polls = Arc::new(AtomicUsize::new(0));
        let p = polls.clone();
        let h = ctx.spawn(std::future::poll_fn(move |cx| {
            if p.fetch_add(1, Ordering::SeqCst) == 0 {
                // By reference, and by value from clones (also from
                // another thread).
                let clones: Vec<Waker> = (0..3).map(|_| cx.waker().clone()).collect();
                for _ in 0..10 {
                    cx.waker().wake_by_ref();
                }
                let mut clones = clones.into_iter();
                clones.next().unwrap().wake();
                let remote = clones.next().unwrap();
                thread::spawn(move || remote.wake()).join().unwrap();
                drop(clones);
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        }));
        assert_eq!(ctx.run(), 2, "[{mode:?}]");
        assert_eq!(polls.load(Ordering::SeqCst), 2, "[{mode:?}]");
        assert!(result_of(h).is_ok());
    });
}

#[test]
fn task_woken_from_another_thread_while_the_context_is_idle() {
    each_mode(|mode, ctx| {
        let stash: Arc<Mutex<Option<Waker>>> = Arc::default();
        let ready = Arc::new(AtomicBool::new(false));
        let (s, r) = (stash.clone(), ready.clone());
        let h = ctx.spawn(std::future::poll_fn(move |cx| {
            if r.load(Ordering::SeqCst) {
                Poll::Ready(3)
            } else {
                *s.lock().unwrap() = Some(cx.waker().clone());
                Poll::Pending
            }
        }));
        let run = runner(&ctx);
        assert!(wait_until(PROMPT, || stash.lock().unwrap().is_some()));
        thread::sleep(Duration::from_millis(20));
        ready.store(true, Ordering::SeqCst);
        let w = stash.lock().unwrap().take().unwrap();
        thread::spawn(move || w.wake()).join().unwrap();
        assert!(
            wait_until(PROMPT, || run.is_finished()),
            "[{mode:?}] lost wake"
        );
        assert_eq!(run.join().unwrap(), 2, "[{mode:?}]");
        assert_eq!(result_of(h).unwrap(), 3);
    });
}
