//! Per-context counters, kept cheaply: relaxed atomics, and per-run-frame
//! tallies for the hottest ones (tasks polled, tasks spawned from a thread
//! running the context) that are added once per pass.

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

#[derive(Debug, Default)]
pub(crate) struct Counters {
    tasks_polled: AtomicU64,
    /// Spawns from run frames, added with the frame's other tallies.
    tasks_spawned: AtomicU64,
    /// Spawns from threads not running the context, one at a time: on a
    /// line of its own, which only such spawning threads write (the
    /// runners flushing their tallies would otherwise pull it away from a
    /// feeder thread on every turn).
    spawned_outside: CachePadded<AtomicU64>,
    pub(crate) timers_fired: AtomicU64,
    pub(crate) inline_completions: AtomicU64,
    pub(crate) leader_waits: AtomicU64,
}

impl Counters {
    pub(crate) fn add_polled(&self, n: u64) {
        if n > 0 {
            self.tasks_polled.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub(crate) fn add_spawned(&self, n: u64) {
        if n > 0 {
            self.tasks_spawned.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// One spawn from a thread that is not running the context.
    pub(crate) fn add_spawned_outside(&self) {
        self.spawned_outside.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn tasks_spawned(&self) -> u64 {
        self.tasks_spawned.load(Ordering::Relaxed) + self.spawned_outside.load(Ordering::Relaxed)
    }

    pub(crate) fn tasks_polled(&self) -> u64 {
        self.tasks_polled.load(Ordering::Relaxed)
    }

    pub(crate) fn bump(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}
