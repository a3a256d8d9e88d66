//! CPU-bound workloads (families `io_context` and `timer`), run in-process
//! on each runtime.
//!
//! Every runtime module (`ringio`, `tokio`, `monoio`, `compio`, `glommio`)
//! provides one function, `measure(&Workload) -> Result<Measured, String>`,
//! that does the same work as the others with its own API:
//!
//! * [`Workload::Dispatch`]: `tasks` tasks each yielding `yields` times
//!   through [`YieldNow`] (wake own waker, return `Pending` once). Counts
//!   `tasks * (yields + 1)` task polls.
//! * [`Workload::SpawnJoin`]: spawn `batch` trivial tasks keeping the
//!   handles, await each, until `total` tasks ran.
//! * [`Workload::FireRate`]: `tasks` tasks each awaiting `per_task` sleeps in
//!   turn; sleep `i` of task `t` ends at `start + fire_offset(..)`, a
//!   deterministic spread of all deadlines uniform over `spread`. Measured
//!   from `start` until the last sleep returned.
//! * [`Workload::ScheduleCancel`]: `n` times: a one-hour sleep, polled once
//!   (so it registers with the timer), dropped.
//! * [`Workload::Multithreaded`]: a multi-threaded scheduler with `threads`
//!   workers while the cell's main thread (the feeder) spawns `batches`
//!   batches of `batch` trivial tasks, at most two batches in flight; the
//!   whole cell runs on CPUs `0..cpus`. ringio and tokio only.
//!
//! Each cell runs in its own process, pinned to CPU 0 (`multithreaded`:
//! to its `cpus`) before the runtime is built.

mod compio;
mod glommio;
mod monoio;
mod ringio;
mod tokio;

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::cell::{CellSpec, Row, RUNTIMES};
use crate::pin;

/// One workload with its sizes, as every runtime module runs it.
#[derive(Debug, Clone, PartialEq)]
pub enum Workload {
    Dispatch {
        tasks: u64,
        yields: u64,
    },
    SpawnJoin {
        total: u64,
        batch: u64,
    },
    FireRate {
        tasks: u64,
        per_task: u64,
        spread: Duration,
    },
    ScheduleCancel {
        n: u64,
    },
    Multithreaded {
        threads: usize,
        /// CPUs the whole cell (feeder and runners) may use: 0..cpus.
        cpus: usize,
        batches: u64,
        batch: u64,
    },
}

/// What a runtime module reports: `ops` operations in `elapsed`, plus side
/// figures (early timer fires, ...).
#[derive(Debug, Clone)]
pub struct Measured {
    pub ops: u64,
    pub elapsed: Duration,
    pub extra: Vec<(&'static str, f64)>,
}

impl Measured {
    /// `ops` operations in `elapsed`, nothing else to report.
    pub fn plain(ops: u64, elapsed: Duration) -> Measured {
        Measured {
            ops,
            elapsed,
            extra: vec![],
        }
    }

    /// `dispatch`: every task ran to its end; each was polled `yields + 1`
    /// times.
    pub fn dispatch(
        tasks: u64,
        yields: u64,
        done: u64,
        elapsed: Duration,
    ) -> Result<Measured, String> {
        check_count("tasks finished", done, tasks)?;
        Ok(Measured::plain(tasks * (yields + 1), elapsed))
    }

    /// `spawn_join`: the outputs `0..total` summed to the right total.
    pub fn spawn_join(total: u64, sum: u64, elapsed: Duration) -> Result<Measured, String> {
        check_count(
            "sum of task outputs",
            sum,
            total * total.saturating_sub(1) / 2,
        )?;
        Ok(Measured::plain(total, elapsed))
    }

    /// `fire_rate`: `timers` fired in `elapsed`, `early` of them before
    /// their deadline (reported, and zero for a correct runtime).
    pub fn fire_rate(timers: u64, elapsed: Duration, early: u64) -> Measured {
        Measured {
            ops: timers,
            elapsed,
            extra: vec![("early_fires", early as f64)],
        }
    }

    fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// `(key, value)` pairs of a cell.
type Params<'a> = &'a [(&'a str, &'a str)];

/// Runtimes that have a multi-threaded scheduler to compare.
const MT_RUNTIMES: [&str; 2] = ["ringio", "tokio"];

/// The cells of these families (`quick`: the subset of `--quick`).
///
/// The quick subset keeps every single-threaded workload at full size (so
/// its figures compare with a full run) and drops the 1-thread variant of
/// `io_context.multithreaded`.
pub fn cells(quick: bool) -> Vec<CellSpec> {
    let mut out = Vec::new();
    let single: [(&str, &str, Params); 4] = [
        (
            "io_context",
            "io_context.dispatch",
            &[("tasks", "1000"), ("yields", "1000")],
        ),
        (
            "io_context",
            "io_context.spawn_join",
            &[("total", "1000000"), ("batch", "1000")],
        ),
        (
            "timer",
            "timer.fire_rate",
            &[
                ("tasks", "1000"),
                ("per_task", "1000"),
                ("spread_ms", "100"),
            ],
        ),
        ("timer", "timer.schedule_cancel", &[("n", "1000000")]),
    ];
    for (family, workload, params) in single {
        for runtime in RUNTIMES {
            out.push(spec(family, workload, runtime, params));
        }
    }
    // (threads, cpus): 1 and 2 runners on the same two CPUs (the goal's
    // comparison: only the number of runners differs), and, in a full
    // run, 1 runner sharing one CPU with the feeder (no task crosses
    // cores: the cost of crossing them is the difference).
    let shapes: &[(&str, &str)] = if quick {
        &[("2", "2")]
    } else {
        &[("1", "1"), ("1", "2"), ("2", "2")]
    };
    for (t, c) in shapes {
        for runtime in MT_RUNTIMES {
            out.push(spec(
                "io_context",
                "io_context.multithreaded",
                runtime,
                &[
                    ("threads", t),
                    ("cpus", c),
                    ("batches", "1000"),
                    ("batch", "1000"),
                ],
            ));
        }
    }
    out
}

fn spec(family: &str, workload: &str, runtime: &str, params: &[(&str, &str)]) -> CellSpec {
    CellSpec {
        family: family.to_string(),
        workload: workload.to_string(),
        runtime: runtime.to_string(),
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// The [`Workload`] a cell describes.
pub fn workload(spec: &CellSpec) -> Result<Workload, String> {
    Ok(match spec.workload.as_str() {
        "io_context.dispatch" => Workload::Dispatch {
            tasks: spec.param("tasks", 1000),
            yields: spec.param("yields", 1000),
        },
        "io_context.spawn_join" => Workload::SpawnJoin {
            total: spec.param("total", 1_000_000),
            batch: spec.param("batch", 1000).max(1),
        },
        "timer.fire_rate" => Workload::FireRate {
            tasks: spec.param("tasks", 1000).max(1),
            per_task: spec.param("per_task", 1000),
            spread: Duration::from_millis(spec.param("spread_ms", 100)),
        },
        "timer.schedule_cancel" => Workload::ScheduleCancel {
            n: spec.param("n", 1_000_000),
        },
        "io_context.multithreaded" => Workload::Multithreaded {
            threads: spec.param("threads", 1).max(1),
            cpus: spec.param("cpus", 1).max(1),
            batches: spec.param("batches", 1000),
            batch: spec.param("batch", 1000).max(1),
        },
        other => return Err(format!("no CPU workload {other}")),
    })
}

/// Runs one cell in this process: pins it, runs the workload on the
/// cell's runtime, turns the measurement into rows.
pub fn run(spec: &CellSpec) -> Result<Vec<Row>, String> {
    let w = workload(spec)?;
    let cpus: Vec<usize> = match &w {
        Workload::Multithreaded { cpus, .. } => (0..*cpus).collect(),
        _ => vec![pin::SERVER_CPU],
    };
    pin_to_cpus(&cpus).map_err(|e| format!("pinning to CPUs {cpus:?}: {e}"))?;
    let m = match spec.runtime.as_str() {
        "ringio" => ringio::measure(&w),
        "tokio" => tokio::measure(&w),
        "monoio" => monoio::measure(&w),
        "compio" => compio::measure(&w),
        "glommio" => glommio::measure(&w),
        other => Err(format!("unknown runtime {other}")),
    }?;
    Ok(rows(spec, &w, &m, &cpus))
}

/// The rows of one measurement: the headline rate, and for `fire_rate` the
/// wall time too (lower is better; the ideal is the spread).
fn rows(spec: &CellSpec, w: &Workload, m: &Measured, cpus: &[usize]) -> Vec<Row> {
    let (metric, unit) = match w {
        Workload::Dispatch { .. } => ("polls_per_sec", "polls/s"),
        Workload::SpawnJoin { .. } | Workload::Multithreaded { .. } => ("tasks_per_sec", "tasks/s"),
        Workload::FireRate { .. } => ("timers_per_sec", "timers/s"),
        Workload::ScheduleCancel { .. } => ("ops_per_sec", "ops/s"),
    };
    let wall_ms = m.elapsed.as_secs_f64() * 1e3;
    let decorate = |mut row: Row| {
        row = row.with("wall_ms", wall_ms).with("ops", m.ops as f64);
        row = row.with("cpus", cpus.len() as f64);
        for (k, v) in &m.extra {
            row = row.with(k, *v);
        }
        row
    };
    let mut out = vec![decorate(Row::new(spec, metric, unit, m.rate(), true))];
    if let Workload::FireRate { spread, .. } = w {
        let row = Row::new(spec, "wall_ms", "ms", wall_ms, false)
            .with("ideal_ms", spread.as_secs_f64() * 1e3);
        out.push(decorate(row));
    }
    out
}

/// Pins the calling thread (and threads started later) to `cpus`.
fn pin_to_cpus(cpus: &[usize]) -> io::Result<()> {
    if let [one] = cpus {
        return pin::pin_to(*one);
    }
    if cpus.iter().any(|&c| c >= pin::available_cpus()) {
        return Err(io::Error::other(format!(
            "needs {} CPUs, {} available",
            cpus.len(),
            pin::available_cpus()
        )));
    }
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET writes inside it
    // (every index was checked against the number of CPUs above).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Yields once: wakes its own waker and returns `Pending`, ready on the
/// next poll. The same future on every runtime, so every runtime pays for
/// exactly one re-schedule through its waker.
pub struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// A [`YieldNow`] not yet polled.
pub fn yield_now() -> YieldNow {
    YieldNow(false)
}

/// Polls `f` once with the calling task's waker and reports the result.
pub async fn poll_once<F: Future>(mut f: Pin<&mut F>) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(f.as_mut().poll(cx))).await
}

/// When sleep `i` of task `t` ends, after the common start: all
/// `tasks * per_task` deadlines spread evenly over `spread`, each task's
/// ascending, neighbouring tasks interleaved (`k = i * tasks + t`).
pub fn fire_offset(t: u64, i: u64, tasks: u64, per_task: u64, spread: Duration) -> Duration {
    let total = (tasks * per_task).max(1) as u128;
    let k = (i * tasks + t) as u128;
    Duration::from_nanos((spread.as_nanos() * k / total) as u64)
}

/// The `dispatch` check: every task ran to its end.
fn check_count(what: &str, got: u64, want: u64) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: {got}, expected {want}"))
    }
}

/// The feeder's side of `io_context.multithreaded`: counts finished tasks
/// and lets the feeder sleep until a count is reached. A task notifies only
/// when the count crosses a multiple of `batch`, so the condition variable
/// costs once per batch, not per task.
pub struct Completions {
    done: AtomicU64,
    batch: u64,
    lock: Mutex<()>,
    cv: Condvar,
}

impl Completions {
    pub fn new(batch: u64) -> Completions {
        Completions {
            done: AtomicU64::new(0),
            batch: batch.max(1),
            lock: Mutex::new(()),
            cv: Condvar::new(),
        }
    }

    /// Called by each task when it finishes.
    pub fn task_done(&self) {
        let n = self.done.fetch_add(1, Ordering::AcqRel) + 1;
        if n.is_multiple_of(self.batch) {
            let _g = self.lock.lock().unwrap();
            self.cv.notify_all();
        }
    }

    /// Blocks until at least `target` (a multiple of the batch size) tasks
    /// finished, or `limit` passed (then an error: a lost task).
    pub fn wait_for(&self, target: u64, limit: Duration) -> Result<(), String> {
        let deadline = std::time::Instant::now() + limit;
        let mut g = self.lock.lock().unwrap();
        while self.done.load(Ordering::Acquire) < target {
            let now = std::time::Instant::now();
            if now >= deadline {
                return Err(format!(
                    "only {} of {target} tasks finished after {limit:?}",
                    self.done.load(Ordering::Acquire)
                ));
            }
            g = self.cv.wait_timeout(g, deadline - now).unwrap().0;
        }
        Ok(())
    }

    /// Tasks finished so far.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Acquire)
    }
}

/// CPU time the calling thread has used since it started
/// (`CLOCK_THREAD_CPUTIME_ID`).
pub fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes into the live `ts`; the clock exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The extras of `io_context.multithreaded` that show who was busy: the
/// feeder's CPU and the runners' mean CPU, each as a share of the wall time.
pub fn busy_extras(
    elapsed: Duration,
    feeder_cpu: Duration,
    runners_cpu: Duration,
    threads: usize,
) -> Vec<(&'static str, f64)> {
    let pct = |cpu: Duration| 100.0 * cpu.as_secs_f64() / elapsed.as_secs_f64().max(1e-9);
    vec![
        ("feeder_busy_pct", pct(feeder_cpu)),
        ("runner_busy_pct", pct(runners_cpu) / threads.max(1) as f64),
    ]
}

/// The feeder loop of `io_context.multithreaded`, the same for every
/// runtime: `spawn_batch(b)` spawns batch `b` (each task calling
/// [`Completions::task_done`]); before batch `b >= 2` it waits for batch
/// `b - 2` to finish, so at most two batches are queued and the workers
/// never run dry while the feeder spawns. Returns when all tasks finished.
pub fn feed(
    batches: u64,
    batch: u64,
    completions: &Completions,
    mut spawn_batch: impl FnMut(u64),
) -> Result<(), String> {
    const LIMIT: Duration = Duration::from_secs(60);
    for b in 0..batches {
        if b >= 2 {
            completions.wait_for((b - 1) * batch, LIMIT)?;
        }
        spawn_batch(b);
    }
    completions.wait_for(batches * batch, LIMIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fire_offsets_are_spread_evenly_and_ascend_per_task() {
        let spread = Duration::from_millis(100);
        assert_eq!(fire_offset(0, 0, 1000, 1000, spread), Duration::ZERO);
        assert_eq!(
            fire_offset(1, 0, 1000, 1000, spread),
            Duration::from_nanos(100)
        );
        assert_eq!(
            fire_offset(0, 1, 1000, 1000, spread),
            Duration::from_micros(100)
        );
        let last = fire_offset(999, 999, 1000, 1000, spread);
        assert!(last < spread && last > spread - Duration::from_micros(1));
    }

    #[test]
    fn every_cell_names_a_known_workload() {
        for quick in [false, true] {
            for c in cells(quick) {
                workload(&c).unwrap();
                assert!(RUNTIMES.contains(&c.runtime.as_str()));
            }
        }
        assert!(cells(true).len() < cells(false).len());
    }

    #[test]
    fn busy_shares_of_feeder_and_mean_runner() {
        let x = busy_extras(
            Duration::from_millis(200),
            Duration::from_millis(150),
            Duration::from_millis(100),
            2,
        );
        assert_eq!(x, [("feeder_busy_pct", 75.0), ("runner_busy_pct", 25.0)]);
        let before = thread_cpu();
        let t0 = std::time::Instant::now();
        while t0.elapsed() < Duration::from_millis(20) {
            std::hint::spin_loop();
        }
        assert!(
            thread_cpu() - before >= Duration::from_millis(5),
            "spinning uses CPU"
        );
    }

    #[test]
    fn feeder_bounds_batches_in_flight() {
        let c = Completions::new(10);
        let mut spawned = 0;
        feed(5, 10, &c, |b| {
            // Batch b may start only when batch b - 2 finished.
            assert!(c.done() + 20 >= b * 10);
            spawned += 10;
            for _ in 0..10 {
                c.task_done();
            }
        })
        .unwrap();
        assert_eq!((spawned, c.done()), (50, 50));
    }
}
