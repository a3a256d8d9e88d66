//! The per-context timer service: the [`TimerStore`] behind the context's
//! lock discipline, plus lock-free hints the scheduler reads every pass.
//!
//! # Leader wake-up on an earlier timer (multi-threaded mode)
//!
//! The leader computes its kernel-wait timeout from the nearest deadline and
//! records it in `leader_deadline`, both under the store lock. A timer armed
//! by another thread with an earlier deadline sees that (same lock) and asks
//! the run queue to wake the leader: by eventfd if it is already parked, or
//! by marking its leadership stale so it refuses to park and recomputes.
//! Single-threaded contexts arm timers only on the owner thread (remote
//! threads go through the owner), which never sleeps while arming.

use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::runtime::cell::{ModeGuard, ModeLock};
use crate::time::clock;
use crate::time::store::TimerStore;

const NONE: u64 = u64::MAX;

/// Margin of [`TimerService::surely_future`] when the coarse clock's tick
/// is unknown: two ticks at HZ=100 (10 ms each), doubled.
const COARSE_SLACK_MAX_NS: u64 = 40_000_000;
/// The smallest margin, whatever the tick.
const COARSE_SLACK_MIN_NS: u64 = 10_000_000;

/// Margin of [`TimerService::surely_future`]: four ticks of the coarse clock
/// (its resolution is the kernel's tick: 4 ms at HZ=250), within
/// `[COARSE_SLACK_MIN_NS, COARSE_SLACK_MAX_NS]`. A margin that turned out
/// too small would only arm a timer that is already due (it then fires at
/// the next expiry) instead of completing the poll at once.
fn coarse_slack_ns() -> u64 {
    let mut res = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes into the live `res`.
    let rc = unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC_COARSE, &mut res) };
    if rc != 0 || res.tv_sec != 0 || res.tv_nsec <= 0 {
        return COARSE_SLACK_MAX_NS;
    }
    (4 * res.tv_nsec as u64).clamp(COARSE_SLACK_MIN_NS, COARSE_SLACK_MAX_NS)
}

/// `CLOCK_MONOTONIC_COARSE` in nanoseconds (the kernel's last tick; read
/// through the vDSO without a syscall).
fn coarse_now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes into the live `ts`; CLOCK_MONOTONIC_COARSE always exists
    // on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

pub(crate) struct TimerService {
    pub(crate) store: ModeLock<TimerStore>,
    /// The process's clock anchor when there is one (so raw clock reads
    /// convert with one subtraction, see `clock`), else the creation time.
    base: Instant,
    /// `CLOCK_MONOTONIC` nanoseconds of `base` (0 without an anchor: then
    /// no raw deadline is ever made).
    base_raw: u64,
    /// `CLOCK_MONOTONIC_COARSE` at about `base` (see [`Self::surely_future`]).
    base_coarse: u64,
    /// See [`coarse_slack_ns`].
    coarse_slack: u64,
    /// A lower bound of the armed deadlines (ns since `base`), `NONE` if no
    /// timer is armed. Lowered on arm, refreshed from the store on expiry
    /// and set to `NONE` when the store empties; always written under the
    /// store lock.
    next: AtomicU64,
    /// Deadline the multi-threaded leader sleeps until (ns), `NONE` if none.
    leader_deadline: AtomicU64,
    /// A precise clock reading (ns since `base`) the scheduler took on its
    /// last look at the timers: a time already reached, so a deadline at or
    /// before it is due without reading the clock again (see
    /// [`Self::surely_past`]). Any thread may write it; every value written
    /// is a past reading, so whichever wins is still a lower bound of now.
    seen: AtomicU64,
}

/// Whether arming a timer requires waking the leader.
#[must_use]
pub(crate) struct Armed {
    pub(crate) key: usize,
    pub(crate) wake_leader: bool,
}

impl TimerService {
    pub(crate) fn new(locking: bool) -> Self {
        let now = Instant::now();
        let (base, base_raw) = match clock::anchor() {
            Some(a) => (a.instant, a.raw),
            None => (now, 0),
        };
        // The coarse clock's value at about `base`: read now, less the time
        // since `base` (see `surely_future`).
        let now_ns = crate::time::store::ns_since(base, now);
        let base_coarse = coarse_now_ns().saturating_sub(now_ns);
        let store = TimerStore::starting_at(base, now_ns);
        TimerService {
            store: ModeLock::new("timer", locking, store),
            base,
            base_raw,
            base_coarse,
            coarse_slack: coarse_slack_ns(),
            next: AtomicU64::new(NONE),
            leader_deadline: AtomicU64::new(NONE),
            seen: AtomicU64::new(now_ns),
        }
    }

    /// Same base as the store's: deadlines compare as integers.
    fn ns(&self, t: Instant) -> u64 {
        crate::time::store::ns_since(self.base, t)
    }

    /// A timer due at `when` was armed: the published hint only needs to
    /// stay a lower bound of the armed deadlines, so it can only move down.
    fn publish_armed(&self, when: u64) {
        if when < self.next.load(Ordering::Relaxed) {
            self.next.store(when, Ordering::Release);
        }
    }

    /// Publishes the store's own bound (after an expiry walked the wheel).
    fn publish(&self, store: &TimerStore) {
        let next = store.next_ns().unwrap_or(NONE);
        if self.next.load(Ordering::Relaxed) != next {
            self.next.store(next, Ordering::Release);
        }
    }

    /// `deadline` as nanoseconds since the base (compare with [`Self::arm_ns`]).
    pub(crate) fn deadline_ns(&self, deadline: Instant) -> u64 {
        self.ns(deadline)
    }

    /// A raw `CLOCK_MONOTONIC` deadline (see `clock`) as nanoseconds since
    /// the base, exactly.
    pub(crate) fn raw_ns(&self, raw: u64) -> u64 {
        raw.saturating_sub(self.base_raw)
    }

    /// Whether `when` (from [`deadline_ns`](Self::deadline_ns)) is certainly
    /// still in the future, decided with the coarse clock (a few ns, no
    /// precise clock read). `false` means "maybe not": ask `Instant::now()`.
    ///
    /// The coarse clock lags the precise one by at most one tick, and was
    /// read within one tick of `base`, so the precise time since `base` is
    /// at most the coarse time since `base_coarse` plus two ticks;
    /// [`coarse_slack_ns`] (four ticks) covers that with room to spare.
    pub(crate) fn surely_future(&self, when: u64) -> bool {
        let coarse = coarse_now_ns().saturating_sub(self.base_coarse);
        when > coarse.saturating_add(self.coarse_slack)
    }

    /// Whether `when` is certainly already reached: it is not after a
    /// precise clock reading the scheduler took earlier (a lower bound of
    /// the time now). `false` means "maybe not".
    pub(crate) fn surely_past(&self, when: u64) -> bool {
        when <= self.seen.load(Ordering::Relaxed)
    }

    /// No timer armed: the scheduler skips expiry (and the clock read).
    pub(crate) fn is_empty(&self) -> bool {
        self.next.load(Ordering::Acquire) == NONE
    }

    /// Arms a timer due at `when` (from [`deadline_ns`](Self::deadline_ns)).
    pub(crate) fn arm_ns(
        &self,
        store: &mut ModeGuard<'_, TimerStore>,
        when: u64,
        waker: &Waker,
    ) -> Armed {
        let key = store.insert_ns(when, Some(waker));
        self.publish_armed(when);
        let wake_leader = when < self.leader_deadline.load(Ordering::Acquire);
        Armed { key, wake_leader }
    }

    pub(crate) fn reset(
        &self,
        store: &mut ModeGuard<'_, TimerStore>,
        key: usize,
        deadline: Instant,
    ) -> bool {
        let when = store.ns(deadline);
        store.reset_ns(key, when);
        self.publish_armed(when);
        when < self.leader_deadline.load(Ordering::Acquire)
    }

    pub(crate) fn remove(&self, store: &mut ModeGuard<'_, TimerStore>, key: usize) {
        // Removing only raises the nearest deadline: the published hint
        // stays a lower bound (the next expiry refreshes it), except that
        // an empty store says so, so the scheduler skips expiry again.
        store.remove(key);
        if store.is_idle() {
            self.next.store(NONE, Ordering::Release);
        }
    }

    /// Fires due timers; returns how many.
    pub(crate) fn expire(
        &self,
        store: &mut ModeGuard<'_, TimerStore>,
        now: Instant,
        wakers: &mut Vec<Waker>,
    ) -> usize {
        let n = store.expire(now, wakers);
        // Even with nothing fired the wheel may have moved on: refresh.
        self.publish(store);
        n
    }

    /// Whether a timer is due at `now` (lock-free hint).
    pub(crate) fn is_due(&self, now: Instant) -> bool {
        let now = self.ns(now);
        self.seen.store(now, Ordering::Relaxed);
        let next = self.next.load(Ordering::Acquire);
        next != NONE && next <= now
    }

    /// The time until the nearest deadline, recorded as the leader's wait
    /// deadline (call under the store lock, right before parking).
    pub(crate) fn leader_timeout(
        &self,
        store: &ModeGuard<'_, TimerStore>,
        now: Instant,
    ) -> Option<Duration> {
        let next = store.next_ns();
        self.leader_deadline
            .store(next.unwrap_or(NONE), Ordering::Release);
        next.map(|t| Duration::from_nanos(t.saturating_sub(self.ns(now))))
    }

    /// The leader woke up: no deadline to protect any more.
    pub(crate) fn leader_awake(&self) {
        self.leader_deadline.store(NONE, Ordering::Release);
    }

    /// Time until the nearest deadline, without recording anything.
    pub(crate) fn time_to_next(&self, now: Instant) -> Option<Duration> {
        let next = self.next.load(Ordering::Acquire);
        (next != NONE).then(|| Duration::from_nanos(next.saturating_sub(self.ns(now))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coarse_check_only_vouches_for_the_clear_future() {
        let t = TimerService::new(false);
        let now = Instant::now();
        assert!(
            !t.surely_future(t.deadline_ns(now)),
            "now is not surely future"
        );
        assert!(!t.surely_future(t.deadline_ns(now - Duration::from_millis(5))));
        assert!(
            !t.surely_future(t.deadline_ns(now + Duration::from_millis(1))),
            "within the slack: ask the precise clock"
        );
        assert!(t.surely_future(t.deadline_ns(now + Duration::from_secs(3600))));
    }

    #[test]
    fn surely_past_trusts_only_a_reading_already_taken() {
        let t = TimerService::new(false);
        let now = Instant::now();
        assert!(!t.surely_past(t.deadline_ns(now + Duration::from_millis(1))));
        // The scheduler looks at the clock (`is_due`): deadlines up to that
        // reading are past, later ones still unknown.
        let _ = t.is_due(now);
        assert!(t.surely_past(t.deadline_ns(now)));
        assert!(t.surely_past(t.deadline_ns(now - Duration::from_millis(1))));
        assert!(!t.surely_past(t.deadline_ns(now + Duration::from_nanos(1))));
    }
}
