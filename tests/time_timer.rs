//! `ringio::time::Timer`, Boost.Asio's `steady_timer`: expiry, waits,
//! `cancel`, `cancel_one`, re-arming, sharing between tasks and threads, on
//! a multi-threaded and on a single-threaded context.

use std::io;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::thread;
use std::time::{Duration, Instant};

use ringio::time::{self, Timer};
use ringio::IoContext;

mod common;
use common::{each_mode, poll_once, watchdog, Mode};

const ECANCELED: i32 = libc::ECANCELED;

/// How late a wake-up may be before we call it lost (the machine may be busy).
const LATE: Duration = Duration::from_secs(3);

fn assert_cancelled(mode: Mode, r: &io::Result<()>) {
    match r {
        Err(e) => assert_eq!(
            e.raw_os_error(),
            Some(ECANCELED),
            "[{mode}] wrong error {e:?}"
        ),
        Ok(()) => panic!("[{mode}] a cancelled wait completed Ok"),
    }
}

/// Waits on `timer`, bumping `registered` once the wait is registered
/// (after its first poll), so the test knows when a cancel will reach it.
async fn registered_wait(timer: &Timer, registered: &AtomicUsize) -> io::Result<()> {
    let mut w = pin!(timer.wait());
    let first = poll_once(&mut w).await;
    registered.fetch_add(1, Ordering::SeqCst);
    match first {
        Poll::Ready(r) => r,
        Poll::Pending => w.await,
    }
}

/// Sleeps on the context until `n` waits are registered (bounded).
async fn until_registered(registered: &AtomicUsize, n: usize) {
    let start = Instant::now();
    while registered.load(Ordering::SeqCst) < n {
        assert!(start.elapsed() < LATE, "waiters never registered");
        time::sleep(Duration::from_millis(1)).await;
    }
}

/// Blocks an OS thread until `n` waits are registered (bounded).
fn until_registered_blocking(registered: &AtomicUsize, n: usize) {
    let start = Instant::now();
    while registered.load(Ordering::SeqCst) < n {
        assert!(start.elapsed() < LATE, "waiters never registered");
        thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn new_timer_is_already_expired() {
    // No context needed to create one.
    let timer = Timer::new();
    assert!(timer.expiry() <= Instant::now());
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let timer = Timer::new();
            let mut w = pin!(timer.wait());
            match poll_once(&mut w).await {
                Poll::Ready(r) => r.unwrap(),
                Poll::Pending => panic!("[{mode}] wait on a new timer did not complete at once"),
            }
            assert_eq!(timer.cancel(), 0);
            assert_eq!(timer.cancel_one(), 0);
            // An expiry in the past behaves the same.
            timer.expires_at(Instant::now() - Duration::from_secs(1));
            timer.wait().await.unwrap();
        });
    });
}

#[test]
fn wait_completes_at_expiry_never_early() {
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let timer = Timer::new();
            for ms in [1u64, 7, 25] {
                assert_eq!(
                    timer.expires_after(Duration::from_millis(ms)),
                    0,
                    "[{mode}] no waiter yet"
                );
                let expiry = timer.expiry();
                timer.wait().await.unwrap();
                let now = Instant::now();
                assert!(now >= expiry, "[{mode}] woke {:?} early", expiry - now);
                assert!(now - expiry < LATE);
                // Expired: further waits complete at once.
                let mut w = pin!(timer.wait());
                assert!(matches!(poll_once(&mut w).await, Poll::Ready(Ok(()))));
            }
            let at = Instant::now() + Duration::from_millis(12);
            assert_eq!(timer.expires_at(at), 0);
            assert_eq!(timer.expiry(), at);
            timer.wait().await.unwrap();
            assert!(Instant::now() >= at);
        });
    });
}

#[test]
fn many_tasks_wait_on_one_shared_timer() {
    each_mode(|mode, ctx| {
        let timer = Arc::new(Timer::new());
        timer.expires_after(Duration::from_millis(30));
        let expiry = timer.expiry();
        let handles: Vec<_> = (0..20)
            .map(|_| {
                let t = timer.clone();
                ctx.spawn(async move { t.wait().await.map(|()| Instant::now()) })
            })
            .collect();
        ctx.run();
        for h in handles {
            let woke = ctx.block_on(h).unwrap().unwrap();
            assert!(
                woke >= expiry,
                "[{mode}] a waiter woke {:?} early",
                expiry - woke
            );
            assert!(woke - expiry < LATE);
        }
    });
}

#[test]
fn cancel_wakes_every_waiter_with_ecanceled() {
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let timer = Arc::new(Timer::new());
            timer.expires_after(Duration::from_secs(3600));
            let registered = Arc::new(AtomicUsize::new(0));
            let handles: Vec<_> = (0..5)
                .map(|_| {
                    let (t, r) = (timer.clone(), registered.clone());
                    ringio::spawn(async move { registered_wait(&t, &r).await })
                })
                .collect();
            until_registered(&registered, 5).await;
            let start = Instant::now();
            assert_eq!(timer.cancel(), 5, "[{mode}] cancel count");
            assert_eq!(timer.cancel(), 0, "[{mode}] second cancel");
            for h in handles {
                assert_cancelled(mode, &h.await.unwrap());
            }
            assert!(start.elapsed() < LATE);
            // The expiry is unchanged by cancel: a new wait still pends.
            let mut w = pin!(timer.wait());
            assert!(
                poll_once(&mut w).await.is_pending(),
                "[{mode}] cancel changed the expiry"
            );
            assert_eq!(timer.cancel(), 1);
            assert_cancelled(mode, &w.await);
        });
    });
}

#[test]
fn cancel_one_cancels_only_the_oldest_waiter() {
    each_mode(|mode, ctx| {
        // Deterministic: three waits of one task, registered in order.
        ctx.block_on(async {
            let timer = Timer::new();
            timer.expires_after(Duration::from_secs(3600));
            let mut a = pin!(timer.wait());
            let mut b = pin!(timer.wait());
            let mut c = pin!(timer.wait());
            assert!(poll_once(&mut a).await.is_pending());
            assert!(poll_once(&mut b).await.is_pending());
            assert!(poll_once(&mut c).await.is_pending());
            assert_eq!(timer.cancel_one(), 1);
            match poll_once(&mut a).await {
                Poll::Ready(r) => assert_cancelled(mode, &r),
                Poll::Pending => panic!("[{mode}] cancel_one did not cancel the oldest wait"),
            }
            assert!(
                poll_once(&mut b).await.is_pending(),
                "[{mode}] cancel_one cancelled a second wait"
            );
            assert!(
                poll_once(&mut c).await.is_pending(),
                "[{mode}] cancel_one cancelled a third wait"
            );
            assert_eq!(timer.cancel_one(), 1);
            assert!(matches!(poll_once(&mut b).await, Poll::Ready(Err(_))));
            assert!(poll_once(&mut c).await.is_pending());
            assert_eq!(timer.cancel_one(), 1);
            assert_cancelled(mode, &c.await);
            assert_eq!(timer.cancel_one(), 0);
        });
        // Across tasks: the others keep waiting, then complete at expiry.
        let timer = Arc::new(Timer::new());
        timer.expires_after(Duration::from_millis(200));
        let expiry = timer.expiry();
        let registered = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::new();
        ctx.block_on(async {
            for i in 0..3 {
                let (t, r) = (timer.clone(), registered.clone());
                handles.push(ringio::spawn(async move {
                    let res = registered_wait(&t, &r).await;
                    (res, Instant::now())
                }));
                // Register one at a time so "oldest" is the first spawned.
                until_registered(&registered, i + 1).await;
            }
            assert_eq!(timer.cancel_one(), 1, "[{mode}]");
        });
        let results: Vec<_> = handles
            .into_iter()
            .map(|h| ctx.block_on(h).unwrap())
            .collect();
        assert_cancelled(mode, &results[0].0);
        for (res, woke) in &results[1..] {
            assert!(
                res.is_ok(),
                "[{mode}] a waiter cancel_one did not pick failed: {res:?}"
            );
            assert!(*woke >= expiry, "[{mode}] woke early");
        }
    });
}

#[test]
fn expires_after_and_at_cancel_pending_waits_and_count_them() {
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let timer = Arc::new(Timer::new());
            timer.expires_after(Duration::from_secs(3600));
            let registered = Arc::new(AtomicUsize::new(0));
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let (t, r) = (timer.clone(), registered.clone());
                    ringio::spawn(async move { registered_wait(&t, &r).await })
                })
                .collect();
            until_registered(&registered, 4).await;
            assert_eq!(
                timer.expires_after(Duration::from_millis(10)),
                4,
                "[{mode}] expires_after count"
            );
            for h in handles {
                assert_cancelled(mode, &h.await.unwrap());
            }
            // New waits use the new expiry.
            let expiry = timer.expiry();
            timer.wait().await.unwrap();
            assert!(Instant::now() >= expiry);

            // expires_at, same thing.
            timer.expires_at(Instant::now() + Duration::from_secs(3600));
            let mut w = pin!(timer.wait());
            assert!(poll_once(&mut w).await.is_pending());
            let at = Instant::now() + Duration::from_millis(5);
            assert_eq!(timer.expires_at(at), 1, "[{mode}] expires_at count");
            assert_cancelled(mode, &w.await);
            timer.wait().await.unwrap();
            assert!(Instant::now() >= at);
        });
    });
}

#[test]
fn rearmed_waiter_gets_the_new_expiry() {
    // One task waits in a loop, another re-arms the shared timer: the
    // waiter sees ECANCELED, waits again and completes at the new expiry.
    each_mode(|mode, ctx| {
        let timer = Arc::new(Timer::new());
        timer.expires_after(Duration::from_secs(3600));
        let registered = Arc::new(AtomicUsize::new(0));
        let (t, r) = (timer.clone(), registered.clone());
        let waiter = ctx.spawn(async move {
            let mut cancels = 0;
            loop {
                match registered_wait(&t, &r).await {
                    Ok(()) => return (cancels, Instant::now()),
                    Err(e) => {
                        assert_eq!(e.raw_os_error(), Some(ECANCELED));
                        cancels += 1;
                    }
                }
            }
        });
        let t = timer.clone();
        let r = registered.clone();
        let rearm = ctx.spawn(async move {
            until_registered(&r, 1).await;
            assert_eq!(t.expires_after(Duration::from_secs(1800)), 1);
            until_registered(&r, 2).await;
            assert_eq!(t.expires_after(Duration::from_millis(20)), 1);
            t.expiry()
        });
        ctx.run();
        let expiry = ctx.block_on(rearm).unwrap();
        let (cancels, woke) = ctx.block_on(waiter).unwrap();
        assert_eq!(cancels, 2, "[{mode}]");
        assert!(woke >= expiry, "[{mode}] woke early");
        assert!(
            woke - expiry < LATE,
            "[{mode}] woke {:?} late",
            woke - expiry
        );
    });
}

#[test]
fn cancel_from_another_os_thread() {
    each_mode(|mode, ctx| {
        let timer = Arc::new(Timer::new());
        timer.expires_after(Duration::from_secs(3600));
        let registered = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let (t, r) = (timer.clone(), registered.clone());
                ctx.spawn(async move { registered_wait(&t, &r).await })
            })
            .collect();
        let (t, r) = (timer.clone(), registered.clone());
        let canceller = thread::spawn(move || {
            until_registered_blocking(&r, 6);
            // Let the runner go back to sleep in the kernel first.
            thread::sleep(Duration::from_millis(20));
            let one = t.cancel_one();
            thread::sleep(Duration::from_millis(5));
            one + t.cancel()
        });
        let start = Instant::now();
        let ran = ctx.run();
        assert!(
            start.elapsed() < LATE,
            "[{mode}] run took {:?}",
            start.elapsed()
        );
        assert!(ran >= 12, "[{mode}] ran {ran}");
        assert_eq!(canceller.join().unwrap(), 6, "[{mode}] cancel counts");
        for h in handles {
            assert_cancelled(mode, &ctx.block_on(h).unwrap());
        }
    });
}

#[test]
fn rearm_from_another_os_thread_while_leader_sleeps_on_old_expiry() {
    // Multi-threaded with one and two runners: the only timer is 10 s out,
    // so the leader sleeps in the kernel on it; another OS thread moves the
    // expiry to 20 ms: the waiter re-waits and must wake at the new expiry.
    watchdog(Duration::from_secs(40), || {
        for runners in [2, 1] {
            let ctx = IoContext::new().unwrap();
            let timer = Arc::new(Timer::new());
            timer.expires_after(Duration::from_secs(10));
            let registered = Arc::new(AtomicUsize::new(0));
            let (t, r) = (timer.clone(), registered.clone());
            let waiter = ctx.spawn(async move {
                loop {
                    if registered_wait(&t, &r).await.is_ok() {
                        return Instant::now();
                    }
                }
            });
            let threads: Vec<_> = (0..runners)
                .map(|_| {
                    let c = ctx.clone();
                    thread::spawn(move || c.run())
                })
                .collect();
            until_registered_blocking(&registered, 1);
            thread::sleep(Duration::from_millis(50));
            assert_eq!(timer.expires_after(Duration::from_millis(20)), 1);
            let expiry = timer.expiry();
            let start = Instant::now();
            for t in threads {
                t.join().unwrap();
            }
            let woke = ctx.block_on(waiter).unwrap();
            assert!(woke >= expiry, "[{runners} runners] woke early");
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "[{runners} runners] the re-armed wait took {:?} (the leader kept sleeping on the old expiry?)",
                start.elapsed()
            );
        }
    });
}

#[test]
fn dropped_wait_leaves_no_waiter_behind() {
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let timer = Timer::new();
            timer.expires_after(Duration::from_secs(3600));
            {
                let mut w = Box::pin(timer.wait());
                assert!(poll_once(&mut w).await.is_pending());
            }
            assert_eq!(
                timer.cancel(),
                0,
                "[{mode}] a dropped wait stayed registered"
            );
            // A wait dropped by a timeout.
            let r = time::timeout(Duration::from_millis(5), timer.wait()).await;
            assert!(r.is_err());
            assert_eq!(
                timer.cancel(),
                0,
                "[{mode}] a timed-out wait stayed registered"
            );
            // A dropped wait among live ones: only the live ones count.
            let mut a = pin!(timer.wait());
            assert!(poll_once(&mut a).await.is_pending());
            {
                let mut b = Box::pin(timer.wait());
                assert!(poll_once(&mut b).await.is_pending());
            }
            let mut c = pin!(timer.wait());
            assert!(poll_once(&mut c).await.is_pending());
            assert_eq!(timer.cancel(), 2, "[{mode}]");
            assert_cancelled(mode, &a.await);
            assert_cancelled(mode, &c.await);
            // A wait never polled registers nothing.
            let w = timer.wait();
            drop(w);
            assert_eq!(timer.cancel(), 0);
        });
    });
}

#[test]
fn aborted_waiting_task_leaves_no_waiter_behind() {
    each_mode(|mode, ctx| {
        let timer = Arc::new(Timer::new());
        timer.expires_after(Duration::from_secs(3600));
        let registered = Arc::new(AtomicUsize::new(0));
        let (t, r) = (timer.clone(), registered.clone());
        let h = ctx.spawn(async move { registered_wait(&t, &r).await });
        ctx.block_on(async {
            until_registered(&registered, 1).await;
            h.abort();
            let err = h.await.unwrap_err();
            assert!(err.is_cancelled(), "[{mode}]");
        });
        assert_eq!(
            timer.cancel(),
            0,
            "[{mode}] the aborted task's wait stayed registered"
        );
    });
}

#[test]
fn concurrent_cancel_and_expiry_race_resolves_every_wait() {
    // Waiters on a near expiry while another thread cancels at about the
    // same moment: each wait must end, Ok (never before expiry) or
    // ECANCELED, and the cancel counts must match the ECANCELED results.
    each_mode(|mode, ctx| {
        for round in 0..20u64 {
            let timer = Arc::new(Timer::new());
            timer.expires_after(Duration::from_millis(2 + round % 3));
            let expiry = timer.expiry();
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let t = timer.clone();
                    ctx.spawn(async move { (t.wait().await, Instant::now()) })
                })
                .collect();
            let t = timer.clone();
            let canceller = thread::spawn(move || {
                thread::sleep(Duration::from_micros(1500 + round * 100));
                t.cancel()
            });
            ctx.run();
            ctx.restart();
            let cancelled = canceller.join().unwrap();
            let mut errs = 0;
            for h in handles {
                let (r, woke) = ctx.block_on(h).unwrap();
                match r {
                    Ok(()) => assert!(woke >= expiry, "[{mode}] round {round}: Ok before expiry"),
                    Err(e) => {
                        assert_eq!(e.raw_os_error(), Some(ECANCELED));
                        errs += 1;
                    }
                }
            }
            // A cancel may remove a waiter whose sleep fired concurrently:
            // it then reports ECANCELED, and was counted by cancel.
            assert_eq!(
                errs, cancelled,
                "[{mode}] round {round}: cancel count vs ECANCELED results"
            );
        }
    });
}
