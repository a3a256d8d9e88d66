//! The ring under pressure: a submission queue far smaller than the number
//! of operations submitted in one pass (SQ full → flush and retry), and a
//! completion queue that overflows (the kernel's NODROP backlog, EBUSY).
//! Nothing may be dropped and nothing may hang.

use std::time::Duration;

use ringio::IoContext;

fn both_modes(f: impl Fn(IoContext)) {
    for st in [false, true] {
        f(IoContext::builder()
            .single_threaded(st)
            .entries(2)
            .build()
            .unwrap());
    }
}

#[test]
fn thousands_of_nops_through_a_two_entry_ring() {
    both_modes(|ctx| {
        let n = ctx.block_on(async {
            let handles: Vec<_> = (0..5_000)
                .map(|_| ringio::spawn(ringio::io::nop()))
                .collect();
            let all = async {
                let mut ok = 0;
                for h in handles {
                    h.await.unwrap().unwrap();
                    ok += 1;
                }
                ok
            };
            ringio::time::timeout(Duration::from_secs(10), all)
                .await
                .expect("an op was dropped")
        });
        assert_eq!(n, 5_000);
        let m = ctx.metrics();
        assert!(m.sqes_submitted >= 5_000, "{m:?}");
        assert!(m.enter_calls < 5_000, "batched: {m:?}");
    });
}

#[test]
fn completion_queue_overflow_loses_nothing() {
    // 2 SQ entries → 8 CQ entries; 64 reads complete at once when 64 pipes
    // become readable in one go, far more than the CQ holds.
    both_modes(|ctx| {
        let pipes: Vec<_> = (0..64).map(|_| ringio::io::pipe().unwrap()).collect();
        let got = ctx.block_on(async move {
            let mut readers = Vec::new();
            let mut writers = Vec::new();
            for (i, (r, w)) in pipes.into_iter().enumerate() {
                readers.push(ringio::spawn(async move {
                    let (res, buf) = r.read(Vec::with_capacity(8)).await;
                    assert_eq!(res.unwrap(), 1);
                    buf[0] as usize
                }));
                writers.push((i, w));
            }
            // Let every read reach the kernel first.
            ringio::time::sleep(Duration::from_millis(20)).await;
            for (i, w) in &writers {
                // A plain write(2): all 64 completions become ready together.
                let b = [*i as u8];
                // SAFETY: writes one byte from a live buffer to a pipe we own.
                let n = unsafe {
                    libc::write(std::os::fd::AsRawFd::as_raw_fd(w), b.as_ptr().cast(), 1)
                };
                assert_eq!(n, 1);
            }
            // A lost completion would leave a reader waiting forever.
            ringio::time::timeout(Duration::from_secs(10), async {
                let mut got = Vec::new();
                for r in readers {
                    got.push(r.await.unwrap());
                }
                got
            })
            .await
            .expect("a completion was lost in the CQ overflow")
        });
        assert_eq!(got, (0..64).collect::<Vec<_>>());
    });
}

/// Every SQE pushed during one scheduler pass reaches the kernel in one
/// `io_uring_enter`: 64 tasks that each start a nop in the same pass cost a
/// handful of enters, not 64.
#[test]
fn sqes_of_one_pass_share_one_enter() {
    for st in [false, true] {
        let ctx = IoContext::builder().single_threaded(st).build().unwrap();
        // Warm up: the first pass also submits the wake-up poll.
        ctx.block_on(ringio::io::nop()).unwrap();
        let before = ctx.metrics();
        ctx.block_on(async {
            let handles: Vec<_> = (0..64).map(|_| ringio::spawn(ringio::io::nop())).collect();
            for h in handles {
                h.await.unwrap().unwrap();
            }
        });
        let after = ctx.metrics();
        let enters = after.enter_calls - before.enter_calls;
        let sqes = after.sqes_submitted - before.sqes_submitted;
        assert_eq!(sqes, 64, "st={st}: {after:?}");
        assert!(
            enters <= 4,
            "st={st}: {enters} enters for 64 SQEs of one pass ({after:?})"
        );
    }
}

/// The ring is pumped only when something is queued or pending: a context
/// that only runs tasks (no I/O, no timers) does not enter the kernel.
#[test]
fn no_enter_without_io() {
    for st in [false, true] {
        let ctx = IoContext::builder().single_threaded(st).build().unwrap();
        ctx.block_on(ringio::io::nop()).unwrap(); // arm the wake-up poll
        let before = ctx.metrics();
        ctx.block_on(async {
            let handles: Vec<_> = (0..100)
                .map(|_| {
                    ringio::spawn(async {
                        for _ in 0..100 {
                            let mut yielded = false;
                            std::future::poll_fn(|cx| {
                                if yielded {
                                    std::task::Poll::Ready(())
                                } else {
                                    yielded = true;
                                    cx.waker().wake_by_ref();
                                    std::task::Poll::Pending
                                }
                            })
                            .await;
                        }
                    })
                })
                .collect();
            for h in handles {
                h.await.unwrap();
            }
        });
        let after = ctx.metrics();
        assert!(after.tasks_polled - before.tasks_polled >= 10_000);
        assert_eq!(after.enter_calls, before.enter_calls, "st={st}: {after:?}");
    }
}
