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
use crate::time::store::TimerStore;

const NONE: u64 = u64::MAX;

pub(crate) struct TimerService {
    pub(crate) store: ModeLock<TimerStore>,
    base: Instant,
    /// Nearest armed deadline (ns since `base`), `NONE` if no timer is armed.
    next: AtomicU64,
    /// Deadline the multi-threaded leader sleeps until (ns), `NONE` if none.
    leader_deadline: AtomicU64,
}

/// Whether arming a timer requires waking the leader.
#[must_use]
pub(crate) struct Armed {
    pub(crate) key: usize,
    pub(crate) wake_leader: bool,
}

impl TimerService {
    pub(crate) fn new(locking: bool) -> Self {
        let base = Instant::now();
        let store = TimerStore::with_base(base);
        TimerService {
            store: ModeLock::new("timer", locking, store),
            base,
            next: AtomicU64::new(NONE),
            leader_deadline: AtomicU64::new(NONE),
        }
    }

    /// Same base as the store's: deadlines compare as integers.
    fn ns(&self, t: Instant) -> u64 {
        crate::time::store::ns_since(self.base, t)
    }

    fn publish(&self, store: &TimerStore) {
        let next = store.next_ns().unwrap_or(NONE);
        if self.next.load(Ordering::Relaxed) != next {
            self.next.store(next, Ordering::Release);
        }
    }

    /// No timer armed: the scheduler skips expiry (and the clock read).
    pub(crate) fn is_empty(&self) -> bool {
        self.next.load(Ordering::Acquire) == NONE
    }

    pub(crate) fn arm(
        &self,
        store: &mut ModeGuard<'_, TimerStore>,
        deadline: Instant,
        waker: &Waker,
    ) -> Armed {
        let when = store.ns(deadline);
        let key = store.insert_ns(when, Some(waker.clone()));
        self.publish(store);
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
        self.publish(store);
        when < self.leader_deadline.load(Ordering::Acquire)
    }

    pub(crate) fn remove(&self, store: &mut ModeGuard<'_, TimerStore>, key: usize) {
        store.remove(key);
        self.publish(store);
    }

    /// Fires due timers; returns how many.
    pub(crate) fn expire(
        &self,
        store: &mut ModeGuard<'_, TimerStore>,
        now: Instant,
        wakers: &mut Vec<Waker>,
    ) -> usize {
        let n = store.expire(now, wakers);
        if n > 0 {
            self.publish(store);
        }
        n
    }

    /// Whether a timer is due at `now` (lock-free hint).
    pub(crate) fn is_due(&self, now: Instant) -> bool {
        let next = self.next.load(Ordering::Acquire);
        next != NONE && next <= self.ns(now)
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
