//! Runtime micro-benchmarks: `cargo bench --bench runtime [filter]`.
//!
//! A plain `main` (no harness): each benchmark runs a few times on a fresh
//! context and prints the median, one line per benchmark. Figures are for
//! comparing builds on one machine, not absolute truths.
//!
//! * `spawn`    — spawn + join of trivial tasks (tasks/s)
//! * `post`     — `post` of plain handlers, then `run` (handlers/s)
//! * `dispatch` — 1000 tasks each yielding 1000 times through its waker (polls/s)
//! * `timer-arm-cancel` — arm a `Sleep` an hour out (first poll), drop it (ops/s)
//! * `timer-fire` — 100k sleeps over 0–100 ms from 1000 tasks (timers/s, wall time)
//! * `unix-pingpong-read` / `unix-pingpong-multishot` — 64-byte round trips
//!   between two tasks over a Unix stream pair, each side receiving with
//!   `read` or with `recv_multishot` into a `BufRing` (round trips/s): the
//!   runtime's and io_uring's cost per message without TCP's
//!
//! Each runs on a single-threaded context, and (`[mt]`) on a default
//! multi-threaded context driven by the calling thread alone.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use ringio::buf::BufRing;
use ringio::net::UnixStream;
use ringio::time::{self, Sleep};
use ringio::IoContext;

const RUNS: usize = 5;

/// Runs per benchmark: `RINGIO_BENCH_RUNS` (e.g. 1 under callgrind), else 5.
fn runs() -> usize {
    std::env::var("RINGIO_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(RUNS)
}

/// Yields once: wakes itself and returns `Pending`, ready on the next poll.
struct YieldNow(bool);

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

fn yield_now() -> YieldNow {
    YieldNow(false)
}

/// Polls `f` once with the calling task's waker.
async fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *f).poll(cx))).await
}

fn context(single: bool) -> IoContext {
    IoContext::builder()
        .single_threaded(single)
        .build()
        .expect("io_uring context")
}

/// One measured run: how many operations it did, and how long they took.
struct Sample {
    ops: u64,
    time: Duration,
}

fn spawn_join(single: bool) -> Sample {
    const N: u64 = 200_000;
    let ctx = context(single);
    let start = Instant::now();
    let sum = ctx.block_on(async {
        let handles: Vec<_> = (0..N).map(|i| ringio::spawn(async move { i })).collect();
        let mut sum = 0;
        for h in handles {
            sum += h.await.unwrap();
        }
        sum
    });
    let time = start.elapsed();
    assert_eq!(sum, N * (N - 1) / 2);
    Sample { ops: N, time }
}

fn post(single: bool) -> Sample {
    const N: u64 = 200_000;
    let ctx = context(single);
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    for _ in 0..N {
        let c = count.clone();
        ctx.post(move || {
            c.fetch_add(1, Ordering::Relaxed);
        });
    }
    let ran = ctx.run();
    let time = start.elapsed();
    assert_eq!(ran as u64, N);
    assert_eq!(count.load(Ordering::Relaxed), N);
    Sample { ops: N, time }
}

fn dispatch(single: bool) -> Sample {
    const TASKS: u64 = 1000;
    const YIELDS: u64 = 1000;
    let ctx = context(single);
    let start = Instant::now();
    for _ in 0..TASKS {
        ctx.spawn(async {
            for _ in 0..YIELDS {
                yield_now().await;
            }
        });
    }
    let ran = ctx.run() as u64;
    let time = start.elapsed();
    assert_eq!(ran, TASKS * (YIELDS + 1));
    Sample { ops: ran, time }
}

fn timer_arm_cancel(single: bool) -> Sample {
    const N: u64 = 500_000;
    let ctx = context(single);
    let fired0 = ctx.metrics().timers_fired;
    let time = ctx.block_on(async {
        let start = Instant::now();
        for _ in 0..N {
            let mut s = Sleep::new(Instant::now() + Duration::from_secs(3600));
            assert!(poll_once(&mut s).await.is_pending());
            drop(s);
        }
        start.elapsed()
    });
    assert_eq!(ctx.metrics().timers_fired, fired0);
    Sample { ops: N, time }
}

/// xorshift64, fixed seed.
fn rng(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

fn timer_fire(single: bool) -> Sample {
    const TASKS: u64 = 1000;
    const PER_TASK: u64 = 100;
    let ctx = context(single);
    let fired0 = ctx.metrics().timers_fired;
    let early = Arc::new(AtomicU64::new(0));
    let mut seed = 0x2545_F491_4F6C_DD1D_u64;
    let start = Instant::now();
    for _ in 0..TASKS {
        let mut offsets: Vec<u64> = (0..PER_TASK).map(|_| rng(&mut seed) % 100_000).collect();
        offsets.sort_unstable();
        let early = early.clone();
        ctx.spawn(async move {
            for us in offsets {
                let deadline = start + Duration::from_micros(us);
                time::sleep_until(deadline).await;
                if Instant::now() < deadline {
                    early.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    ctx.run();
    let time = start.elapsed();
    assert_eq!(early.load(Ordering::Relaxed), 0, "timers fired early");
    let fired = ctx.metrics().timers_fired - fired0;
    Sample { ops: fired, time }
}

/// Receives exactly `n` bytes: with `read`, or from a multishot stream.
async fn recv_n(
    s: &UnixStream,
    rx: Option<&mut ringio::net::RecvStream<'_>>,
    n: usize,
    buf: Vec<u8>,
) -> Vec<u8> {
    match rx {
        None => {
            let (res, buf) = s.read_exact(buf).await;
            res.expect("read_exact");
            buf
        }
        Some(rx) => {
            let mut got = buf;
            got.clear();
            while got.len() < n {
                let chunk = rx.next().await.expect("open").expect("chunk");
                got.extend_from_slice(&chunk);
            }
            got
        }
    }
}

fn unix_pingpong(single: bool, multishot: bool) -> Sample {
    const ROUNDS: u64 = 50_000;
    const SIZE: usize = 64;
    let ctx = context(single);
    let start = Instant::now();
    ctx.block_on(async move {
        let (a, b) = UnixStream::pair().expect("pair");
        let ring = BufRing::new(64, 4096).expect("ring");
        let ring_b = ring.clone();
        let echo = ringio::spawn(async move {
            let mut rx = multishot.then(|| b.recv_multishot(&ring_b));
            let mut buf = vec![0u8; SIZE];
            for _ in 0..ROUNDS {
                buf = recv_n(&b, rx.as_mut(), SIZE, buf).await;
                let (res, back) = b.write_all(buf).await;
                res.expect("write_all");
                buf = back;
            }
        });
        let mut rx = multishot.then(|| a.recv_multishot(&ring));
        let mut buf = vec![7u8; SIZE];
        for _ in 0..ROUNDS {
            let (res, back) = a.write_all(buf).await;
            res.expect("write_all");
            buf = recv_n(&a, rx.as_mut(), SIZE, back).await;
            assert_eq!(buf.len(), SIZE);
        }
        echo.await.expect("echo task");
    });
    Sample {
        ops: ROUNDS,
        time: start.elapsed(),
    }
}

fn unix_pingpong_read(single: bool) -> Sample {
    unix_pingpong(single, false)
}

fn unix_pingpong_multishot(single: bool) -> Sample {
    unix_pingpong(single, true)
}

fn median(mut v: Vec<Sample>) -> Sample {
    v.sort_by_key(|s| s.time);
    v.swap_remove(v.len() / 2)
}

fn rate(ops: u64, t: Duration) -> String {
    let r = ops as f64 / t.as_secs_f64();
    if r >= 1e6 {
        format!("{:.2} M", r / 1e6)
    } else {
        format!("{:.1} k", r / 1e3)
    }
}

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    // `name` matches a filter containing it; `=name` only that exact label.
    let wanted = |name: &str| {
        filter.is_empty()
            || filter.iter().any(|f| match f.strip_prefix('=') {
                Some(exact) => name == exact,
                None => name.contains(f.as_str()),
            })
    };
    type Bench = (&'static str, &'static str, fn(bool) -> Sample);
    let benches: [Bench; 7] = [
        ("spawn", "tasks", spawn_join),
        ("post", "handlers", post),
        ("dispatch", "polls", dispatch),
        ("timer-arm-cancel", "ops", timer_arm_cancel),
        ("timer-fire", "timers", timer_fire),
        ("unix-pingpong-read", "trips", unix_pingpong_read),
        ("unix-pingpong-multishot", "trips", unix_pingpong_multishot),
    ];
    let all = Instant::now();
    for (name, unit, f) in benches {
        for single in [true, false] {
            let label = if single {
                name.to_string()
            } else {
                format!("{name} [mt]")
            };
            if !wanted(&label) {
                continue;
            }
            let s = median((0..runs()).map(|_| f(single)).collect());
            println!(
                "{label:<24} {:>9} {unit:<8} median {:>10.3?}  {:>10} {unit}/s",
                s.ops,
                s.time,
                rate(s.ops, s.time),
            );
        }
    }
    println!(
        "({} runs each, median shown; total {:.1?})",
        runs(),
        all.elapsed()
    );
}
