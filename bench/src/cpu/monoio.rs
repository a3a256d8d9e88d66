//! The workloads on monoio 0.2: `RuntimeBuilder::<IoUringDriver>` with the
//! timer enabled, driven by `block_on`. monoio has no multi-threaded
//! scheduler (thread per core): `multithreaded` is n/a.

use std::pin::pin;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};

use super::{fire_offset, poll_once, yield_now, Measured, Workload};

pub fn measure(w: &Workload) -> Result<Measured, String> {
    let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .enable_timer()
        .build()
        .map_err(|e| format!("monoio runtime: {e}"))?;
    match *w {
        Workload::Dispatch { tasks, yields } => {
            let start = Instant::now();
            let done = rt.block_on(async move {
                let handles: Vec<_> = (0..tasks)
                    .map(|_| {
                        monoio::spawn(async move {
                            for _ in 0..yields {
                                yield_now().await;
                            }
                        })
                    })
                    .collect();
                let mut done = 0;
                for h in handles {
                    h.await;
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
                        .map(|i| monoio::spawn(async move { i }))
                        .collect();
                    for h in handles {
                        sum += h.await;
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
                        monoio::spawn(async move {
                            let sleeps: FuturesUnordered<_> = (0..per_task)
                                .map(|i| async move {
                                    let deadline =
                                        start + fire_offset(t, i, tasks, per_task, spread);
                                    monoio::time::sleep_until(monoio::time::Instant::from_std(
                                        deadline,
                                    ))
                                    .await;
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
                    let (at, e) = h.await;
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
                    let mut s = pin!(monoio::time::sleep(Duration::from_secs(3600)));
                    if poll_once(s.as_mut()).await.is_ready() {
                        return Err("a one-hour sleep was ready at once".to_string());
                    }
                }
                Ok(start.elapsed())
            })?;
            Ok(Measured::plain(n, elapsed))
        }
        Workload::Multithreaded { .. } => Err("no multi-threaded scheduler to compare".to_string()),
    }
}
