//! Races of the task cell (`src/runtime/task/`): wakes from foreign threads
//! while a task runs, handles dropped or awaited on other threads while the
//! task completes, and recycled cells of every size class. Every future and
//! every output must be dropped exactly once, and nothing may hang.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Duration;

use common::{each_mode_limit, fd_shared, spawn_runners, watchdog};
use ringio::IoContext;

/// Counts its drops.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Sends its waker to a foreign thread, which wakes it (by value or by
/// reference) and acknowledges; the poll waits for that acknowledgement and
/// then returns `Pending` without looking at anything: only the wake that
/// arrived while the task was running can get it polled again. A lost wake
/// is a hang.
struct WokenWhileRunning {
    left: usize,
    to_waker: mpsc::Sender<(Waker, bool)>,
    woken: Arc<Mutex<mpsc::Receiver<()>>>,
    _drop: Counted,
}

impl Future for WokenWhileRunning {
    type Output = Counted;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Counted> {
        if self.left == 0 {
            return Poll::Ready(Counted(self._drop.0.clone()));
        }
        self.left -= 1;
        let by_value = self.left % 2 == 0;
        self.to_waker.send((cx.waker().clone(), by_value)).unwrap();
        self.woken
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(10))
            .expect("the waker thread acknowledges");
        Poll::Pending
    }
}

#[test]
fn foreign_wakes_while_tasks_run_are_never_lost() {
    each_mode_limit(Duration::from_secs(60), |_mode, ctx| {
        const TASKS: usize = 8;
        const WAKES: usize = 200;
        let drops = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::new();
        let mut threads = Vec::new();
        for _ in 0..TASKS {
            let (to_waker, wakes) = mpsc::channel::<(Waker, bool)>();
            let (ack, woken) = mpsc::channel();
            threads.push(thread::spawn(move || {
                for (w, by_value) in wakes {
                    if by_value {
                        w.wake();
                    } else {
                        w.wake_by_ref();
                    }
                    ack.send(()).unwrap();
                }
            }));
            handles.push(ctx.spawn(WokenWhileRunning {
                left: WAKES,
                to_waker,
                woken: Arc::new(Mutex::new(woken)),
                _drop: Counted(drops.clone()),
            }));
        }
        let outputs: Vec<_> = handles
            .into_iter()
            .map(|h| ctx.block_on(h).expect("task completes"))
            .collect();
        drop(outputs);
        for t in threads {
            t.join().unwrap();
        }
        // Each task: its future's counter once, its output's once.
        assert_eq!(drops.load(Ordering::SeqCst), 2 * TASKS);
    });
}

#[test]
fn handles_dropped_on_another_thread_while_tasks_complete() {
    each_mode_limit(Duration::from_secs(60), |_mode, ctx| {
        const TASKS: usize = 2000;
        let futures = Arc::new(AtomicUsize::new(0));
        let outputs = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel();
        let dropper = thread::spawn(move || {
            let mut n = 0usize;
            while let Ok(h) = rx.recv() {
                // Drop some at once, some after a short spin, so drops
                // land before, during and after completion.
                if n % 3 == 1 {
                    for _ in 0..(n % 200) {
                        std::hint::spin_loop();
                    }
                }
                drop::<ringio::JoinHandle<Counted>>(h);
                n += 1;
            }
            n
        });
        let (f, o) = (futures.clone(), outputs.clone());
        ctx.block_on(async move {
            for i in 0..TASKS {
                let guard = Counted(f.clone());
                let out = o.clone();
                let h = ringio::spawn(async move {
                    let _guard = guard;
                    if i % 2 == 0 {
                        common::yield_now().await;
                    }
                    Counted(out)
                });
                tx.send(h).unwrap();
                if i % 64 == 0 {
                    common::yield_now().await;
                }
            }
        });
        assert_eq!(dropper.join().unwrap(), TASKS);
        // Detached tasks still run to the end.
        assert!(common::wait_until(Duration::from_secs(10), || {
            ctx.poll();
            outputs.load(Ordering::SeqCst) == TASKS
        }));
        assert_eq!(futures.load(Ordering::SeqCst), TASKS);
    });
}

#[test]
fn handles_awaited_from_another_context_while_tasks_complete() {
    watchdog(Duration::from_secs(60), || {
        let _fds = fd_shared();
        let ctx = IoContext::new().unwrap();
        let guard = ctx.work_guard();
        let runners = spawn_runners(&ctx, 1);
        let other = IoContext::builder().single_threaded(true).build().unwrap();
        for round in 0..20u64 {
            let handles: Vec<_> = (0..200u64)
                .map(|i| {
                    ctx.spawn(async move {
                        if i % 3 == 0 {
                            common::yield_now().await;
                        }
                        round * 1000 + i
                    })
                })
                .collect();
            // Awaited from another context's thread: the join waker path
            // races the completions.
            let sum = other.block_on(async move {
                let mut sum = 0;
                for h in handles {
                    sum += h.await.unwrap();
                }
                sum
            });
            assert_eq!(sum, (0..200).map(|i| round * 1000 + i).sum::<u64>());
        }
        drop(guard);
        for r in runners {
            r.join().unwrap();
        }
    });
}

#[test]
fn cells_of_every_size_class_keep_their_contents() {
    each_mode_limit(Duration::from_secs(60), |_mode, ctx| {
        fn sized<const N: usize>(seed: u8) -> impl Future<Output = u64> + Send {
            let data = [seed; N];
            async move {
                common::yield_now().await;
                data.iter().map(|&b| u64::from(b)).sum()
            }
        }
        let total = ctx.block_on(async {
            let mut total = 0;
            for round in 0..50u8 {
                let hs = vec![
                    ringio::spawn(sized::<1>(round)),
                    ringio::spawn(sized::<40>(round)),
                    ringio::spawn(sized::<120>(round)),
                    ringio::spawn(sized::<300>(round)),
                    ringio::spawn(sized::<460>(round)),
                    ringio::spawn(sized::<2000>(round)),
                ];
                for h in hs {
                    total += h.await.unwrap();
                }
            }
            total
        });
        let per_round: u64 = 1 + 40 + 120 + 300 + 460 + 2000;
        assert_eq!(total, (0..50u64).map(|r| r * per_round).sum::<u64>());
    });
}
