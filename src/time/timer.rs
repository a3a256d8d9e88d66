//! [`Timer`]: Asio's `steady_timer` — one expiry, many waiters, cancellable.
//!
//! The timer's own state (expiry, waiters in arrival order) sits behind a
//! small per-timer mutex, so any thread may re-arm or cancel while tasks
//! wait. Each waiter sleeps on the context's timer service until the expiry
//! it saw; a cancel (or a new expiry, which cancels, as in Asio) marks the
//! waiters it ends and wakes them, and they report `ECANCELED`.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::sleep::{deadline_after, Sleep};

/// A timer with an expiry that any number of tasks can [`wait`](Timer::wait)
/// for, and that any thread can re-arm or cancel. `Send + Sync`: share it
/// with an `Arc`.
///
/// Changing the expiry cancels the waits in progress (they fail with
/// `ECANCELED`), as Boost.Asio's `steady_timer::expires_after` does.
///
/// ```
/// # let ctx = ringio::IoContext::new().unwrap();
/// # ctx.block_on(async {
/// use std::{sync::Arc, time::Duration};
/// let timer = Arc::new(ringio::time::Timer::new());
/// timer.expires_after(Duration::from_secs(3600));
/// let t = timer.clone();
/// let waiter = ringio::spawn(async move { t.wait().await });
/// ringio::time::sleep(Duration::from_millis(1)).await;
/// assert_eq!(timer.cancel(), 1);
/// let err = waiter.await.unwrap().unwrap_err();
/// assert_eq!(err.raw_os_error(), Some(libc::ECANCELED));
/// # });
/// ```
#[derive(Debug, Default)]
pub struct Timer {
    state: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct State {
    expiry: Instant,
    next_id: u64,
    /// Waiting waiters, oldest first.
    waiters: BTreeMap<u64, Option<Waker>>,
}

impl Default for State {
    fn default() -> Self {
        State {
            expiry: Instant::now(),
            next_id: 0,
            waiters: BTreeMap::new(),
        }
    }
}

impl Timer {
    /// A timer that has already expired (a wait completes at once) until
    /// [`expires_after`](Timer::expires_after) or
    /// [`expires_at`](Timer::expires_at) sets its expiry.
    pub fn new() -> Timer {
        Timer::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the expiry to `now + d`, cancelling pending waits. Returns how
    /// many waits were cancelled.
    pub fn expires_after(&self, d: Duration) -> usize {
        self.expires_at(deadline_after(d))
    }

    /// Sets the expiry, cancelling pending waits. Returns how many waits
    /// were cancelled.
    pub fn expires_at(&self, t: Instant) -> usize {
        let mut st = self.lock();
        st.expiry = t;
        cancel_waiters(st, usize::MAX)
    }

    /// The current expiry.
    pub fn expiry(&self) -> Instant {
        self.lock().expiry
    }

    /// Cancels every pending wait (they fail with `ECANCELED`). Returns how
    /// many were cancelled. The expiry is unchanged: later waits still
    /// complete at it.
    pub fn cancel(&self) -> usize {
        cancel_waiters(self.lock(), usize::MAX)
    }

    /// Cancels the oldest pending wait. Returns 1 if there was one, else 0.
    pub fn cancel_one(&self) -> usize {
        cancel_waiters(self.lock(), 1)
    }

    /// Waits for the expiry. `Ok(())` once it is reached (at once if it is
    /// already past); `Err` with `raw_os_error() == Some(ECANCELED)` if the
    /// wait was cancelled or the expiry changed first.
    pub fn wait(&self) -> Wait<'_> {
        Wait {
            timer: self,
            id: None,
            sleep: None,
        }
    }
}

/// Ends up to `max` waits, oldest first, and wakes them once the lock is
/// released (a waker may run foreign code).
fn cancel_waiters(mut st: MutexGuard<'_, State>, max: usize) -> usize {
    let mut wakers = Vec::new();
    let mut n = 0;
    while n < max {
        let Some((_, waker)) = st.waiters.pop_first() else {
            break;
        };
        wakers.extend(waker);
        n += 1;
    }
    drop(st);
    for w in wakers {
        w.wake();
    }
    n
}

/// The future of [`Timer::wait`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Wait<'a> {
    timer: &'a Timer,
    id: Option<u64>,
    sleep: Option<Sleep>,
}

impl Future for Wait<'_> {
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut st = this.timer.lock();
        let id = match this.id {
            Some(id) => {
                let Some(slot) = st.waiters.get_mut(&id) else {
                    // Removed by a cancel.
                    this.id = None;
                    this.sleep = None;
                    return Poll::Ready(Err(io::Error::from_raw_os_error(libc::ECANCELED)));
                };
                match slot {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *slot = Some(cx.waker().clone()),
                }
                id
            }
            None => {
                if st.expiry <= Instant::now() {
                    return Poll::Ready(Ok(()));
                }
                let id = st.next_id;
                st.next_id += 1;
                st.waiters.insert(id, Some(cx.waker().clone()));
                this.id = Some(id);
                this.sleep = Some(Sleep::new(st.expiry));
                id
            }
        };
        drop(st);
        let sleep = this.sleep.as_mut().expect("armed with the waiter");
        match Pin::new(sleep).poll(cx) {
            Poll::Ready(()) => {
                let mut st = this.timer.lock();
                this.id = None;
                if st.waiters.remove(&id).is_some() {
                    Poll::Ready(Ok(()))
                } else {
                    // A cancel won the race with the expiry.
                    Poll::Ready(Err(io::Error::from_raw_os_error(libc::ECANCELED)))
                }
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.timer.lock().waiters.remove(&id);
        }
    }
}
