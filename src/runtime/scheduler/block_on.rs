//! `block_on`: drive the context on the calling thread until one future,
//! which need not be `Send`, completes.
//!
//! The future is not a task: it is polled only on this thread, when its
//! waker ([`MainWaker`]) has set the `woken` flag. Between polls the thread
//! runs the context like `run` does, with "the flag is set" as the extra
//! reason to stop waiting; a wake from another thread kicks the runner out
//! of its sleep through the same protocol as any other remote work.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use super::Shared;
use crate::context::IoContext;
use crate::runtime::frame;
use crate::runtime::run_queue::WaitMode;

impl Shared {
    /// Drives the context on this thread until `fut` completes.
    pub(crate) fn block_on<F: Future>(self: &Arc<Self>, ctx: &IoContext, fut: F) -> F::Output {
        let main = Arc::new(MainWaker {
            woken: AtomicBool::new(true),
            shared: self.clone(),
            thread: frame::thread_token(),
        });
        let waker = Waker::from(main.clone());
        let mut cx = Context::from_waker(&waker);
        let mut fut = pin!(fut);
        self.with_runner(ctx, |frame| {
            // Counts as work while it runs, so the context does not stop
            // itself meanwhile. Taken only once this thread may run the
            // context: a single-threaded context's current runner must be
            // able to run out of work and hand over.
            self.work_started();
            struct Release<'a>(&'a Shared);
            impl Drop for Release<'_> {
                fn drop(&mut self) {
                    self.0.work_finished();
                }
            }
            let _release = Release(self);
            loop {
                // A plain load first: the common case (the future was not
                // woken by the handler just run) costs no atomic write.
                if main.woken.load(Ordering::Relaxed) && main.woken.swap(false, Ordering::SeqCst) {
                    frame.inline_budget.set(frame::INLINE_BUDGET);
                    // Like a task's poll, this one may queue SQEs: count it,
                    // so that this thread flushes them before it sleeps as
                    // a follower while another thread leads in the kernel.
                    frame.since_flush.set(frame.since_flush.get() + 1);
                    if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                        return v;
                    }
                }
                // Handlers run in batches of up to EVENT_INTERVAL before the
                // future is polled again: a future that awaits many tasks
                // (join handles) finds them done instead of being woken and
                // re-polled after each.
                self.do_some(
                    frame,
                    WaitMode::Block,
                    &|| main.woken.load(Ordering::SeqCst),
                    super::EVENT_INTERVAL as usize,
                    false,
                );
            }
        })
    }
}

/// The waker of a `block_on` future: sets the flag the loop checks and
/// wakes the runner if it may sleep.
struct MainWaker {
    woken: AtomicBool,
    shared: Arc<Shared>,
    /// The `block_on` thread: a wake from it needs no kick (it is awake).
    thread: usize,
}

impl Wake for MainWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.woken.swap(true, Ordering::SeqCst) && frame::thread_token() != self.thread {
            self.shared.kick();
        }
    }
}
