//! [`TimerStore`]: a 4-ary min-heap of deadlines with stable keys.
//!
//! Every timer is an entry in a slab (its key is stable for the timer's
//! life); the heap holds `(deadline, key)` and each entry records its heap
//! position, so arming, re-arming and cancelling are O(log₄ n) and finding
//! the nearest deadline is O(1). A fired entry stays in the slab (state
//! `Fired`) until its owner acknowledges it, so a key is never reused while
//! a future still refers to it.
//!
//! Deadlines are nanoseconds since the store's `base` instant; both come
//! from `CLOCK_MONOTONIC`, so differences are exact and an entry fires only
//! when `deadline <= now` — never early.

use std::task::{Poll, Waker};
#[cfg(test)]
use std::time::Duration;
use std::time::Instant;

use slab::Slab;

const ARITY: usize = 4;
const FIRED: usize = usize::MAX;

#[derive(Debug)]
struct Entry {
    when: u64,
    /// Index in `heap`, or `FIRED`.
    pos: usize,
    waker: Option<Waker>,
}

/// Nanoseconds from `base` to `t` (0 if `t` is earlier, saturating far in
/// the future).
pub(crate) fn ns_since(base: Instant, t: Instant) -> u64 {
    let d = t.saturating_duration_since(base);
    d.as_secs()
        .checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(u64::from(d.subsec_nanos())))
        .unwrap_or(u64::MAX - 1)
}

#[derive(Debug, Clone, Copy)]
struct Node {
    when: u64,
    key: usize,
}

#[derive(Debug)]
pub(crate) struct TimerStore {
    base: Instant,
    entries: Slab<Entry>,
    heap: Vec<Node>,
}

impl TimerStore {
    #[cfg(test)]
    pub(crate) fn new() -> Self {
        TimerStore::with_base(Instant::now())
    }

    /// A store whose deadlines count nanoseconds from `base`.
    pub(crate) fn with_base(base: Instant) -> Self {
        TimerStore {
            base,
            entries: Slab::new(),
            heap: Vec::new(),
        }
    }

    /// `t` as nanoseconds since the base (the one clock conversion per
    /// operation; everything inside compares plain integers).
    pub(crate) fn ns(&self, t: Instant) -> u64 {
        ns_since(self.base, t)
    }

    #[cfg(test)]
    fn instant(&self, ns: u64) -> Instant {
        self.base + Duration::from_nanos(ns)
    }

    /// Armed (not yet fired) timers.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.heap.len()
    }

    /// Arms a new timer.
    #[cfg(test)]
    pub(crate) fn insert(&mut self, deadline: Instant, waker: Option<Waker>) -> usize {
        self.insert_ns(self.ns(deadline), waker)
    }

    /// Arms a new timer due at `when` (from [`ns`](Self::ns)).
    pub(crate) fn insert_ns(&mut self, when: u64, waker: Option<Waker>) -> usize {
        let key = self.entries.insert(Entry {
            when,
            pos: self.heap.len(),
            waker,
        });
        self.heap.push(Node { when, key });
        self.sift_up(self.heap.len() - 1);
        key
    }

    /// Moves an armed or fired timer to a new deadline (it is armed again).
    #[cfg(test)]
    pub(crate) fn reset(&mut self, key: usize, deadline: Instant) {
        self.reset_ns(key, self.ns(deadline))
    }

    /// [`reset`](Self::reset) to `when` (from [`ns`](Self::ns)).
    pub(crate) fn reset_ns(&mut self, key: usize, when: u64) {
        let pos = self.entries[key].pos;
        self.entries[key].when = when;
        let linked = self.heap.get(pos).is_some_and(|n| n.key == key);
        if !linked {
            self.entries[key].pos = self.heap.len();
            self.heap.push(Node { when, key });
            self.sift_up(self.heap.len() - 1);
        } else {
            self.heap[pos].when = when;
            self.sift_up(pos);
            let pos = self.entries[key].pos;
            self.sift_down(pos);
        }
    }

    /// Removes a timer (cancel, or acknowledge a fired one).
    pub(crate) fn remove(&mut self, key: usize) {
        let entry = self.entries.remove(key);
        if entry.pos != FIRED && self.heap.get(entry.pos).is_some_and(|n| n.key == key) {
            self.unlink(entry.pos);
        }
    }

    /// Ready once fired; otherwise keeps `waker` for the expiry.
    pub(crate) fn poll(&mut self, key: usize, waker: &Waker) -> Poll<()> {
        let e = &mut self.entries[key];
        if e.pos == FIRED {
            return Poll::Ready(());
        }
        if self.heap.get(e.pos).is_none_or(|n| n.key != key) {
            // Unlinked by shutdown: never fires, and no waker is kept.
            return Poll::Pending;
        }
        match &e.waker {
            Some(w) if w.will_wake(waker) => {}
            _ => e.waker = Some(waker.clone()),
        }
        Poll::Pending
    }

    #[cfg(test)]
    fn is_fired(&self, key: usize) -> bool {
        self.entries[key].pos == FIRED
    }

    /// The nearest armed deadline.
    #[cfg(test)]
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.first().map(|n| self.instant(n.when))
    }

    /// The nearest armed deadline, in nanoseconds since the base.
    pub(crate) fn next_ns(&self) -> Option<u64> {
        self.heap.first().map(|n| n.when)
    }

    /// Fires every timer with `deadline <= now`, collecting their wakers.
    /// Returns how many fired.
    pub(crate) fn expire(&mut self, now: Instant, wakers: &mut Vec<Waker>) -> usize {
        let now = self.ns(now);
        let mut fired = 0;
        while let Some(&Node { when, key }) = self.heap.first() {
            if when > now {
                break;
            }
            self.unlink(0);
            let e = &mut self.entries[key];
            e.pos = FIRED;
            if let Some(w) = e.waker.take() {
                wakers.push(w);
            }
            fired += 1;
        }
        fired
    }

    /// Shutdown: takes every waker (they keep tasks alive) but keeps the
    /// entries, so the futures that own them can still poll and drop them;
    /// nothing fires any more.
    pub(crate) fn take_wakers(&mut self) -> Vec<Waker> {
        self.heap.clear();
        self.entries
            .iter_mut()
            .filter_map(|(_, e)| e.waker.take())
            .collect()
    }

    fn unlink(&mut self, pos: usize) {
        let last = self.heap.len() - 1;
        self.heap.swap(pos, last);
        self.heap.pop();
        if pos < self.heap.len() {
            let key = self.heap[pos].key;
            self.entries[key].pos = pos;
            self.sift_up(pos);
            let pos = self.entries[key].pos;
            self.sift_down(pos);
        }
    }

    fn place(&mut self, pos: usize, node: Node) {
        self.heap[pos] = node;
        self.entries[node.key].pos = pos;
    }

    fn sift_up(&mut self, mut pos: usize) {
        let node = self.heap[pos];
        while pos > 0 {
            let parent = (pos - 1) / ARITY;
            if self.heap[parent].when <= node.when {
                break;
            }
            let p = self.heap[parent];
            self.place(pos, p);
            pos = parent;
        }
        self.place(pos, node);
    }

    fn sift_down(&mut self, mut pos: usize) {
        let node = self.heap[pos];
        let len = self.heap.len();
        loop {
            let first = pos * ARITY + 1;
            if first >= len {
                break;
            }
            let mut best = first;
            for c in first + 1..(first + ARITY).min(len) {
                if self.heap[c].when < self.heap[best].when {
                    best = c;
                }
            }
            if self.heap[best].when >= node.when {
                break;
            }
            let b = self.heap[best];
            self.place(pos, b);
            pos = best;
        }
        self.place(pos, node);
    }

    #[cfg(test)]
    fn check(&self) {
        for (i, n) in self.heap.iter().enumerate() {
            assert_eq!(self.entries[n.key].pos, i);
            assert_eq!(self.entries[n.key].when, n.when);
            if i > 0 {
                assert!(
                    self.heap[(i - 1) / ARITY].when <= n.when,
                    "heap order at {i}"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift) so the test needs no crate.
    fn rng(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    #[test]
    fn fires_in_deadline_order_and_never_early() {
        let mut s = TimerStore::new();
        let base = s.base;
        let mut seed = 0x9e3779b97f4a7c15;
        let mut keys = Vec::new();
        for _ in 0..5000 {
            let at = base + Duration::from_micros(rng(&mut seed) % 100_000);
            keys.push((s.insert(at, None), at));
        }
        s.check();
        // Cancel a third of them.
        for (i, (k, _)) in keys.iter().enumerate() {
            if i % 3 == 0 {
                s.remove(*k);
            }
        }
        s.check();
        let mut now = base;
        let mut w = Vec::new();
        let mut total = 0;
        while s.len() > 0 {
            now += Duration::from_micros(1_000);
            let before: Vec<_> = keys
                .iter()
                .enumerate()
                .filter(|(i, (k, _))| i % 3 != 0 && !s.is_fired(*k))
                .map(|(_, x)| *x)
                .collect();
            total += s.expire(now, &mut w);
            for (k, at) in before {
                assert_eq!(s.is_fired(k), at <= now, "fired early or late");
            }
            s.check();
        }
        assert_eq!(total, keys.len() - keys.len().div_ceil(3));
    }

    #[test]
    fn reset_moves_both_ways_and_rearms_fired() {
        let mut s = TimerStore::new();
        let b = s.base;
        let a = s.insert(b + Duration::from_secs(10), None);
        let c = s.insert(b + Duration::from_secs(5), None);
        s.reset(a, b + Duration::from_secs(1));
        assert_eq!(s.next_deadline(), Some(b + Duration::from_secs(1)));
        s.reset(a, b + Duration::from_secs(20));
        assert_eq!(s.next_deadline(), Some(b + Duration::from_secs(5)));
        s.check();
        let mut w = Vec::new();
        assert_eq!(s.expire(b + Duration::from_secs(30), &mut w), 2);
        assert!(s.is_fired(a) && s.is_fired(c));
        s.reset(c, b + Duration::from_secs(40));
        assert!(!s.is_fired(c));
        assert_eq!(s.len(), 1);
        s.remove(a);
        s.remove(c);
        assert_eq!(s.len(), 0);
        assert!(s.next_deadline().is_none());
    }

    #[test]
    fn past_deadlines_fire_at_once() {
        let mut s = TimerStore::new();
        let k = s.insert(s.base - Duration::from_secs(1), None);
        assert_eq!(s.expire(Instant::now(), &mut Vec::new()), 1);
        assert!(s.is_fired(k));
    }
}
