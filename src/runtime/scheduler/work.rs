//! Work counting: when a context runs out of work (and `run` returns).
//!
//! # The count, and a single-threaded owner's finishes
//!
//! Outstanding work is `outstanding - finished_by_owner` (wrapping).
//! Every start, and every finish on a thread that does not own a
//! single-threaded context, is an atomic read-modify-write of
//! `outstanding`; the owner thread of a single-threaded context counts
//! its finishes in `finished_by_owner` with a plain load and store (it is
//! the only writer), which spares an atomic per task. A stale read of
//! `finished_by_owner` by another thread can only make the count look
//! larger (finishes not yet seen), never reach zero early; a zero missed
//! that way is caught by the owner, which re-reads the count after the
//! full fence of `Parker::prepare_park` before it sleeps (see
//! `do_some_single`), while that thread's read after its own
//! read-modify-write sees every owner finish made before that fence.
//!
//! # Multi-threaded runners
//!
//! A multi-threaded runner counts the finishes of the tasks it polls in
//! its run frame (`Frame::finished`, only while `in_task`) and takes
//! them off `outstanding` in one step when it flushes its tallies
//! (every maintain) and when the run queue answers `Next::Publish`:
//! `RunQueue::next` returns that instead of any answer but `Run` while
//! the runner holds unpublished work, so it publishes before it may
//! lead, sleep or leave, but not on every trip to the queue (the count
//! shares its line with every spawn from outside the context). Until
//! then the count only looks larger, so nothing stops early; and no
//! runner sleeps on finishes it has not published, so the zero is never
//! missed.

use std::sync::atomic::Ordering;

use super::Shared;
use crate::runtime::frame;

impl Shared {
    pub(crate) fn outstanding(&self) -> usize {
        self.outstanding
            .load(Ordering::Acquire)
            .wrapping_sub(self.finished_by_owner.load(Ordering::Acquire))
    }

    pub(crate) fn work_started(&self) {
        self.work_started_n(1);
    }

    /// `n` units of work started at once (a run frame's credit, see
    /// [`crate::runtime::frame`]).
    pub(crate) fn work_started_n(&self, n: usize) {
        self.outstanding.fetch_add(n, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn work_finished(&self) {
        if self.single_threaded {
            if frame::is_running(self) {
                let done = self
                    .finished_by_owner
                    .load(Ordering::Relaxed)
                    .wrapping_add(1);
                self.finished_by_owner.store(done, Ordering::Release);
                if self.outstanding.load(Ordering::Acquire).wrapping_sub(done) == 0 {
                    self.stop();
                }
                return;
            }
        } else {
            let tallied = frame::with_frame_of(self, |f| match f {
                Some(f) if f.in_task.get() => {
                    f.finished.set(f.finished.get() + 1);
                    true
                }
                _ => false,
            });
            if tallied {
                return;
            }
        }
        self.work_finished_n(1);
    }

    /// Takes `n` finished units off the outstanding count at once.
    pub(crate) fn work_finished_n(&self, n: usize) {
        if n == 0 {
            return;
        }
        let left = self
            .outstanding
            .fetch_sub(n, Ordering::AcqRel)
            .wrapping_sub(n);
        if left.wrapping_sub(self.finished_by_owner.load(Ordering::Acquire)) == 0 {
            self.stop();
        }
    }
}
