//! The Asio face of `IoContext`: counts returned by `run`, `run_one`,
//! `run_for`, `run_one_for`, `poll`, `poll_one`; `stop`/`stopped`/`restart`;
//! `post`; `work_guard`; `running_in_this_thread`; `IoContext::current` /
//! `try_current`; the free `ringio::spawn`; `block_on`; `metrics()`.
//! Every test runs on a multi-threaded and on a single-threaded context.
//!
//! Time bounds are generous and only there so that a lost wake-up fails
//! instead of hanging; lower bounds of timed waits are exact.

mod common;

use std::panic::catch_unwind;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{each_mode, quiet_panics, wait_until, yield_now, Mode};
use ringio::IoContext;

/// Upper bound for anything that should be "prompt".
const PROMPT: Duration = Duration::from_secs(2);

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

fn spawn_counting(ctx: &IoContext, hits: &Arc<AtomicUsize>) {
    let h = hits.clone();
    drop(ctx.spawn(async move {
        h.fetch_add(1, Ordering::SeqCst);
    }));
}

#[test]
fn run_on_empty_context_stops_and_returns_zero() {
    each_mode(|mode, ctx| {
        assert!(!ctx.stopped(), "[{mode:?}] a new context is not stopped");
        type RunFn = fn(&IoContext) -> usize;
        let calls: [(&str, RunFn); 6] = [
            ("run", |c| c.run()),
            ("run_one", |c| c.run_one()),
            ("run_for", |c| c.run_for(Duration::from_secs(10))),
            ("run_one_for", |c| c.run_one_for(Duration::from_secs(10))),
            ("poll", |c| c.poll()),
            ("poll_one", |c| c.poll_one()),
        ];
        for (name, call) in calls {
            ctx.restart();
            assert!(!ctx.stopped(), "[{mode:?}] restart clears stopped");
            let t = Instant::now();
            assert_eq!(call(&ctx), 0, "[{mode:?}] {name} on an empty context");
            assert!(
                t.elapsed() < PROMPT,
                "[{mode:?}] {name} on an empty context blocked for {:?}",
                t.elapsed()
            );
            assert!(ctx.stopped(), "[{mode:?}] {name} with no work calls stop()");
            // Stopped: a second call returns 0 at once as well.
            assert_eq!(call(&ctx), 0, "[{mode:?}] {name} again");
        }
    });
}

#[test]
fn run_returns_number_of_handlers_run() {
    each_mode(|mode, ctx| {
        let hits = counter();
        for _ in 0..5 {
            spawn_counting(&ctx, &hits);
        }
        for _ in 0..2 {
            let h = hits.clone();
            ctx.post(move || {
                h.fetch_add(1, Ordering::SeqCst);
            });
        }
        assert_eq!(ctx.metrics().outstanding_work, 7, "[{mode:?}]");
        assert_eq!(ctx.run(), 7, "[{mode:?}] 5 tasks + 2 posts");
        assert_eq!(hits.load(Ordering::SeqCst), 7, "[{mode:?}]");
        assert!(
            ctx.stopped(),
            "[{mode:?}] stopped after running out of work"
        );
        let m = ctx.metrics();
        assert_eq!(m.tasks_spawned, 7, "[{mode:?}] {m:?}");
        assert_eq!(m.tasks_polled, 7, "[{mode:?}] {m:?}");
        assert_eq!(m.outstanding_work, 0, "[{mode:?}] {m:?}");
    });
}

#[test]
fn run_counts_every_poll_of_a_task() {
    each_mode(|mode, ctx| {
        // 3 yields: 4 polls.
        drop(ctx.spawn(async {
            for _ in 0..3 {
                yield_now().await;
            }
        }));
        assert_eq!(
            ctx.run(),
            4,
            "[{mode:?}] a task yielding 3 times is 4 handlers"
        );
        // A task that sleeps once: polled when spawned and when the timer fires.
        ctx.restart();
        drop(ctx.spawn(ringio::time::sleep(Duration::from_millis(5))));
        assert_eq!(ctx.run(), 2, "[{mode:?}] a sleeping task is 2 handlers");
        assert_eq!(ctx.metrics().tasks_polled, 6, "[{mode:?}]");
    });
}

#[test]
fn stopped_after_running_out_of_work_until_restart() {
    each_mode(|mode, ctx| {
        let hits = counter();
        spawn_counting(&ctx, &hits);
        assert_eq!(ctx.run(), 1, "[{mode:?}]");
        assert!(ctx.stopped(), "[{mode:?}]");
        // New work on a stopped context is kept but not run...
        spawn_counting(&ctx, &hits);
        assert_eq!(ctx.run(), 0, "[{mode:?}] run on a stopped context");
        assert_eq!(ctx.poll(), 0, "[{mode:?}] poll on a stopped context");
        assert_eq!(ctx.run_one(), 0, "[{mode:?}] run_one on a stopped context");
        assert_eq!(hits.load(Ordering::SeqCst), 1, "[{mode:?}]");
        assert_eq!(ctx.metrics().outstanding_work, 1, "[{mode:?}]");
        // ...until restart.
        ctx.restart();
        assert!(!ctx.stopped(), "[{mode:?}]");
        assert_eq!(ctx.run(), 1, "[{mode:?}] after restart");
        assert_eq!(hits.load(Ordering::SeqCst), 2, "[{mode:?}]");
        assert!(ctx.stopped(), "[{mode:?}]");
    });
}

#[test]
fn run_one_runs_exactly_one_handler() {
    each_mode(|mode, ctx| {
        let hits = counter();
        for _ in 0..3 {
            spawn_counting(&ctx, &hits);
        }
        for i in 1..=3 {
            assert_eq!(ctx.run_one(), 1, "[{mode:?}] run_one #{i}");
            assert_eq!(hits.load(Ordering::SeqCst), i, "[{mode:?}]");
        }
        assert!(ctx.stopped(), "[{mode:?}] the last task ended the work");
        assert_eq!(ctx.run_one(), 0, "[{mode:?}]");
        ctx.restart();
        assert_eq!(ctx.run_one(), 0, "[{mode:?}] no work");
        assert!(ctx.stopped(), "[{mode:?}]");
    });
}

#[test]
fn run_one_blocks_until_a_handler_is_ready() {
    each_mode(|mode, ctx| {
        let _guard = ctx.work_guard();
        let (tx, rx) = mpsc::channel();
        let poster = {
            let ctx = ctx.clone();
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(30));
                ctx.post(move || tx.send(()).unwrap());
            })
        };
        let t = Instant::now();
        assert_eq!(ctx.run_one(), 1, "[{mode:?}]");
        assert!(t.elapsed() < PROMPT, "[{mode:?}] took {:?}", t.elapsed());
        rx.try_recv().expect("the posted handler ran");
        poster.join().unwrap();
        assert!(
            !ctx.stopped(),
            "[{mode:?}] the guard keeps work outstanding"
        );
    });
}

#[test]
fn poll_runs_ready_handlers_without_blocking() {
    each_mode(|mode, ctx| {
        let guard = ctx.work_guard();
        let hits = counter();
        for _ in 0..3 {
            spawn_counting(&ctx, &hits);
        }
        assert_eq!(ctx.poll(), 3, "[{mode:?}]");
        assert_eq!(hits.load(Ordering::SeqCst), 3, "[{mode:?}]");
        let t = Instant::now();
        assert_eq!(ctx.poll(), 0, "[{mode:?}] nothing ready");
        assert!(t.elapsed() < PROMPT, "[{mode:?}] poll blocked");
        assert!(!ctx.stopped(), "[{mode:?}] a guard is outstanding work");

        for _ in 0..2 {
            spawn_counting(&ctx, &hits);
        }
        assert_eq!(ctx.poll_one(), 1, "[{mode:?}]");
        assert_eq!(ctx.poll_one(), 1, "[{mode:?}]");
        assert_eq!(ctx.poll_one(), 0, "[{mode:?}]");
        assert_eq!(hits.load(Ordering::SeqCst), 5, "[{mode:?}]");

        // Handlers that become ready during the poll run in it too.
        drop(ctx.spawn(async {
            yield_now().await;
            yield_now().await;
        }));
        assert_eq!(ctx.poll(), 3, "[{mode:?}] a task yielding twice");

        // A pending timer does not make poll wait.
        drop(ctx.spawn(ringio::time::sleep(Duration::from_secs(30))));
        let t = Instant::now();
        assert_eq!(ctx.poll(), 1, "[{mode:?}] the sleep's first poll");
        assert_eq!(ctx.poll(), 0, "[{mode:?}]");
        assert_eq!(ctx.poll_one(), 0, "[{mode:?}]");
        assert!(t.elapsed() < PROMPT, "[{mode:?}] poll waited for a timer");
        drop(guard);
        assert!(!ctx.stopped(), "[{mode:?}] the sleeping task is still work");
    });
}

#[test]
fn poll_picks_up_completed_io() {
    each_mode(|mode, ctx| {
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        drop(ctx.spawn(async move {
            ringio::io::nop().await.unwrap();
            d.store(true, Ordering::SeqCst);
        }));
        // Non-blocking polls must eventually see the nop's completion.
        let start = Instant::now();
        let mut total = 0;
        while !done.load(Ordering::SeqCst) && start.elapsed() < PROMPT {
            total += ctx.poll();
            thread::sleep(Duration::from_millis(1));
        }
        assert!(
            done.load(Ordering::SeqCst),
            "[{mode:?}] poll never completed a nop"
        );
        assert_eq!(total, 2, "[{mode:?}] first poll + completion");
    });
}

#[test]
fn run_for_returns_after_its_deadline() {
    each_mode(|mode, ctx| {
        // Nothing to do but a guard: waits the whole duration, not stopped.
        let guard = ctx.work_guard();
        let d = Duration::from_millis(50);
        let t = Instant::now();
        assert_eq!(ctx.run_for(d), 0, "[{mode:?}]");
        let e = t.elapsed();
        assert!(e >= d, "[{mode:?}] run_for returned early, after {e:?}");
        assert!(e < PROMPT, "[{mode:?}] run_for overslept: {e:?}");
        assert!(
            !ctx.stopped(),
            "[{mode:?}] a deadline does not stop the context"
        );

        // A timer longer than the deadline: only the first poll runs.
        drop(ctx.spawn(ringio::time::sleep(Duration::from_millis(400))));
        let t = Instant::now();
        assert_eq!(ctx.run_for(Duration::from_millis(30)), 1, "[{mode:?}]");
        let e = t.elapsed();
        assert!(e >= Duration::from_millis(30), "[{mode:?}] early: {e:?}");
        assert!(e < Duration::from_millis(400), "[{mode:?}] late: {e:?}");
        drop(guard);
        // Then a longer run_for sees it fire and runs out of work.
        let t = Instant::now();
        assert_eq!(ctx.run_for(Duration::from_secs(10)), 1, "[{mode:?}]");
        assert!(t.elapsed() < Duration::from_secs(3), "[{mode:?}]");
        assert!(ctx.stopped(), "[{mode:?}] out of work");
    });
}

#[test]
fn run_for_returns_early_when_out_of_work() {
    each_mode(|mode, ctx| {
        let hits = counter();
        for _ in 0..3 {
            spawn_counting(&ctx, &hits);
        }
        drop(ctx.spawn(ringio::time::sleep(Duration::from_millis(20))));
        let t = Instant::now();
        assert_eq!(
            ctx.run_for(Duration::from_secs(20)),
            5,
            "[{mode:?}] 3 tasks + 2 polls of the sleeper"
        );
        let e = t.elapsed();
        assert!(e >= Duration::from_millis(20), "[{mode:?}] {e:?}");
        assert!(
            e < PROMPT,
            "[{mode:?}] run_for did not return when out of work: {e:?}"
        );
        assert!(ctx.stopped(), "[{mode:?}]");
    });
}

#[test]
fn run_one_for_waits_at_most_its_duration() {
    each_mode(|mode, ctx| {
        let _guard = ctx.work_guard();
        let d = Duration::from_millis(40);
        let t = Instant::now();
        assert_eq!(ctx.run_one_for(d), 0, "[{mode:?}]");
        let e = t.elapsed();
        assert!(e >= d && e < PROMPT, "[{mode:?}] run_one_for took {e:?}");
        assert!(!ctx.stopped(), "[{mode:?}]");

        let hits = counter();
        spawn_counting(&ctx, &hits);
        spawn_counting(&ctx, &hits);
        assert_eq!(ctx.run_one_for(Duration::from_secs(10)), 1, "[{mode:?}]");
        assert_eq!(hits.load(Ordering::SeqCst), 1, "[{mode:?}] one at most");
        assert_eq!(ctx.run_one_for(Duration::from_secs(10)), 1, "[{mode:?}]");

        drop(ctx.spawn(ringio::time::sleep(Duration::from_millis(20))));
        assert_eq!(
            ctx.run_one_for(Duration::from_secs(10)),
            1,
            "[{mode:?}] first poll"
        );
        let t = Instant::now();
        assert_eq!(
            ctx.run_one_for(Duration::from_secs(10)),
            1,
            "[{mode:?}] timer"
        );
        assert!(t.elapsed() < PROMPT, "[{mode:?}] {:?}", t.elapsed());
    });
}

#[test]
fn stop_makes_every_run_variant_return_zero_until_restart() {
    each_mode(|mode, ctx| {
        let _guard = ctx.work_guard();
        let hits = counter();
        spawn_counting(&ctx, &hits);
        ctx.stop();
        assert!(ctx.stopped(), "[{mode:?}]");
        let t = Instant::now();
        assert_eq!(ctx.run(), 0, "[{mode:?}] run");
        assert_eq!(ctx.run_one(), 0, "[{mode:?}] run_one");
        assert_eq!(ctx.run_for(Duration::from_secs(10)), 0, "[{mode:?}]");
        assert_eq!(ctx.run_one_for(Duration::from_secs(10)), 0, "[{mode:?}]");
        assert_eq!(ctx.poll(), 0, "[{mode:?}] poll");
        assert_eq!(ctx.poll_one(), 0, "[{mode:?}] poll_one");
        assert!(t.elapsed() < PROMPT, "[{mode:?}] a stopped context blocked");
        assert_eq!(hits.load(Ordering::SeqCst), 0, "[{mode:?}] nothing ran");
        assert!(ctx.stopped(), "[{mode:?}] still stopped");
        ctx.restart();
        assert!(!ctx.stopped(), "[{mode:?}]");
        assert_eq!(ctx.poll(), 1, "[{mode:?}] the kept task runs after restart");
        assert_eq!(hits.load(Ordering::SeqCst), 1, "[{mode:?}]");
        // stop/restart are idempotent.
        ctx.stop();
        ctx.stop();
        assert!(ctx.stopped());
        ctx.restart();
        ctx.restart();
        assert!(!ctx.stopped());
    });
}

#[test]
fn stop_from_a_handler_returns_run_before_the_next_handler() {
    each_mode(|mode, ctx| {
        let hits = counter();
        drop(ctx.spawn(async {
            IoContext::current().stop();
        }));
        spawn_counting(&ctx, &hits);
        assert_eq!(ctx.run(), 1, "[{mode:?}] run returns right after stop()");
        assert_eq!(hits.load(Ordering::SeqCst), 0, "[{mode:?}]");
        assert!(ctx.stopped(), "[{mode:?}]");
        ctx.restart();
        assert_eq!(ctx.run(), 1, "[{mode:?}]");
        assert_eq!(hits.load(Ordering::SeqCst), 1, "[{mode:?}]");
    });
}

#[test]
fn post_runs_the_handler_on_the_running_thread() {
    each_mode(|mode, ctx| {
        let seen = Arc::new(Mutex::new(None));
        let s = seen.clone();
        let c = ctx.clone();
        ctx.post(move || {
            *s.lock().unwrap() = Some((
                thread::current().id(),
                c.running_in_this_thread(),
                IoContext::try_current().is_some(),
            ));
        });
        assert!(
            seen.lock().unwrap().is_none(),
            "[{mode:?}] post does not run inline"
        );
        assert_eq!(ctx.run(), 1, "[{mode:?}]");
        let (tid, running, current) = seen.lock().unwrap().take().expect("handler ran");
        assert_eq!(tid, thread::current().id(), "[{mode:?}]");
        assert!(running, "[{mode:?}] running_in_this_thread inside post");
        assert!(current, "[{mode:?}] try_current inside post");
    });
}

#[test]
fn post_handlers_run_in_order_and_can_post_more() {
    each_mode(|mode, ctx| {
        let order = Arc::new(Mutex::new(Vec::new()));
        for i in 0..5 {
            let o = order.clone();
            let c = ctx.clone();
            ctx.post(move || {
                o.lock().unwrap().push(i);
                if i == 4 {
                    let o = o.clone();
                    c.post(move || o.lock().unwrap().push(5));
                }
            });
        }
        assert_eq!(ctx.run(), 6, "[{mode:?}]");
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4, 5], "[{mode:?}]");
    });
}

#[test]
fn panicking_post_does_not_kill_the_runner() {
    quiet_panics("rt_run: posted boom");
    each_mode(|mode, ctx| {
        let hits = counter();
        ctx.post(|| panic!("rt_run: posted boom"));
        let h = hits.clone();
        ctx.post(move || {
            h.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(ctx.run(), 2, "[{mode:?}]");
        assert_eq!(hits.load(Ordering::SeqCst), 1, "[{mode:?}]");
        assert_eq!(ctx.metrics().outstanding_work, 0, "[{mode:?}]");
        // Still usable.
        ctx.restart();
        assert_eq!(ctx.block_on(async { 5 }), 5, "[{mode:?}]");
    });
}

#[test]
fn work_guard_keeps_run_waiting_until_stopped_from_another_thread() {
    each_mode(|mode, ctx| {
        let guard = ctx.work_guard();
        assert_eq!(ctx.metrics().outstanding_work, 1, "[{mode:?}]");
        let runner = {
            let ctx = ctx.clone();
            thread::spawn(move || ctx.run())
        };
        thread::sleep(Duration::from_millis(100));
        assert!(
            !runner.is_finished(),
            "[{mode:?}] run returned despite the guard"
        );
        let t = Instant::now();
        ctx.stop();
        assert!(
            wait_until(PROMPT, || runner.is_finished()),
            "[{mode:?}] stop() did not wake the runner"
        );
        assert_eq!(runner.join().unwrap(), 0, "[{mode:?}]");
        println!("[{mode:?}] stop -> run returned in {:?}", t.elapsed());
        drop(guard);
        assert_eq!(ctx.metrics().outstanding_work, 0, "[{mode:?}]");
    });
}

#[test]
fn dropping_the_last_work_guard_on_another_thread_ends_run() {
    each_mode(|mode, ctx| {
        let guard = ctx.work_guard();
        let guard2 = ctx.work_guard();
        let runner = {
            let ctx = ctx.clone();
            thread::spawn(move || ctx.run())
        };
        thread::sleep(Duration::from_millis(50));
        drop(guard);
        thread::sleep(Duration::from_millis(50));
        assert!(!runner.is_finished(), "[{mode:?}] one guard is still alive");
        thread::spawn(move || drop(guard2)).join().unwrap();
        assert!(
            wait_until(PROMPT, || runner.is_finished()),
            "[{mode:?}] the end of work did not wake the runner"
        );
        assert_eq!(runner.join().unwrap(), 0, "[{mode:?}]");
        assert!(ctx.stopped(), "[{mode:?}]");
    });
}

#[test]
fn work_guard_run_counts_tasks_spawned_from_outside_while_running() {
    each_mode(|mode, ctx| {
        let guard = ctx.work_guard();
        let runner = {
            let ctx = ctx.clone();
            thread::spawn(move || ctx.run())
        };
        let hits = counter();
        for i in 0..20 {
            if i % 2 == 0 {
                spawn_counting(&ctx, &hits);
            } else {
                let h = hits.clone();
                ctx.post(move || {
                    h.fetch_add(1, Ordering::SeqCst);
                });
            }
        }
        assert!(
            wait_until(PROMPT, || hits.load(Ordering::SeqCst) == 20),
            "[{mode:?}] only {} of 20 ran",
            hits.load(Ordering::SeqCst)
        );
        drop(guard);
        assert!(wait_until(PROMPT, || runner.is_finished()), "[{mode:?}]");
        assert_eq!(runner.join().unwrap(), 20, "[{mode:?}]");
    });
}

#[test]
fn running_in_this_thread_inside_and_outside() {
    each_mode(|mode, ctx| {
        let other = mode.build();
        assert!(!ctx.running_in_this_thread(), "[{mode:?}] outside");
        let c = ctx.clone();
        let o = other.clone();
        let inside =
            ctx.spawn(async move { (c.running_in_this_thread(), o.running_in_this_thread()) });
        let (seen_from_outside, stop_tx) = {
            // While the context runs on this thread, another thread is not running it.
            let ctx = ctx.clone();
            let (tx, rx) = mpsc::channel::<()>();
            let (stx, srx) = mpsc::channel::<bool>();
            thread::spawn(move || {
                rx.recv().unwrap();
                stx.send(ctx.running_in_this_thread()).unwrap();
            });
            (srx, tx)
        };
        let c = ctx.clone();
        let (in_task, other_in_task) = ctx.block_on(async move {
            assert!(c.running_in_this_thread(), "inside block_on");
            stop_tx.send(()).unwrap();
            inside.await.unwrap()
        });
        assert!(in_task, "[{mode:?}] inside a task");
        assert!(!other_in_task, "[{mode:?}] another context inside a task");
        assert!(
            !seen_from_outside.recv().unwrap(),
            "[{mode:?}] another thread"
        );
        assert!(!ctx.running_in_this_thread(), "[{mode:?}] after block_on");
    });
}

#[test]
fn current_and_try_current_outside_a_context() {
    quiet_panics("ringio: IoContext::current() called outside");
    assert!(IoContext::try_current().is_none());
    let err = catch_unwind(IoContext::current).expect_err("current() outside must panic");
    let msg = common::panic_text(&*err);
    assert!(
        msg.contains("outside a running IoContext"),
        "unclear panic message: {msg}"
    );
}

#[test]
fn current_inside_tasks_handlers_and_block_on_is_the_running_context() {
    each_mode(|mode, ctx| {
        let spawned_before = ctx.metrics().tasks_spawned;
        // Spawning through current() lands on this context.
        let out = ctx.block_on(async {
            let cur = IoContext::current();
            assert!(cur.running_in_this_thread());
            let inner = cur.spawn(async {
                let again = IoContext::try_current().expect("inside a task");
                again.spawn(async { 21 }).await.unwrap() * 2
            });
            inner.await.unwrap()
        });
        assert_eq!(out, 42, "[{mode:?}]");
        assert_eq!(
            ctx.metrics().tasks_spawned,
            spawned_before + 2,
            "[{mode:?}]"
        );
        assert!(
            IoContext::try_current().is_none(),
            "[{mode:?}] after block_on"
        );
    });
}

#[test]
fn current_is_the_innermost_of_nested_block_ons() {
    each_mode(|mode, outer| {
        let inner = mode.build();
        let inner2 = inner.clone();
        let o = outer.clone();
        outer.block_on(async move {
            let before = inner2.metrics().tasks_spawned;
            inner2.block_on(async {
                // Innermost is `inner`: spawning via current() lands there.
                let cur = IoContext::current();
                cur.spawn(async {}).await.unwrap();
                assert!(inner2.running_in_this_thread());
                assert!(o.running_in_this_thread(), "outer frame still active");
            });
            assert_eq!(inner2.metrics().tasks_spawned, before + 1);
            let outer_before = o.metrics().tasks_spawned;
            IoContext::current().spawn(async {}).await.unwrap();
            assert_eq!(o.metrics().tasks_spawned, outer_before + 1);
            assert!(!inner2.running_in_this_thread(), "[{mode:?}]");
        });
    });
}

#[test]
fn free_spawn_inside_and_outside() {
    quiet_panics("ringio::spawn called outside");
    each_mode(|mode, ctx| {
        let out = ctx.block_on(async {
            let a = ringio::spawn(async { 1 });
            let b = ringio::spawn(async {
                let c = ringio::spawn(async { 10 });
                c.await.unwrap() + 100
            });
            a.await.unwrap() + b.await.unwrap()
        });
        assert_eq!(out, 111, "[{mode:?}]");
        // From a posted handler too.
        let hits = counter();
        let h = hits.clone();
        ctx.restart();
        ctx.post(move || {
            drop(ringio::spawn(async move {
                h.fetch_add(1, Ordering::SeqCst);
            }))
        });
        assert_eq!(ctx.run(), 2, "[{mode:?}]");
        assert_eq!(hits.load(Ordering::SeqCst), 1, "[{mode:?}]");
    });
    let err = catch_unwind(|| drop(ringio::spawn(async {}))).expect_err("spawn outside must panic");
    let msg = common::panic_text(&*err);
    assert!(
        msg.contains("outside a running IoContext"),
        "unclear: {msg}"
    );
}

#[test]
fn block_on_returns_non_send_output_and_runs_other_tasks() {
    each_mode(|mode, ctx| {
        let hits = counter();
        for _ in 0..10 {
            spawn_counting(&ctx, &hits);
        }
        let rc = ctx.block_on(async {
            let local = Rc::new(5);
            ringio::time::sleep(Duration::from_millis(5)).await;
            local
        });
        assert_eq!(*rc, 5, "[{mode:?}]");
        assert_eq!(
            hits.load(Ordering::SeqCst),
            10,
            "[{mode:?}] spawned tasks ran meanwhile"
        );
    });
}

#[test]
fn block_on_keeps_going_on_a_stopped_context() {
    each_mode(|mode, ctx| {
        ctx.stop();
        let t = Instant::now();
        let v = ctx.block_on(async {
            ringio::time::sleep(Duration::from_millis(10)).await;
            ringio::io::nop().await.unwrap();
            ringio::spawn(async { 3 }).await.unwrap()
        });
        assert_eq!(v, 3, "[{mode:?}]");
        assert!(t.elapsed() < PROMPT, "[{mode:?}]");
        // And a stop() from a task inside block_on does not end block_on.
        let v = ctx.block_on(async {
            IoContext::current().stop();
            ringio::time::sleep(Duration::from_millis(5)).await;
            4
        });
        assert_eq!(v, 4, "[{mode:?}]");
    });
}

#[test]
fn block_on_woken_from_another_thread() {
    each_mode(|mode, ctx| {
        for _ in 0..20 {
            let sig = common::Signal::new();
            let s = sig.clone();
            let firer = thread::spawn(move || {
                assert!(wait_until(PROMPT, || s.has_waiter()));
                thread::sleep(Duration::from_millis(1));
                s.fire();
            });
            let t = Instant::now();
            ctx.block_on(sig.wait());
            assert!(t.elapsed() < PROMPT, "[{mode:?}] lost wake of block_on");
            firer.join().unwrap();
        }
    });
}

#[test]
fn metrics_counters_move_as_expected() {
    each_mode(|mode, ctx| {
        let m0 = ctx.metrics();
        assert_eq!(m0.tasks_polled, 0, "[{mode:?}] {m0:?}");
        assert_eq!(m0.tasks_spawned, 0, "[{mode:?}] {m0:?}");
        assert_eq!(m0.timers_fired, 0, "[{mode:?}] {m0:?}");
        assert_eq!(m0.outstanding_work, 0, "[{mode:?}] {m0:?}");
        assert_eq!(m0.ops_in_flight, 0, "[{mode:?}] {m0:?}");
        assert_eq!(m0.ops_cancelled, 0, "[{mode:?}] {m0:?}");

        // Spawned but not run: outstanding, not polled.
        for _ in 0..3 {
            drop(ctx.spawn(async {}));
        }
        let g = ctx.work_guard();
        let m = ctx.metrics();
        assert_eq!(
            (m.tasks_spawned, m.tasks_polled, m.outstanding_work),
            (3, 0, 4),
            "[{mode:?}]"
        );
        drop(g);
        assert_eq!(ctx.run(), 3, "[{mode:?}]");
        let m = ctx.metrics();
        assert_eq!(
            (m.tasks_polled, m.outstanding_work),
            (3, 0),
            "[{mode:?}] {m:?}"
        );

        // A sleep: a timer fires and the runner waits in the kernel.
        ctx.restart();
        drop(ctx.spawn(ringio::time::sleep(Duration::from_millis(5))));
        ctx.run();
        let m1 = ctx.metrics();
        assert!(m1.timers_fired > m.timers_fired, "[{mode:?}] {m1:?}");
        assert!(m1.leader_waits > m.leader_waits, "[{mode:?}] {m1:?}");
        assert!(m1.enter_calls > m.enter_calls, "[{mode:?}] {m1:?}");
        assert_eq!(m1.tasks_polled, 5, "[{mode:?}] {m1:?}");

        // A nop: an SQE goes in, a CQE comes back.
        ctx.block_on(async { ringio::io::nop().await.unwrap() });
        let m2 = ctx.metrics();
        assert!(m2.sqes_submitted > m1.sqes_submitted, "[{mode:?}] {m2:?}");
        assert!(m2.cqes_reaped > m1.cqes_reaped, "[{mode:?}] {m2:?}");
        assert!(m2.enter_calls > m1.enter_calls, "[{mode:?}] {m2:?}");
        assert_eq!(m2.ops_in_flight, 0, "[{mode:?}] {m2:?}");
        assert_eq!(m2.outstanding_work, 0, "[{mode:?}] {m2:?}");
    });
}

#[test]
fn metrics_tasks_polled_inside_a_handler_counts_this_thread() {
    each_mode(|mode, ctx| {
        let seen = Arc::new(Mutex::new(Vec::new()));
        for _ in 0..5 {
            let s = seen.clone();
            drop(ctx.spawn(async move {
                let n = IoContext::current().metrics().tasks_polled;
                s.lock().unwrap().push(n);
            }));
        }
        assert_eq!(ctx.run(), 5, "[{mode:?}]");
        assert_eq!(*seen.lock().unwrap(), vec![1, 2, 3, 4, 5], "[{mode:?}]");
    });
}

#[test]
fn metrics_wakeups_count_cross_thread_wakes_of_a_sleeping_runner() {
    each_mode(|mode, ctx| {
        let guard = ctx.work_guard();
        let runner = {
            let ctx = ctx.clone();
            thread::spawn(move || ctx.run())
        };
        let before = ctx.metrics();
        let hits = counter();
        for i in 1..=5 {
            // Let the runner fall asleep in the kernel, then wake it.
            thread::sleep(Duration::from_millis(30));
            let h = hits.clone();
            ctx.post(move || {
                h.fetch_add(1, Ordering::SeqCst);
            });
            assert!(
                wait_until(PROMPT, || hits.load(Ordering::SeqCst) == i),
                "[{mode:?}] lost wake"
            );
        }
        let after = ctx.metrics();
        assert!(
            after.wakeups > before.wakeups,
            "[{mode:?}] no wake-up counted: {before:?} -> {after:?}"
        );
        drop(guard);
        assert_eq!(runner.join().unwrap(), 5, "[{mode:?}]");
    });
}

#[test]
fn many_contexts_in_one_thread_are_independent() {
    let a = Mode::Multi.build();
    let b = Mode::Single.build();
    let hits_a = counter();
    let hits_b = counter();
    spawn_counting(&a, &hits_a);
    spawn_counting(&b, &hits_b);
    spawn_counting(&b, &hits_b);
    assert_eq!(b.run(), 2);
    assert_eq!(hits_a.load(Ordering::SeqCst), 0, "running b does not run a");
    assert!(!a.stopped(), "b running out of work does not stop a");
    assert_eq!(a.run(), 1);
    assert_eq!(hits_a.load(Ordering::SeqCst), 1);
}

#[test]
fn public_types_are_send_sync_clone_and_debug() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<IoContext>();
    send_sync::<ringio::WorkGuard>();
    send_sync::<ringio::JoinHandle<String>>();
    send_sync::<ringio::JoinError>();
    send_sync::<ringio::Builder>();
    send_sync::<ringio::Metrics>();
    for builder in [
        ringio::Builder::new(),
        ringio::Builder::default(),
        IoContext::builder(),
    ] {
        let ctx = builder.build().unwrap();
        let copy = ctx.clone();
        let guard = copy.work_guard();
        assert!(!format!("{ctx:?}").is_empty());
        assert!(!format!("{guard:?}").is_empty());
        let m = ctx.metrics();
        assert_eq!(m.clone(), m);
        assert_eq!(
            m.outstanding_work, 1,
            "a guard taken through a clone counts"
        );
        drop(guard);
        assert!(ctx.stopped(), "releasing the last work stops the context");
        ctx.restart();
        // A clone is the same context: work spawned through one runs on the other.
        let h = copy.spawn(async { 1 });
        assert_eq!(ctx.run(), 1);
        assert!(h.is_finished());
    }
}
