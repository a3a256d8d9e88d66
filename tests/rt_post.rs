//! `IoContext::post`: a handler with no join handle. It runs exactly once
//! wherever it was posted from, a handler that never runs is dropped (and
//! its captures with it) when the context goes, and the context's counters
//! see every post.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::{each_mode, watchdog, DropFlag};
use ringio::IoContext;

#[test]
fn a_post_that_never_ran_is_dropped_with_the_context() {
    each_mode(|mode, ctx| {
        let ran = Arc::new(AtomicBool::new(false));
        let (guard, dropped) = DropFlag::new();
        let r = ran.clone();
        ctx.post(move || {
            let _guard = guard;
            r.store(true, Ordering::SeqCst);
        });
        assert_eq!(ctx.metrics().outstanding_work, 1, "[{mode:?}]");
        drop(ctx);
        assert!(!ran.load(Ordering::SeqCst), "[{mode:?}] it never ran");
        assert!(
            dropped.load(Ordering::SeqCst),
            "[{mode:?}] captures dropped"
        );
    });
}

#[test]
fn a_post_from_inside_a_handler_runs_once_and_counts_as_work() {
    each_mode(|mode, ctx| {
        let hits = Arc::new(AtomicUsize::new(0));
        let (h, c) = (hits.clone(), ctx.clone());
        ctx.post(move || {
            let h2 = h.clone();
            c.post(move || {
                h2.fetch_add(10, Ordering::SeqCst);
            });
            h.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(ctx.run(), 2, "[{mode:?}] both handlers, then out of work");
        assert_eq!(hits.load(Ordering::SeqCst), 11, "[{mode:?}]");
        assert_eq!(ctx.metrics().tasks_spawned, 2, "[{mode:?}]");
    });
}

/// The `io_context.multithreaded` shape with `post`: a feeder thread posts
/// while two threads run the context; every handler runs exactly once.
#[test]
fn posts_from_a_feeder_thread_each_run_once_on_two_runners() {
    const POSTS: usize = 20_000;
    watchdog(Duration::from_secs(30), || {
        let ctx = IoContext::builder().single_threaded(false).build().unwrap();
        let guard = ctx.work_guard();
        let runners: Vec<_> = (0..2)
            .map(|_| {
                let ctx = ctx.clone();
                thread::spawn(move || ctx.run())
            })
            .collect();
        let hits = Arc::new(AtomicUsize::new(0));
        for _ in 0..POSTS {
            let h = hits.clone();
            ctx.post(move || {
                h.fetch_add(1, Ordering::SeqCst);
            });
        }
        drop(guard);
        let handlers: usize = runners.into_iter().map(|r| r.join().unwrap()).sum();
        assert_eq!(hits.load(Ordering::SeqCst), POSTS);
        assert_eq!(handlers, POSTS, "one poll per handler");
        let m = ctx.metrics();
        assert_eq!(m.tasks_spawned, POSTS as u64);
        assert_eq!(m.outstanding_work, 0);
    });
}
