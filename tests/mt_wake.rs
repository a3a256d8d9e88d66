//! The wake rules of a multi-threaded context under a feeder thread that
//! spawns from outside it: a push wakes nobody while a runner is already on
//! its way, so the work must still reach a runner in every case; and the
//! wake of a parked leader must survive another runner reaping the ring.
//!
//! Time bounds are only there so a lost wake-up fails instead of hanging.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use common::{spawn_runners, watchdog, Mode};

const PROMPT: Duration = Duration::from_secs(5);

/// The only runner is busy in a handler when a task is pushed from outside
/// (nobody is woken: the runner is awake), then finishes, runs it and goes
/// to sleep; a push after that must wake it.
#[test]
fn a_task_pushed_while_the_only_runner_is_mid_task_runs_and_so_does_the_next() {
    watchdog(Duration::from_secs(30), || {
        let ctx = Mode::Multi.build();
        let guard = ctx.work_guard();
        let runners = spawn_runners(&ctx, 1);
        for round in 0..20 {
            let (started_tx, started_rx) = mpsc::channel();
            let (release_tx, release_rx) = mpsc::channel::<()>();
            let (ran_tx, ran_rx) = mpsc::channel();
            ctx.post(move || {
                started_tx.send(()).unwrap();
                release_rx.recv().unwrap();
            });
            started_rx
                .recv_timeout(PROMPT)
                .expect("first handler never ran");
            let tx = ran_tx.clone();
            ctx.post(move || tx.send("pushed mid-task").unwrap());
            release_tx.send(()).unwrap();
            assert_eq!(
                ran_rx.recv_timeout(PROMPT),
                Ok("pushed mid-task"),
                "round {round}"
            );
            // The runner is asleep again (or about to be).
            thread::sleep(Duration::from_millis(2));
            ctx.post(move || ran_tx.send("pushed to a sleeper").unwrap());
            assert_eq!(
                ran_rx.recv_timeout(PROMPT),
                Ok("pushed to a sleeper"),
                "round {round}"
            );
        }
        drop(guard);
        for r in runners {
            r.join().unwrap();
        }
    });
}

/// The shape of the `io_context.multithreaded` bench: a feeder spawns
/// batches of trivial tasks into two runners, at most two batches in flight,
/// then lets go of its work guard; the last task's stop must reach the
/// leader even when the other runner (busy, flushing the ring every few
/// dozen tasks) reaps the wake meant for it. Seen hanging before the leader's
/// wake was re-sent.
#[test]
fn feeder_batches_into_two_runners_and_every_run_returns() {
    watchdog(Duration::from_secs(120), || {
        const BATCH: usize = 1000;
        const BATCHES: usize = 20;
        for round in 0..20 {
            let ctx = Mode::Multi.build();
            let guard = ctx.work_guard();
            let runners = spawn_runners(&ctx, 2);
            let done = Arc::new(AtomicUsize::new(0));
            for b in 0..BATCHES {
                if b >= 2 {
                    let want = (b - 1) * BATCH;
                    assert!(
                        common::wait_until(PROMPT, || done.load(Ordering::Acquire) >= want),
                        "round {round}: batch {} never finished",
                        b - 2
                    );
                }
                for _ in 0..BATCH {
                    let done = done.clone();
                    drop(ctx.spawn(async move {
                        done.fetch_add(1, Ordering::AcqRel);
                    }));
                }
            }
            drop(guard);
            let ran: usize = runners.into_iter().map(|r| r.join().unwrap()).sum();
            assert_eq!(
                done.load(Ordering::Acquire),
                BATCH * BATCHES,
                "round {round}"
            );
            assert_eq!(ran, BATCH * BATCHES, "round {round}");
        }
    });
}

/// `stop()` from the feeder while both runners are busy with a stream of
/// pushed tasks: every runner returns.
#[test]
fn stop_during_a_feeder_stream_returns_every_runner() {
    watchdog(Duration::from_secs(60), || {
        for round in 0..20 {
            let ctx = Mode::Multi.build();
            let guard = ctx.work_guard();
            let runners = spawn_runners(&ctx, 2);
            for i in 0..(round + 1) * 500 {
                drop(ctx.spawn(async move { i }));
            }
            ctx.stop();
            for r in runners {
                r.join().unwrap();
            }
            drop(guard);
        }
    });
}

/// Several threads spawn at once from outside, in short bursts separated
/// by pauses of varying length, so the runners are caught at every point
/// of going to sleep (about to wait, parked, signalled, on their way back)
/// while pushes land: every burst must run in full.
#[test]
fn concurrent_feeders_in_bursts_reach_sleeping_runners() {
    watchdog(Duration::from_secs(60), || {
        const FEEDERS: usize = 3;
        const PER_FEEDER: usize = 20;
        const BURSTS: usize = 300;
        let ctx = Mode::Multi.build();
        let guard = ctx.work_guard();
        let runners = spawn_runners(&ctx, 2);
        let done = Arc::new(AtomicUsize::new(0));
        for burst in 0..BURSTS {
            let feeders: Vec<_> = (0..FEEDERS)
                .map(|_| {
                    let (ctx, done) = (ctx.clone(), done.clone());
                    thread::spawn(move || {
                        for _ in 0..PER_FEEDER {
                            let done = done.clone();
                            drop(ctx.spawn(async move {
                                done.fetch_add(1, Ordering::AcqRel);
                            }));
                        }
                    })
                })
                .collect();
            for f in feeders {
                f.join().unwrap();
            }
            let want = (burst + 1) * FEEDERS * PER_FEEDER;
            assert!(
                common::wait_until(PROMPT, || done.load(Ordering::Acquire) >= want),
                "burst {burst}: {} of {want} tasks ran",
                done.load(Ordering::Acquire)
            );
            // 0 to ~300 µs: runners anywhere between running and asleep.
            thread::sleep(Duration::from_micros((burst as u64 * 37) % 300));
        }
        drop(guard);
        let ran: usize = runners.into_iter().map(|r| r.join().unwrap()).sum();
        assert_eq!(ran, BURSTS * FEEDERS * PER_FEEDER);
    });
}
