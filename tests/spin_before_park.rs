//! `Builder::spin_before_park`: a context whose runner polls its ring
//! before sleeping. The spin sees completions (a peer's reply), wakes from
//! other threads and posts, and never holds a timer or a `run_for`
//! deadline back; zero never spins. Both modes.

mod common;

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{watchdog, Signal};
use ringio::net::TcpStream;
use ringio::time::sleep;
use ringio::IoContext;

/// Longer than any test waits for an event: a spin that missed its event
/// would run this long before sleeping (and the test would see no hit).
const LONG_SPIN: Duration = Duration::from_secs(2);

/// A context of each mode (single-threaded first) spinning for `spin`,
/// with the mode's name.
fn each_spinning(spin: Duration) -> impl Iterator<Item = (&'static str, IoContext)> {
    [("single", true), ("multi", false)]
        .into_iter()
        .map(move |(name, single)| {
            let ctx = IoContext::builder()
                .single_threaded(single)
                .spin_before_park(spin)
                .build()
                .unwrap();
            (name, ctx)
        })
}

/// `ROUNDS` 8-byte round trips from `ctx` to a plain-thread echo peer
/// that waits a millisecond before each reply, so the context has nothing
/// to do but wait for it in the kernel (a reply already there would be
/// taken by a speculative read, with no wait at all).
fn round_trips_to_a_thread(ctx: &IoContext) {
    const ROUNDS: u64 = 50;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 8];
        for _ in 0..ROUNDS {
            s.read_exact(&mut buf).unwrap();
            thread::sleep(Duration::from_millis(1));
            s.write_all(&buf).unwrap();
        }
    });
    ctx.block_on(async {
        let s = TcpStream::connect(addr).await.unwrap();
        for i in 0..ROUNDS {
            let (res, _) = s.write_all(i.to_le_bytes().to_vec()).await;
            res.unwrap();
            let (res, back) = s.read_exact(vec![0u8; 8]).await;
            res.unwrap();
            assert_eq!(back, i.to_le_bytes());
        }
    });
    peer.join().unwrap();
}

#[test]
fn a_spin_sees_a_peers_replies() {
    watchdog(Duration::from_secs(120), || {
        for (mode, ctx) in each_spinning(LONG_SPIN) {
            let start = Instant::now();
            round_trips_to_a_thread(&ctx);
            let m = ctx.metrics();
            assert!(m.spin_hits > 0, "[{mode}] no spin saw a reply: {m:?}");
            // Each wait that the spin did not end ran the whole spin first.
            let missed = m.leader_waits.saturating_sub(m.spin_hits);
            assert!(
                start.elapsed() < LONG_SPIN * (missed as u32 + 1),
                "[{mode}] {:?} for {m:?}",
                start.elapsed()
            );
        }
    });
}

#[test]
fn a_spin_sees_wakes_and_posts_from_other_threads() {
    watchdog(Duration::from_secs(60), || {
        for (mode, ctx) in each_spinning(LONG_SPIN) {
            // A waker woken on another thread while the context spins.
            let signal = Signal::new();
            let remote = signal.clone();
            let start = Instant::now();
            ctx.block_on(async {
                let waker_thread = thread::spawn(move || {
                    thread::sleep(Duration::from_millis(30));
                    remote.fire();
                });
                signal.wait().await;
                waker_thread.join().unwrap();
            });
            let took = start.elapsed();
            assert!(took < LONG_SPIN, "[{mode}] {took:?}");
            assert!(ctx.metrics().spin_hits > 0, "[{mode}] {:?}", ctx.metrics());

            // A handler posted from another thread while the context spins
            // (`restart`: the context stopped when `block_on` left it idle).
            ctx.restart();
            let guard = ctx.work_guard();
            let poster = ctx.clone();
            let ran = Arc::new(Mutex::new(false));
            let flag = ran.clone();
            let start = Instant::now();
            let t = thread::spawn(move || {
                thread::sleep(Duration::from_millis(30));
                let handle = poster.clone();
                poster.post(move || {
                    *flag.lock().unwrap() = true;
                    handle.stop();
                });
            });
            ctx.run();
            t.join().unwrap();
            drop(guard);
            assert!(*ran.lock().unwrap(), "[{mode}]");
            let took = start.elapsed();
            assert!(took < LONG_SPIN, "[{mode}] {took:?}");
        }
    });
}

#[test]
fn a_spin_never_holds_a_timer_or_a_deadline_back() {
    watchdog(Duration::from_secs(60), || {
        for (mode, ctx) in each_spinning(LONG_SPIN) {
            let start = Instant::now();
            ctx.block_on(sleep(Duration::from_millis(30)));
            let slept = start.elapsed();
            assert!(
                slept >= Duration::from_millis(30),
                "[{mode}] {slept:?}: early"
            );
            assert!(
                slept < LONG_SPIN,
                "[{mode}] {slept:?}: the spin outlasted the timer"
            );

            // `run_for` with nothing to do but wait: bounded by its deadline.
            ctx.restart();
            let guard = ctx.work_guard();
            let start = Instant::now();
            assert_eq!(ctx.run_for(Duration::from_millis(30)), 0, "[{mode}]");
            let waited = start.elapsed();
            assert!(
                waited >= Duration::from_millis(30),
                "[{mode}] {waited:?}: no wait"
            );
            assert!(
                waited < LONG_SPIN,
                "[{mode}] {waited:?}: the spin outlasted it"
            );
            drop(guard);
        }
    });
}

#[test]
fn zero_never_spins() {
    watchdog(Duration::from_secs(60), || {
        for (mode, ctx) in each_spinning(Duration::ZERO) {
            round_trips_to_a_thread(&ctx);
            let m = ctx.metrics();
            assert!(m.leader_waits > 0, "[{mode}] {m:?}");
            assert_eq!(m.spin_hits, 0, "[{mode}] {m:?}");
        }
    });
}

#[test]
fn an_endless_spin_still_sees_a_stop_from_another_thread() {
    watchdog(Duration::from_secs(60), || {
        for (mode, ctx) in each_spinning(Duration::MAX) {
            let _guard = ctx.work_guard();
            let stopper = ctx.clone();
            let t = thread::spawn(move || {
                thread::sleep(Duration::from_millis(30));
                stopper.stop();
            });
            // Nothing to run: the runner spins until the stop arrives.
            assert_eq!(ctx.run(), 0, "[{mode}]");
            t.join().unwrap();
            assert!(ctx.stopped(), "[{mode}]");
            assert!(ctx.metrics().spin_hits > 0, "[{mode}] {:?}", ctx.metrics());
        }
    });
}
