//! The task state word: lifecycle flags and the reference count in one
//! `AtomicUsize`, and every transition on it.
//!
//! # Flags
//!
//! * `SCHEDULED`: a [`Runnable`](super::raw::Runnable) for the task exists
//!   (queued, or about to be), or the task is running and was woken during
//!   the poll, in which case the runner re-queues its own `Runnable`.
//! * `RUNNING`: a thread is polling (or cancelling) the future.
//! * `COMPLETE`: the future is gone; the stage holds the output, or nothing
//!   (cancelled, or the output was taken or dropped). Set once, never
//!   cleared; a complete task is never scheduled again.
//! * `HANDLE`: the [`JoinHandle`](super::JoinHandle) is alive. Whoever sees
//!   the other side gone owns the output (see [`State::complete`] and
//!   [`State::drop_handle`]): exactly one of the two drops it.
//! * `JOIN_WAKER`: the `JoinHandle` has stored a waker in the cell's slot
//!   (set after the store, never cleared). The runner completing the task
//!   looks at the slot only if it sees this flag; a handle whose
//!   [`State::set_join_waker`] finds `COMPLETE` already set reads the
//!   output instead of waiting, so one of the two always sees the other.
//!
//! # References
//!
//! The upper bits count references: one per `Runnable`, one per `Waker`,
//! one for the `JoinHandle`, one per `KeepAlive` guard (a scheduler call
//! that must outlive the `Runnable` it hands over). The thread that takes the count to zero frees
//! the task. At most one `Runnable` exists at a time, and only while
//! `SCHEDULED` or `RUNNING` is set, so the future is never polled twice at
//! once.
//!
//! Every transition is one read-modify-write with `AcqRel` (a CAS loop
//! where the new value depends on the old), so the thread that next polls
//! the future, takes the output or frees the task sees everything the
//! previous owner wrote. One exception: releasing the last reference is a
//! plain `Acquire` load that sees a count of one (see
//! [`State::is_sole_reference`]), the common end of a joined task.

use crate::loom::sync::atomic::{AtomicUsize, Ordering};

pub(super) const SCHEDULED: usize = 1 << 0;
pub(super) const RUNNING: usize = 1 << 1;
pub(super) const COMPLETE: usize = 1 << 2;
pub(super) const HANDLE: usize = 1 << 3;
pub(super) const JOIN_WAKER: usize = 1 << 4;
const FLAGS: usize = (1 << 5) - 1;
pub(super) const REF_ONE: usize = 1 << 5;

/// Past this many references, cloning a waker aborts (as `Arc` does) rather
/// than risk the count wrapping.
const MAX_REFS: usize = isize::MAX as usize;

pub(super) struct State(AtomicUsize);

/// What the runner must do after a poll returned `Pending`.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum AfterPending {
    /// Woken during the poll: queue the same `Runnable` again.
    Reschedule,
    /// Idle, waiting for a waker; the `Runnable`'s reference was released.
    Idle,
    /// Idle, and that was the last reference: free the task.
    Dealloc,
}

/// The outcome of [`State::complete`].
#[derive(Debug)]
pub(super) struct Completion {
    /// The word before: without `HANDLE`, the output is the runner's; with
    /// `HANDLE | JOIN_WAKER`, the runner wakes the handle's waker.
    pub(super) prev: usize,
    /// The runner's reference was released with the transition.
    pub(super) released: bool,
    /// ... and it was the last one: free the task.
    pub(super) last: bool,
}

/// What a wake must do.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum AfterWake {
    /// Queue a new `Runnable` (its reference is already counted).
    Schedule,
    /// Nothing (already scheduled, running, or complete).
    Nothing,
    /// Nothing, and the waker's reference was the last one: free the task.
    Dealloc,
}

impl State {
    /// A new task: scheduled (its first `Runnable`), with a `JoinHandle`.
    pub(super) fn new() -> Self {
        State(AtomicUsize::new(SCHEDULED | HANDLE | (2 * REF_ONE)))
    }

    /// A task nobody will join: scheduled, its `Runnable` the only
    /// reference, no `HANDLE` (its output is dropped when it completes).
    pub(super) fn new_detached() -> Self {
        State(AtomicUsize::new(SCHEDULED | REF_ONE))
    }

    #[inline]
    pub(super) fn load(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }

    /// `Runnable::run`: SCHEDULED → RUNNING.
    #[inline]
    pub(super) fn start_run(&self) {
        let prev = self.0.fetch_xor(SCHEDULED | RUNNING, Ordering::AcqRel);
        debug_assert_eq!(prev & (SCHEDULED | RUNNING | COMPLETE), SCHEDULED);
    }

    /// After a `Pending` poll: clear RUNNING, then re-queue if woken
    /// meanwhile, else release the `Runnable`'s reference.
    pub(super) fn end_run_pending(&self) -> AfterPending {
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            debug_assert!(cur & RUNNING != 0);
            let (next, after) = if cur & SCHEDULED != 0 {
                (cur & !RUNNING, AfterPending::Reschedule)
            } else {
                let next = (cur & !RUNNING) - REF_ONE;
                let after = if next < REF_ONE {
                    AfterPending::Dealloc
                } else {
                    AfterPending::Idle
                };
                (next, after)
            };
            match self
                .0
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return after,
                Err(actual) => cur = actual,
            }
        }
    }

    /// The future is gone (finished or cancelled) and the stage written:
    /// RUNNING → COMPLETE, releasing the runner's reference in the same
    /// step when the runner has nothing left to do: the handle is alive and
    /// awaits no waker (the output is the handle's), or the handle is gone
    /// and `output_dropped` (the runner already dropped the output).
    /// Otherwise the reference is kept and the caller, after its work (see
    /// [`Completion`]), releases it.
    pub(super) fn complete(&self, output_dropped: bool) -> Completion {
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            debug_assert!(cur & RUNNING != 0);
            let mut next = (cur & !(RUNNING | SCHEDULED)) | COMPLETE;
            let release = if cur & HANDLE != 0 {
                cur & JOIN_WAKER == 0
            } else {
                output_dropped
            };
            if release {
                next -= REF_ONE;
            }
            match self
                .0
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    return Completion {
                        prev: cur,
                        released: release,
                        last: release && next < REF_ONE,
                    }
                }
                Err(actual) => cur = actual,
            }
        }
    }

    /// The `JoinHandle` stored its waker: sets `JOIN_WAKER`, returns the
    /// previous word (with `COMPLETE` in it, the waker may never be woken:
    /// the output is ready).
    pub(super) fn set_join_waker(&self) -> usize {
        self.0.fetch_or(JOIN_WAKER, Ordering::AcqRel)
    }

    /// The `JoinHandle` is dropped: clears `HANDLE` and returns the
    /// previous word; with `COMPLETE` in it, the caller owns the output.
    pub(super) fn drop_handle(&self) -> usize {
        self.0.fetch_and(!HANDLE, Ordering::AcqRel)
    }

    /// The `JoinHandle` of a complete task is dropped: clears `HANDLE` and
    /// releases its reference in one step; `true` if that was the last.
    #[inline]
    pub(super) fn drop_handle_and_release(&self) -> bool {
        if self.is_sole_reference() {
            return true;
        }
        let prev = self.0.fetch_sub(HANDLE + REF_ONE, Ordering::AcqRel);
        debug_assert!(prev & HANDLE != 0 && prev & COMPLETE != 0);
        prev & !FLAGS == REF_ONE
    }

    /// A wake by reference: schedules an idle task (adding the new
    /// `Runnable`'s reference), flags a running one.
    pub(super) fn wake_by_ref(&self) -> AfterWake {
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            let next = if cur & (COMPLETE | SCHEDULED) != 0 {
                return AfterWake::Nothing;
            } else if cur & RUNNING != 0 {
                cur | SCHEDULED
            } else {
                Self::checked_add_ref(cur) | SCHEDULED
            };
            match self
                .0
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) if cur & RUNNING != 0 => return AfterWake::Nothing,
                Ok(_) => return AfterWake::Schedule,
                Err(actual) => cur = actual,
            }
        }
    }

    /// A wake by value: the waker's reference becomes the new `Runnable`'s
    /// if the task was idle, and is released otherwise.
    pub(super) fn wake_by_val(&self) -> AfterWake {
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            let (next, after) = if cur & (COMPLETE | SCHEDULED) != 0 {
                let next = cur - REF_ONE;
                let after = if next < REF_ONE {
                    AfterWake::Dealloc
                } else {
                    AfterWake::Nothing
                };
                (next, after)
            } else if cur & RUNNING != 0 {
                // The runner's `Runnable` holds a reference: never the last.
                ((cur | SCHEDULED) - REF_ONE, AfterWake::Nothing)
            } else {
                (cur | SCHEDULED, AfterWake::Schedule)
            };
            match self
                .0
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return after,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Whether the caller's reference is the only one left. Then nobody
    /// else can reach the task, so nobody can change the word any more (a
    /// new reference is only ever made from an existing one): the caller
    /// may free the task without writing the word, as `Arc::get_mut` reads
    /// a count of one. The `Acquire` load pairs with the `AcqRel`
    /// transition that released the previous reference, so the caller
    /// sees everything its holder wrote.
    #[inline]
    fn is_sole_reference(&self) -> bool {
        self.0.load(Ordering::Acquire) & !FLAGS == REF_ONE
    }

    /// A new waker's reference.
    pub(super) fn add_ref(&self) {
        let prev = self.0.fetch_add(REF_ONE, Ordering::Relaxed);
        if prev > MAX_REFS {
            std::process::abort();
        }
    }

    fn checked_add_ref(cur: usize) -> usize {
        if cur > MAX_REFS {
            std::process::abort();
        }
        cur + REF_ONE
    }

    /// Releases one reference; `true` if it was the last (free the task).
    #[inline]
    pub(super) fn release(&self) -> bool {
        if self.is_sole_reference() {
            return true;
        }
        let prev = self.0.fetch_sub(REF_ONE, Ordering::AcqRel);
        debug_assert!(prev >= REF_ONE);
        prev & !FLAGS == REF_ONE
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn refs(s: &State) -> usize {
        s.load() / REF_ONE
    }

    #[test]
    fn a_detached_task_completes_with_its_only_reference_released() {
        let s = State::new_detached();
        assert_eq!(s.load() & HANDLE, 0);
        assert_eq!(refs(&s), 1);
        s.start_run();
        let done = s.complete(true);
        assert!(done.released && done.last, "the Runnable was the last");
    }

    #[test]
    fn a_detached_task_kept_by_a_waker_outlives_its_completion() {
        let s = State::new_detached();
        s.start_run();
        s.add_ref(); // a waker the future handed out
        let done = s.complete(true);
        assert!(done.released && !done.last);
        assert!(s.release(), "the waker's drop frees it");
    }

    #[test]
    fn yield_in_poll_reschedules_without_touching_the_count() {
        let s = State::new();
        s.start_run();
        assert_eq!(s.wake_by_ref(), AfterWake::Nothing);
        assert_eq!(s.wake_by_ref(), AfterWake::Nothing);
        assert_eq!(s.end_run_pending(), AfterPending::Reschedule);
        assert_eq!(s.load() & (SCHEDULED | RUNNING), SCHEDULED);
        assert_eq!(refs(&s), 2);
    }

    #[test]
    fn idle_wake_adds_the_runnables_reference() {
        let s = State::new();
        s.start_run();
        s.add_ref(); // a waker kept by the future
        assert_eq!(s.end_run_pending(), AfterPending::Idle);
        assert_eq!(refs(&s), 2); // handle + waker
        assert_eq!(s.wake_by_ref(), AfterWake::Schedule);
        assert_eq!(refs(&s), 3);
        assert_eq!(s.wake_by_ref(), AfterWake::Nothing);
        // By value while scheduled: the waker's reference is released.
        assert_eq!(s.wake_by_val(), AfterWake::Nothing);
        assert_eq!(refs(&s), 2);
    }

    #[test]
    fn wake_by_value_of_an_idle_task_hands_its_reference_over() {
        let s = State::new();
        s.start_run();
        s.add_ref();
        assert_eq!(s.end_run_pending(), AfterPending::Idle);
        assert_eq!(s.wake_by_val(), AfterWake::Schedule);
        assert_eq!(refs(&s), 2); // handle + the new Runnable
    }

    #[test]
    fn a_pending_task_with_no_other_reference_is_freed() {
        let s = State::new();
        assert_eq!(s.drop_handle() & COMPLETE, 0);
        assert!(!s.release()); // the handle's reference
        s.start_run();
        assert_eq!(s.end_run_pending(), AfterPending::Dealloc);
    }

    #[test]
    fn output_goes_to_exactly_one_side() {
        // Handle alive at completion: the handle owns the output.
        let s = State::new();
        s.start_run();
        let c = s.complete(false);
        assert_ne!(c.prev & HANDLE, 0);
        assert!(c.released && !c.last, "nothing left for the runner");
        assert_ne!(s.drop_handle() & COMPLETE, 0);
        // Handle gone first: the completing runner owns it.
        let s = State::new();
        assert_eq!(s.drop_handle() & COMPLETE, 0);
        s.start_run();
        let c = s.complete(false);
        assert_eq!(c.prev & HANDLE, 0);
        assert!(!c.released, "the runner must drop the output first");
    }

    #[test]
    fn a_handle_awaiting_a_waker_keeps_the_runner_reference() {
        let s = State::new();
        assert_eq!(s.set_join_waker() & COMPLETE, 0);
        s.start_run();
        let c = s.complete(false);
        assert!(!c.released && c.prev & JOIN_WAKER != 0);
        assert!(!s.release());
        assert_ne!(s.set_join_waker() & COMPLETE, 0);
    }

    #[test]
    fn a_detached_task_whose_output_is_dropped_frees_in_one_step() {
        let s = State::new();
        s.drop_handle();
        assert!(!s.release());
        s.start_run();
        let c = s.complete(true);
        assert!(c.released && c.last);
    }

    #[test]
    fn a_complete_task_ignores_wakes_and_frees_on_the_last_release() {
        let s = State::new();
        s.start_run();
        s.add_ref(); // waker
        let c = s.complete(false);
        assert!(c.released && !c.last); // the Runnable's
        assert_eq!(s.wake_by_ref(), AfterWake::Nothing);
        s.drop_handle();
        assert!(!s.release()); // the handle's
        assert_eq!(s.wake_by_val(), AfterWake::Dealloc); // the waker's, last
    }
}

#[cfg(all(test, loom))]
mod loom_task_state {
    //! Models of the races the state word decides: loom runs every
    //! interleaving of the transitions (each one read-modify-write).
    use super::*;
    use crate::loom::sync::Arc;

    /// A wake from another thread while the task runs is never lost: either
    /// the waker queues the task or the runner re-queues it, never both.
    #[test]
    fn loom_task_wake_during_run_is_not_lost() {
        loom::model(|| {
            let s = Arc::new(State::new());
            s.add_ref(); // the waker's reference
            s.start_run(); // polling; the waker fires from another thread
            let waker = {
                let s = s.clone();
                loom::thread::spawn(move || s.wake_by_val())
            };
            let after_run = s.end_run_pending();
            let after_wake = waker.join().unwrap();
            let queued = (after_run == AfterPending::Reschedule) as u32
                + (after_wake == AfterWake::Schedule) as u32;
            assert_eq!(queued, 1, "{after_run:?} {after_wake:?}");
            // One Runnable (scheduled) plus the handle's reference remain.
            assert_eq!(s.load() & (SCHEDULED | RUNNING), SCHEDULED);
            assert_eq!(s.load() / REF_ONE, 2);
        });
    }

    /// The output has exactly one owner when the handle is dropped while
    /// the task completes.
    #[test]
    fn loom_task_output_has_one_owner() {
        loom::model(|| {
            let s = Arc::new(State::new());
            s.start_run();
            let handle = {
                let s = s.clone();
                loom::thread::spawn(move || s.drop_handle() & COMPLETE != 0)
            };
            let done = s.complete(false);
            let runner_owns = done.prev & HANDLE == 0;
            let handle_owns = handle.join().unwrap();
            assert!(runner_owns ^ handle_owns);
            assert!(!done.released || done.prev & HANDLE != 0);
        });
    }

    /// A handle registering its waker while the task completes either
    /// sees the completion or is seen by it.
    #[test]
    fn loom_task_join_waker_is_not_missed() {
        loom::model(|| {
            let s = Arc::new(State::new());
            s.start_run();
            let handle = {
                let s = s.clone();
                loom::thread::spawn(move || s.set_join_waker() & COMPLETE != 0)
            };
            let done = s.complete(false);
            let runner_wakes = done.prev & JOIN_WAKER != 0;
            let handle_sees = handle.join().unwrap();
            assert!(runner_wakes || handle_sees);
            assert_eq!(runner_wakes, !done.released);
        });
    }
}
