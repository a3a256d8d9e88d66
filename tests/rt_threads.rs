//! Several threads and one context: `stop()` waking every runner, many
//! runners over many tasks (each runs exactly once), cross-thread spawn
//! storms, cross-thread wake latency into an idle context, ping-pong wakes
//! between contexts on different threads, leader/follower hand-off, and a
//! single-threaded context shared by threads one at a time.
//!
//! Time bounds are only there so a lost wake-up fails instead of hanging;
//! the latency figures are printed for information.

mod common;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::task::{Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use common::{each_mode, median_max, spawn_runners, wait_until, watchdog, yield_now, Mode, Signal};

const PROMPT: Duration = Duration::from_secs(2);

fn slots(n: usize) -> Arc<Vec<AtomicU32>> {
    Arc::new((0..n).map(|_| AtomicU32::new(0)).collect())
}

fn assert_each_once(mode: Mode, what: &str, slots: &[AtomicU32]) {
    let bad: Vec<(usize, u32)> = slots
        .iter()
        .enumerate()
        .map(|(i, s)| (i, s.load(Ordering::SeqCst)))
        .filter(|&(_, v)| v != 1)
        .take(10)
        .collect();
    assert!(
        bad.is_empty(),
        "[{mode:?}] {what}: tasks not run exactly once (index, runs): {bad:?}"
    );
}

#[test]
fn stop_from_another_thread_wakes_every_runner_at_once() {
    each_mode(|mode, ctx| {
        for round in 0..3 {
            ctx.restart();
            let guard = ctx.work_guard();
            let started = Arc::new(Barrier::new(4));
            let (tx, rx) = mpsc::channel();
            let runners: Vec<_> = (0..3)
                .map(|i| {
                    let ctx = ctx.clone();
                    let started = started.clone();
                    let tx = tx.clone();
                    thread::spawn(move || {
                        started.wait();
                        // Mix the blocking variants: all must return.
                        let n = match i {
                            0 => ctx.run(),
                            1 => ctx.run_for(Duration::from_secs(60)),
                            _ => ctx.run_one(),
                        };
                        tx.send(Instant::now()).unwrap();
                        n
                    })
                })
                .collect();
            started.wait();
            // Let all three fall asleep (leader in the kernel, followers on
            // the condition variable, or waiting for the single-threaded
            // runner lock).
            thread::sleep(Duration::from_millis(100));
            assert!(
                runners.iter().all(|r| !r.is_finished()),
                "[{mode:?}] a runner returned before stop()"
            );
            let t = Instant::now();
            ctx.stop();
            for _ in 0..3 {
                let when = rx
                    .recv_timeout(PROMPT)
                    .unwrap_or_else(|_| panic!("[{mode:?}] round {round}: a runner missed stop()"));
                assert!(when.duration_since(t) < PROMPT);
            }
            println!(
                "[{mode:?}] round {round}: all 3 runners out {:?} after stop()",
                t.elapsed()
            );
            for r in runners {
                assert_eq!(r.join().unwrap(), 0, "[{mode:?}]");
            }
            drop(guard);
        }
    });
}

#[test]
fn four_threads_run_100k_tasks_each_exactly_once() {
    watchdog(Duration::from_secs(60), || {
        const N: usize = 100_000;
        let ctx = Mode::Multi.build();
        let ran = slots(N);
        for i in 0..N {
            let ran = ran.clone();
            drop(ctx.spawn(async move {
                ran[i].fetch_add(1, Ordering::SeqCst);
            }));
        }
        assert_eq!(ctx.metrics().outstanding_work, N as u64);
        let go = Arc::new(Barrier::new(4));
        let t = Instant::now();
        let runners: Vec<_> = (0..4)
            .map(|_| {
                let ctx = ctx.clone();
                let go = go.clone();
                thread::spawn(move || {
                    go.wait();
                    ctx.run()
                })
            })
            .collect();
        let counts: Vec<usize> = runners.into_iter().map(|r| r.join().unwrap()).collect();
        println!(
            "100k tasks on 4 threads: {:?}, per thread {counts:?}",
            t.elapsed()
        );
        assert_eq!(counts.iter().sum::<usize>(), N, "handlers run: {counts:?}");
        assert_each_once(Mode::Multi, "100k", &ran);
        let m = ctx.metrics();
        assert_eq!(m.tasks_polled, N as u64, "{m:?}");
        assert_eq!(m.outstanding_work, 0, "{m:?}");
    });
}

#[test]
fn four_threads_run_tasks_that_yield_and_spawn_children() {
    watchdog(Duration::from_secs(60), || {
        // 1000 parents, each spawning 20 children that yield once; the
        // parent awaits them all. Polls: children 2 each; a parent is
        // polled once, then once per wake by a child that finished.
        const P: usize = 1000;
        const C: usize = 20;
        let ctx = Mode::Multi.build();
        let ran = slots(P * C);
        let guard = ctx.work_guard();
        let runners: Vec<_> = spawn_runners(&ctx, 4);
        let parents: Vec<_> = (0..P)
            .map(|p| {
                let ran = ran.clone();
                ctx.spawn(async move {
                    let kids: Vec<_> = (0..C)
                        .map(|c| {
                            let ran = ran.clone();
                            ringio::spawn(async move {
                                yield_now().await;
                                ran[p * C + c].fetch_add(1, Ordering::SeqCst);
                                c
                            })
                        })
                        .collect();
                    let mut sum = 0;
                    for k in kids {
                        sum += k.await.unwrap();
                    }
                    sum
                })
            })
            .collect();
        let out = watchdog(Duration::from_secs(30), {
            let ctx = ctx.clone();
            move || {
                ctx.block_on(async move {
                    let mut all = Vec::new();
                    for p in parents {
                        all.push(p.await.unwrap());
                    }
                    all
                })
            }
        });
        assert!(out.iter().all(|&s| s == (0..C).sum::<usize>()));
        drop(guard);
        let total: usize = runners.into_iter().map(|r| r.join().unwrap()).sum();
        assert_each_once(Mode::Multi, "children", &ran);
        // Each child: 2 polls; each parent: at least 1. The block_on thread
        // runs handlers too, so the runners' counts are only a part.
        let m = ctx.metrics();
        assert!(m.tasks_polled >= (P * C * 2 + P) as u64, "only {m:?}");
        assert!(total as u64 <= m.tasks_polled, "{total} > {m:?}");
        assert_eq!(m.outstanding_work, 0);
    });
}

#[test]
fn cross_thread_spawn_storm_into_running_context() {
    each_mode(|mode, ctx| {
        const SPAWNERS: usize = 4;
        const EACH: usize = 5_000;
        let ran = slots(SPAWNERS * EACH);
        let done = Arc::new(AtomicUsize::new(0));
        let guard = ctx.work_guard();
        let runners: Vec<_> = spawn_runners(&ctx, 2);
        let go = Arc::new(Barrier::new(SPAWNERS));
        let spawners: Vec<_> = (0..SPAWNERS)
            .map(|s| {
                let (ctx, ran, done, go) = (ctx.clone(), ran.clone(), done.clone(), go.clone());
                thread::spawn(move || {
                    go.wait();
                    for i in 0..EACH {
                        let idx = s * EACH + i;
                        let (ran, done) = (ran.clone(), done.clone());
                        let f = move || {
                            ran[idx].fetch_add(1, Ordering::SeqCst);
                            done.fetch_add(1, Ordering::SeqCst);
                        };
                        if i % 2 == 0 {
                            ctx.post(f);
                        } else {
                            drop(ctx.spawn(async move { f() }));
                        }
                        if i % 1000 == 999 {
                            // Let the runners catch up and go idle now and then.
                            thread::sleep(Duration::from_millis(1));
                        }
                    }
                })
            })
            .collect();
        for s in spawners {
            s.join().unwrap();
        }
        let total = SPAWNERS * EACH;
        assert!(
            wait_until(Duration::from_secs(10), || done.load(Ordering::SeqCst)
                == total),
            "[{mode:?}] {} of {total} ran: lost",
            done.load(Ordering::SeqCst)
        );
        drop(guard);
        let mut handlers = 0;
        for r in runners {
            assert!(
                wait_until(PROMPT, || r.is_finished()),
                "[{mode:?}] runner stuck"
            );
            handlers += r.join().unwrap();
        }
        assert_eq!(handlers, total, "[{mode:?}] handlers run");
        assert_each_once(mode, "storm", &ran);
        assert_eq!(ctx.metrics().tasks_spawned, total as u64, "[{mode:?}]");
    });
}

#[test]
fn cross_thread_spawn_storm_before_anyone_runs() {
    each_mode(|mode, ctx| {
        const SPAWNERS: usize = 4;
        const EACH: usize = 2_500;
        let ran = slots(SPAWNERS * EACH);
        let spawners: Vec<_> = (0..SPAWNERS)
            .map(|s| {
                let (ctx, ran) = (ctx.clone(), ran.clone());
                thread::spawn(move || {
                    for i in 0..EACH {
                        let ran = ran.clone();
                        drop(ctx.spawn(async move {
                            ran[s * EACH + i].fetch_add(1, Ordering::SeqCst);
                        }));
                    }
                })
            })
            .collect();
        for s in spawners {
            s.join().unwrap();
        }
        assert_eq!(ctx.run(), SPAWNERS * EACH, "[{mode:?}]");
        assert_each_once(mode, "pre-run storm", &ran);
    });
}

#[test]
fn spawn_storm_from_tasks_of_another_context() {
    // Tasks of context A (on its own thread) spawn onto context B (running
    // on another thread) and await the handles: cross-context joins.
    for (ma, mb) in [
        (Mode::Multi, Mode::Single),
        (Mode::Single, Mode::Multi),
        (Mode::Single, Mode::Single),
    ] {
        watchdog(Duration::from_secs(20), move || {
            let a = ma.build();
            let b = mb.build();
            let guard_b = b.work_guard();
            let runner_b = {
                let b = b.clone();
                thread::spawn(move || b.run())
            };
            let b2 = b.clone();
            let sum = a.block_on(async move {
                let handles: Vec<_> = (0..2000u64).map(|i| b2.spawn(async move { i })).collect();
                let mut sum = 0;
                for h in handles {
                    sum += h.await.unwrap();
                }
                sum
            });
            assert_eq!(sum, (0..2000u64).sum::<u64>(), "[{ma:?} -> {mb:?}]");
            drop(guard_b);
            assert_eq!(runner_b.join().unwrap(), 2000, "[{ma:?} -> {mb:?}]");
        });
    }
}

/// Latency from a post (or a waker) on another thread until the handler
/// runs, into a runner that is idle in `run()` with a work guard.
#[test]
fn cross_thread_wake_latency_into_idle_context() {
    each_mode(|mode, ctx| {
        const SAMPLES: usize = 100;
        let guard = ctx.work_guard();
        let runner = {
            let ctx = ctx.clone();
            thread::spawn(move || ctx.run())
        };
        // post() from another thread.
        let mut post_lat = Vec::with_capacity(SAMPLES);
        for i in 0..SAMPLES {
            thread::sleep(Duration::from_millis(2)); // let the runner go idle
            let (tx, rx) = mpsc::channel();
            let t0 = Instant::now();
            ctx.post(move || tx.send(t0.elapsed()).unwrap());
            let lat = rx
                .recv_timeout(Duration::from_secs(5))
                .unwrap_or_else(|_| panic!("[{mode:?}] post #{i} never ran: lost wake-up"));
            post_lat.push(lat);
        }
        // A task's waker woken from another thread.
        let mut wake_lat = Vec::with_capacity(SAMPLES);
        for i in 0..SAMPLES {
            let sig = Signal::new();
            let (tx, rx) = mpsc::channel();
            let s = sig.clone();
            let t0 = Arc::new(Mutex::new(None::<Instant>));
            let t0c = t0.clone();
            drop(ctx.spawn(async move {
                s.wait().await;
                let t = t0c.lock().unwrap().expect("fired");
                tx.send(t.elapsed()).unwrap();
            }));
            assert!(
                wait_until(PROMPT, || sig.has_waiter()),
                "[{mode:?}] task never polled"
            );
            thread::sleep(Duration::from_millis(2));
            *t0.lock().unwrap() = Some(Instant::now());
            sig.fire();
            let lat = rx
                .recv_timeout(Duration::from_secs(5))
                .unwrap_or_else(|_| panic!("[{mode:?}] wake #{i} never ran: lost wake-up"));
            wake_lat.push(lat);
        }
        drop(guard);
        assert!(wait_until(PROMPT, || runner.is_finished()), "[{mode:?}]");
        runner.join().unwrap();
        let (pm, px) = median_max(&mut post_lat);
        let (wm, wx) = median_max(&mut wake_lat);
        println!("[{mode:?}] cross-thread post -> handler: median {pm:?}, max {px:?}");
        println!("[{mode:?}] cross-thread wake -> poll:    median {wm:?}, max {wx:?}");
        let cap = Duration::from_millis(200);
        assert!(
            px < cap,
            "[{mode:?}] post latency max {px:?} (median {pm:?})"
        );
        assert!(
            wx < cap,
            "[{mode:?}] wake latency max {wx:?} (median {wm:?})"
        );
    });
}

/// A counter a task can await (`reach(n)`), bumped from any thread.
#[derive(Default)]
struct Turn {
    state: Mutex<(u64, Option<Waker>)>,
}

impl Turn {
    fn bump(&self) {
        let w = {
            let mut g = self.state.lock().unwrap();
            g.0 += 1;
            g.1.take()
        };
        if let Some(w) = w {
            w.wake();
        }
    }

    fn reach(&self, n: u64) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            let mut g = self.state.lock().unwrap();
            if g.0 >= n {
                Poll::Ready(())
            } else {
                g.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        })
    }
}

#[test]
fn ping_pong_between_contexts_on_two_threads_loses_no_wake() {
    const ROUNDS: u64 = 2_000;
    for (ma, mb) in [
        (Mode::Multi, Mode::Multi),
        (Mode::Single, Mode::Single),
        (Mode::Multi, Mode::Single),
    ] {
        watchdog(Duration::from_secs(30), move || {
            let ping = Arc::new(Turn::default());
            let pong = Arc::new(Turn::default());
            let a = ma.build();
            let b = mb.build();
            let t = Instant::now();
            let tb = {
                let (ping, pong) = (ping.clone(), pong.clone());
                thread::spawn(move || {
                    let h = b.spawn(async move {
                        for i in 1..=ROUNDS {
                            ping.reach(i).await;
                            pong.bump();
                        }
                    });
                    b.run();
                    b.block_on(h).unwrap();
                })
            };
            let h = a.spawn(async move {
                for i in 1..=ROUNDS {
                    ping.bump();
                    pong.reach(i).await;
                }
            });
            a.run();
            a.block_on(h).unwrap();
            tb.join().unwrap();
            println!(
                "[{ma:?} <-> {mb:?}] {ROUNDS} round trips in {:?} ({:?}/trip)",
                t.elapsed(),
                t.elapsed() / ROUNDS as u32
            );
        });
    }
}

#[test]
fn a_blocked_handler_does_not_hold_up_ready_work_on_other_runners() {
    watchdog(Duration::from_secs(20), || {
        let ctx = Mode::Multi.build();
        let guard = ctx.work_guard();
        let runners: Vec<_> = spawn_runners(&ctx, 2);
        thread::sleep(Duration::from_millis(50));
        for round in 0..5 {
            let (tx, rx) = mpsc::channel::<()>();
            let (btx, brx) = mpsc::channel::<bool>();
            let c = ctx.clone();
            // A blocks its runner until B (posted later) has run elsewhere.
            ctx.post(move || {
                c.post(move || tx.send(()).unwrap());
                let ok = rx.recv_timeout(Duration::from_secs(3)).is_ok();
                btx.send(ok).unwrap();
            });
            let ok = brx.recv_timeout(Duration::from_secs(10)).unwrap();
            assert!(
                ok,
                "round {round}: a handler posted while another blocks its runner did not \
                 run on the other (idle) runner"
            );
        }
        drop(guard);
        for r in runners {
            r.join().unwrap();
        }
    });
}

/// Two handlers posted back to back while both runners of a multi-threaded
/// context are idle (one leader in the kernel, one follower on the condition
/// variable) must run at the same time: the first push notifies the
/// follower, and the second, arriving before that follower has woken, must
/// not be left to it alone while the leader sleeps on.
#[test]
fn burst_of_two_posts_runs_on_both_idle_runners_at_once() {
    watchdog(Duration::from_secs(30), || {
        let ctx = Mode::Multi.build();
        let guard = ctx.work_guard();
        let runners: Vec<_> = spawn_runners(&ctx, 2);
        let mut alone = Vec::new();
        let mut threads = std::collections::HashSet::new();
        for round in 0..10 {
            thread::sleep(Duration::from_millis(20)); // both runners idle again
            let running = Arc::new(AtomicUsize::new(0));
            let (tx, rx) = mpsc::channel();
            for _ in 0..2 {
                let (running, tx) = (running.clone(), tx.clone());
                ctx.post(move || {
                    running.fetch_add(1, Ordering::SeqCst);
                    // Wait (bounded) for the other handler to run alongside.
                    let together = wait_until(Duration::from_millis(500), || {
                        running.load(Ordering::SeqCst) >= 2
                    });
                    tx.send((together, thread::current().id())).unwrap();
                });
            }
            let a = rx
                .recv_timeout(Duration::from_secs(10))
                .expect("handler lost");
            let b = rx
                .recv_timeout(Duration::from_secs(10))
                .expect("handler lost");
            threads.insert(a.1);
            threads.insert(b.1);
            if !(a.0 && b.0) {
                alone.push(round);
            }
        }
        drop(guard);
        let counts: Vec<usize> = runners.into_iter().map(|r| r.join().unwrap()).collect();
        assert_eq!(counts.iter().sum::<usize>(), 20);
        assert!(
            alone.is_empty(),
            "rounds {alone:?} of 10: two ready handlers ran one after the other on one \
             runner while the other runner stayed asleep (handlers per runner: {counts:?}, \
             threads used: {})",
            threads.len()
        );
    });
}

#[test]
fn single_threaded_context_runs_on_one_thread_at_a_time() {
    watchdog(Duration::from_secs(20), || {
        let ctx = Mode::Single.build();
        let inside = Arc::new(AtomicBool::new(false));
        let overlaps = Arc::new(AtomicUsize::new(0));
        let polls = Arc::new(AtomicUsize::new(0));
        let threads_seen = Arc::new(Mutex::new(std::collections::HashSet::new()));
        let guard = ctx.work_guard();
        let runners: Vec<_> = (0..3)
            .map(|_| {
                let ctx = ctx.clone();
                thread::spawn(move || {
                    // Alternate run_for slices so the context changes hands.
                    let mut n = 0;
                    let start = Instant::now();
                    while !ctx.stopped() && start.elapsed() < Duration::from_secs(10) {
                        n += ctx.run_for(Duration::from_millis(3));
                        thread::yield_now();
                    }
                    n
                })
            })
            .collect();
        const TASKS: usize = 300;
        const YIELDS: usize = 10;
        for _ in 0..TASKS {
            let (inside, overlaps, polls, seen) = (
                inside.clone(),
                overlaps.clone(),
                polls.clone(),
                threads_seen.clone(),
            );
            drop(ctx.spawn(async move {
                for i in 0..=YIELDS {
                    if inside.swap(true, Ordering::SeqCst) {
                        overlaps.fetch_add(1, Ordering::SeqCst);
                    }
                    seen.lock().unwrap().insert(thread::current().id());
                    polls.fetch_add(1, Ordering::SeqCst);
                    inside.store(false, Ordering::SeqCst);
                    if i < YIELDS {
                        if i % 3 == 0 {
                            ringio::time::sleep(Duration::from_millis(1)).await;
                        } else {
                            yield_now().await;
                        }
                    }
                }
            }));
        }
        assert!(
            wait_until(Duration::from_secs(15), || polls.load(Ordering::SeqCst)
                == TASKS * (YIELDS + 1)),
            "only {} polls",
            polls.load(Ordering::SeqCst)
        );
        drop(guard);
        let handlers: usize = runners.into_iter().map(|r| r.join().unwrap()).sum();
        assert_eq!(
            overlaps.load(Ordering::SeqCst),
            0,
            "two threads ran the context at once"
        );
        assert!(handlers >= TASKS * (YIELDS + 1));
        println!(
            "threads that ran the single-threaded context: {}",
            threads_seen.lock().unwrap().len()
        );
    });
}

#[test]
fn single_threaded_context_handed_from_thread_to_thread() {
    watchdog(Duration::from_secs(20), || {
        let ctx = Mode::Single.build();
        for round in 0..6 {
            let ctx2 = ctx.clone();
            let v = thread::spawn(move || {
                ctx2.restart();
                ctx2.block_on(async move {
                    ringio::io::nop().await.unwrap();
                    ringio::time::sleep(Duration::from_millis(1)).await;
                    let (r, w) = ringio::io::pipe().unwrap();
                    let (res, _) = w.write_all(format!("round {round}").into_bytes()).await;
                    res.unwrap();
                    let (res, buf) = r.read(Vec::with_capacity(32)).await;
                    String::from_utf8(buf[..res.unwrap()].to_vec()).unwrap()
                })
            })
            .join()
            .unwrap();
            assert_eq!(v, format!("round {round}"));
        }
        // And the handing thread may be the one that built it.
        assert_eq!(
            ctx.block_on(async { ringio::spawn(async { 9 }).await.unwrap() }),
            9
        );
    });
}

#[test]
fn multi_threaded_block_on_from_several_threads_at_once() {
    watchdog(Duration::from_secs(20), || {
        let ctx = Mode::Multi.build();
        let go = Arc::new(Barrier::new(4));
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let (ctx, go) = (ctx.clone(), go.clone());
                thread::spawn(move || {
                    go.wait();
                    ctx.block_on(async move {
                        let mut sum = 0;
                        for i in 0..200u64 {
                            ringio::io::nop().await.unwrap();
                            sum += ringio::spawn(async move { i * t }).await.unwrap();
                            if i % 50 == 0 {
                                ringio::time::sleep(Duration::from_millis(1)).await;
                            }
                        }
                        sum
                    })
                })
            })
            .collect();
        for (t, h) in threads.into_iter().enumerate() {
            assert_eq!(
                h.join().unwrap(),
                (0..200u64).map(|i| i * t as u64).sum::<u64>()
            );
        }
    });
}

#[test]
fn multi_threaded_wakes_from_many_threads_while_runners_come_and_go() {
    watchdog(Duration::from_secs(30), || {
        let ctx = Mode::Multi.build();
        const TASKS: usize = 200;
        let turns: Arc<Vec<Turn>> = Arc::new((0..TASKS).map(|_| Turn::default()).collect());
        let finished = Arc::new(AtomicUsize::new(0));
        const STEPS: u64 = 20;
        for i in 0..TASKS {
            let (turns, finished) = (turns.clone(), finished.clone());
            drop(ctx.spawn(async move {
                for s in 1..=STEPS {
                    turns[i].reach(s).await;
                }
                finished.fetch_add(1, Ordering::SeqCst);
            }));
        }
        // Runners that each run for a while and leave.
        let stop_runners = Arc::new(AtomicBool::new(false));
        let runners: Vec<_> = (0..3)
            .map(|k| {
                let (ctx, stop) = (ctx.clone(), stop_runners.clone());
                thread::spawn(move || {
                    let mut n = 0;
                    while !stop.load(Ordering::SeqCst) {
                        n += ctx.run_for(Duration::from_millis(5 + k));
                        if ctx.stopped() {
                            break;
                        }
                    }
                    n
                })
            })
            .collect();
        // Wakers from two outside threads.
        let wakers: Vec<_> = (0..2)
            .map(|w| {
                let turns = turns.clone();
                thread::spawn(move || {
                    for _ in 0..STEPS {
                        for i in (w..TASKS).step_by(2) {
                            turns[i].bump();
                        }
                        thread::sleep(Duration::from_micros(300));
                    }
                })
            })
            .collect();
        for w in wakers {
            w.join().unwrap();
        }
        let ok = wait_until(Duration::from_secs(10), || {
            finished.load(Ordering::SeqCst) == TASKS
        });
        stop_runners.store(true, Ordering::SeqCst);
        let handlers: usize = runners.into_iter().map(|r| r.join().unwrap()).sum();
        assert!(
            ok,
            "only {} of {TASKS} tasks finished",
            finished.load(Ordering::SeqCst)
        );
        assert!(handlers >= TASKS);
    });
}
