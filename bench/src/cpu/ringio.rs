//! The workloads on ringio: a single-threaded context
//! (`IoContext::builder().single_threaded(true)`) driven by `block_on`, and
//! for `multithreaded` a multi-threaded context run by `threads` threads.

use std::pin::pin;
use std::thread;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};

use ringio::time;
use ringio::IoContext;

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
    let ctx = IoContext::builder()
        .single_threaded(true)
        .build()
        .map_err(|e| format!("ringio context: {e}"))?;
    match *w {
        Workload::Dispatch { tasks, yields } => {
            let start = Instant::now();
            let done = ctx.block_on(async move {
                let handles: Vec<_> = (0..tasks)
                    .map(|_| {
                        ringio::spawn(async move {
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
            let sum = ctx.block_on(async move {
                let mut sum = 0u64;
                let mut next = 0u64;
                while next < total {
                    let end = (next + batch).min(total);
                    let handles: Vec<_> = (next..end)
                        .map(|i| ringio::spawn(async move { i }))
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
            let (start, last, early) = ctx.block_on(async move {
                let start = Instant::now();
                let handles: Vec<_> = (0..tasks)
                    .map(|t| {
                        ringio::spawn(async move {
                            let sleeps: FuturesUnordered<_> = (0..per_task)
                                .map(|i| async move {
                                    let deadline =
                                        start + fire_offset(t, i, tasks, per_task, spread);
                                    time::sleep_until(deadline).await;
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
            let elapsed = ctx.block_on(async move {
                let start = Instant::now();
                for _ in 0..n {
                    let mut s = pin!(time::sleep(Duration::from_secs(3600)));
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
    let ctx = IoContext::builder()
        .single_threaded(false)
        .build()
        .map_err(|e| format!("ringio context: {e}"))?;
    // Keeps `run` from returning while the feeder has not finished.
    let guard = ctx.work_guard();
    let runners: Vec<_> = (0..threads)
        .map(|_| {
            let ctx = ctx.clone();
            thread::spawn(move || {
                let polls = ctx.run();
                (polls, thread_cpu())
            })
        })
        .collect();
    // One per cell process, shared by reference: a per-task `Arc` clone
    // would add a cache-line transfer per task (feeder increments, runner
    // decrements) that is the benchmark's, not the runtime's.
    let completions: &'static Completions = Box::leak(Box::new(Completions::new(batch)));
    let start = Instant::now();
    let feeder_before = thread_cpu();
    let fed = feed(batches, batch, completions, |_| {
        for _ in 0..batch {
            let c = completions;
            drop(ctx.spawn(async move { c.task_done() }));
        }
    });
    let feeder_cpu = thread_cpu() - feeder_before;
    let elapsed = start.elapsed();
    drop(guard);
    if fed.is_err() {
        ctx.stop();
    }
    let ran: Vec<(usize, Duration)> = runners
        .into_iter()
        .map(|r| r.join().unwrap_or_default())
        .collect();
    let polls: usize = ran.iter().map(|(n, _)| n).sum();
    let runners_cpu: Duration = ran.iter().map(|(_, cpu)| *cpu).sum();
    fed?;
    check_count("tasks finished", completions.done(), batches * batch)?;
    Ok(Measured {
        ops: batches * batch,
        elapsed,
        extra: [
            ("runner_threads", threads as f64),
            ("handlers_run", polls as f64),
        ]
        .into_iter()
        .chain(busy_extras(elapsed, feeder_cpu, runners_cpu, threads))
        .collect(),
    })
}
