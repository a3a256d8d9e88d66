//! Multi-threaded runners take a few tasks ahead of the shared queue. Those
//! must stay reachable when the runner runs the context again from inside
//! a handler (a nested `block_on`), which may wait for one of them.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::watchdog;
use ringio::IoContext;

#[test]
fn nested_block_on_finds_the_tasks_its_runner_took_ahead() {
    watchdog(Duration::from_secs(20), || {
        for round in 0..20 {
            let ctx = IoContext::builder().single_threaded(false).build().unwrap();
            let (tx, rx) = mpsc::channel();
            // Queued before any runner starts: [waiter, t0, t1, ..., t7].
            // The runner that takes the waiter takes t0.. ahead with it.
            let (inner_ctx, slot) = (
                ctx.clone(),
                std::sync::Arc::new(std::sync::Mutex::new(None)),
            );
            let s2 = slot.clone();
            let waiter = ctx.spawn(async move {
                let target: ringio::JoinHandle<u32> = s2.lock().unwrap().take().unwrap();
                // Runs the context again on this thread until `target` ran.
                let v = inner_ctx.block_on(target).unwrap();
                tx.send(v).unwrap();
            });
            let target = ctx.spawn(async { 7u32 });
            *slot.lock().unwrap() = Some(target);
            for i in 0..6u32 {
                drop(ctx.spawn(async move { i }));
            }
            let runner = {
                let ctx = ctx.clone();
                std::thread::spawn(move || ctx.run())
            };
            assert_eq!(
                rx.recv_timeout(Duration::from_secs(5)),
                Ok(7),
                "round {round}: the nested block_on never saw its task run"
            );
            waiter.abort();
            runner.join().unwrap();
        }
    });
}
