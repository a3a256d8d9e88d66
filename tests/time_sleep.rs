//! `sleep`, `sleep_until`, `Sleep::reset`, `timeout`, `timeout_at` and
//! `interval`, on a multi-threaded and on a single-threaded context.
//!
//! Lower bounds ("never early") are exact; upper bounds are generous and
//! only there so that a lost wake-up fails instead of hanging.

use std::future::Future;
use std::io;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use ringio::time::{self, Elapsed, Sleep};
use ringio::IoContext;

mod common;
use common::{each_mode, poll_once, watchdog, Mode};

/// How late a timer may be before we call it lost (the machine may be busy).
const LATE: Duration = Duration::from_secs(3);

fn assert_on_time(mode: Mode, what: &str, deadline: Instant, woke: Instant) {
    assert!(
        woke >= deadline,
        "[{mode}] {what}: woke {:?} before its deadline",
        deadline - woke
    );
    assert!(
        woke - deadline < LATE,
        "[{mode}] {what}: woke {:?} after its deadline",
        woke - deadline
    );
}

#[test]
fn sleep_waits_at_least_its_duration() {
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            for ms in [1u64, 2, 5, 13, 30] {
                let d = Duration::from_millis(ms);
                let start = Instant::now();
                time::sleep(d).await;
                assert_on_time(mode, &format!("sleep({ms} ms)"), start + d, Instant::now());
            }
        });
    });
}

/// `sleep(d)` reads the clock as raw nanoseconds (not through `Instant`):
/// its deadline still lies between `Instant`s read around the call, plus
/// `d`, and the wake never comes before `call + d`.
#[test]
fn sleep_deadline_is_exactly_call_time_plus_duration() {
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            for _ in 0..1000 {
                let d = Duration::from_nanos(1_234_567);
                let before = Instant::now();
                let s = time::sleep(d);
                let after = Instant::now();
                let dl = s.deadline();
                assert!(before + d <= dl && dl <= after + d, "[{mode}] deadline");
            }
            for us in [50u64, 700, 4_000] {
                let d = Duration::from_micros(us);
                let start = Instant::now();
                let s = time::sleep(d);
                let deadline = s.deadline();
                s.await;
                let woke = Instant::now();
                assert_on_time(mode, &format!("sleep({us} us)"), start + d, woke);
                assert!(woke >= deadline, "[{mode}] woke before deadline()");
            }
        });
    });
}

#[test]
fn sleep_until_never_early() {
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            for us in [100u64, 900, 3_000, 17_000] {
                let deadline = Instant::now() + Duration::from_micros(us);
                time::sleep_until(deadline).await;
                assert_on_time(
                    mode,
                    &format!("sleep_until(+{us} us)"),
                    deadline,
                    Instant::now(),
                );
            }
        });
    });
}

#[test]
fn zero_and_past_deadlines_are_ready_on_first_poll() {
    each_mode(|mode, ctx| {
        let before = ctx.metrics().timers_fired;
        ctx.block_on(async {
            let now = Instant::now();
            let mut zero = pin!(time::sleep(Duration::ZERO));
            assert!(poll_once(&mut zero).await.is_ready(), "[{mode}] sleep(0)");
            let mut past = pin!(time::sleep_until(now - Duration::from_secs(1)));
            assert!(
                poll_once(&mut past).await.is_ready(),
                "[{mode}] sleep_until(past)"
            );
            let mut at_now = pin!(time::sleep_until(now));
            assert!(
                poll_once(&mut at_now).await.is_ready(),
                "[{mode}] sleep_until(now)"
            );
            let mut s = Sleep::new(now);
            assert!(poll_once(&mut s).await.is_ready());
            assert!(s.is_elapsed());
            // Polling a finished Sleep again stays ready.
            assert!(poll_once(&mut s).await.is_ready());
        });
        assert_eq!(
            ctx.metrics().timers_fired,
            before,
            "[{mode}] a deadline already passed must not arm a timer"
        );
    });
}

#[test]
fn sleeping_tasks_under_run_all_wake_in_time() {
    each_mode(|mode, ctx| {
        let before = ctx.metrics().timers_fired;
        let start = Instant::now();
        let handles: Vec<_> = (0..40u64)
            .map(|i| {
                ctx.spawn(async move {
                    let deadline = Instant::now() + Duration::from_millis(i % 20 + 1);
                    time::sleep_until(deadline).await;
                    (deadline, Instant::now())
                })
            })
            .collect();
        let ran = ctx.run();
        assert!(
            ran >= 80,
            "[{mode}] run() ran {ran} handlers for 40 sleeping tasks"
        );
        assert!(ctx.stopped(), "[{mode}] run() returned without stopping");
        for h in handles {
            assert!(h.is_finished());
            let (deadline, woke) = ctx.block_on(h).unwrap();
            assert_on_time(mode, "task sleep", deadline, woke);
        }
        assert!(start.elapsed() < LATE);
        assert_eq!(
            ctx.metrics().timers_fired - before,
            40,
            "[{mode}] timers_fired"
        );
    });
}

#[test]
fn sleep_of_a_huge_duration_does_not_overflow() {
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let r = time::timeout(Duration::from_millis(5), time::sleep(Duration::MAX)).await;
            let _elapsed: Elapsed = r.expect_err(&mode.to_string());
        });
    });
}

#[test]
fn sleep_reset_moves_an_armed_deadline_earlier() {
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let mut s = Sleep::new(Instant::now() + Duration::from_secs(3600));
            assert!(poll_once(&mut s).await.is_pending());
            let deadline = Instant::now() + Duration::from_millis(20);
            s.reset(deadline);
            assert_eq!(s.deadline(), deadline);
            assert!(!s.is_elapsed());
            (&mut s).await;
            assert!(s.is_elapsed());
            assert_on_time(mode, "reset earlier", deadline, Instant::now());
        });
    });
}

#[test]
fn sleep_reset_moves_an_armed_deadline_later() {
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let mut s = Sleep::new(Instant::now() + Duration::from_millis(5));
            assert!(poll_once(&mut s).await.is_pending());
            let deadline = Instant::now() + Duration::from_millis(40);
            s.reset(deadline);
            (&mut s).await;
            assert_on_time(mode, "reset later", deadline, Instant::now());
        });
    });
}

#[test]
fn sleep_reset_rearms_a_fired_sleep_and_works_before_first_poll() {
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            // Before the first poll.
            let mut s = Sleep::new(Instant::now() + Duration::from_secs(3600));
            let d1 = Instant::now() + Duration::from_millis(10);
            s.reset(d1);
            (&mut s).await;
            assert_on_time(mode, "reset before poll", d1, Instant::now());
            // After it fired: armed again.
            let d2 = Instant::now() + Duration::from_millis(15);
            s.reset(d2);
            assert!(!s.is_elapsed());
            assert!(
                poll_once(&mut s).await.is_pending(),
                "[{mode}] re-armed sleep ready early"
            );
            (&mut s).await;
            assert_on_time(mode, "reset after fire", d2, Instant::now());
            // Into the past: ready at once.
            s.reset(Instant::now() - Duration::from_millis(1));
            let t = Instant::now();
            (&mut s).await;
            assert!(t.elapsed() < LATE);
            // An armed sleep reset into the past.
            let mut s = Sleep::new(Instant::now() + Duration::from_secs(3600));
            assert!(poll_once(&mut s).await.is_pending());
            s.reset(Instant::now());
            (&mut s).await;
            assert!(t.elapsed() < LATE);
            // Many resets of one registration, then drop it armed.
            let mut s = Sleep::new(Instant::now() + Duration::from_secs(3600));
            assert!(poll_once(&mut s).await.is_pending());
            for i in 0..1000u64 {
                s.reset(Instant::now() + Duration::from_secs(1000 + i % 7));
            }
            let d3 = Instant::now() + Duration::from_millis(3);
            s.reset(d3);
            (&mut s).await;
            assert_on_time(mode, "after 1000 resets", d3, Instant::now());
        });
    });
}

#[test]
fn timeout_ready_future_wins() {
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            assert_eq!(
                time::timeout(Duration::ZERO, std::future::ready(7)).await,
                Ok(7),
                "[{mode}]"
            );
            assert_eq!(
                time::timeout_at(Instant::now() - Duration::from_secs(1), async { 8 }).await,
                Ok(8),
                "[{mode}] a ready future beats a deadline in the past"
            );
            let r = time::timeout(Duration::from_secs(3600), async {
                time::sleep(Duration::from_millis(5)).await;
                9
            })
            .await;
            assert_eq!(r, Ok(9), "[{mode}]");
        });
    });
}

#[test]
fn timeout_of_a_slow_future_elapses() {
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let start = Instant::now();
            let d = Duration::from_millis(20);
            let r = time::timeout(d, time::sleep(Duration::from_secs(3600))).await;
            let e = r.expect_err("a 1 h sleep finished within a 20 ms timeout");
            assert_on_time(mode, "timeout", start + d, Instant::now());
            assert_eq!(e.to_string(), "deadline has elapsed");
            let io: io::Error = e.into();
            assert_eq!(io.kind(), io::ErrorKind::TimedOut, "[{mode}]");
            // `?` converts it in an io::Result function.
            async fn io_fn() -> io::Result<()> {
                time::timeout(Duration::from_millis(1), std::future::pending::<()>()).await?;
                Ok(())
            }
            assert_eq!(io_fn().await.unwrap_err().kind(), io::ErrorKind::TimedOut);
            // A future that never wakes anybody.
            let r = time::timeout(Duration::from_millis(3), std::future::pending::<u8>()).await;
            assert!(r.is_err());
            // into_inner gives the future back.
            let t = time::timeout(Duration::from_millis(1), async { 5 });
            assert_eq!(t.into_inner().await, 5);
        });
    });
}

#[test]
fn timeout_at_uses_the_absolute_deadline() {
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let deadline = Instant::now() + Duration::from_millis(25);
            let r = time::timeout_at(deadline, time::sleep(Duration::from_secs(3600))).await;
            assert!(r.is_err(), "[{mode}]");
            assert_on_time(mode, "timeout_at", deadline, Instant::now());
            let r = time::timeout_at(
                Instant::now() - Duration::from_millis(1),
                std::future::pending::<()>(),
            )
            .await;
            assert!(r.is_err(), "[{mode}] past deadline, pending future");
            let r = time::timeout_at(
                Instant::now() + Duration::from_secs(3600),
                time::sleep(Duration::from_millis(2)),
            )
            .await;
            assert_eq!(r, Ok(()), "[{mode}]");
        });
    });
}

#[test]
fn timeout_of_a_pipe_read_cancels_the_read() {
    each_mode(|mode, ctx| {
        let before = ctx.metrics();
        ctx.block_on(async {
            let (r, w) = ringio::io::pipe().unwrap();
            let start = Instant::now();
            let d = Duration::from_millis(20);
            let res = time::timeout(d, r.read(vec![0u8; 16])).await;
            assert!(
                res.is_err(),
                "[{mode}] read of an empty pipe completed: {res:?}"
            );
            assert_on_time(mode, "read timeout", start + d, Instant::now());

            // The cancelled read must leave the ring (bounded wait).
            let mut polls = 0;
            while IoContext::current().metrics().ops_in_flight > 0 {
                polls += 1;
                assert!(
                    polls < 500,
                    "[{mode}] cancelled read still in flight after 2.5 s"
                );
                time::sleep(Duration::from_millis(5)).await;
            }
            let m = IoContext::current().metrics();
            assert!(
                m.ops_cancelled > before.ops_cancelled,
                "[{mode}] ops_cancelled did not move: {m:?}"
            );

            // The cancelled read consumed nothing: the next read gets it all.
            let (res, _) = w.write_all(b"after".to_vec()).await;
            res.unwrap();
            let (res, buf) = r.read(vec![0u8; 16]).await;
            let n = res.unwrap();
            assert_eq!(&buf[..n], b"after", "[{mode}]");

            // A read that completes in time wins the timeout.
            let (res, _) = w.write_all(b"in time".to_vec()).await;
            res.unwrap();
            let (res, buf) =
                time::timeout(Duration::from_secs(3600), r.read(Vec::with_capacity(16)))
                    .await
                    .expect("ready read lost to a 1 h timeout");
            assert_eq!(&buf[..res.unwrap()], b"in time");
        });
    });
}

#[test]
fn interval_first_tick_is_immediate_then_on_the_grid() {
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let period = Duration::from_millis(10);
            let created = Instant::now();
            let mut iv = time::interval(period);
            assert_eq!(iv.period(), period);
            let t0 = iv.tick().await;
            assert!(t0 >= created && t0 <= Instant::now());
            // The first tick of an hour-long interval is immediate too.
            let mut hourly = time::interval(Duration::from_secs(3600));
            let mut first = pin!(hourly.tick());
            assert!(
                poll_once(&mut first).await.is_ready(),
                "[{mode}] first tick not immediate"
            );
            let mut last = t0;
            for _ in 0..6 {
                let t = iv.tick().await;
                let now = Instant::now();
                assert!(now >= t, "[{mode}] tick delivered {:?} early", t - now);
                assert!(now - t < LATE);
                let since = (t - t0).as_nanos();
                assert_eq!(since % period.as_nanos(), 0, "[{mode}] tick off the grid");
                assert!(t > last, "[{mode}] ticks not increasing");
                last = t;
            }
        });
    });
}

#[test]
fn interval_at_starts_at_the_given_instant() {
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let start = Instant::now() + Duration::from_millis(15);
            let period = Duration::from_millis(7);
            let mut iv = time::interval_at(start, period);
            let t0 = iv.tick().await;
            assert_eq!(t0, start, "[{mode}]");
            assert_on_time(mode, "interval_at first tick", start, Instant::now());
            let t1 = iv.tick().await;
            assert_eq!((t1 - start).as_nanos() % period.as_nanos(), 0);
            assert!(Instant::now() >= t1);
        });
    });
}

#[test]
fn interval_skips_missed_ticks_instead_of_bursting() {
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let period = Duration::from_millis(10);
            let mut iv = time::interval(period);
            let t0 = iv.tick().await;
            // Block the thread for five and a half periods.
            thread::sleep(Duration::from_millis(55));
            let resumed = Instant::now();
            // The late tick is delivered at once, with its scheduled instant...
            let late = iv.tick().await;
            assert_eq!(late, t0 + period, "[{mode}] late tick");
            assert!(resumed.elapsed() < LATE);
            // ...and the next one is the first grid point after the pause,
            // not a burst of the missed ones.
            let next = iv.tick().await;
            let now = Instant::now();
            assert!(
                next > resumed,
                "[{mode}] missed tick delivered in a burst: {:?} before resuming",
                resumed - next
            );
            assert!(now >= next, "[{mode}] tick delivered early");
            assert_eq!(
                (next - t0).as_nanos() % period.as_nanos(),
                0,
                "[{mode}] off the grid"
            );
            assert!(
                next - t0 >= Duration::from_millis(60),
                "[{mode}] {:?}",
                next - t0
            );
        });
    });
}

#[test]
fn interval_reset_restarts_the_schedule() {
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let period = Duration::from_millis(20);
            let mut iv = time::interval(period);
            iv.tick().await;
            time::sleep(Duration::from_millis(5)).await;
            let r = Instant::now();
            iv.reset();
            let t = iv.tick().await;
            assert!(
                t >= r + period,
                "[{mode}] tick at {:?} after reset, expected >= period",
                t - r
            );
            assert_on_time(mode, "tick after reset", t, Instant::now());
            // Reset straight after creation: the immediate first tick is replaced.
            let mut iv = time::interval(period);
            let r = Instant::now();
            iv.reset();
            let t = iv.tick().await;
            assert!(t >= r + period);
            assert!(Instant::now() >= t);
        });
    });
}

#[test]
#[should_panic(expected = "period must be non-zero")]
fn interval_with_zero_period_panics() {
    let _ = time::interval(Duration::ZERO);
}

fn poll_outside<F: Future>(f: F) -> Poll<F::Output> {
    let mut f = pin!(f);
    f.as_mut().poll(&mut Context::from_waker(Waker::noop()))
}

#[test]
#[should_panic(expected = "polled outside a running IoContext")]
fn sleep_polled_outside_a_context_panics() {
    let _ = poll_outside(time::sleep(Duration::from_secs(1)));
}

#[test]
#[should_panic(expected = "polled outside a running IoContext")]
fn sleep_struct_polled_outside_a_context_panics() {
    let _ = poll_outside(Sleep::new(Instant::now() + Duration::from_secs(1)));
}

#[test]
#[should_panic(expected = "polled outside a running IoContext")]
fn timeout_polled_outside_a_context_panics() {
    let _ = poll_outside(time::timeout(
        Duration::from_secs(1),
        std::future::pending::<()>(),
    ));
}

#[test]
fn outside_context_panic_message_is_clear() {
    let err = std::panic::catch_unwind(|| {
        let _ = poll_outside(time::sleep_until(Instant::now() + Duration::from_secs(5)));
    })
    .expect_err("no panic");
    let msg = err
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .expect("panic message is a string");
    assert!(msg.contains("ringio"), "{msg}");
    assert!(msg.contains("outside a running IoContext"), "{msg}");
    assert!(
        msg.contains("block_on"),
        "message should say where to poll it: {msg}"
    );
}

#[test]
fn single_threaded_sleep_polled_on_another_thread_panics_clearly() {
    watchdog(Duration::from_secs(30), || {
        let ctx = IoContext::builder().single_threaded(true).build().unwrap();
        let mut s = Sleep::new(Instant::now() + Duration::from_secs(3600));
        ctx.block_on(async { assert!(poll_once(&mut s).await.is_pending()) });
        let err = thread::spawn(move || {
            let mut s = s;
            let _ = poll_outside(&mut s);
        })
        .join()
        .expect_err("polling a single-threaded sleep on a foreign thread did not panic");
        let msg = err
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        assert!(msg.contains("another thread"), "unclear message: {msg}");
        // The context still works afterwards (the dropped registration went
        // through the remote queue).
        ctx.block_on(time::sleep(Duration::from_millis(1)));
    });
}
