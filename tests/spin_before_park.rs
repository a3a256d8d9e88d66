//! `Builder::spin_before_park`: a single-threaded context that polls its
//! ring before sleeping. The spin sees completions (a peer's reply), wakes
//! from other threads and posts, never holds a timer or a `run_for`
//! deadline back, and multi-threaded contexts refuse the setting.

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

fn spinning(spin: Duration) -> IoContext {
    IoContext::builder()
        .single_threaded(true)
        .spin_before_park(spin)
        .build()
        .unwrap()
}

#[test]
fn multi_threaded_contexts_refuse_to_spin() {
    let err = IoContext::builder()
        .single_threaded(false)
        .spin_before_park(Duration::from_micros(50))
        .build()
        .map(drop)
        .expect_err("a multi-threaded context with a spin");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("single-threaded"), "{err}");
    // Zero is the default and means "never spin": accepted everywhere.
    IoContext::builder()
        .spin_before_park(Duration::ZERO)
        .build()
        .unwrap();
}

#[test]
fn a_spin_sees_a_peers_replies() {
    watchdog(Duration::from_secs(60), || {
        const ROUNDS: usize = 50;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // The peer is a plain thread, so the context has nothing to do but
        // wait for each reply in the kernel.
        let peer = thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 8];
            for _ in 0..ROUNDS {
                s.read_exact(&mut buf).unwrap();
                s.write_all(&buf).unwrap();
            }
        });
        let ctx = spinning(LONG_SPIN);
        let start = Instant::now();
        ctx.block_on(async {
            let s = TcpStream::connect(addr).await.unwrap();
            for i in 0..ROUNDS as u64 {
                let (res, _) = s.write_all(i.to_le_bytes().to_vec()).await;
                res.unwrap();
                let (res, back) = s.read_exact(vec![0u8; 8]).await;
                res.unwrap();
                assert_eq!(back, i.to_le_bytes());
            }
        });
        peer.join().unwrap();
        let m = ctx.metrics();
        assert!(
            m.spin_hits > 0,
            "no spin saw a reply in {ROUNDS} round trips: {m:?}"
        );
        // Each wait that the spin did not end ran the whole spin first.
        let missed = m.leader_waits.saturating_sub(m.spin_hits);
        assert!(
            start.elapsed() < LONG_SPIN * (missed as u32 + 1),
            "{:?} for {m:?}",
            start.elapsed()
        );
    });
}

#[test]
fn a_spin_sees_wakes_and_posts_from_other_threads() {
    watchdog(Duration::from_secs(60), || {
        let ctx = spinning(LONG_SPIN);
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
        assert!(start.elapsed() < LONG_SPIN, "{:?}", start.elapsed());
        assert!(ctx.metrics().spin_hits > 0, "{:?}", ctx.metrics());

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
        assert!(*ran.lock().unwrap());
        assert!(start.elapsed() < LONG_SPIN, "{:?}", start.elapsed());
    });
}

#[test]
fn a_spin_never_holds_a_timer_or_a_deadline_back() {
    watchdog(Duration::from_secs(60), || {
        let ctx = spinning(LONG_SPIN);
        let start = Instant::now();
        ctx.block_on(sleep(Duration::from_millis(30)));
        let slept = start.elapsed();
        assert!(slept >= Duration::from_millis(30), "{slept:?}: early");
        assert!(slept < LONG_SPIN, "{slept:?}: the spin outlasted the timer");

        // `run_for` with nothing to do but wait: bounded by its deadline.
        ctx.restart();
        let _guard = ctx.work_guard();
        let start = Instant::now();
        assert_eq!(ctx.run_for(Duration::from_millis(30)), 0);
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(30),
            "{waited:?}: it did not wait"
        );
        assert!(
            waited < LONG_SPIN,
            "{waited:?}: the spin outlasted the deadline"
        );
    });
}
