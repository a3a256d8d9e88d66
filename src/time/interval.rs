//! [`Interval`]: ticks at a fixed period.

use std::pin::Pin;
use std::time::{Duration, Instant};

use super::sleep::Sleep;

/// Creates an [`Interval`] whose first tick completes at once and whose
/// following ticks come every `period`.
///
/// # Panics
///
/// If `period` is zero (a zero period would tick in a busy loop).
///
/// ```
/// # let ctx = ringio::IoContext::new().unwrap();
/// # ctx.block_on(async {
/// let mut every = ringio::time::interval(std::time::Duration::from_millis(2));
/// let first = every.tick().await;
/// let second = every.tick().await;
/// assert!(second - first >= std::time::Duration::from_millis(2));
/// # });
/// ```
pub fn interval(period: Duration) -> Interval {
    interval_at(Instant::now(), period)
}

/// Like [`interval`], with the first tick at `start`.
///
/// # Panics
///
/// If `period` is zero.
pub fn interval_at(start: Instant, period: Duration) -> Interval {
    assert!(
        !period.is_zero(),
        "ringio::time::interval: period must be non-zero"
    );
    Interval {
        next: start,
        period,
        sleep: Sleep::new(start),
    }
}

/// A stream of ticks, `period` apart. A tick that is late (the task was
/// busy) is delivered at once and the schedule is kept: the following ticks
/// stay on the `start + k * period` grid, with missed grid points skipped
/// rather than delivered in a burst.
#[derive(Debug)]
pub struct Interval {
    next: Instant,
    period: Duration,
    sleep: Sleep,
}

impl Interval {
    /// Waits for the next tick; returns its scheduled instant.
    pub async fn tick(&mut self) -> Instant {
        Pin::new(&mut self.sleep).await;
        let tick = self.next;
        let now = Instant::now();
        let mut next = tick + self.period;
        if next <= now {
            // Skip missed grid points.
            let behind = (now - next).as_nanos() / self.period.as_nanos() + 1;
            next += self.period * u32::try_from(behind).unwrap_or(u32::MAX);
        }
        self.next = next;
        self.sleep.reset(next);
        tick
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Restarts the schedule: the next tick is one period from now.
    pub fn reset(&mut self) {
        self.next = Instant::now() + self.period;
        self.sleep.reset(self.next);
    }
}
