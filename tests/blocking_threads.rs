//! Blocking-pool threads, counted in `/proc/self/task`: idle threads retire
//! after the keep-alive, and dropping a context while jobs run neither
//! hangs nor runs queued jobs; the last handle may be dropped on a pool
//! thread. The tests of this binary count threads, so they run one at a
//! time.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use common::{wait_until, watchdog, Mode};
use ringio::IoContext;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Threads of this process named like pool threads.
fn pool_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            std::fs::read_to_string(e.path().join("comm"))
                .map(|c| c.trim_end() == "ringio-blocking")
                .unwrap_or(false)
        })
        .count()
}

fn ctx(mode: Mode, keep_alive: Duration) -> IoContext {
    IoContext::builder()
        .single_threaded(mode == Mode::Single)
        .max_blocking_threads(4)
        .blocking_keep_alive(keep_alive)
        .build()
        .unwrap()
}

#[test]
fn idle_threads_retire_after_the_keep_alive() {
    let _s = serial();
    for mode in common::modes() {
        watchdog(Duration::from_secs(20), move || {
            assert!(wait_until(Duration::from_secs(5), || pool_threads() == 0));
            let keep_alive = Duration::from_millis(150);
            let ctx = ctx(mode, keep_alive);
            let barrier = Arc::new(Barrier::new(3));
            let ends: Vec<Instant> = ctx.block_on(async {
                let hs: Vec<_> = (0..3)
                    .map(|_| {
                        let b = barrier.clone();
                        ringio::spawn_blocking(move || {
                            // All three at once: three threads.
                            b.wait();
                            Instant::now()
                        })
                    })
                    .collect();
                let mut ends = Vec::new();
                for h in hs {
                    ends.push(h.await.unwrap());
                }
                ends
            });
            assert_eq!(pool_threads(), 3, "[{mode}] one thread per concurrent job");
            assert!(
                wait_until(Duration::from_secs(5), || pool_threads() == 0),
                "[{mode}] idle threads never retired"
            );
            let last_end = ends.into_iter().max().unwrap();
            assert!(
                last_end.elapsed() >= keep_alive,
                "[{mode}] threads retired before the keep-alive"
            );
            // The context is still usable: a new thread starts on demand.
            let v = ctx.block_on(async { ringio::spawn_blocking(|| 9).await.unwrap() });
            assert_eq!(v, 9);
        });
    }
}

#[test]
fn dropping_the_context_while_jobs_run_does_not_wait_for_them() {
    let _s = serial();
    for mode in common::modes() {
        watchdog(Duration::from_secs(20), move || {
            assert!(wait_until(Duration::from_secs(5), || pool_threads() == 0));
            let ctx = IoContext::builder()
                .single_threaded(mode == Mode::Single)
                .max_blocking_threads(1)
                .build()
                .unwrap();
            let started = Arc::new(Barrier::new(2));
            let queued_ran = Arc::new(AtomicBool::new(false));
            let s = started.clone();
            let running = ctx.spawn_blocking(move || {
                s.wait();
                thread::sleep(Duration::from_millis(800));
            });
            let q = queued_ran.clone();
            let queued = ctx.spawn_blocking(move || q.store(true, Ordering::SeqCst));
            started.wait();
            let t = Instant::now();
            drop(ctx);
            let took = t.elapsed();
            assert!(
                took < Duration::from_millis(500),
                "[{mode}] drop waited {took:?} for a running job"
            );
            // Both tasks were dropped by the shutdown: cancelled.
            assert!(running.is_finished() && queued.is_finished(), "[{mode}]");
            // The busy thread leaves once its job returns; the queued job
            // never runs.
            assert!(
                wait_until(Duration::from_secs(5), || pool_threads() == 0),
                "[{mode}] the pool thread stayed"
            );
            assert!(
                !queued_ran.load(Ordering::SeqCst),
                "[{mode}] queued job ran"
            );
        });
    }
}

#[test]
fn the_last_handle_dropped_on_a_pool_thread() {
    let _s = serial();
    for mode in common::modes() {
        watchdog(Duration::from_secs(20), move || {
            let ctx = ctx(mode, Duration::from_secs(10));
            let inner = ctx.clone();
            let (tx, rx) = std::sync::mpsc::channel();
            drop(ctx.spawn_blocking(move || {
                thread::sleep(Duration::from_millis(30));
                // The closure owns the last handle when it returns.
                drop(inner);
                tx.send(()).unwrap();
            }));
            drop(ctx);
            rx.recv_timeout(Duration::from_secs(5)).unwrap();
            assert!(
                wait_until(Duration::from_secs(5), || pool_threads() == 0),
                "[{mode}] the pool thread stayed after shutting its context down"
            );
        });
    }
}
