//! Operation slots: one per in-flight SQE, keyed by its user_data.
//!
//! # Lifecycle
//!
//! ```text
//!  first poll: SQE pushed        CQE (no F_MORE)
//! ────────────────────▶ Waiting ─────────────────▶ Completed ──▶ (freed by the future's poll)
//!                          │
//!                          │ future dropped: data moved into the slot,
//!                          ▼ ASYNC_CANCEL(user_data) submitted
//!                   Cancelled(data) ── every CQE: data.on_cqe() (closes fds a late accept made, …)
//!                          └────────── CQE without F_MORE: slot freed, data dropped
//!
//! Streaming (multishot): CQEs with F_MORE queue up in the slot until the
//! stream's owner takes them; the slot lives until the CQE without F_MORE has
//! been taken (or, once cancelled, has arrived).
//! ```
//!
//! Rules:
//! 1. A slot is freed only after the kernel's last CQE for it arrived, so a
//!    key (user_data) is never reused while the kernel may still post for it,
//!    and an `ASYNC_CANCEL` by user_data always targets the right op.
//! 2. Memory the kernel may touch (buffers, sockaddrs, iovecs) is owned by the
//!    op's data, first inside the future, then inside the slot; it is dropped
//!    only after rule 1 allows it — never earlier.
//! 3. CQEs are dispatched only to their own slot; nothing here ever consumes
//!    another op's CQE.
//! 4. Wakers and dropped data are handed back to the caller, to be woken and
//!    dropped after the driver lock is released (they may run foreign code).

use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::task::{Poll, Waker};

use io_uring::squeue;
use slab::Slab;

/// The result of one CQE.
#[derive(Debug)]
pub(crate) struct Completion {
    pub(crate) result: io::Result<u32>,
    pub(crate) flags: u32,
}

impl Completion {
    pub(crate) fn from_cqe(res: i32, flags: u32) -> Self {
        let result = if res < 0 {
            Err(io::Error::from_raw_os_error(-res))
        } else {
            Ok(res as u32)
        };
        Completion { result, flags }
    }

    /// A completion the kernel never produced (the op could not be submitted).
    pub(crate) fn error(e: io::Error) -> Self {
        Completion {
            result: Err(e),
            flags: 0,
        }
    }

    pub(crate) fn more(&self) -> bool {
        io_uring::cqueue::more(self.flags)
    }
}

/// What a dropped op leaves in its slot until the kernel lets go of it.
pub(crate) trait CancelledOp: Send {
    /// Called for every CQE that arrives after the future was dropped (and
    /// for completions it never took). Release what the kernel produced: an
    /// accepted or opened fd, a provided buffer. Most ops own nothing of the
    /// kind.
    fn on_cqe(&mut self, completion: &Completion) {
        let _ = completion;
    }

    /// Called once when the op's future is dropped while the op is in
    /// flight, just before the data moves into the slot (on the dropping
    /// thread, with no lock held). Ops that must tell their owner "a
    /// cancelled op is still out there" (a stream read whose late data must
    /// not be lost) note it here.
    fn on_drop_in_flight(&mut self) {}
}

pub(crate) enum Lifecycle {
    /// The SQE is queued or in the kernel; the waker of the task waiting for
    /// its CQE (ops are submitted by their first poll, so there always is one).
    Waiting(Waker),
    /// The CQE arrived and waits to be taken.
    Completed(Completion),
    /// A multishot op: CQEs not yet taken; `more` is false once the terminal
    /// CQE (without `F_MORE`) arrived.
    Streaming {
        ready: VecDeque<Completion>,
        waker: Option<Waker>,
        more: bool,
    },
    /// The future was dropped first; its data stays here until the last CQE.
    Cancelled(Box<dyn CancelledOp>),
    /// Shutdown gave up waiting for this op's CQE: the kernel may still write
    /// its memory, so whatever owns that memory must leak it.
    Abandoned,
}

impl fmt::Debug for Lifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lifecycle::Waiting(_) => f.write_str("Waiting"),
            Lifecycle::Completed(c) => write!(f, "Completed({c:?})"),
            Lifecycle::Streaming { ready, more, .. } => {
                write!(f, "Streaming {{ ready: {}, more: {more} }}", ready.len())
            }
            Lifecycle::Cancelled(_) => f.write_str("Cancelled"),
            Lifecycle::Abandoned => f.write_str("Abandoned"),
        }
    }
}

/// What a multishot op's owner gets from [`Slots::poll_stream`].
#[derive(Debug)]
pub(crate) enum StreamEvent {
    /// One completion.
    Item(Completion),
    /// The terminal CQE was taken earlier; the slot is gone.
    End,
    /// Shutdown gave up on the op: its memory must be leaked.
    Abandoned,
}

/// What the driver must do after a future dropped its op.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AfterDrop {
    /// The op is still in the kernel: submit `ASYNC_CANCEL` for it.
    SubmitCancel,
    /// The op had already finished; nothing is in flight.
    Nothing,
}

/// Side effects of dispatching CQEs, applied after the lock is released.
#[derive(Default)]
pub(crate) struct Effects {
    pub(crate) wakers: Vec<Waker>,
    pub(crate) garbage: Vec<Box<dyn CancelledOp>>,
}

thread_local! {
    /// This thread's spare [`Effects`]: empty, with the capacity its
    /// buffers grew to, so a scheduler pass does not allocate them anew.
    static SPARE: Cell<Effects> = const {
        Cell::new(Effects {
            wakers: Vec::new(),
            garbage: Vec::new(),
        })
    };
}

impl Effects {
    /// An empty `Effects`, on this thread's spare buffers (see
    /// [`run_and_recycle`](Self::run_and_recycle)). A nested user (a waker
    /// that runs a context) just gets fresh ones.
    pub(crate) fn reuse() -> Effects {
        // `try_with`: a pass may run while this thread's locals are being
        // destroyed (a context dropped by another thread-local's destructor).
        SPARE.try_with(Cell::take).unwrap_or_default()
    }

    /// [`run`](Self::run), then keeps the emptied buffers for the next
    /// [`reuse`](Self::reuse) on this thread.
    pub(crate) fn run_and_recycle(mut self) {
        self.run();
        // If the spare is already destroyed, `self` just drops.
        let _ = SPARE.try_with(|spare| spare.set(self));
    }

    pub(crate) fn append(&mut self, other: &mut Effects) {
        self.wakers.append(&mut other.wakers);
        self.garbage.append(&mut other.garbage);
    }

    /// Wakes and drops; call with no lock held.
    pub(crate) fn run(&mut self) {
        for w in self.wakers.drain(..) {
            w.wake();
        }
        self.garbage.clear();
    }
}

/// One slot: the op's lifecycle, and (multi-threaded contexts) a copy of
/// its SQE to resubmit if the kernel cancels the op on its own.
///
/// Linux cancels the io_uring requests a thread submitted when that thread
/// exits. Any thread may submit on a multi-threaded context, and runner
/// threads come and go, so an op that nobody cancelled can come back
/// `-ECANCELED`; it is then submitted again (same user_data) instead of
/// failing. The copy is dropped as soon as ringio itself asks for the op to
/// be cancelled, so a requested cancellation is always reported.
struct Slot {
    life: Lifecycle,
    resubmit: Option<squeue::Entry>,
    /// The fd the op works on, where it has one and may be resubmitted (so a
    /// cancel-by-fd can stop its resubmission); -1 otherwise.
    fd: RawFd,
}

#[derive(Default)]
pub(crate) struct Slots {
    slab: Slab<Slot>,
}

/// What dispatching one CQE asks of the driver.
#[derive(Debug, Default)]
pub(crate) struct Dispatched {
    /// It was the op's last CQE: it no longer counts as in flight.
    pub(crate) last: bool,
    /// The kernel cancelled the op on its own: submit this again.
    pub(crate) resubmit: Option<squeue::Entry>,
}

impl Slots {
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }

    /// Reserves a slot for an op about to be submitted. `resubmit` is the
    /// op's SQE (with its user_data) where the kernel may cancel it on its
    /// own (see [`Slot`]).
    pub(crate) fn insert(&mut self, waker: &Waker, multishot: bool) -> usize {
        let life = if multishot {
            Lifecycle::Streaming {
                ready: VecDeque::new(),
                waker: Some(waker.clone()),
                more: true,
            }
        } else {
            Lifecycle::Waiting(waker.clone())
        };
        self.slab.insert(Slot {
            life,
            resubmit: None,
            fd: -1,
        })
    }

    /// Keeps a copy of the op's SQE for resubmission (multi-threaded), and
    /// the fd it works on.
    pub(crate) fn keep_for_resubmit(&mut self, key: usize, sqe: squeue::Entry, fd: Option<RawFd>) {
        let slot = self.get_slot(key);
        slot.resubmit = Some(sqe);
        slot.fd = fd.unwrap_or(-1);
    }

    /// ringio asks for every op on `fd` to be cancelled: report those
    /// cancellations, never resubmit.
    pub(crate) fn cancel_requested_fd(&mut self, fd: RawFd) {
        for (_, slot) in self.slab.iter_mut() {
            if slot.fd == fd {
                slot.resubmit = None;
            }
        }
    }

    /// ringio itself asks for this op to be cancelled: report the
    /// cancellation, never resubmit.
    pub(crate) fn cancel_requested(&mut self, key: usize) {
        self.get_slot(key).resubmit = None;
    }

    /// Whether the op in `key` may still get CQEs and is owned by a future.
    pub(crate) fn is_live(&self, key: usize) -> bool {
        matches!(
            self.slab.get(key).map(|s| &s.life),
            Some(Lifecycle::Waiting(_) | Lifecycle::Streaming { more: true, .. })
        )
    }

    /// Frees a slot whose SQE never reached the ring.
    pub(crate) fn remove_unsubmitted(&mut self, key: usize) {
        self.remove(key);
    }

    fn get_slot(&mut self, key: usize) -> &mut Slot {
        match self.slab.get_mut(key) {
            Some(slot) => slot,
            None => panic!("ringio: no op slot {key} (freed twice, or a stray CQE)"),
        }
    }

    fn get(&mut self, key: usize) -> &mut Lifecycle {
        &mut self.get_slot(key).life
    }

    fn remove(&mut self, key: usize) -> Lifecycle {
        self.slab.remove(key).life
    }

    /// Dispatches one CQE to its slot.
    pub(crate) fn dispatch(
        &mut self,
        key: usize,
        res: i32,
        flags: u32,
        fx: &mut Effects,
    ) -> Dispatched {
        let c = Completion::from_cqe(res, flags);
        let last = !c.more();
        let slot = self.get_slot(key);
        if last && res == -libc::ECANCELED && slot.resubmit.is_some() {
            let live = matches!(
                slot.life,
                Lifecycle::Waiting(_) | Lifecycle::Streaming { .. }
            );
            if live {
                // Cancelled by the kernel (the submitting thread exited), not
                // by us: the op is still wanted and still owns its memory.
                return Dispatched {
                    last: false,
                    resubmit: slot.resubmit.clone(),
                };
            }
        }
        let state = &mut slot.life;
        match state {
            Lifecycle::Waiting(_) => {
                let prev = std::mem::replace(state, Lifecycle::Completed(c));
                if let Lifecycle::Waiting(w) = prev {
                    fx.wakers.push(w);
                }
                if !last {
                    panic!("ringio: single-shot op slot {key} got a CQE with F_MORE");
                }
            }
            Lifecycle::Streaming { ready, waker, more } => {
                ready.push_back(c);
                *more = !last;
                if let Some(w) = waker.take() {
                    fx.wakers.push(w);
                }
            }
            Lifecycle::Cancelled(data) => {
                data.on_cqe(&c);
                if last {
                    if let Lifecycle::Cancelled(data) = self.remove(key) {
                        fx.garbage.push(data);
                    }
                }
            }
            Lifecycle::Abandoned => {
                // Shutdown stopped waiting, yet the CQE came: the owner still
                // leaks its memory (it cannot know), the slot itself is freed
                // once the owner drops or polls it.
            }
            other => panic!("ringio: unexpected lifecycle for op slot {key} on CQE: {other:?}"),
        }
        Dispatched {
            last,
            resubmit: None,
        }
    }

    /// Polls a single-shot op: takes its completion or records the waker.
    pub(crate) fn poll(&mut self, key: usize, waker: &Waker) -> Poll<Option<Completion>> {
        let state = self.get(key);
        match state {
            Lifecycle::Completed(_) => match self.remove(key) {
                Lifecycle::Completed(c) => Poll::Ready(Some(c)),
                _ => unreachable!("just matched Completed"),
            },
            Lifecycle::Waiting(w) if w.will_wake(waker) => Poll::Pending,
            Lifecycle::Waiting(_) => {
                *state = Lifecycle::Waiting(waker.clone());
                Poll::Pending
            }
            // The memory is the kernel's for good: the caller leaks it.
            Lifecycle::Abandoned => {
                self.remove(key);
                Poll::Ready(None)
            }
            other => panic!("ringio: unexpected lifecycle for op slot {key} on poll: {other:?}"),
        }
    }

    /// Polls a multishot op for its next completion. The slot is freed with
    /// the terminal CQE (the one without `F_MORE`).
    pub(crate) fn poll_stream(&mut self, key: usize, waker: &Waker) -> Poll<StreamEvent> {
        let state = self.get(key);
        match state {
            Lifecycle::Streaming {
                ready,
                waker: w,
                more,
            } => {
                if let Some(c) = ready.pop_front() {
                    if ready.is_empty() && !*more {
                        self.remove(key);
                    }
                    return Poll::Ready(StreamEvent::Item(c));
                }
                if !*more {
                    self.remove(key);
                    return Poll::Ready(StreamEvent::End);
                }
                match w {
                    Some(w) if w.will_wake(waker) => {}
                    _ => *w = Some(waker.clone()),
                }
                Poll::Pending
            }
            Lifecycle::Abandoned => {
                self.remove(key);
                Poll::Ready(StreamEvent::Abandoned)
            }
            other => {
                panic!("ringio: unexpected lifecycle for op slot {key} on stream poll: {other:?}")
            }
        }
    }

    /// The future (or stream) owning `key` was dropped, handing over `data`.
    pub(crate) fn drop_op(
        &mut self,
        key: usize,
        mut data: Box<dyn CancelledOp>,
        fx: &mut Effects,
    ) -> AfterDrop {
        let state = self.get(key);
        match state {
            Lifecycle::Waiting(_) => {
                *state = Lifecycle::Cancelled(data);
                self.cancel_requested(key);
                AfterDrop::SubmitCancel
            }
            Lifecycle::Completed(c) => {
                data.on_cqe(c);
                self.remove(key);
                fx.garbage.push(data);
                AfterDrop::Nothing
            }
            Lifecycle::Streaming { ready, more, .. } => {
                for c in ready.drain(..) {
                    data.on_cqe(&c);
                }
                if *more {
                    *state = Lifecycle::Cancelled(data);
                    self.cancel_requested(key);
                    AfterDrop::SubmitCancel
                } else {
                    self.remove(key);
                    fx.garbage.push(data);
                    AfterDrop::Nothing
                }
            }
            Lifecycle::Abandoned => {
                self.remove(key);
                crate::driver::graveyard::bury(data);
                AfterDrop::Nothing
            }
            other => panic!("ringio: unexpected lifecycle for op slot {key} on drop: {other:?}"),
        }
    }

    /// Keys of ops still owned by a live future (shutdown cancels them).
    pub(crate) fn live_keys(&self) -> Vec<usize> {
        self.slab
            .iter()
            .filter(|(_, slot)| {
                matches!(
                    slot.life,
                    Lifecycle::Waiting(_) | Lifecycle::Streaming { more: true, .. }
                )
            })
            .map(|(k, _)| k)
            .collect()
    }

    /// Number of slots the kernel may still post to.
    #[cfg(test)]
    fn in_kernel(&self) -> usize {
        self.slab
            .iter()
            .filter(|(_, slot)| in_kernel(&slot.life))
            .count()
    }

    /// Shutdown gave up: every op the kernel may still write to is abandoned;
    /// cancelled data is leaked (never freed), live futures find `Abandoned`.
    /// Wakers are returned so their tasks (if any) observe it.
    pub(crate) fn abandon_in_kernel(&mut self, fx: &mut Effects) {
        for (_, slot) in self.slab.iter_mut() {
            let l = &mut slot.life;
            if !in_kernel(l) {
                continue;
            }
            match std::mem::replace(l, Lifecycle::Abandoned) {
                Lifecycle::Cancelled(data) => crate::driver::graveyard::bury(data),
                Lifecycle::Waiting(w) => fx.wakers.push(w),
                Lifecycle::Streaming { waker: Some(w), .. } => fx.wakers.push(w),
                _ => {}
            }
        }
        // Slots that were `Cancelled` have no owner left and stay
        // `Abandoned` until the slab itself is dropped with the context.
    }
}

/// Whether the kernel may still post a CQE for a slot in this state.
fn in_kernel(l: &Lifecycle) -> bool {
    matches!(
        l,
        Lifecycle::Waiting(_) | Lifecycle::Cancelled(_) | Lifecycle::Streaming { more: true, .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::count_waker as waker;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Probe {
        cqes: Arc<AtomicUsize>,
        dropped: Arc<AtomicUsize>,
    }
    struct Data(Probe);
    impl CancelledOp for Data {
        fn on_cqe(&mut self, _: &Completion) {
            self.0.cqes.fetch_add(1, Ordering::SeqCst);
        }
    }
    impl Drop for Data {
        fn drop(&mut self) {
            self.0.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }

    // IORING_CQE_F_MORE (io_uring.h).
    const MORE: u32 = 1 << 1;

    #[test]
    fn completed_then_polled() {
        let (count, w) = waker();
        let mut s = Slots::default();
        let k = s.insert(&w, false);
        assert!(s.poll(k, &w).is_pending());
        let mut fx = Effects::default();
        assert!(s.dispatch(k, 5, 0, &mut fx).last);
        fx.run();
        assert_eq!(count.count(), 1);
        match s.poll(k, &w) {
            Poll::Ready(Some(c)) => assert_eq!(c.result.unwrap(), 5),
            other => panic!("{other:?}"),
        }
        assert!(s.is_empty());
    }

    #[test]
    fn dropped_before_cqe_keeps_data_until_cqe() {
        let (_, w) = waker();
        let probe = Probe::default();
        let mut s = Slots::default();
        let k = s.insert(&w, false);
        let mut fx = Effects::default();
        assert_eq!(
            s.drop_op(k, Box::new(Data(probe.clone())), &mut fx),
            AfterDrop::SubmitCancel
        );
        assert_eq!(
            probe.dropped.load(Ordering::SeqCst),
            0,
            "kernel still owns the memory"
        );
        assert!(s.dispatch(k, -libc::ECANCELED, 0, &mut fx).last);
        assert_eq!(probe.cqes.load(Ordering::SeqCst), 1);
        fx.run();
        assert_eq!(probe.dropped.load(Ordering::SeqCst), 1);
        assert!(s.is_empty());
    }

    #[test]
    fn completed_then_dropped_before_repoll_releases_result() {
        let (_, w) = waker();
        let probe = Probe::default();
        let mut s = Slots::default();
        let k = s.insert(&w, false);
        let mut fx = Effects::default();
        s.dispatch(k, 7, 0, &mut fx);
        assert_eq!(
            s.drop_op(k, Box::new(Data(probe.clone())), &mut fx),
            AfterDrop::Nothing
        );
        assert_eq!(
            probe.cqes.load(Ordering::SeqCst),
            1,
            "on_cqe sees the unclaimed result"
        );
        fx.run();
        assert_eq!(probe.dropped.load(Ordering::SeqCst), 1);
        assert!(s.is_empty());
    }

    #[test]
    fn multishot_lives_across_more() {
        let (count, w) = waker();
        let mut s = Slots::default();
        let k = s.insert(&w, true);
        let mut fx = Effects::default();
        assert!(!s.dispatch(k, 1, MORE, &mut fx).last);
        assert!(!s.dispatch(k, 2, MORE, &mut fx).last);
        fx.run();
        assert_eq!(count.count(), 1, "one wake for a batch");
        let next = |s: &mut Slots| match s.poll_stream(k, &w) {
            Poll::Ready(StreamEvent::Item(c)) => Some(c.result.unwrap()),
            Poll::Ready(_) => None,
            Poll::Pending => Some(u32::MAX),
        };
        assert_eq!(next(&mut s), Some(1));
        assert_eq!(next(&mut s), Some(2));
        assert_eq!(next(&mut s), Some(u32::MAX), "pending while F_MORE");
        assert!(s.dispatch(k, 3, 0, &mut fx).last);
        assert_eq!(next(&mut s), Some(3));
        assert!(s.is_empty(), "freed with the last completion taken");
    }

    #[test]
    fn multishot_dropped_with_queued_results_releases_each() {
        let (_, w) = waker();
        let probe = Probe::default();
        let mut s = Slots::default();
        let k = s.insert(&w, true);
        let mut fx = Effects::default();
        s.dispatch(k, 10, MORE, &mut fx);
        s.dispatch(k, 11, MORE, &mut fx);
        assert_eq!(
            s.drop_op(k, Box::new(Data(probe.clone())), &mut fx),
            AfterDrop::SubmitCancel
        );
        assert_eq!(probe.cqes.load(Ordering::SeqCst), 2);
        assert!(
            !s.dispatch(k, 12, MORE, &mut fx).last,
            "late CQE with F_MORE keeps the slot"
        );
        assert!(s.dispatch(k, -libc::ECANCELED, 0, &mut fx).last);
        assert_eq!(probe.cqes.load(Ordering::SeqCst), 4);
        fx.run();
        assert_eq!(probe.dropped.load(Ordering::SeqCst), 1);
        assert!(s.is_empty());
    }

    #[test]
    fn abandoned_ops_leak_instead_of_freeing() {
        let (_, w) = waker();
        let probe = Probe::default();
        let mut s = Slots::default();
        let live = s.insert(&w, false);
        let cancelled = s.insert(&w, false);
        let mut fx = Effects::default();
        s.drop_op(cancelled, Box::new(Data(probe.clone())), &mut fx);
        assert_eq!(s.in_kernel(), 2);
        let buried = crate::driver::graveyard::buried();
        s.abandon_in_kernel(&mut fx);
        fx.run();
        assert_eq!(
            probe.dropped.load(Ordering::SeqCst),
            0,
            "kernel may still write: leaked"
        );
        assert!(
            crate::driver::graveyard::buried() > buried,
            "kept reachable in the graveyard"
        );
        assert!(matches!(s.poll(live, &w), Poll::Ready(None)));
    }

    #[test]
    fn kernel_cancellation_is_resubmitted_requested_one_is_reported() {
        let (count, w) = waker();
        let mut s = Slots::default();
        let k = s.insert(&w, false);
        let sqe = io_uring::opcode::Nop::new().build().user_data(k as u64);
        s.keep_for_resubmit(k, sqe, None);
        let mut fx = Effects::default();
        let d = s.dispatch(k, -libc::ECANCELED, 0, &mut fx);
        assert!(!d.last, "still in flight");
        assert_eq!(d.resubmit.map(|e| e.get_user_data()), Some(k as u64));
        assert!(s.poll(k, &w).is_pending(), "the task keeps waiting");
        // Other errors are results, not resubmissions.
        let d = s.dispatch(k, -libc::EIO, 0, &mut fx);
        assert!(d.last && d.resubmit.is_none());
        fx.run();
        assert_eq!(count.count(), 1);
        match s.poll(k, &w) {
            Poll::Ready(Some(c)) => {
                assert_eq!(c.result.unwrap_err().raw_os_error(), Some(libc::EIO))
            }
            other => panic!("{other:?}"),
        }
        // A cancellation ringio asked for is reported.
        let k = s.insert(&w, false);
        s.keep_for_resubmit(k, io_uring::opcode::Nop::new().build(), None);
        s.cancel_requested(k);
        let d = s.dispatch(k, -libc::ECANCELED, 0, &mut fx);
        assert!(d.last && d.resubmit.is_none());
    }

    #[test]
    #[should_panic(expected = "no op slot")]
    fn stray_cqe_is_a_loud_bug() {
        let mut s = Slots::default();
        s.dispatch(3, 0, 0, &mut Effects::default());
    }
}
