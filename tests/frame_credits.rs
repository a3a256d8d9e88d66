//! The run frame's credits (`src/runtime/frame.rs`): a task spawned and
//! freed on a thread running its context borrows that frame's stock of
//! context references and outstanding-work units instead of touching the
//! shared counts. The stock must always go back: the outstanding count
//! reaches zero (so `run` returns, and a context with no work left says so),
//! and the context is freed with its descriptors once the last handle goes.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{
    assert_fds_back_to, each_mode, fd_exclusive, open_fds, spawn_runners, watchdog, Mode,
};

/// Spawns a binary tree of `depth` levels of tasks from inside a task;
/// each node counts itself.
fn spawn_tree(depth: u32, count: Arc<AtomicUsize>) {
    count.fetch_add(1, Ordering::SeqCst);
    if depth == 0 {
        return;
    }
    for _ in 0..2 {
        let count = count.clone();
        drop(ringio::spawn(async move { spawn_tree(depth - 1, count) }));
    }
}

#[test]
fn run_returns_once_tasks_spawned_by_tasks_are_done() {
    each_mode(|mode, ctx| {
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        // More spawns than one credit chunk, from inside tasks.
        drop(ctx.spawn(async move { spawn_tree(9, c) }));
        ctx.run();
        assert_eq!(
            count.load(Ordering::SeqCst),
            1023,
            "[{mode}] every node ran"
        );
        assert_eq!(
            ctx.metrics().outstanding_work,
            0,
            "[{mode}] the frame's unused credit went back"
        );
        assert_eq!(ctx.run(), 0, "[{mode}] nothing left to run");
    });
}

#[test]
fn run_returns_after_block_on_spawned_and_left() {
    each_mode(|mode, ctx| {
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        // Detached spawns from a `block_on` frame, some finished inside it,
        // some still pending (on a sleep) when it returns.
        ctx.block_on(async move {
            for i in 0..100u64 {
                let c = c.clone();
                drop(ringio::spawn(async move {
                    if i % 10 == 0 {
                        ringio::time::sleep(Duration::from_millis(5)).await;
                    }
                    c.fetch_add(1, Ordering::SeqCst);
                }));
            }
            ringio::time::sleep(Duration::from_millis(1)).await;
        });
        // The frame of `block_on` is gone: its credit must be back, or
        // `run` would wait forever for work nobody holds.
        ctx.run();
        assert_eq!(count.load(Ordering::SeqCst), 100, "[{mode}] all ran");
        assert_eq!(ctx.metrics().outstanding_work, 0, "[{mode}]");
    });
}

#[test]
fn several_runners_all_return_after_a_spawn_tree() {
    watchdog(Duration::from_secs(30), || {
        for round in 0..20 {
            let ctx = Mode::Multi.build();
            let count = Arc::new(AtomicUsize::new(0));
            let c = count.clone();
            drop(ctx.spawn(async move { spawn_tree(10, c) }));
            let runners = spawn_runners(&ctx, 2);
            for r in runners {
                r.join().expect("runner panicked");
            }
            assert_eq!(count.load(Ordering::SeqCst), 2047, "round {round}");
            assert_eq!(ctx.metrics().outstanding_work, 0, "round {round}");
        }
    });
}

#[test]
fn contexts_are_freed_after_tasks_freed_inside_their_frames() {
    let _fd = fd_exclusive();
    let before = open_fds();
    watchdog(Duration::from_secs(30), || {
        for i in 0..20 {
            let mode = Mode::ALL[i % 2];
            let ctx = mode.build();
            let sum = ctx.block_on(async {
                // Joined tasks are freed by their handles inside the frame,
                // giving their context references back to it.
                let handles: Vec<_> = (0..2000u64)
                    .map(|i| ringio::spawn(async move { i }))
                    .collect();
                let mut sum = 0;
                for h in handles {
                    sum += h.await.unwrap();
                }
                // The ring is in use, so the context holds descriptors.
                ringio::time::sleep(Duration::from_millis(1)).await;
                sum
            });
            assert_eq!(sum, 1999 * 2000 / 2, "[{mode}]");
            drop(ctx);
        }
    });
    assert_fds_back_to(
        before,
        "contexts whose tasks were freed inside their frames",
    );
}
