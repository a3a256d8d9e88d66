//! Timers under load: tens of thousands of sleeps with random deadlines in
//! many tasks, on one and on several runner threads; none may fire early,
//! all must fire, and `metrics().timers_fired` must count exactly the
//! timers that were armed. Plus the leader re-wake: a timer armed while the
//! leader sleeps in the kernel on a later deadline fires on time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use ringio::time::{self, Sleep};
use ringio::IoContext;

mod common;
use common::{poll_once, watchdog};

/// xorshift64: a small deterministic generator, fixed seeds.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng((seed ^ 0x9E37_79B9_7F4A_7C15).wrapping_mul(0xBF58_476D_1CE4_E5B9) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What a batch of sleeps saw.
#[derive(Debug, Default)]
struct Tally {
    sleeps: AtomicU64,
    /// Sleeps whose first poll was pending, i.e. that armed a timer.
    armed: AtomicU64,
    early: AtomicU64,
    worst_early_ns: AtomicU64,
    worst_late_ns: AtomicU64,
}

impl Tally {
    /// Sleeps until `deadline`, recording whether it armed a timer and
    /// whether it woke early.
    async fn sleep_until(&self, deadline: Instant) {
        let mut s = Sleep::new(deadline);
        if poll_once(&mut s).await.is_pending() {
            self.armed.fetch_add(1, Ordering::Relaxed);
            (&mut s).await;
        }
        self.woke(deadline, Instant::now());
    }

    fn woke(&self, deadline: Instant, now: Instant) {
        self.sleeps.fetch_add(1, Ordering::Relaxed);
        if now < deadline {
            self.early.fetch_add(1, Ordering::Relaxed);
            self.worst_early_ns
                .fetch_max((deadline - now).as_nanos() as u64, Ordering::Relaxed);
        } else {
            self.worst_late_ns
                .fetch_max((now - deadline).as_nanos() as u64, Ordering::Relaxed);
        }
    }

    fn check(&self, what: &str, expected_sleeps: u64, fired: u64) {
        let sleeps = self.sleeps.load(Ordering::Relaxed);
        let armed = self.armed.load(Ordering::Relaxed);
        let early = self.early.load(Ordering::Relaxed);
        eprintln!(
            "{what}: {sleeps} sleeps, {armed} armed, {fired} fired, worst lateness {:?}",
            Duration::from_nanos(self.worst_late_ns.load(Ordering::Relaxed))
        );
        assert_eq!(
            early,
            0,
            "{what}: {early} sleeps woke early (worst by {:?})",
            Duration::from_nanos(self.worst_early_ns.load(Ordering::Relaxed))
        );
        assert_eq!(sleeps, expected_sleeps, "{what}: not every sleep completed");
        assert!(
            armed > expected_sleeps / 2,
            "{what}: only {armed} sleeps armed a timer"
        );
        assert_eq!(fired, armed, "{what}: timers_fired != timers armed");
    }
}

/// Spawns `tasks` tasks that each sleep `per_task` times for a random
/// 0..`max_us` µs.
fn spawn_sleepers(
    ctx: &IoContext,
    tally: &Arc<Tally>,
    seed: u64,
    tasks: u64,
    per_task: u64,
    max_us: u64,
) {
    for i in 0..tasks {
        let tally = tally.clone();
        ctx.spawn(async move {
            let mut rng = Rng::new(seed.wrapping_mul(1_000_003) + i);
            for _ in 0..per_task {
                let d = Duration::from_micros(rng.below(max_us));
                tally.sleep_until(Instant::now() + d).await;
            }
        });
    }
}

#[test]
fn random_sleeps_in_many_tasks_never_early_all_fire() {
    for single in [false, true] {
        watchdog(Duration::from_secs(60), move || {
            let mode = if single { "single" } else { "multi, 1 runner" };
            let ctx = IoContext::builder()
                .single_threaded(single)
                .build()
                .unwrap();
            let tally = Arc::new(Tally::default());
            let fired0 = ctx.metrics().timers_fired;
            spawn_sleepers(&ctx, &tally, 1, 1000, 20, 8_000);
            let start = Instant::now();
            let ran = ctx.run();
            eprintln!("{mode}: run() ran {ran} handlers in {:?}", start.elapsed());
            tally.check(mode, 20_000, ctx.metrics().timers_fired - fired0);
            assert_eq!(ctx.metrics().outstanding_work, 0);
        });
    }
}

#[test]
fn random_sleeps_on_several_runner_threads_and_remote_spawners() {
    watchdog(Duration::from_secs(60), || {
        let ctx = IoContext::new().unwrap();
        let tally = Arc::new(Tally::default());
        let fired0 = ctx.metrics().timers_fired;
        // Keeps run() going until the remote spawners are done.
        let guard = ctx.work_guard();
        spawn_sleepers(&ctx, &tally, 2, 500, 10, 10_000);
        let runners: Vec<_> = (0..3)
            .map(|_| {
                let c = ctx.clone();
                thread::spawn(move || c.run())
            })
            .collect();
        let spawners: Vec<_> = (0..2u64)
            .map(|s| {
                let (c, t) = (ctx.clone(), tally.clone());
                thread::spawn(move || {
                    for round in 0..5 {
                        spawn_sleepers(&c, &t, 100 + s * 10 + round, 150, 10, 10_000);
                        thread::sleep(Duration::from_millis(3));
                    }
                })
            })
            .collect();
        for s in spawners {
            s.join().unwrap();
        }
        drop(guard);
        let ran: usize = runners.into_iter().map(|r| r.join().unwrap()).sum();
        eprintln!("3 runners ran {ran} handlers; {:?}", ctx.metrics());
        tally.check(
            "multi, 3 runners",
            5_000 + 2 * 5 * 1_500,
            ctx.metrics().timers_fired - fired0,
        );
        assert_eq!(ctx.metrics().outstanding_work, 0);
    });
}

#[test]
fn thirty_thousand_concurrent_timers_with_cancels() {
    // 30k tasks, each with one deadline spread over 0..100 ms from a common
    // base; a third also race a timeout (half of those against an hour-long
    // sleep), so timers get cancelled out of the middle of the heap while
    // others fire.
    for single in [false, true] {
        watchdog(Duration::from_secs(60), move || {
            let mode = if single { "single" } else { "multi, 2 runners" };
            let ctx = IoContext::builder()
                .single_threaded(single)
                .build()
                .unwrap();
            let tally = Arc::new(Tally::default());
            let timeouts = Arc::new(AtomicU64::new(0));
            let fired0 = ctx.metrics().timers_fired;
            let early_timeouts = Arc::new(AtomicU64::new(0));
            // The common base is set just before run(), so that spawning
            // 30k tasks (slow in a debug build) does not eat into it.
            let base = Arc::new(OnceLock::new());
            let mut rng = Rng::new(3);
            for i in 0..30_000u64 {
                let deadline = Duration::from_micros(rng.below(100_000));
                let cut = Duration::from_micros(rng.below(100_000));
                let (tally, timeouts) = (tally.clone(), timeouts.clone());
                let (early_timeouts, base) = (early_timeouts.clone(), base.clone());
                ctx.spawn(async move {
                    let base: Instant = *base.get().expect("base set before run");
                    let (deadline, cut) = (base + deadline, base + cut);
                    if i % 3 == 0 {
                        // Half of these can only end by their timeout.
                        let deadline = if i % 2 == 0 {
                            deadline
                        } else {
                            deadline + Duration::from_secs(3600)
                        };
                        if time::timeout_at(cut, tally.sleep_until(deadline))
                            .await
                            .is_err()
                        {
                            timeouts.fetch_add(1, Ordering::Relaxed);
                            if Instant::now() < cut {
                                early_timeouts.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    } else {
                        tally.sleep_until(deadline).await;
                    }
                });
            }
            base.set(Instant::now() + Duration::from_millis(100))
                .unwrap();
            let start = Instant::now();
            let ran = if single {
                ctx.run()
            } else {
                let other = {
                    let c = ctx.clone();
                    thread::spawn(move || c.run())
                };
                ctx.run() + other.join().unwrap()
            };
            let timeouts = timeouts.load(Ordering::Relaxed);
            eprintln!(
                "{mode}: ran {ran} handlers in {:?}, {timeouts} timeouts",
                start.elapsed()
            );
            // Every timeout that fired is a timer too; the sleeps it cut
            // short were armed but cancelled, not fired.
            let fired = ctx.metrics().timers_fired - fired0;
            let sleeps = tally.sleeps.load(Ordering::Relaxed);
            assert_eq!(sleeps + timeouts, 30_000, "{mode}: tasks lost");
            assert!(
                (5_000..=10_000).contains(&timeouts),
                "{mode}: {timeouts} timeouts"
            );
            assert_eq!(
                tally.early.load(Ordering::Relaxed),
                0,
                "{mode}: early wake-ups"
            );
            assert_eq!(
                early_timeouts.load(Ordering::Relaxed),
                0,
                "{mode}: timeouts fired before their deadline"
            );
            let armed = tally.armed.load(Ordering::Relaxed);
            // Each armed sleep fired unless a timeout dropped it first; on
            // top of those, up to one timer per timeout-wrapped task.
            assert!(
                fired + timeouts >= armed && fired <= armed + 10_000,
                "{mode}: timers_fired {fired}, sleeps armed {armed}, timeouts {timeouts}"
            );
            assert!(
                armed > 15_000,
                "{mode}: only {armed} of 30k sleeps armed a timer"
            );
        });
    }
}

/// Runs `rounds` rounds of: wait until the context is idle (its leader
/// parked on a 10 s deadline), then make something arm a 20 ms timer; it
/// must complete on time. `arm` starts the round and returns a receiver for
/// the (deadline, woke) pair.
/// `finish` then ends whatever other work the caller left on the context.
fn leader_rewake<A, F>(
    ctx: &IoContext,
    runners: usize,
    rounds: usize,
    what: &str,
    mut arm: A,
    finish: F,
) where
    A: FnMut(&IoContext) -> mpsc::Receiver<(Instant, Instant)>,
    F: FnOnce(),
{
    let far = ctx.spawn(async {
        time::sleep(Duration::from_secs(10)).await;
    });
    let threads: Vec<_> = (0..runners)
        .map(|_| {
            let c = ctx.clone();
            thread::spawn(move || c.run())
        })
        .collect();
    let fired0 = ctx.metrics().timers_fired;
    for round in 0..rounds {
        // Let the runners go to sleep: the leader in the kernel until the
        // 10 s deadline, the others on their condition variable.
        thread::sleep(Duration::from_millis(60));
        let start = Instant::now();
        let rx = arm(ctx);
        let (deadline, woke) = rx
            .recv_timeout(Duration::from_secs(15))
            .unwrap_or_else(|_| panic!("{what}: round {round}: the 20 ms timer never fired"));
        assert!(woke >= deadline, "{what}: round {round}: fired early");
        assert!(
            woke - start < Duration::from_secs(1),
            "{what}: round {round}: a 20 ms timer armed while the leader slept on a 10 s \
             deadline fired after {:?}",
            woke - start
        );
    }
    assert!(ctx.metrics().timers_fired - fired0 >= rounds as u64);
    finish();
    far.abort();
    for t in threads {
        t.join().unwrap();
    }
    assert!(far.is_finished());
}

/// A task spawned from outside arms a 20 ms sleep.
fn arm_by_spawn(ctx: &IoContext) -> mpsc::Receiver<(Instant, Instant)> {
    let (tx, rx) = mpsc::channel();
    ctx.spawn(async move {
        let deadline = Instant::now() + Duration::from_millis(20);
        time::sleep_until(deadline).await;
        let _ = tx.send((deadline, Instant::now()));
    });
    rx
}

#[test]
fn timer_armed_while_leader_sleeps_on_a_later_deadline_fires_on_time() {
    watchdog(Duration::from_secs(60), || {
        for runners in [2, 3, 1] {
            let ctx = IoContext::new().unwrap();
            let what = format!("multi, {runners} runners, spawn");
            leader_rewake(&ctx, runners, 6, &what, arm_by_spawn, || {});
        }
        let ctx = IoContext::builder().single_threaded(true).build().unwrap();
        leader_rewake(&ctx, 1, 6, "single, spawn", arm_by_spawn, || {});
    });
}

#[test]
fn timer_armed_by_a_task_woken_by_io_while_leader_sleeps() {
    // A resident task waits on a pipe; an outside thread writes (the CQE
    // wakes the context), the task then arms a 20 ms sleep — possibly on a
    // follower while the leader has gone back to sleep on the 10 s deadline.
    watchdog(Duration::from_secs(60), || {
        for single in [false, true] {
            let ctx = IoContext::builder()
                .single_threaded(single)
                .build()
                .unwrap();
            let (r, w) = ringio::io::pipe().unwrap();
            let (tx, rx) = mpsc::channel::<mpsc::Sender<(Instant, Instant)>>();
            let rx = Arc::new(std::sync::Mutex::new(rx));
            let resident = ctx.spawn(async move {
                let mut buf = vec![0u8; 8];
                loop {
                    let (res, b) = r.read(buf).await;
                    buf = b;
                    if res.unwrap() == 0 {
                        return;
                    }
                    let reply = rx.lock().unwrap().recv().unwrap();
                    let deadline = Instant::now() + Duration::from_millis(20);
                    time::sleep_until(deadline).await;
                    let _ = reply.send((deadline, Instant::now()));
                }
            });
            // The test thread writes with plain write(2) on the writer's fd.
            let fd = std::os::fd::AsRawFd::as_raw_fd(&w);
            let what = if single {
                "single, pipe wake"
            } else {
                "multi, 2 runners, pipe wake"
            };
            let runners = if single { 1 } else { 2 };
            let arm = |_: &IoContext| {
                let (rtx, rrx) = mpsc::channel();
                tx.send(rtx).unwrap();
                // SAFETY: `fd` is the open write end of the pipe (`w` lives
                // until after this closure), and the buffer is one valid byte.
                let n = unsafe { libc::write(fd, b"x".as_ptr().cast(), 1) };
                assert_eq!(n, 1);
                rrx
            };
            // Closing the writer ends the resident task (its read gets 0).
            leader_rewake(&ctx, runners, 5, what, arm, move || drop(w));
            assert!(resident.is_finished());
            ctx.block_on(resident).unwrap();
        }
    });
}

#[test]
fn sleep_reset_earlier_while_leader_sleeps_fires_on_time() {
    // A task holds a Sleep registered 10 s out (so the leader's kernel wait
    // is bounded by it), is woken by a spawn-free remote wake (a Timer
    // cancel from an outside thread), and resets its Sleep to 20 ms.
    watchdog(Duration::from_secs(60), || {
        for (single, runners) in [(false, 2), (false, 1), (true, 1)] {
            let ctx = IoContext::builder()
                .single_threaded(single)
                .build()
                .unwrap();
            let kick = Arc::new(time::Timer::new());
            kick.expires_after(Duration::from_secs(3600));
            let (tx, rx) = mpsc::channel::<mpsc::Sender<(Instant, Instant)>>();
            let rx = Arc::new(std::sync::Mutex::new(rx));
            let k = kick.clone();
            let resident = ctx.spawn(async move {
                let mut s = Sleep::new(Instant::now() + Duration::from_secs(10));
                assert!(poll_once(&mut s).await.is_pending());
                loop {
                    if k.wait().await.is_ok() {
                        return; // expiry moved to the past: done
                    }
                    let Ok(reply) = rx.lock().unwrap().try_recv() else {
                        continue;
                    };
                    let deadline = Instant::now() + Duration::from_millis(20);
                    s.reset(deadline);
                    (&mut s).await;
                    let _ = reply.send((deadline, Instant::now()));
                    s.reset(Instant::now() + Duration::from_secs(10));
                    assert!(poll_once(&mut s).await.is_pending());
                }
            });
            let what = format!(
                "{}, {runners} runners, Sleep::reset",
                if single { "single" } else { "multi" }
            );
            let arm = |_: &IoContext| {
                let (rtx, rrx) = mpsc::channel();
                tx.send(rtx).unwrap();
                // Wait until the resident task is registered on the timer.
                let t0 = Instant::now();
                while kick.cancel() == 0 {
                    assert!(
                        t0.elapsed() < Duration::from_secs(5),
                        "resident task never waited"
                    );
                    thread::sleep(Duration::from_millis(1));
                }
                rrx
            };
            // Moving the expiry to now ends the resident task.
            let k = kick.clone();
            leader_rewake(&ctx, runners, 5, &what, arm, move || {
                k.expires_at(Instant::now());
            });
            assert!(resident.is_finished());
            ctx.block_on(resident).unwrap();
        }
    });
}
