//! [`TimerStore`]: a hierarchical timing wheel in front of a small 4-ary
//! heap, with stable keys.
//!
//! Every timer is an entry in a slab (its key is stable for the timer's
//! life). Deadlines are nanoseconds since the store's `base` instant; both
//! come from `CLOCK_MONOTONIC`, so differences are exact. Time is cut into
//! *ticks* of 2^16 ns (65.536 µs); `cur` is the last tick the store was
//! advanced to.
//!
//! * Deadlines in a tick `<= cur` sit in the **heap** (a 4-ary min-heap of
//!   `(deadline, key)` whose entries record their position). It only ever
//!   holds about one tick's worth of timers, so it stays small and cached.
//! * Later deadlines sit in the **wheel**: [`LEVELS`] levels of 64 slots,
//!   each slot a `Vec` of keys. A deadline in tick `t > cur` goes to the
//!   level of the highest 6-bit group in which `t` and `cur` differ, in the
//!   slot named by `t`'s bits of that group. Arming and cancelling are O(1)
//!   (push; swap-remove fixing the moved key's index).
//! * Expiry at `now` first fires the due heap entries, then walks the
//!   occupied slots in time order (a 64-bit occupancy mask per level) up to
//!   `tick(now)`: `cur` moves to each slot's start and its keys are placed
//!   again relative to the new `cur` — a lower level, the heap, or, when
//!   their whole tick is already past, fired on the spot — then fires the
//!   due heap entries again. Each timer moves down at most once per level.
//!
//! # Invariants
//!
//! 1. An armed entry is in exactly one place: `loc == IN_HEAP` and
//!    `heap[idx].key` is its key, or `loc` is a slot and `slots[loc][idx]`
//!    is its key. `FIRED` and `DETACHED` entries are in neither.
//! 2. Heap entries have `tick(when) <= cur`; wheel entries `tick(when) >
//!    cur`, each in the slot [`TimerStore::slot_of`] gives for the current
//!    `cur`. Hence every occupied slot of level `L` lies after `cur`'s own
//!    position in that level, every occupied slot of a lower level starts
//!    before every occupied slot of a higher one, and the heap's minimum,
//!    if any, is the global minimum.
//! 3. `occupied[L]` has bit `s` set exactly when slot `s` of level `L` is
//!    non-empty.
//! 4. `cur` never passes the tick of a `now` given to [`TimerStore::expire`],
//!    so it never runs ahead of the clock.
//!
//! A timer fires only when its deadline is `<= now`: heap entries are
//! compared exactly, and an entry fired during the walk has `tick(when) <
//! tick(now)`, so `when < now`. Never early.
//!
//! A fired entry stays in the slab (state `FIRED`) until its owner
//! acknowledges it, so a key is never reused while a future still refers
//! to it.
//!
//! The slab is the store's own: a `Vec` of entries whose vacant ones
//! (`loc == VACANT`) chain through `idx` into a LIFO free list, so a key
//! freed by a cancel is the next one armed. The waker of a cancelled
//! entry is kept as `spare` (one, not per entry): the next arm with a
//! waker that [`Waker::will_wake`] the same task takes it instead of
//! cloning (a sleep armed and dropped in a loop does no reference-count
//! traffic). The spare is dropped by the next arm with another waker, by
//! an expiry, and by shutdown ([`TimerStore::take_wakers`]).
//!
//! [`TimerStore::next_ns`] is exact when the heap is non-empty, otherwise
//! it is the start of the earliest occupied slot: a lower bound, which can
//! only make the caller look (or wake) a little early, never fire early.

use std::task::{Poll, Waker};
#[cfg(test)]
use std::time::Duration;
use std::time::Instant;

const ARITY: usize = 4;
/// log2 of a tick in nanoseconds.
const TICK_SHIFT: u32 = 16;
/// log2 of the slots per level.
const LEVEL_BITS: u32 = 6;
const SLOTS: usize = 1 << LEVEL_BITS;
/// Ticks are `u64 >> TICK_SHIFT`: 48 bits, 6 per level.
const LEVELS: usize = (64 - TICK_SHIFT as usize) / LEVEL_BITS as usize;
/// A drained slot keeps its buffer up to this many keys.
const KEEP_CAPACITY: usize = 1024;

/// `Entry::loc` values that are not a slot index.
const IN_HEAP: u16 = u16::MAX;
const FIRED: u16 = u16::MAX - 1;
/// Unlinked by shutdown: never fires.
const DETACHED: u16 = u16::MAX - 2;
/// A free slab entry; `idx` is the next free key (`NIL`: none).
const VACANT: u16 = u16::MAX - 3;
const NIL: u32 = u32::MAX;

#[derive(Debug)]
struct Entry {
    when: u64,
    waker: Option<Waker>,
    /// Position in the heap or in the slot's `Vec`.
    idx: u32,
    /// A slot index (`level * SLOTS + slot`), `IN_HEAP`, `FIRED`,
    /// `DETACHED` or `VACANT`.
    loc: u16,
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
    key: u32,
}

#[derive(Debug)]
pub(crate) struct TimerStore {
    base: Instant,
    /// The slab (see the module docs).
    entries: Vec<Entry>,
    /// Head of the free list of `entries` (`NIL`: none).
    free: u32,
    /// Linked (armed, not fired) timers.
    armed: usize,
    /// The waker of the last cancelled timer (see the module docs).
    spare: Option<Waker>,
    heap: Vec<Node>,
    /// The tick the wheel was last advanced to.
    cur: u64,
    occupied: [u64; LEVELS],
    /// `LEVELS * SLOTS` lists of keys.
    slots: Box<[Vec<u32>]>,
}

impl TimerStore {
    #[cfg(test)]
    pub(crate) fn new() -> Self {
        TimerStore::with_base(Instant::now())
    }

    /// A store whose deadlines count nanoseconds from `base`.
    #[cfg(test)]
    pub(crate) fn with_base(base: Instant) -> Self {
        TimerStore::starting_at(base, 0)
    }

    /// A store whose deadlines count nanoseconds from `base`, its wheel
    /// starting at `now_ns` (a time already reached: invariant 4).
    pub(crate) fn starting_at(base: Instant, now_ns: u64) -> Self {
        TimerStore {
            base,
            entries: Vec::new(),
            free: NIL,
            armed: 0,
            spare: None,
            heap: Vec::new(),
            cur: now_ns >> TICK_SHIFT,
            occupied: [0; LEVELS],
            slots: (0..LEVELS * SLOTS).map(|_| Vec::new()).collect(),
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
        self.heap.len() + self.slots.iter().map(Vec::len).sum::<usize>()
    }

    /// Arms a new timer.
    #[cfg(test)]
    pub(crate) fn insert(&mut self, deadline: Instant, waker: Option<&Waker>) -> usize {
        self.insert_ns(self.ns(deadline), waker)
    }

    /// The occupied entries (tests).
    #[cfg(test)]
    fn occupied_entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| e.loc != VACANT)
    }

    /// Arms a new timer due at `when` (from [`ns`](Self::ns)), keeping a
    /// clone of `waker` (or the spare, if it wakes the same task).
    pub(crate) fn insert_ns(&mut self, when: u64, waker: Option<&Waker>) -> usize {
        let waker = waker.map(|w| match self.spare.take() {
            Some(spare) if spare.will_wake(w) => spare,
            _ => w.clone(),
        });
        let key = self.free;
        let key = if key != NIL {
            key
        } else {
            let k = u32::try_from(self.entries.len())
                .ok()
                .filter(|&k| k != NIL)
                .expect("ringio: more than 2^32 - 1 timers");
            self.entries.push(Entry {
                when: 0,
                waker: None,
                idx: NIL,
                loc: VACANT,
            });
            k
        };
        let t = when >> TICK_SHIFT;
        // The common case, a later tick, places the key in the wheel before
        // the entry is written: one write of the entry.
        let (loc, idx) = if t > self.cur {
            let (level, s) = Self::slot_of(self.cur, t);
            let list = &mut self.slots[s];
            let idx = list.len() as u32;
            list.push(key);
            self.occupied[level] |= 1 << (s % SLOTS);
            (s as u16, idx)
        } else {
            (DETACHED, 0)
        };
        let e = &mut self.entries[key as usize];
        debug_assert_eq!(e.loc, VACANT);
        self.free = e.idx;
        *e = Entry {
            when,
            waker,
            idx,
            loc,
        };
        if loc == DETACHED {
            self.link(key, when);
        }
        self.armed += 1;
        key as usize
    }

    /// Moves an armed or fired timer to a new deadline (it is armed again).
    #[cfg(test)]
    pub(crate) fn reset(&mut self, key: usize, deadline: Instant) {
        self.reset_ns(key, self.ns(deadline))
    }

    /// `reset` to `when` (from [`ns`](Self::ns)).
    pub(crate) fn reset_ns(&mut self, key: usize, when: u64) {
        self.unlink(key);
        self.entries[key].when = when;
        self.link(key as u32, when);
        self.armed += 1;
    }

    /// Removes a timer (cancel, or acknowledge a fired one); its key is
    /// free again.
    pub(crate) fn remove(&mut self, key: usize) {
        self.unlink(key);
        let e = &mut self.entries[key];
        e.loc = VACANT;
        e.idx = self.free;
        self.free = key as u32;
        if let Some(w) = e.waker.take() {
            self.spare = Some(w);
        }
    }

    /// Ready once fired; otherwise keeps `waker` for the expiry.
    pub(crate) fn poll(&mut self, key: usize, waker: &Waker) -> Poll<()> {
        let e = &mut self.entries[key];
        match e.loc {
            FIRED => return Poll::Ready(()),
            VACANT => panic!("ringio: poll of a free timer key"),
            // Unlinked by shutdown: never fires, and no waker is kept.
            DETACHED => return Poll::Pending,
            _ => {}
        }
        match &e.waker {
            Some(w) if w.will_wake(waker) => {}
            _ => e.waker = Some(waker.clone()),
        }
        Poll::Pending
    }

    #[cfg(test)]
    fn is_fired(&self, key: usize) -> bool {
        self.entries[key].loc == FIRED
    }

    /// The nearest armed deadline, exactly (tests).
    #[cfg(test)]
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.occupied_entries()
            .filter(|e| e.loc != FIRED && e.loc != DETACHED)
            .map(|e| e.when)
            .min()
            .map(|ns| self.instant(ns))
    }

    /// A lower bound of the nearest armed deadline, in nanoseconds since the
    /// base: exact when a timer is due within the current tick, otherwise
    /// the start of the earliest occupied slot (invariant 2).
    pub(crate) fn next_ns(&self) -> Option<u64> {
        if let Some(n) = self.heap.first() {
            return Some(n.when);
        }
        let level = self.occupied.iter().position(|&m| m != 0)?;
        let slot = u64::from(self.occupied[level].trailing_zeros());
        Some(self.slot_start(level, slot) << TICK_SHIFT)
    }

    /// No timer is armed.
    pub(crate) fn is_idle(&self) -> bool {
        self.armed == 0
    }

    /// Fires every timer with `deadline <= now`, collecting their wakers.
    /// Returns how many fired.
    pub(crate) fn expire(&mut self, now: Instant, wakers: &mut Vec<Waker>) -> usize {
        let now = self.ns(now);
        // Bounds how long the spare keeps its task alive.
        self.spare = None;
        // The heap holds the earliest ticks: fire it first, then walk the
        // wheel (keeps firing roughly in deadline order).
        let mut fired = self.fire_heap(now, wakers);
        let tick = now >> TICK_SHIFT;
        if tick > self.cur {
            fired += self.advance(tick, wakers);
            fired += self.fire_heap(now, wakers);
        }
        fired
    }

    /// Shutdown: takes every waker (they keep tasks alive) but keeps the
    /// entries, so the futures that own them can still poll and drop them;
    /// nothing fires any more.
    pub(crate) fn take_wakers(&mut self) -> Vec<Waker> {
        self.heap.clear();
        for s in self.slots.iter_mut() {
            s.clear();
        }
        self.occupied = [0; LEVELS];
        self.armed = 0;
        let spare = self.spare.take();
        self.entries
            .iter_mut()
            .filter_map(|e| {
                if e.loc != FIRED && e.loc != VACANT {
                    e.loc = DETACHED;
                }
                e.waker.take()
            })
            .chain(spare)
            .collect()
    }

    // ---- the wheel ---------------------------------------------------------

    /// The level and slot index (`level * SLOTS + slot`) of tick `t > cur`.
    fn slot_of(cur: u64, t: u64) -> (usize, usize) {
        debug_assert!(t > cur);
        let high = 63 - (cur ^ t).leading_zeros();
        let level = (high / LEVEL_BITS) as usize;
        let slot = ((t >> (LEVEL_BITS as usize * level)) as usize) & (SLOTS - 1);
        (level, level * SLOTS + slot)
    }

    /// First tick of slot `slot` of `level` (an occupied one: after `cur`).
    fn slot_start(&self, level: usize, slot: u64) -> u64 {
        let shift = LEVEL_BITS as usize * level;
        let above = shift + LEVEL_BITS as usize;
        (self.cur & !((1u64 << above) - 1)) | (slot << shift)
    }

    /// Puts an unlinked entry in the heap or the wheel (invariant 2).
    fn link(&mut self, key: u32, when: u64) {
        let t = when >> TICK_SHIFT;
        if t <= self.cur {
            let pos = self.heap.len();
            self.heap.push(Node { when, key });
            self.sift_up(pos);
            return;
        }
        let (level, s) = Self::slot_of(self.cur, t);
        let list = &mut self.slots[s];
        let idx = list.len() as u32;
        list.push(key);
        self.occupied[level] |= 1 << (s % SLOTS);
        let e = &mut self.entries[key as usize];
        e.loc = s as u16;
        e.idx = idx;
    }

    /// Takes an entry out of the heap or the wheel (no-op if fired or
    /// detached); its state is left for the caller to set.
    fn unlink(&mut self, key: usize) {
        let e = &self.entries[key];
        let (loc, idx) = (e.loc, e.idx as usize);
        match loc {
            FIRED | DETACHED => return,
            VACANT => panic!("ringio: a free timer key was used"),
            IN_HEAP => self.heap_remove(idx),
            s => {
                let s = usize::from(s);
                let list = &mut self.slots[s];
                list.swap_remove(idx);
                if let Some(&moved) = list.get(idx) {
                    self.entries[moved as usize].idx = idx as u32;
                } else if list.is_empty() {
                    self.occupied[s / SLOTS] &= !(1 << (s % SLOTS));
                }
            }
        }
        self.armed -= 1;
    }

    /// Walks the occupied slots that start at or before tick `to`, in time
    /// order, moving `cur` forward to each and placing its keys again;
    /// keys whose tick is before `to` are fired on the spot.
    fn advance(&mut self, to: u64, wakers: &mut Vec<Waker>) -> usize {
        let mut fired = 0;
        while let Some(level) = self.occupied.iter().position(|&m| m != 0) {
            let slot = self.occupied[level].trailing_zeros();
            let start = self.slot_start(level, u64::from(slot));
            if start > to {
                break;
            }
            // Invariant 2 holds for the new `cur` for every other slot: they
            // are later slots of this level or in higher levels.
            self.cur = start;
            self.occupied[level] &= !(1 << slot);
            let s = level * SLOTS + slot as usize;
            let mut list = std::mem::take(&mut self.slots[s]);
            for &key in &list {
                let when = self.entries[key as usize].when;
                if when >> TICK_SHIFT < to {
                    // Its whole tick is past: `when < now`.
                    self.fire(key as usize, wakers);
                    fired += 1;
                } else {
                    // A lower level or the heap: never this slot again.
                    self.link(key, when);
                }
            }
            if list.capacity() <= KEEP_CAPACITY {
                list.clear();
                self.slots[s] = list;
            }
        }
        if to > self.cur {
            // No slot starts at or before `to`: every wheel entry keeps its
            // slot relative to the new `cur` too.
            self.cur = to;
        }
        fired
    }

    fn fire(&mut self, key: usize, wakers: &mut Vec<Waker>) {
        self.armed -= 1;
        let e = &mut self.entries[key];
        e.loc = FIRED;
        if let Some(w) = e.waker.take() {
            wakers.push(w);
        }
    }

    // ---- the heap ----------------------------------------------------------

    fn fire_heap(&mut self, now: u64, wakers: &mut Vec<Waker>) -> usize {
        let mut fired = 0;
        while let Some(&Node { when, key }) = self.heap.first() {
            if when > now {
                break;
            }
            self.heap_remove(0);
            self.fire(key as usize, wakers);
            fired += 1;
        }
        fired
    }

    fn heap_remove(&mut self, pos: usize) {
        let last = self.heap.len() - 1;
        self.heap.swap(pos, last);
        self.heap.pop();
        if pos < self.heap.len() {
            let key = self.heap[pos].key as usize;
            self.entries[key].idx = pos as u32;
            self.sift_up(pos);
            let pos = self.entries[key].idx as usize;
            self.sift_down(pos);
        }
    }

    fn place(&mut self, pos: usize, node: Node) {
        self.heap[pos] = node;
        let e = &mut self.entries[node.key as usize];
        e.loc = IN_HEAP;
        e.idx = pos as u32;
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

    /// Checks invariants 1–3.
    #[cfg(test)]
    fn check(&self) {
        for (i, n) in self.heap.iter().enumerate() {
            let e = &self.entries[n.key as usize];
            assert_eq!((e.loc, e.idx as usize), (IN_HEAP, i));
            assert_eq!(e.when, n.when);
            assert!(n.when >> TICK_SHIFT <= self.cur, "heap entry after cur");
            if i > 0 {
                assert!(
                    self.heap[(i - 1) / ARITY].when <= n.when,
                    "heap order at {i}"
                );
            }
        }
        for (s, list) in self.slots.iter().enumerate() {
            let (level, slot) = (s / SLOTS, s % SLOTS);
            assert_eq!(
                self.occupied[level] >> slot & 1 == 1,
                !list.is_empty(),
                "occupancy of level {level} slot {slot}"
            );
            for (i, &k) in list.iter().enumerate() {
                let e = &self.entries[k as usize];
                assert_eq!((usize::from(e.loc), e.idx as usize), (s, i));
                let t = e.when >> TICK_SHIFT;
                assert!(t > self.cur, "wheel entry not after cur");
                assert_eq!(Self::slot_of(self.cur, t), (level, s));
            }
        }
        let linked = self
            .occupied_entries()
            .filter(|e| e.loc != FIRED && e.loc != DETACHED)
            .count();
        assert_eq!(linked, self.len());
        assert_eq!(self.armed, linked, "armed count");
        let mut free = 0;
        let mut k = self.free;
        while k != NIL {
            assert_eq!(self.entries[k as usize].loc, VACANT, "free list");
            free += 1;
            k = self.entries[k as usize].idx;
        }
        assert_eq!(free, self.entries.len() - self.occupied_entries().count());
        if let (Some(lb), Some(min)) = (self.next_ns(), self.next_deadline()) {
            assert!(self.instant(lb) <= min, "next_ns is not a lower bound");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A small deterministic generator (xorshift) so the test needs no crate.
    fn rng(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    const TICK: u64 = 1 << TICK_SHIFT;

    /// Expires at `ns` since the base; returns the keys that fired.
    fn expire_at(s: &mut TimerStore, ns: u64, keys: &[usize]) -> Vec<usize> {
        let was: Vec<bool> = keys.iter().map(|&k| s.is_fired(k)).collect();
        let n = s.expire(s.instant(ns), &mut Vec::new());
        let fired: Vec<usize> = keys
            .iter()
            .zip(was)
            .filter(|&(&k, was)| !was && s.is_fired(k))
            .map(|(&k, _)| k)
            .collect();
        assert_eq!(n, fired.len(), "expire's count");
        s.check();
        fired
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
        s.check();
        s.remove(a);
        s.remove(c);
        assert_eq!(s.len(), 0);
        assert!(s.next_deadline().is_none());
        assert!(s.next_ns().is_none());
    }

    #[test]
    fn past_deadlines_fire_at_once() {
        let mut s = TimerStore::new();
        let k = s.insert(s.base - Duration::from_secs(1), None);
        assert_eq!(s.expire(Instant::now(), &mut Vec::new()), 1);
        assert!(s.is_fired(k));
    }

    /// Deadlines on and next to tick, slot and level boundaries fire at
    /// exactly their nanosecond, not one before.
    #[test]
    fn boundaries_fire_exactly() {
        for level in 0..LEVELS.min(5) {
            let span = TICK << (LEVEL_BITS as usize * level);
            for edge in [span, span * 2, span * 63, span * 64, span * 65] {
                for when in [edge - 1, edge, edge + 1] {
                    let mut s = TimerStore::new();
                    let k = s.insert_ns(when, None);
                    s.check();
                    assert!(
                        expire_at(&mut s, when - 1, &[k]).is_empty(),
                        "{when}: early"
                    );
                    assert_eq!(expire_at(&mut s, when, &[k]), [k], "{when}: late");
                }
            }
        }
    }

    /// Far deadlines sit in the top levels, cascade down as time jumps
    /// toward them, and still fire exactly at their deadline.
    #[test]
    fn far_deadlines_cascade_and_fire_exactly() {
        let mut s = TimerStore::new();
        let hour = 3_600_000_000_000u64;
        let whens = [hour, 24 * hour, 365 * 24 * hour, u64::MAX - 1];
        let keys: Vec<usize> = whens.iter().map(|&w| s.insert_ns(w, None)).collect();
        s.check();
        for (&w, &k) in whens.iter().zip(&keys) {
            // Jump close, then to one before, then onto the deadline.
            assert!(expire_at(&mut s, w - w / 1000, &keys).is_empty());
            assert!(expire_at(&mut s, w - 1, &keys).is_empty());
            assert_eq!(expire_at(&mut s, w, &keys), [k]);
        }
        assert_eq!(s.len(), 0);
    }

    /// Cancelling an entry after it cascaded to a lower level (or into the
    /// heap) removes it for good, and fixes the index of the entry moved
    /// into its place.
    #[test]
    fn cancel_of_a_cascaded_entry() {
        let mut s = TimerStore::new();
        let span2 = TICK << (2 * LEVEL_BITS);
        let w = 5 * span2 + 3 * (TICK << LEVEL_BITS) + 12_345;
        let doomed = s.insert_ns(w, None);
        let kept: Vec<usize> = (0..4).map(|i| s.insert_ns(w + i, None)).collect();
        assert_eq!(usize::from(s.entries[doomed].loc) / SLOTS, 2);
        // Move `cur` into the slot's range: everything cascades to level 1.
        assert!(expire_at(&mut s, 5 * span2, &[doomed]).is_empty());
        assert_eq!(usize::from(s.entries[doomed].loc) / SLOTS, 1);
        s.remove(doomed);
        s.check();
        // Into the heap, then cancel one there.
        assert!(expire_at(&mut s, w - 10, &kept).is_empty());
        assert_eq!(s.entries[kept[3]].loc, IN_HEAP);
        s.remove(kept[3]);
        s.check();
        assert_eq!(expire_at(&mut s, w + 10, &kept[..3]), &kept[..3]);
        assert_eq!(s.len(), 0);
    }

    /// Re-arming from the wheel into the heap, from the heap back to a high
    /// level, and after firing.
    #[test]
    fn rearm_moves_between_heap_and_wheel() {
        let mut s = TimerStore::new();
        let k = s.insert_ns(10 * TICK, None);
        let other = s.insert_ns(1_000 * TICK, None);
        assert!(expire_at(&mut s, 5 * TICK, &[k, other]).is_empty());
        s.reset_ns(k, 5 * TICK + 7);
        assert_eq!(s.entries[k].loc, IN_HEAP);
        s.check();
        s.reset_ns(k, 1_000_000 * TICK);
        assert!(s.entries[k].loc < IN_HEAP - 2);
        s.check();
        assert_eq!(expire_at(&mut s, 1_000 * TICK, &[k, other]), [other]);
        s.reset_ns(other, 2_000 * TICK);
        assert!(!s.is_fired(other));
        s.check();
        assert_eq!(expire_at(&mut s, 1_000_000 * TICK, &[k, other]), [k, other]);
    }

    /// A cancel keeps the waker as the spare; the next arm by the same task
    /// takes it (no clone), an arm by another task or an expiry drops it,
    /// and shutdown hands it back with the others.
    #[test]
    fn spare_waker_is_reused_and_bounded() {
        struct W;
        impl std::task::Wake for W {
            fn wake(self: std::sync::Arc<Self>) {}
        }
        let (a, b) = (std::sync::Arc::new(W), std::sync::Arc::new(W));
        let (wa, wb) = (Waker::from(a.clone()), Waker::from(b.clone()));
        let mut s = TimerStore::new();
        let k = s.insert_ns(10 * TICK, Some(&wa));
        assert_eq!(std::sync::Arc::strong_count(&a), 3);
        s.remove(k);
        assert_eq!(std::sync::Arc::strong_count(&a), 3, "kept as the spare");
        let k = s.insert_ns(10 * TICK, Some(&wa));
        assert_eq!(
            std::sync::Arc::strong_count(&a),
            3,
            "the spare, not a clone"
        );
        s.remove(k);
        let k = s.insert_ns(10 * TICK, Some(&wb));
        assert_eq!(std::sync::Arc::strong_count(&a), 2, "another task: dropped");
        s.remove(k);
        assert_eq!(std::sync::Arc::strong_count(&b), 3);
        s.expire(s.instant(TICK), &mut Vec::new());
        assert_eq!(std::sync::Arc::strong_count(&b), 2, "an expiry drops it");
        let k = s.insert_ns(10 * TICK, Some(&wb));
        s.remove(k);
        assert_eq!(s.take_wakers().len(), 1, "shutdown takes the spare");
        assert_eq!(std::sync::Arc::strong_count(&b), 2);
        s.check();
    }

    /// Shutdown detaches armed entries: they never fire, keep no waker.
    #[test]
    fn take_wakers_detaches() {
        let mut s = TimerStore::new();
        let a = s.insert_ns(TICK * 3, None);
        let b = s.insert_ns(0, None);
        assert_eq!(expire_at(&mut s, TICK * 2, &[a, b]), [b]);
        let near = s.insert_ns(TICK * 2 + 1, None);
        assert!(s.take_wakers().is_empty());
        s.check();
        assert_eq!(s.len(), 0);
        assert!(s.is_fired(b) && !s.is_fired(a) && !s.is_fired(near));
        assert!(expire_at(&mut s, u64::MAX - 1, &[a, near]).is_empty());
        let w = std::task::Waker::noop();
        assert!(s.poll(a, w).is_pending() && s.poll(b, w).is_ready());
        assert!(s.entries[a].waker.is_none());
        s.remove(a);
        s.remove(b);
        s.remove(near);
    }

    /// Random arms (from the past to the far future), cancels, re-arms and
    /// clock jumps of every size against a plain model: after each expiry,
    /// exactly the timers with `deadline <= now` have fired.
    #[test]
    fn matches_a_model_under_random_operations() {
        let mut seed = 0x2545f4914f6cdd1d;
        for round in 0..20 {
            let mut s = TimerStore::new();
            let mut model: BTreeMap<usize, (u64, bool)> = BTreeMap::new();
            let mut now = 0u64;
            for _ in 0..3_000 {
                let r = rng(&mut seed);
                // Deadlines log-uniform over 2^0..2^50 ns past `now`.
                let delta = rng(&mut seed) % (1u64 << (r % 51));
                let when = if r % 17 == 0 {
                    now.saturating_sub(delta)
                } else {
                    now.saturating_add(delta)
                };
                match r % 10 {
                    0..=4 => {
                        let k = s.insert_ns(when, None);
                        model.insert(k, (when, false));
                    }
                    5 | 6 => {
                        if let Some(&k) = model.keys().nth((r >> 8) as usize % model.len().max(1)) {
                            if r & 0x100 == 0 {
                                s.remove(k);
                                model.remove(&k);
                            } else {
                                s.reset_ns(k, when);
                                model.insert(k, (when, false));
                            }
                        }
                    }
                    _ => {
                        let step = rng(&mut seed) % (1u64 << (r % 40));
                        now = now.saturating_add(step).min(u64::MAX - 1);
                        s.expire(s.instant(now), &mut Vec::new());
                        for (&k, (w, fired)) in model.iter_mut() {
                            *fired = *w <= now;
                            assert_eq!(s.is_fired(k), *fired, "round {round}: key {k}");
                        }
                    }
                }
                if r % 64 == 0 {
                    s.check();
                }
            }
            s.check();
        }
    }
}
