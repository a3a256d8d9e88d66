//! A short tour of ringio: `cargo run --release --example tour`.
//!
//! The same small workload runs twice, first on a multi-threaded context
//! driven by three threads (leader/follower on one ring), then on a
//! single-threaded context (`SINGLE_ISSUER | DEFER_TASKRUN`, no locks):
//!
//! 1. tasks sleeping on timers (four, then a crowd of 1000), checked to
//!    never wake early;
//! 2. a ping-pong over two pipes between two tasks;
//! 3. an Asio-style `Timer` that a waiter blocks on and another task cancels;
//! 4. a task stuck on a pipe read, aborted (its read is cancelled in the kernel);
//! 5. a `timeout` around a read that never completes.
//!
//! Each step prints what happened; at the end come the handler counts
//! returned by `run`, the elapsed time and a few counters.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ringio::time::{self, Timer};
use ringio::IoContext;

/// Lines printed by tasks, collected so the output of concurrent tasks
/// comes out in a readable order at the end of each step.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn say(&self, line: String) {
        self.0.lock().unwrap().push(line);
    }

    fn flush(&self) {
        for line in self.0.lock().unwrap().drain(..) {
            println!("    {line}");
        }
    }
}

fn thread_name() -> String {
    thread::current().name().unwrap_or("main").to_string()
}

/// Step 1: tasks sleeping for different times.
async fn sleepers(log: Log) {
    let early = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let handles: Vec<_> = [40u64, 10, 30, 20]
        .into_iter()
        .enumerate()
        .map(|(i, ms)| {
            let (log, early) = (log.clone(), early.clone());
            ringio::spawn(async move {
                let deadline = Instant::now() + Duration::from_millis(ms);
                time::sleep_until(deadline).await;
                let now = Instant::now();
                if now < deadline {
                    early.fetch_add(1, Ordering::Relaxed);
                }
                log.say(format!(
                    "sleeper {i}: asked for {ms:>2} ms, woke after {:>6.2?} on thread {}",
                    now - (deadline - Duration::from_millis(ms)),
                    thread_name()
                ));
            })
        })
        .collect();
    // And a crowd: 1000 tasks sleeping 1..=50 ms each.
    let worst_late_us = Arc::new(AtomicU64::new(0));
    let crowd: Vec<_> = (0..1000u64)
        .map(|i| {
            let (early, worst) = (early.clone(), worst_late_us.clone());
            ringio::spawn(async move {
                let deadline = Instant::now() + Duration::from_millis(1 + i * 7919 % 50);
                time::sleep_until(deadline).await;
                let now = Instant::now();
                if now < deadline {
                    early.fetch_add(1, Ordering::Relaxed);
                } else {
                    worst.fetch_max((now - deadline).as_micros() as u64, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for h in handles.into_iter().chain(crowd) {
        h.await.unwrap();
    }
    log.say(format!(
        "plus 1000 tasks sleeping 1-50 ms: worst lateness {} µs",
        worst_late_us.load(Ordering::Relaxed)
    ));
    log.say(format!(
        "all 1004 sleepers done in {:.2?}; early wake-ups: {}",
        start.elapsed(),
        early.load(Ordering::Relaxed)
    ));
}

/// Step 2: two tasks bounce a counter through two pipes.
async fn ping_pong(log: Log) -> io::Result<()> {
    const ROUNDS: u32 = 1000;
    let (from_ping, to_pong) = ringio::io::pipe()?;
    let (from_pong, to_ping) = ringio::io::pipe()?;
    let start = Instant::now();
    let pong = ringio::spawn(async move {
        let mut buf = vec![0u8; 4];
        loop {
            let (res, b) = from_ping.read(buf).await;
            let n = res?;
            if n == 0 {
                return io::Result::Ok(());
            }
            let v = u32::from_le_bytes(b[..4].try_into().unwrap()) + 1;
            let (res, _) = to_ping.write_all(v.to_le_bytes().to_vec()).await;
            res?;
            buf = b;
        }
    });
    let mut v = 0u32;
    let mut buf = vec![0u8; 4];
    for _ in 0..ROUNDS {
        let (res, _) = to_pong.write_all(v.to_le_bytes().to_vec()).await;
        res?;
        let (res, b) = from_pong.read(buf).await;
        assert_eq!(res?, 4);
        v = u32::from_le_bytes(b[..4].try_into().unwrap()) + 1;
        buf = b;
    }
    drop(to_pong); // the pong task reads 0 and ends
    pong.await.map_err(io::Error::from)??;
    let t = start.elapsed();
    log.say(format!(
        "ping-pong: {ROUNDS} round trips over two pipes in {t:.2?} ({:.1} µs each), counter = {v}",
        t.as_secs_f64() * 1e6 / f64::from(ROUNDS)
    ));
    assert_eq!(v, 2 * ROUNDS);
    Ok(())
}

/// Step 3: a waiter on an hour-long Timer, cancelled by another task.
async fn timer_cancel(log: Log) {
    let timer = Arc::new(Timer::new());
    timer.expires_after(Duration::from_secs(3600));
    let t = timer.clone();
    let log2 = log.clone();
    let waiter = ringio::spawn(async move {
        let start = Instant::now();
        let res = t.wait().await;
        log2.say(format!(
            "timer waiter: wait() returned {:?} after {:.2?}",
            res.as_ref().map_err(|e| e.to_string()),
            start.elapsed()
        ));
    });
    time::sleep(Duration::from_millis(5)).await;
    let n = timer.cancel();
    log.say(format!("canceller: Timer::cancel() woke {n} waiter(s)"));
    waiter.await.unwrap();
    // A fresh expiry completes normally.
    timer.expires_after(Duration::from_millis(5));
    let res = timer.wait().await;
    log.say(format!("re-armed timer for 5 ms: wait() returned {res:?}"));
}

/// Step 4 and 5: a task stuck on a read, aborted; a read under a timeout.
async fn abort_and_timeout(log: Log) -> io::Result<()> {
    let (reader, writer) = ringio::io::pipe()?;
    let stuck = ringio::spawn(async move {
        let (res, _) = reader.read(vec![0u8; 16]).await;
        res
    });
    time::sleep(Duration::from_millis(5)).await;
    let in_flight = IoContext::current().metrics().ops_in_flight;
    stuck.abort();
    let err = stuck.await.unwrap_err();
    log.say(format!(
        "aborted a task blocked on a pipe read ({in_flight} op(s) were in flight): \
         join error is_cancelled = {}",
        err.is_cancelled()
    ));
    drop(writer);

    let (reader, _writer) = ringio::io::pipe()?;
    let start = Instant::now();
    let res = time::timeout(Duration::from_millis(15), reader.read(vec![0u8; 16])).await;
    let as_io = res.map(|_| ()).map_err(io::Error::from);
    log.say(format!(
        "timeout(15 ms) around a read nobody writes to: {:?} after {:.2?}",
        as_io.map_err(|e| e.kind()),
        start.elapsed()
    ));
    Ok(())
}

/// The whole workload, as one task per step, in order.
async fn workload(log: Log) -> io::Result<()> {
    println!("  1. sleeping tasks");
    sleepers(log.clone()).await;
    log.flush();
    println!("  2. pipe ping-pong");
    ping_pong(log.clone()).await?;
    log.flush();
    println!("  3. Timer cancel");
    timer_cancel(log.clone()).await;
    log.flush();
    println!("  4-5. abort and timeout");
    abort_and_timeout(log.clone()).await?;
    log.flush();
    Ok(())
}

fn report(ctx: &IoContext, handlers: &[usize], elapsed: Duration) {
    let m = ctx.metrics();
    println!(
        "  run() returned handler counts {handlers:?} (total {})",
        handlers.iter().sum::<usize>()
    );
    println!("  elapsed {elapsed:.2?}");
    println!(
        "  metrics: tasks_polled {}, tasks_spawned {}, enter_calls {}, sqes_submitted {}, \
         cqes_reaped {}, timers_fired {}, ops_cancelled {}, leader_waits {}, wakeups {}",
        m.tasks_polled,
        m.tasks_spawned,
        m.enter_calls,
        m.sqes_submitted,
        m.cqes_reaped,
        m.timers_fired,
        m.ops_cancelled,
        m.leader_waits,
        m.wakeups
    );
    if m.sqes_submitted > 0 {
        println!(
            "  batching: {:.2} SQEs per io_uring_enter",
            m.sqes_submitted as f64 / m.enter_calls.max(1) as f64
        );
    }
}

fn main() -> io::Result<()> {
    const RUNNERS: usize = 3;
    println!("== multi-threaded IoContext, run() by {RUNNERS} threads ==");
    let ctx = IoContext::new()?;
    let log = Log::default();
    let main_task = ctx.spawn(workload(log.clone()));
    let start = Instant::now();
    let runners: Vec<_> = (0..RUNNERS)
        .map(|i| {
            let c = ctx.clone();
            thread::Builder::new()
                .name(format!("runner-{i}"))
                .spawn(move || c.run())
                .expect("spawn runner thread")
        })
        .collect();
    let handlers: Vec<usize> = runners.into_iter().map(|r| r.join().unwrap()).collect();
    let elapsed = start.elapsed();
    // run() returned: the workload is done; its handle is ready.
    ctx.block_on(main_task).map_err(io::Error::from)??;
    report(&ctx, &handlers, elapsed);

    println!();
    println!(
        "== single-threaded IoContext (SINGLE_ISSUER | DEFER_TASKRUN), run() by this thread =="
    );
    let ctx = IoContext::builder().single_threaded(true).build()?;
    let main_task = ctx.spawn(workload(log.clone()));
    let start = Instant::now();
    let handlers = ctx.run();
    let elapsed = start.elapsed();
    ctx.block_on(main_task).map_err(io::Error::from)??;
    report(&ctx, &[handlers], elapsed);
    println!();
    println!("tour complete");
    Ok(())
}
