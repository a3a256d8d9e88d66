//! [`Sleep`]: a future that completes at a deadline.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::clock;
use crate::runtime::scheduler::Shared;

/// Waits until `deadline`. Never completes early.
///
/// Must be polled on a thread running an [`IoContext`](crate::IoContext)
/// (inside a task, a handler or `block_on`); the first poll registers the
/// timer with that context.
///
/// ```
/// # let ctx = ringio::IoContext::new().unwrap();
/// # ctx.block_on(async {
/// let start = std::time::Instant::now();
/// ringio::time::sleep(std::time::Duration::from_millis(5)).await;
/// assert!(start.elapsed() >= std::time::Duration::from_millis(5));
/// # });
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    // The same clock as `Instant::now()`, read the same way, as plain
    // nanoseconds (see `clock`): `now + duration` exactly.
    if clock::anchor().is_some() {
        if let Some(raw) =
            clock::duration_ns(duration).and_then(|d| clock::now_raw().checked_add(d))
        {
            return Sleep::with(Deadline::Raw(raw));
        }
    }
    Sleep::new(deadline_after(duration))
}

/// Waits until `deadline` (which may be in the past: then it is ready at once).
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep::new(deadline)
}

/// `now + d`, saturating far in the future instead of overflowing.
pub(crate) fn deadline_after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 30))
}

/// The future behind [`sleep`] and [`sleep_until`], reusable via [`Sleep::reset`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Sleep {
    deadline: Deadline,
    /// The context the timer is armed with (`None`: not armed).
    shared: Option<Arc<Shared>>,
    /// The timer's key in that context's store, while `shared` is `Some`.
    key: u32,
    fired: bool,
}

/// A deadline as given, or as raw `CLOCK_MONOTONIC` nanoseconds (only
/// made when the process has a clock anchor, see `clock`).
#[derive(Debug, Clone, Copy)]
enum Deadline {
    At(Instant),
    Raw(u64),
}

impl Deadline {
    fn instant(self) -> Instant {
        match self {
            Deadline::At(t) => t,
            Deadline::Raw(raw) => clock::anchor()
                .expect("raw deadlines exist only with an anchor")
                .instant_of(raw),
        }
    }

    /// Whether the deadline is reached (precise clock).
    fn is_due(self) -> bool {
        match self {
            Deadline::At(t) => t <= Instant::now(),
            Deadline::Raw(raw) => raw <= clock::now_raw(),
        }
    }
}

impl Sleep {
    /// A sleep until `deadline`; nothing is registered until it is polled.
    pub fn new(deadline: Instant) -> Sleep {
        Sleep::with(Deadline::At(deadline))
    }

    fn with(deadline: Deadline) -> Sleep {
        Sleep {
            deadline,
            shared: None,
            key: 0,
            fired: false,
        }
    }

    /// The instant this sleep completes at.
    pub fn deadline(&self) -> Instant {
        self.deadline.instant()
    }

    /// Whether the deadline was reached (as seen by the last poll).
    pub fn is_elapsed(&self) -> bool {
        self.fired
    }

    /// Moves the deadline, keeping the registration (O(log n)).
    pub fn reset(&mut self, deadline: Instant) {
        self.deadline = Deadline::At(deadline);
        self.fired = false;
        let Some(shared) = &self.shared else {
            return;
        };
        let key = self.key as usize;
        let wake = shared
            .lock(&shared.timers.store)
            .map(|mut store| shared.timers.reset(&mut store, key, deadline));
        match wake {
            Some(true) => shared.wake_leader_for_timer(),
            Some(false) => {}
            None => {
                // Not the owner thread of a single-threaded context: drop the
                // registration; the next poll re-arms.
                let shared = self.shared.take().expect("armed");
                shared.cancel_timer(key);
            }
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.fired {
            return Poll::Ready(());
        }
        match &this.shared {
            None => {
                let Some(shared) = Shared::current() else {
                    if this.deadline.is_due() {
                        this.fired = true;
                        return Poll::Ready(());
                    }
                    panic!(
                        "ringio: a sleep or timeout was polled outside a running IoContext \
                         (poll it inside a task, a handler or block_on)"
                    );
                };
                // Already due? The scheduler's last clock reading answers
                // "certainly" for deadlines before it, the coarse clock
                // "certainly not" for most others; only the rest needs a
                // precise clock read.
                let when = match this.deadline {
                    Deadline::At(t) => shared.timers.deadline_ns(t),
                    Deadline::Raw(raw) => shared.timers.raw_ns(raw),
                };
                if shared.timers.surely_past(when)
                    || (!shared.timers.surely_future(when) && this.deadline.is_due())
                {
                    this.fired = true;
                    return Poll::Ready(());
                }
                // SAFETY: `shared` is the context of this thread's innermost
                // run frame (`Shared::current`).
                let mut store = unsafe { shared.lock_running(&shared.timers.store) };
                let armed = shared.timers.arm_ns(&mut store, when, cx.waker());
                drop(store);
                if armed.wake_leader {
                    shared.wake_leader_for_timer();
                }
                this.shared = Some(shared);
                // Keys fit: the store counts them in `u32`.
                this.key = armed.key as u32;
                Poll::Pending
            }
            Some(shared) => {
                let key = this.key as usize;
                let Some(mut store) = shared.lock(&shared.timers.store) else {
                    panic!(
                        "ringio: a sleep of a single-threaded IoContext was polled on another \
                         thread; its futures must stay on the thread running the context"
                    )
                };
                match store.poll(key, cx.waker()) {
                    Poll::Ready(()) => {
                        shared.timers.remove(&mut store, key);
                        drop(store);
                        if let Some(shared) = this.shared.take() {
                            crate::runtime::frame::give_back_arc(shared);
                        }
                        this.fired = true;
                        Poll::Ready(())
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            shared.cancel_timer(self.key as usize);
            // Back to this thread's run frame, if any (no atomic).
            crate::runtime::frame::give_back_arc(shared);
        }
    }
}

impl Shared {
    /// Removes a timer from any thread (owner directly, others through the
    /// remote queue of a single-threaded context).
    pub(crate) fn cancel_timer(self: &Arc<Self>, key: usize) {
        match self.lock(&self.timers.store) {
            Some(mut store) => self.timers.remove(&mut store, key),
            None => self.remote(Box::new(move |shared: &Shared| {
                if let Some(mut store) = shared.lock(&shared.timers.store) {
                    shared.timers.remove(&mut store, key);
                }
            })),
        }
    }
}
