//! [`TaskQueue`]: a FIFO of [`Runnable`]s linked through the task cells
//! themselves, so a push or pop is a few pointer writes with no buffer to
//! grow or wrap.
//!
//! Invariant: a task has at most one `Runnable` at a time (see
//! [`super::state`]), so it is in at most one queue at a time, and its
//! link field belongs to the queue that holds that `Runnable`.

use std::ptr::NonNull;

use super::raw::{Header, Runnable};

pub(crate) struct TaskQueue {
    head: Option<NonNull<Header>>,
    tail: Option<NonNull<Header>>,
}

// SAFETY: the queue owns the `Runnable`s it links (each `Send`), and only
// `&mut self` touches the links.
unsafe impl Send for TaskQueue {}

impl TaskQueue {
    pub(crate) const fn new() -> Self {
        TaskQueue {
            head: None,
            tail: None,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_none()
    }

    #[inline]
    pub(crate) fn push_back(&mut self, r: Runnable) {
        let p = r.into_raw();
        // SAFETY: we now own the task's only Runnable, hence its link, and
        // the tail's link (the tail's Runnable is ours too).
        unsafe {
            Header::set_queue_next(p, None);
            match self.tail {
                Some(t) => Header::set_queue_next(t, Some(p)),
                None => self.head = Some(p),
            }
        }
        self.tail = Some(p);
    }

    #[inline]
    pub(crate) fn pop_front(&mut self) -> Option<Runnable> {
        let p = self.head?;
        // SAFETY: `p` is linked here, so we own its Runnable and its link.
        self.head = unsafe { Header::queue_next(p) };
        if self.head.is_none() {
            self.tail = None;
        }
        // SAFETY: the Runnable given up by `push_back`, taken back once.
        Some(unsafe { Runnable::from_raw(p) })
    }
}

impl Drop for TaskQueue {
    fn drop(&mut self) {
        while let Some(r) = self.pop_front() {
            drop(r);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::IoContext;

    #[test]
    fn fifo_order_and_drop_cancels_what_is_left() {
        let ctx = IoContext::builder().single_threaded(true).build().unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        let mut q = TaskQueue::new();
        assert!(q.is_empty());
        let mut handles = Vec::new();
        for i in 0..5 {
            let ran = ran.clone();
            let (r, h) = super::super::spawn_unscheduled(
                ctx.shared_arc().clone(),
                async move {
                    assert_eq!(ran.fetch_add(1, Ordering::SeqCst), i);
                },
                None,
                false,
            );
            q.push_back(r.expect("an open context accepts tasks"));
            handles.push(super::super::JoinHandle::<()>::new(h));
        }
        for _ in 0..3 {
            q.pop_front().unwrap().run();
        }
        assert_eq!(ran.load(Ordering::SeqCst), 3);
        drop(q); // the last two are cancelled, never run
        assert_eq!(ran.load(Ordering::SeqCst), 3);
        let results: Vec<_> = handles
            .into_iter()
            .map(|h| ctx.block_on(h).map_err(|e| e.is_cancelled()))
            .collect();
        assert_eq!(results, [Ok(()), Ok(()), Ok(()), Err(true), Err(true)]);
    }
}
