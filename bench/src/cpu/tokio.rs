//! The workloads on tokio: a `current_thread` runtime driven by
//! `block_on`, and for `multithreaded` a `multi_thread` runtime with
//! `threads` workers fed from the cell's main thread.

use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};

use super::{
    busy_extras, check_count, feed, fire_offset, poll_once, thread_cpu, yield_now, Completions,
    Measured, Workload,
};

pub fn measure(w: &Workload) -> Result<Measured, String> {
    if let Workload::Multithreaded {
        threads,
        batches,
        batch,
        ..
    } = *w
    {
        return multithreaded(threads, batches, batch);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    match *w {
        Workload::Dispatch { tasks, yields } => {
            let start = Instant::now();
            let done = rt.block_on(async move {
                let handles: Vec<_> = (0..tasks)
                    .map(|_| {
                        tokio::spawn(async move {
                            for _ in 0..yields {
                                yield_now().await;
                            }
                        })
                    })
                    .collect();
                let mut done = 0;
                for h in handles {
                    h.await.map_err(|e| e.to_string())?;
                    done += 1;
                }
                Ok::<u64, String>(done)
            })?;
            Measured::dispatch(tasks, yields, done, start.elapsed())
        }
        Workload::SpawnJoin { total, batch } => {
            let start = Instant::now();
            let sum = rt.block_on(async move {
                let mut sum = 0u64;
                let mut next = 0u64;
                while next < total {
                    let end = (next + batch).min(total);
                    let handles: Vec<_> = (next..end)
                        .map(|i| tokio::spawn(async move { i }))
                        .collect();
                    for h in handles {
                        sum += h.await.map_err(|e| e.to_string())?;
                    }
                    next = end;
                }
                Ok::<u64, String>(sum)
            })?;
            Measured::spawn_join(total, sum, start.elapsed())
        }
        Workload::FireRate {
            tasks,
            per_task,
            spread,
        } => {
            let (start, last, early) = rt.block_on(async move {
                let start = Instant::now();
                let handles: Vec<_> = (0..tasks)
                    .map(|t| {
                        tokio::spawn(async move {
                            let sleeps: FuturesUnordered<_> = (0..per_task)
                                .map(|i| async move {
                                    let deadline =
                                        start + fire_offset(t, i, tasks, per_task, spread);
                                    tokio::time::sleep_until(deadline.into()).await;
                                    u64::from(Instant::now() < deadline)
                                })
                                .collect();
                            let early = sleeps.fold(0u64, |n, e| async move { n + e }).await;
                            (Instant::now(), early)
                        })
                    })
                    .collect();
                let (mut last, mut early) = (start, 0);
                for h in handles {
                    let (at, e) = h.await.map_err(|e| e.to_string())?;
                    last = last.max(at);
                    early += e;
                }
                Ok::<_, String>((start, last, early))
            })?;
            Ok(Measured::fire_rate(tasks * per_task, last - start, early))
        }
        Workload::ScheduleCancel { n } => {
            let elapsed = rt.block_on(async move {
                let start = Instant::now();
                for _ in 0..n {
                    let mut s = pin!(tokio::time::sleep(Duration::from_secs(3600)));
                    if poll_once(s.as_mut()).await.is_ready() {
                        return Err("a one-hour sleep was ready at once".to_string());
                    }
                }
                Ok(start.elapsed())
            })?;
            Ok(Measured::plain(n, elapsed))
        }
        Workload::Multithreaded { .. } => unreachable!("handled above"),
    }
}

fn multithreaded(threads: usize, batches: u64, batch: u64) -> Result<Measured, String> {
    // Each worker adds the CPU it used when it stops (at shutdown).
    static RUNNERS_CPU_NS: AtomicU64 = AtomicU64::new(0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .on_thread_stop(|| {
            RUNNERS_CPU_NS.fetch_add(thread_cpu().as_nanos() as u64, Ordering::Relaxed);
        })
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    // One per cell process, shared by reference: a per-task `Arc` clone
    // would add a cache-line transfer per task (feeder increments, runner
    // decrements) that is the benchmark's, not the runtime's.
    let completions: &'static Completions = Box::leak(Box::new(Completions::new(batch)));
    let start = Instant::now();
    let feeder_before = thread_cpu();
    let fed = feed(batches, batch, completions, |_| {
        for _ in 0..batch {
            let c = completions;
            drop(rt.spawn(async move { c.task_done() }));
        }
    });
    let feeder_cpu = thread_cpu() - feeder_before;
    let elapsed = start.elapsed();
    rt.shutdown_timeout(Duration::from_secs(5));
    let runners_cpu = Duration::from_nanos(RUNNERS_CPU_NS.load(Ordering::Relaxed));
    fed?;
    check_count("tasks finished", completions.done(), batches * batch)?;
    Ok(Measured {
        ops: batches * batch,
        elapsed,
        extra: [("runner_threads", threads as f64)]
            .into_iter()
            .chain(busy_extras(elapsed, feeder_cpu, runners_cpu, threads))
            .collect(),
    })
}
