//! Per-context counters, kept cheaply: relaxed atomics, and per-run-frame
//! tallies for the hottest ones (tasks polled, tasks spawned from a thread
//! running the context) that are added once per pass.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub(crate) struct Counters {
    tasks_polled: AtomicU64,
    pub(crate) tasks_spawned: AtomicU64,
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

    pub(crate) fn tasks_polled(&self) -> u64 {
        self.tasks_polled.load(Ordering::Relaxed)
    }

    pub(crate) fn bump(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}
