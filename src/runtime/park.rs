//! The sleeping-runner handshake of a single-threaded context.
//!
//! # Protocol
//!
//! A single-threaded context has one *owner* thread (the one inside
//! `run`/`poll`/`block_on`). Other threads hand it work through an [`Inject`]
//! queue and, when the owner may be asleep in `io_uring_enter`, write the
//! wake-up eventfd, whose multishot `POLL_ADD` then produces a CQE that ends
//! the owner's wait. The eventfd write is a syscall, so it is skipped whenever
//! the owner is known to be awake. The [`Parker`] flag decides that:
//!
//! Owner, before each kernel wait:
//! 1. `parker.prepare_park()` — publish "I may sleep" with a swap (an
//!    acquire-release read-modify-write).
//! 2. Re-check every source of work that does not produce a CQE by itself:
//!    `inject.is_empty()`, the stop flag, the `block_on` wake flag. If there
//!    is work, `finish_park()` and run it instead of waiting.
//! 3. Wait in the kernel (the wait also ends on any CQE or on the nearest
//!    timer deadline).
//! 4. `parker.finish_park()` (also a swap).
//!
//! Any other thread, to hand over work:
//! 1. Publish the work: `inject.push(item)` (or set the stop / wake flag).
//! 2. `if parker.unpark() { write(eventfd) }` — `unpark` swaps the flag to
//!    "awake", so of all the threads that post during one park exactly one
//!    writes.
//!
//! Why no wake is lost: every write to the park flag is a read-modify-write,
//! so the flag's modification order is a chain of RMWs in which each one
//! reads the one before and synchronises with every release before it. Take
//! the owner's `prepare_park` swap P and a poster's `unpark` swap U:
//! * U after P in that order: U reads "parked" (nothing but the owner
//!   clears it, and the owner is between P and its wait), so the poster
//!   writes the eventfd — and because the multishot poll stays armed (and is
//!   re-armed as soon as a CQE arrives without `IORING_CQE_F_MORE`, with the
//!   eventfd still non-zero) that write produces a CQE whether the owner is
//!   already in the kernel or about to enter it;
//! * U before P: P acquires U's release, so the work published before U
//!   happens-before the owner's re-check in step 2, which sees it.
//!
//! No periodic timeout is needed for correctness; `loom_park` in this file
//! checks every interleaving of the model. (A fence-based Dekker form with
//! relaxed accesses would also be correct by the C++ model, but it is not
//! what loom verifies reliably, and the RMW costs nothing next to the
//! syscall that follows a park.)

use crate::loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use crate::loom::sync::Mutex;

/// The owner's "I may be asleep in the kernel" flag. See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Parker {
    parked: AtomicBool,
}

impl Parker {
    pub(crate) fn new() -> Self {
        Self {
            parked: AtomicBool::new(false),
        }
    }

    /// Owner, step 1: announce a possible sleep. Re-check the inject queue
    /// after this returns.
    pub(crate) fn prepare_park(&self) {
        self.parked.swap(true, Ordering::AcqRel);
    }

    /// Owner, step 4 (or step 2 when work was found): awake again.
    pub(crate) fn finish_park(&self) {
        self.parked.swap(false, Ordering::AcqRel);
    }

    /// Poster, step 2: returns `true` if the caller must wake the owner.
    /// At most one caller per park gets `true`.
    pub(crate) fn unpark(&self) -> bool {
        self.parked.swap(false, Ordering::AcqRel)
    }
}

/// A multi-producer queue drained by the owner of a single-threaded context.
#[derive(Debug)]
pub(crate) struct Inject<T> {
    items: Mutex<Vec<T>>,
    len: AtomicUsize,
}

impl<T> Inject<T> {
    pub(crate) fn new() -> Self {
        Self {
            items: Mutex::new(Vec::new()),
            len: AtomicUsize::new(0),
        }
    }

    /// Publishes `item`. The caller then calls [`Parker::unpark`].
    pub(crate) fn push(&self, item: T) {
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        items.push(item);
        self.len.store(items.len(), Ordering::Release);
    }

    /// The owner's cheap check (step 2 of the protocol).
    pub(crate) fn is_empty(&self) -> bool {
        self.len.load(Ordering::Acquire) == 0
    }

    /// Takes everything queued so far, in push order.
    pub(crate) fn take(&self) -> Vec<T> {
        if self.is_empty() {
            return Vec::new();
        }
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        self.len.store(0, Ordering::Relaxed);
        std::mem::take(&mut *items)
    }
}

#[cfg(all(test, loom))]
mod loom_park {
    //! Model: one owner that parks in a "kernel" (an eventfd modelled as a
    //! counter behind a mutex and condvar) and two posters. Loom explores every
    //! interleaving; a lost wake-up shows as a deadlock (the owner blocked in
    //! the kernel with work queued and nobody left to wake it).
    use super::*;
    use crate::loom::sync::{Arc, Condvar};

    struct EventFd {
        count: Mutex<u64>,
        cond: Condvar,
    }

    impl EventFd {
        fn write(&self) {
            *self.count.lock().unwrap() += 1;
            self.cond.notify_one();
        }
        fn wait(&self) {
            let mut c = self.count.lock().unwrap();
            while *c == 0 {
                c = self.cond.wait(c).unwrap();
            }
            *c = 0;
        }
    }

    #[test]
    fn loom_park_no_lost_wakeup() {
        loom::model(|| {
            let parker = Arc::new(Parker::new());
            let inject = Arc::new(Inject::<u32>::new());
            let efd = Arc::new(EventFd {
                count: Mutex::new(0),
                cond: Condvar::new(),
            });
            let posters: Vec<_> = (0..2)
                .map(|i| {
                    let (parker, inject, efd) = (parker.clone(), inject.clone(), efd.clone());
                    loom::thread::spawn(move || {
                        inject.push(i);
                        if parker.unpark() {
                            efd.write();
                        }
                    })
                })
                .collect();
            let mut seen = 0;
            while seen < 2 {
                seen += inject.take().len();
                if seen == 2 {
                    break;
                }
                parker.prepare_park();
                if !inject.is_empty() {
                    parker.finish_park();
                    continue;
                }
                efd.wait();
                parker.finish_park();
            }
            for p in posters {
                p.join().unwrap();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpark_only_once_per_park() {
        let p = Parker::new();
        assert!(!p.unpark(), "awake owner needs no wake");
        p.prepare_park();
        assert!(p.unpark());
        assert!(
            !p.unpark(),
            "second poster of the same park must not write again"
        );
        p.finish_park();
        assert!(!p.unpark());
    }

    #[test]
    fn inject_keeps_order_and_len() {
        let q = Inject::new();
        assert!(q.is_empty());
        q.push(1);
        q.push(2);
        assert!(!q.is_empty());
        assert_eq!(q.take(), vec![1, 2]);
        assert!(q.is_empty());
        assert!(q.take().is_empty());
    }
}
