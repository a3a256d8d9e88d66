//! The shared ready queue of a multi-threaded context, with the
//! leader/follower state that decides who waits in the kernel.
//!
//! # Protocol
//!
//! One mutex guards the queue *and* the leader/follower state, so every
//! decision below is made atomically with respect to every push:
//!
//! * A runner that finds the queue empty becomes the **leader** if there is
//!   none ([`RunQueue::next`] returns [`Next::Lead`]); otherwise it is a
//!   **follower** and sleeps on the condition variable until work, a stop, a
//!   deadline, or the end of the current leadership.
//! * The leader flushes submissions, reaps completions and expires timers; if
//!   that produced nothing it calls [`RunQueue::park_leader`], which — still
//!   under the lock — refuses if work or a stop arrived meanwhile, and
//!   otherwise records `leader_parked = true`. Only then does the leader enter
//!   the kernel (after polling the ring for a while, with
//!   `Builder::spin_before_park`: parked either way, and woken the same way,
//!   by a CQE).
//! * A push (from any thread) wakes at most one thread, and only if nobody
//!   is already on the way to the queue (tokio's "searching" rule):
//!   - if a follower has been signalled and has not yet come back from its
//!     wait (`signalled > 0`), nobody: that follower will take the work and
//!     hand on what it leaves (next rule), so waking a second thread per
//!     push of a burst would only cost a syscall and a context switch;
//!   - else an idle follower through the condition variable, if one sleeps
//!     (it moves from `idle_followers` to `signalled` at once);
//!   - else the parked leader, by returning [`Wake::Leader`] so the caller
//!     wakes the ring *after* releasing the lock. `leader_parked` is cleared
//!     by that push (one park costs at most one wake), and `leader_woken`
//!     records that a wake is on its way to the leader until the leader is
//!     back ([`RunQueue::finish_lead`]);
//!   - else nobody: every runner is awake and will look at the queue.
//! * A runner that takes an item and leaves more behind hands the rest on
//!   by the same rule (Asio's `wake_one_thread_and_unlock`): one more
//!   follower, or the leader out of the kernel, so ready work runs in
//!   parallel. So does a runner that leaves [`RunQueue::next`] without
//!   taking anything while items are queued ([`Next::Idle`] carries the
//!   wake): it may have consumed the signal meant for them (stop,
//!   `block_on` interrupt, deadline).
//! * A runner that takes an item may take a few more into its own stash
//!   (at most half of what is left, the rest is handed on as above), and
//!   gives back what it has not run when it stops running or runs the
//!   context again from inside a handler (a nested `block_on`)
//!   ([`RunQueue::give_back`]): fewer trips through this lock per task. A
//!   handler that blocks its thread (rather than awaiting) holds those few
//!   tasks back until it returns; blocking in a handler is already a
//!   mistake on any runner (`spawn_blocking` exists for it).
//! * [`RunQueue::finish_lead`] hands completed work over, clears leadership and
//!   wakes a follower (which may become the next leader).
//!
//! ## A wake CQE reaped by someone else
//!
//! The leader decides to park under this lock, but enters the kernel later,
//! without any lock; the kernel's wait then ends on a CQE posted *after* the
//! entry. A runner that is not the leader may reap CQEs in that window (the
//! periodic flush of a busy runner, a follower's flush, a runner leaving) and
//! so consume the wake CQE meant for the leader, which would then sleep on
//! with work queued or the context stopped (seen: the 2-thread
//! `io_context.multithreaded` cell hung under `strace`). Therefore a runner
//! that reaped anything outside a leadership calls [`RunQueue::rewake`]:
//! while a leader is parked-and-woken (`leader && leader_woken`) it returns
//! [`Wake::Leader`] and the caller wakes the ring again. Either the leader
//! was already in the kernel when the stolen CQE was posted (it woke, and the
//! extra CQE is reaped later) or it was not (then the new wake ends its wait,
//! or is stolen again and re-sent again: each steal is followed by a re-send
//! while the flag is up, and only the leader lowers it, once back).
//!
//! A parked leader is always woken by a push (ring wake-up → CQE) unless
//! someone else is already on the way, and a follower is always woken by a
//! push, a stop, the end of a leadership or a hand-on (condvar under the
//! same mutex); every thread that consumes a signal meant for queued work
//! either takes that work or hands it on, so no wake-up is lost and no
//! periodic timeout is needed. `loom_run_queue` checks the model, including
//! a runner that steals the leader's wake CQE.
//!
//! Lock order: the driver's ring lock may be held while pushing here (ring →
//! queue); this lock is never held while calling into the driver, the timer
//! service or user code.

use std::collections::VecDeque;
use std::time::Instant;

use crate::loom::sync::atomic::{AtomicBool, Ordering};
use crate::loom::sync::{Condvar, Mutex, MutexGuard};

/// What a pusher must do after releasing the lock.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
#[must_use]
pub(crate) enum Wake {
    /// Someone awake will see the work.
    Nobody,
    /// The leader sleeps in the kernel: write the wake-up eventfd.
    Leader,
}

/// The decision [`RunQueue::next`] took for the calling runner.
#[derive(Debug)]
pub(crate) enum Next<T> {
    /// Run this item (after waking whoever the leftover work was handed to).
    Run(T, Wake),
    /// The calling thread is now the leader: drive the ring, then
    /// [`RunQueue::park_leader`] / [`RunQueue::finish_lead`].
    Lead,
    /// Nothing to run and the caller may not wait (poll, deadline reached,
    /// stopped, or no outstanding work). Items may still be queued (a stop,
    /// an interrupt): the caller wakes whoever they were handed on to.
    Idle(Wake),
    /// The caller would sleep as a follower but said it has submissions
    /// queued: it must flush them (without this lock) and ask again.
    Flush,
    /// Nothing to run, and the caller said it holds finished work it has
    /// not published: it must publish it (without this lock: publishing may
    /// stop the context) and ask again, before it may lead, sleep or leave.
    Publish,
}

/// How long a runner may wait for work.
#[derive(Debug, Clone, Copy)]
pub(crate) enum WaitMode {
    /// Never block.
    Poll,
    /// Block until work arrives.
    Block,
    /// Block until work arrives or the deadline passes.
    Until(Instant),
}

#[derive(Debug)]
struct State<T> {
    items: VecDeque<T>,
    leader: bool,
    leader_parked: bool,
    /// A wake was sent to the parked leader and it is not back yet
    /// ([`RunQueue::finish_lead`]): see "A wake CQE reaped by someone else".
    leader_woken: bool,
    /// The leader's wait deadline went stale (an earlier timer was armed)
    /// before it parked: it must recompute instead of parking.
    leader_stale: bool,
    /// Followers waiting on the condvar that nobody has signalled yet.
    idle_followers: usize,
    /// Followers signalled but not yet back from the wait. Invariant:
    /// `idle_followers + signalled` = followers inside the wait.
    signalled: usize,
}

#[derive(Debug)]
pub(crate) struct RunQueue<T> {
    state: Mutex<State<T>>,
    cond: Condvar,
    /// A copy of `State::leader` readable without the lock: a hint only
    /// (see [`RunQueue::has_leader`]).
    leader_hint: AtomicBool,
}

impl<T> RunQueue<T> {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(State {
                items: VecDeque::new(),
                leader: false,
                leader_parked: false,
                leader_woken: false,
                leader_stale: false,
                idle_followers: 0,
                signalled: 0,
            }),
            cond: Condvar::new(),
            leader_hint: AtomicBool::new(false),
        }
    }

    /// Whether a leadership is under way, as of some recent moment. A
    /// runner uses it to skip its periodic reap (the leader reaps, and a
    /// reap by anyone else may take the leader's wake CQE); nothing may
    /// depend on it for a wake-up.
    pub(crate) fn has_leader(&self) -> bool {
        self.leader_hint.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake_for_new_work(&self, st: &mut State<T>) -> Wake {
        if st.signalled > 0 {
            // A follower is on its way: it takes this work or hands it on.
            Wake::Nobody
        } else if st.idle_followers > 0 {
            st.idle_followers -= 1;
            st.signalled += 1;
            self.cond.notify_one();
            Wake::Nobody
        } else {
            Self::wake_parked_leader(st)
        }
    }

    fn wake_parked_leader(st: &mut State<T>) -> Wake {
        if st.leader_parked {
            st.leader_parked = false;
            st.leader_woken = true;
            Wake::Leader
        } else {
            Wake::Nobody
        }
    }

    /// The hand-on of a runner leaving [`next`](Self::next) with nothing.
    fn idle(&self, st: &mut State<T>) -> Next<T> {
        Next::Idle(if st.items.is_empty() {
            Wake::Nobody
        } else {
            self.wake_for_new_work(st)
        })
    }

    /// Queues one item.
    pub(crate) fn push(&self, item: T) -> Wake {
        let mut st = self.lock();
        st.items.push_back(item);
        self.wake_for_new_work(&mut st)
    }

    /// Gives back items a runner took with [`next`](Self::next) and will not
    /// run (it stops running), waking whoever should run them.
    pub(crate) fn give_back(&self, items: &mut VecDeque<T>) -> Wake {
        if items.is_empty() {
            return Wake::Nobody;
        }
        let mut st = self.lock();
        // They were taken from the front: they go back there, in order.
        while let Some(item) = items.pop_back() {
            st.items.push_front(item);
        }
        self.wake_for_new_work(&mut st)
    }

    /// Takes the next item or decides what the caller does instead.
    /// `stopped` and `has_work` are re-evaluated under the lock on every
    /// wake-up, so a stop or the end of outstanding work is never missed.
    ///
    /// With an item to run, up to `take_more` further items (at most half of
    /// what is left, so other runners keep work to share) move into `stash`
    /// for the caller to run next without coming back to this lock.
    pub(crate) fn next(
        &self,
        mode: WaitMode,
        stopped: impl Fn() -> bool,
        has_work: impl Fn() -> bool,
        (must_flush, unpublished): (bool, bool),
        stash: &mut VecDeque<T>,
        take_more: usize,
    ) -> Next<T> {
        let mut st = self.lock();
        loop {
            if stopped() {
                if unpublished {
                    return Next::Publish;
                }
                return self.idle(&mut st);
            }
            if let Some(item) = st.items.pop_front() {
                let more = take_more.min(st.items.len() / 2);
                stash.extend(st.items.drain(..more));
                // Hand the rest on while we run this one.
                let wake = if st.items.is_empty() {
                    Wake::Nobody
                } else {
                    self.wake_for_new_work(&mut st)
                };
                return Next::Run(item, wake);
            }
            if unpublished {
                return Next::Publish;
            }
            if !has_work() {
                return self.idle(&mut st);
            }
            if !st.leader {
                st.leader = true;
                self.leader_hint.store(true, Ordering::Relaxed);
                return Next::Lead;
            }
            // A leader is driving the ring: follow.
            if must_flush && !matches!(mode, WaitMode::Poll) {
                return Next::Flush;
            }
            match mode {
                WaitMode::Poll => return self.idle(&mut st),
                WaitMode::Block => {
                    st.idle_followers += 1;
                    st = self.cond.wait(st).unwrap_or_else(|e| e.into_inner());
                }
                WaitMode::Until(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return self.idle(&mut st);
                    }
                    st.idle_followers += 1;
                    st = self
                        .cond
                        .wait_timeout(st, deadline - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
            // Back from the wait: consume a signal if one is pending, else
            // our own idle registration (spurious wake-up or timeout).
            if st.signalled > 0 {
                st.signalled -= 1;
            } else {
                st.idle_followers -= 1;
            }
        }
    }

    /// The leader is about to wait in the kernel. Returns `false` (and the
    /// leader must not wait) if work or a stop arrived since it looked.
    pub(crate) fn park_leader(&self, stopped: impl Fn() -> bool) -> bool {
        let mut st = self.lock();
        if !st.items.is_empty() || stopped() || std::mem::take(&mut st.leader_stale) {
            return false;
        }
        st.leader_parked = true;
        st.leader_woken = false;
        true
    }

    /// Ends a leadership, queueing what the leader reaped.
    pub(crate) fn finish_lead(&self, reaped: impl IntoIterator<Item = T>) {
        let mut st = self.lock();
        st.items.extend(reaped);
        st.leader = false;
        self.leader_hint.store(false, Ordering::Relaxed);
        st.leader_parked = false;
        st.leader_woken = false;
        st.leader_stale = false;
        // One follower takes the work (or the leadership); it hands on
        // further work itself in `next`.
        if st.idle_followers > 0 {
            st.idle_followers -= 1;
            st.signalled += 1;
            self.cond.notify_one();
        }
    }

    fn signal_all(&self, st: &mut State<T>) {
        st.signalled += st.idle_followers;
        st.idle_followers = 0;
        self.cond.notify_all();
    }

    /// Wakes every runner after the caller set the stop flag. The caller
    /// writes the eventfd if this returns [`Wake::Leader`].
    pub(crate) fn wake_all(&self) -> Wake {
        let mut st = self.lock();
        self.signal_all(&mut st);
        Self::wake_parked_leader(&mut st)
    }

    /// A runner reaped CQEs outside a leadership: if that may have been the
    /// wake meant for the parked leader, the caller must wake the ring
    /// again (see "A wake CQE reaped by someone else" in the module docs).
    pub(crate) fn rewake(&self) -> Wake {
        let st = self.lock();
        if st.leader && st.leader_woken {
            Wake::Leader
        } else {
            Wake::Nobody
        }
    }

    /// A timer earlier than the leader's wait deadline was armed: wake the
    /// leader if it sleeps in the kernel, or stop it from parking with the
    /// stale deadline if it is about to.
    pub(crate) fn wake_leader(&self) -> Wake {
        let mut st = self.lock();
        if st.leader_parked {
            Self::wake_parked_leader(&mut st)
        } else {
            if st.leader {
                st.leader_stale = true;
            }
            Wake::Nobody
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().items.len()
    }

    /// Removes every queued item (shutdown).
    pub(crate) fn drain(&self) -> Vec<T> {
        self.lock().items.drain(..).collect()
    }
}

#[cfg(all(test, loom))]
mod loom_run_queue {
    //! Model: two runners (leader/follower) and one or two posters. The
    //! ring is modelled as far as the protocol depends on it: a wake posts a
    //! CQE; the leader's kernel wait returns at once if a CQE is unreaped at
    //! entry and otherwise only on a CQE posted after entry (as
    //! `io_uring_enter` with `min_complete = 1` does), reaping everything;
    //! and any runner may reap without waiting (a busy runner's periodic
    //! flush). A lost wake-up shows as a deadlock.
    use super::*;
    use crate::loom::sync::atomic::{AtomicUsize, Ordering};
    use crate::loom::sync::Arc;

    #[derive(Default)]
    struct Cq {
        posted: u64,
        reaped: u64,
    }

    struct Ring {
        cq: Mutex<Cq>,
        cond: Condvar,
    }

    impl Ring {
        fn new() -> Self {
            Ring {
                cq: Mutex::new(Cq::default()),
                cond: Condvar::new(),
            }
        }
        /// Another thread wakes the ring: one CQE.
        fn wake(&self) {
            self.cq.lock().unwrap().posted += 1;
            self.cond.notify_all();
        }
        /// The leader's kernel wait, then its reap.
        fn wait(&self) {
            let mut cq = self.cq.lock().unwrap();
            if cq.posted == cq.reaped {
                let entry = cq.posted;
                while cq.posted == entry {
                    cq = self.cond.wait(cq).unwrap();
                }
            }
            cq.reaped = cq.posted;
        }
        /// A non-blocking reap; `true` if it took any CQE.
        fn reap(&self) -> bool {
            let mut cq = self.cq.lock().unwrap();
            let any = cq.posted > cq.reaped;
            cq.reaped = cq.posted;
            any
        }
    }

    /// A runner of the model: runs what it takes (and what it took ahead
    /// into its stash, up to `take_more`), counts the outstanding work down
    /// and, on the last unit, wakes everyone (as `stop()` does); leads by
    /// waiting in the ring; returns when told `Idle`. With `reap`, it reaps
    /// the ring before every look at the queue (outside any leadership),
    /// and re-sends a leader's wake it may have taken, as the scheduler's
    /// `reaping` does.
    fn model_runner(
        q: Arc<RunQueue<u32>>,
        ring: Arc<Ring>,
        rem: Arc<AtomicUsize>,
        take_more: usize,
        reap: bool,
    ) -> impl FnOnce() {
        move || {
            let mut stash = VecDeque::new();
            let wake = |w: Wake| {
                if w == Wake::Leader {
                    ring.wake();
                }
            };
            let done = |q: &RunQueue<u32>| {
                if rem.fetch_sub(1, Ordering::SeqCst) == 1 {
                    wake(q.wake_all());
                }
            };
            loop {
                if reap && ring.reap() {
                    wake(q.rewake());
                }
                if stash.pop_front().is_some() {
                    done(&q);
                    continue;
                }
                match q.next(
                    WaitMode::Block,
                    || false,
                    || rem.load(Ordering::SeqCst) > 0,
                    (false, false),
                    &mut stash,
                    take_more,
                ) {
                    Next::Run(_, w) => {
                        wake(w);
                        done(&q);
                    }
                    Next::Lead => {
                        if q.park_leader(|| rem.load(Ordering::SeqCst) == 0) {
                            ring.wait();
                        }
                        q.finish_lead(None);
                    }
                    Next::Idle(w) => {
                        wake(w);
                        return;
                    }
                    Next::Flush | Next::Publish => unreachable!("never asked to"),
                }
            }
        }
    }

    /// Two runners and a thread posting `items` (runners taking up to
    /// `take_more` ahead; the second runner reaping outside leaderships if
    /// `reap`): every item runs and everyone returns.
    fn model(items: u32, take_more: usize, reap: bool) {
        model_posters(1, items, take_more, reap);
    }

    /// As [`model`], with `posters` threads posting `items` each.
    fn model_posters(posters: u32, items: u32, take_more: usize, reap: bool) {
        loom::model(move || {
            let q = Arc::new(RunQueue::<u32>::new());
            let ring = Arc::new(Ring::new());
            let remaining = Arc::new(AtomicUsize::new((posters * items) as usize));
            let r1 = loom::thread::spawn(model_runner(
                q.clone(),
                ring.clone(),
                remaining.clone(),
                take_more,
                false,
            ));
            let posters: Vec<_> = (0..posters)
                .map(|_| {
                    let (q, ring) = (q.clone(), ring.clone());
                    loom::thread::spawn(move || {
                        for item in 0..items {
                            if q.push(item) == Wake::Leader {
                                ring.wake();
                            }
                        }
                    })
                })
                .collect();
            model_runner(q.clone(), ring.clone(), remaining.clone(), take_more, reap)();
            r1.join().unwrap();
            for p in posters {
                p.join().unwrap();
            }
            assert_eq!(remaining.load(Ordering::SeqCst), 0);
        });
    }

    #[test]
    fn loom_run_queue_leader_follower() {
        model(1, 0, false);
    }

    /// Three items: the first runner takes one of the two left behind the
    /// first into its stash. Fails with a deadlock if stashed tasks are
    /// lost.
    #[test]
    fn loom_run_queue_with_stash() {
        model(3, 1, false);
    }

    /// Two items, one per push, so a push finds the other runner signalled
    /// (and wakes nobody) or hands on: fails with a deadlock if a pushed
    /// item can be left with every runner asleep.
    #[test]
    fn loom_run_queue_burst_wakes_through_hand_on() {
        model(2, 0, false);
    }

    /// Two threads push one item each, so the second push may find the
    /// first one's wake still on its way (a follower signalled, the leader
    /// woken) or a runner between taking the first item and sleeping:
    /// every item must still reach a runner (deadlock otherwise).
    #[test]
    fn loom_run_queue_two_pushers() {
        model_posters(2, 1, 0, false);
    }

    /// A runner reaps the ring outside any leadership and may take the CQE
    /// of a wake meant for the parked leader (the push's, or the stop's);
    /// without `rewake` the leader sleeps on and this deadlocks.
    #[test]
    fn loom_run_queue_stolen_wake_is_resent() {
        model(1, 0, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `next` for a runner that always has outstanding work, is never
    /// stopped and takes nothing ahead.
    fn next_of(q: &RunQueue<u32>, mode: WaitMode, must_flush: bool) -> Next<u32> {
        q.next(
            mode,
            || false,
            || true,
            (must_flush, false),
            &mut VecDeque::new(),
            0,
        )
    }

    #[test]
    fn first_runner_leads_and_push_wakes_parked_leader() {
        let q = RunQueue::<u32>::new();
        assert!(matches!(next_of(&q, WaitMode::Poll, false), Next::Lead));
        assert!(q.park_leader(|| false));
        assert_eq!(q.push(1), Wake::Leader);
        assert_eq!(q.push(2), Wake::Nobody, "one eventfd write per park");
        q.finish_lead(None);
        assert!(matches!(
            next_of(&q, WaitMode::Poll, false),
            Next::Run(1, _)
        ));
        assert!(matches!(
            next_of(&q, WaitMode::Poll, false),
            Next::Run(2, _)
        ));
    }

    #[test]
    fn park_refused_when_work_or_stop_arrived() {
        let q = RunQueue::<u32>::new();
        assert!(matches!(next_of(&q, WaitMode::Block, false), Next::Lead));
        assert_eq!(q.push(1), Wake::Nobody, "leader not parked yet");
        assert!(!q.park_leader(|| false));
        q.finish_lead(None);
        assert_eq!(q.drain(), vec![1]);
        assert!(matches!(next_of(&q, WaitMode::Block, false), Next::Lead));
        assert!(!q.park_leader(|| true));
    }

    #[test]
    fn a_burst_wakes_one_follower_which_hands_on_to_the_leader() {
        use std::sync::Arc;
        let q = Arc::new(RunQueue::<u32>::new());
        assert!(matches!(next_of(&q, WaitMode::Block, false), Next::Lead));
        let q2 = q.clone();
        let follower = std::thread::spawn(move || match next_of(&q2, WaitMode::Block, false) {
            Next::Run(1, wake) => wake,
            other => panic!("{other:?}"),
        });
        while q.lock().idle_followers == 0 {
            std::thread::yield_now();
        }
        assert!(q.park_leader(|| false));
        assert_eq!(q.push(1), Wake::Nobody, "the idle follower is signalled");
        // Usually the follower is still on its way and this push wakes
        // nobody, the follower then handing item 2 on to the parked leader;
        // if it already came back with item 1, this push wakes the leader
        // itself. Either way the leader is woken exactly once.
        let second = q.push(2);
        let handed_on = follower.join().unwrap();
        assert_eq!(
            [second, handed_on]
                .iter()
                .filter(|w| **w == Wake::Leader)
                .count(),
            1,
            "push: {second:?}, hand-on: {handed_on:?}"
        );
        let st = q.lock();
        assert_eq!((st.idle_followers, st.signalled), (0, 0));
        assert!(st.leader_woken);
    }

    #[test]
    fn a_reaper_resends_the_leaders_wake_until_the_leader_is_back() {
        let q = RunQueue::<u32>::new();
        assert_eq!(q.rewake(), Wake::Nobody, "no leader");
        assert!(matches!(next_of(&q, WaitMode::Block, false), Next::Lead));
        assert!(q.park_leader(|| false));
        assert_eq!(q.rewake(), Wake::Nobody, "parked, nobody woke it yet");
        assert_eq!(q.push(1), Wake::Leader);
        assert_eq!(q.rewake(), Wake::Leader, "its wake may have been reaped");
        assert_eq!(q.rewake(), Wake::Leader, "and again, until it is back");
        q.finish_lead(None);
        assert_eq!(q.rewake(), Wake::Nobody);
        assert!(matches!(
            next_of(&q, WaitMode::Block, false),
            Next::Run(1, _)
        ));
        assert!(matches!(next_of(&q, WaitMode::Block, false), Next::Lead));
        assert!(q.park_leader(|| false));
        assert_eq!(q.wake_all(), Wake::Leader, "a stop's wake counts too");
        assert_eq!(q.rewake(), Wake::Leader);
    }

    #[test]
    fn a_runner_leaving_with_items_queued_hands_them_on() {
        let q = RunQueue::<u32>::new();
        assert!(matches!(next_of(&q, WaitMode::Block, false), Next::Lead));
        assert!(q.park_leader(|| false));
        assert_eq!(q.push(1), Wake::Leader);
        q.finish_lead(None);
        assert!(matches!(
            next_of(&q, WaitMode::Block, false),
            Next::Run(1, _)
        ));
        assert!(matches!(next_of(&q, WaitMode::Block, false), Next::Lead));
        assert!(q.park_leader(|| false));
        // Pushed while the leader sleeps and an interrupted runner passes by.
        let mut st = q.lock();
        st.items.push_back(2);
        drop(st);
        assert!(matches!(
            q.next(
                WaitMode::Block,
                || true,
                || true,
                (false, false),
                &mut VecDeque::new(),
                0
            ),
            Next::Idle(Wake::Leader)
        ));
    }

    #[test]
    fn follower_with_queued_submissions_flushes_before_sleeping() {
        let q = RunQueue::<u32>::new();
        assert!(matches!(next_of(&q, WaitMode::Block, false), Next::Lead));
        assert!(matches!(next_of(&q, WaitMode::Block, true), Next::Flush));
        assert!(matches!(next_of(&q, WaitMode::Poll, true), Next::Idle(_)));
    }

    #[test]
    fn unpublished_work_is_published_before_leading_or_leaving_but_not_to_run() {
        let q = RunQueue::<u32>::new();
        let next = |stopped: bool, has_work: bool| {
            q.next(
                WaitMode::Block,
                || stopped,
                || has_work,
                (false, true),
                &mut VecDeque::new(),
                0,
            )
        };
        assert!(matches!(next(false, true), Next::Publish));
        assert!(matches!(next(false, false), Next::Publish));
        assert!(matches!(next(true, true), Next::Publish));
        let _ = q.push(7);
        assert!(matches!(next(false, true), Next::Run(7, _)));
        assert!(!q.has_leader(), "asked to publish, so it did not lead");
    }

    #[test]
    fn earlier_timer_makes_leadership_stale() {
        let q = RunQueue::<u32>::new();
        assert!(matches!(next_of(&q, WaitMode::Block, false), Next::Lead));
        assert_eq!(q.wake_leader(), Wake::Nobody);
        assert!(!q.park_leader(|| false), "stale deadline: recompute first");
        assert!(q.park_leader(|| false));
        assert_eq!(q.wake_leader(), Wake::Leader);
    }

    #[test]
    fn follower_poll_and_deadline_return_idle() {
        let q = RunQueue::<u32>::new();
        assert!(matches!(next_of(&q, WaitMode::Poll, false), Next::Lead));
        assert!(matches!(next_of(&q, WaitMode::Poll, false), Next::Idle(_)));
        let t = Instant::now() + std::time::Duration::from_millis(5);
        assert!(matches!(
            next_of(&q, WaitMode::Until(t), false),
            Next::Idle(_)
        ));
        assert!(Instant::now() >= t);
        assert!(matches!(
            q.next(
                WaitMode::Block,
                || true,
                || true,
                (false, false),
                &mut VecDeque::new(),
                0
            ),
            Next::Idle(_)
        ));
        assert!(matches!(
            q.next(
                WaitMode::Block,
                || false,
                || false,
                (false, false),
                &mut VecDeque::new(),
                0
            ),
            Next::Idle(_)
        ));
    }

    #[test]
    fn a_runner_takes_at_most_half_of_the_rest_and_gives_back_in_order() {
        let q = RunQueue::<u32>::new();
        for i in 0..10 {
            let _ = q.push(i);
        }
        let mut stash = VecDeque::new();
        match q.next(
            WaitMode::Poll,
            || false,
            || true,
            (false, false),
            &mut stash,
            16,
        ) {
            Next::Run(0, _) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(stash, [1, 2, 3, 4], "half of the 9 left");
        assert_eq!(q.len(), 5);
        let _ = q.give_back(&mut stash);
        assert!(stash.is_empty());
        let mut order = Vec::new();
        while let Next::Run(i, _) = q.next(
            WaitMode::Poll,
            || false,
            || true,
            (false, false),
            &mut stash,
            0,
        ) {
            order.push(i);
        }
        assert_eq!(
            order,
            (1..10).collect::<Vec<_>>(),
            "given back in front, in order"
        );
    }
}
