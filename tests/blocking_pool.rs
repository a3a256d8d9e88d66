//! `spawn_blocking` and the blocking pool: results, panics as `JoinError`
//! with the pool still working, more jobs than threads, timers running
//! while jobs block, work counting (`run` waits for a job), `abort` before
//! a job starts, builder validation, misuse outside a context, and a call
//! from a future that the context's shutdown drops.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use common::{each_mode, panic_text, quiet_panics, Mode};
use ringio::IoContext;

fn with_pool(mode: Mode, max: usize) -> IoContext {
    IoContext::builder()
        .single_threaded(mode == Mode::Single)
        .max_blocking_threads(max)
        .build()
        .unwrap()
}

#[test]
fn spawn_blocking_yields_the_closure_result() {
    each_mode(|mode, ctx| {
        let (v, tid) = ctx.block_on(async {
            let h = ringio::spawn_blocking(|| (vec![1, 2, 3], thread::current().id()));
            h.await.unwrap()
        });
        assert_eq!(v, vec![1, 2, 3], "[{mode}]");
        assert_ne!(tid, thread::current().id(), "[{mode}] ran on the runner");
        // The method form, awaited from a task of the same context.
        ctx.restart();
        let c2 = ctx.clone();
        let h = ctx.spawn(async move {
            let name = c2
                .spawn_blocking(|| thread::current().name().map(str::to_owned))
                .await
                .unwrap();
            name.unwrap_or_default()
        });
        ctx.run();
        assert_eq!(ctx.block_on(h).unwrap(), "ringio-blocking", "[{mode}]");
    });
}

#[test]
fn a_running_job_is_outstanding_work() {
    each_mode(|mode, ctx| {
        // Spawned from outside: `run` must not return before the job ends.
        let h = ctx.spawn_blocking(|| {
            thread::sleep(Duration::from_millis(50));
            "slow"
        });
        ctx.run();
        assert!(h.is_finished(), "[{mode}] run returned while the job ran");
        assert_eq!(ctx.block_on(h).unwrap(), "slow", "[{mode}]");
        // A detached job keeps the context running, too.
        ctx.restart();
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        drop(ctx.spawn_blocking(move || {
            thread::sleep(Duration::from_millis(30));
            d.store(true, Ordering::SeqCst);
        }));
        ctx.run();
        assert!(done.load(Ordering::SeqCst), "[{mode}] detached job");
    });
}

#[test]
fn a_panic_is_a_join_error_and_the_pool_thread_survives() {
    quiet_panics("blocking boom");
    for mode in common::modes() {
        common::watchdog(Duration::from_secs(20), move || {
            let ctx = with_pool(mode, 1);
            ctx.block_on(async {
                let first = ringio::spawn_blocking(|| thread::current().id())
                    .await
                    .unwrap();
                let err = ringio::spawn_blocking(|| -> u32 { panic!("blocking boom {}", 7) })
                    .await
                    .unwrap_err();
                assert!(err.is_panic(), "[{mode}] {err:?}");
                assert_eq!(panic_text(&*err.into_panic()), "blocking boom 7");
                // Still one thread, and the same one, serves the next job.
                let again = ringio::spawn_blocking(|| thread::current().id())
                    .await
                    .unwrap();
                assert_eq!(first, again, "[{mode}] the panic killed the thread");
            });
        });
    }
}

#[test]
fn more_jobs_than_threads_all_complete_within_the_limit() {
    each_mode(|mode, _| {
        let ctx = with_pool(mode, 3);
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let total: usize = ctx.block_on(async {
            let handles: Vec<_> = (0..40)
                .map(|i| {
                    let (running, peak) = (running.clone(), peak.clone());
                    ringio::spawn_blocking(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        thread::sleep(Duration::from_millis(2));
                        running.fetch_sub(1, Ordering::SeqCst);
                        i
                    })
                })
                .collect();
            let mut sum = 0;
            for h in handles {
                sum += h.await.unwrap();
            }
            sum
        });
        assert_eq!(total, (0..40).sum::<usize>(), "[{mode}]");
        let peak = peak.load(Ordering::SeqCst);
        assert!((1..=3).contains(&peak), "[{mode}] {peak} jobs at once");
    });
}

#[test]
fn timers_fire_on_time_while_jobs_block() {
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let jobs: Vec<_> = (0..4)
                .map(|_| ringio::spawn_blocking(|| thread::sleep(Duration::from_millis(600))))
                .collect();
            let start = Instant::now();
            ringio::time::sleep(Duration::from_millis(20)).await;
            let took = start.elapsed();
            assert!(
                took < Duration::from_millis(400),
                "[{mode}] a 20 ms sleep took {took:?} while jobs blocked"
            );
            for j in jobs {
                j.await.unwrap();
            }
        });
    });
}

#[test]
fn abort_before_the_job_starts_skips_it() {
    each_mode(|mode, _| {
        let ctx = with_pool(mode, 1);
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        ctx.block_on(async move {
            // Occupies the only thread until released.
            let gate = ringio::spawn_blocking(move || release_rx.recv().unwrap());
            let queued = ringio::spawn_blocking(move || r.store(true, Ordering::SeqCst));
            queued.abort();
            let err = queued.await.unwrap_err();
            assert!(err.is_cancelled(), "[{mode}] {err:?}");
            release_tx.send(()).unwrap();
            gate.await.unwrap();
            // One more job after the skipped one: the queue moved past it.
            ringio::spawn_blocking(|| ()).await.unwrap();
        });
        assert!(!ran.load(Ordering::SeqCst), "[{mode}] aborted job ran");
    });
}

#[test]
fn zero_max_blocking_threads_is_invalid_input() {
    let err = IoContext::builder()
        .max_blocking_threads(0)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("max_blocking_threads"), "{err}");
}

#[test]
fn spawn_blocking_outside_a_context_panics_with_a_message() {
    quiet_panics("ringio::spawn_blocking called outside");
    let p = std::panic::catch_unwind(|| drop(ringio::spawn_blocking(|| ()))).unwrap_err();
    assert!(
        panic_text(&*p).contains("outside a running IoContext"),
        "{}",
        panic_text(&*p)
    );
    // The method form works from any thread; the job runs at once, the
    // handle completes when the context runs.
    let ctx = IoContext::new().unwrap();
    let (tx, rx) = mpsc::channel();
    let h = ctx.spawn_blocking(move || tx.send(5).unwrap());
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(5));
    ctx.block_on(h).unwrap();
}

#[test]
fn spawn_blocking_from_a_future_dropped_by_shutdown_is_cancelled() {
    each_mode(|mode, ctx| {
        struct OnDrop(mpsc::Sender<bool>, Arc<AtomicBool>);
        impl Drop for OnDrop {
            fn drop(&mut self) {
                let ran = self.1.clone();
                let h = ringio::spawn_blocking(move || ran.store(true, Ordering::SeqCst));
                let _ = self.0.send(h.is_finished());
            }
        }
        let (tx, rx) = mpsc::channel();
        let ran = Arc::new(AtomicBool::new(false));
        let guard = OnDrop(tx, ran.clone());
        drop(ctx.spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        }));
        ctx.poll();
        drop(ctx);
        let finished = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(finished, "[{mode}] the handle should be cancelled at once");
        thread::sleep(Duration::from_millis(20));
        assert!(!ran.load(Ordering::SeqCst), "[{mode}] the closure ran");
    });
}
