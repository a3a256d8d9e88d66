//! [`Op`]: the future of one io_uring operation.
//!
//! An `Op<T>` starts `Idle` holding its data `T` (buffers, fds, sockaddr
//! storage). Its first poll binds it to the context running on this thread,
//! reserves a slot, pushes the SQE (submitted with the rest of the pass's
//! batch) and becomes `InFlight`. Later polls look at the slot; on completion
//! the data and the CQE result become the output.
//!
//! Dropping an in-flight `Op` moves its data into the slot and submits
//! `ASYNC_CANCEL`; the data is dropped only when the op's last CQE arrives
//! (see [`crate::driver::slots`]). Any memory an SQE points at must therefore
//! be heap memory owned by `T` — `T` itself moves (into the slot).

use std::future::Future;
use std::io;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use io_uring::squeue;

use crate::driver::slots::{CancelledOp, Completion, Effects};
use crate::driver::Core;
use crate::driver::{graveyard, no_context_completion};
use crate::runtime::scheduler::Shared;

/// One kind of operation.
pub(crate) trait OpCode: CancelledOp + Sized + Send + 'static {
    type Output;

    /// Builds the SQE (user_data is set by the driver). Pointers in it must
    /// point at heap memory owned by `self`.
    fn sqe(&mut self) -> squeue::Entry;

    /// The fd the op works on, if any: `TcpStream::cancel` and friends
    /// cancel by fd, and must be able to tell which ops they stopped.
    fn fd(&self) -> Option<RawFd> {
        None
    }

    /// Turns the CQE (or a submission error) into the output.
    fn complete(self, completion: Completion) -> Self::Output;
}

enum State<T> {
    Idle(T),
    InFlight {
        shared: Arc<Shared>,
        key: usize,
        data: T,
    },
    /// Completed, or abandoned by shutdown (never completes).
    Done,
}

/// The future of one operation. See the module docs.
pub(crate) struct Op<T: OpCode> {
    state: State<T>,
}

// Nothing in `Op` is address-sensitive: the kernel sees heap memory owned by
// `T`, never `Op` itself.
impl<T: OpCode> Unpin for Op<T> {}

impl<T: OpCode> Op<T> {
    pub(crate) fn new(data: T) -> Self {
        Op {
            state: State::Idle(data),
        }
    }
}

impl<T: OpCode> Future for Op<T> {
    type Output = T::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T::Output> {
        let this = self.get_mut();
        match std::mem::replace(&mut this.state, State::Done) {
            State::Idle(mut data) => {
                let Some(shared) = Shared::current() else {
                    return Poll::Ready(data.complete(no_context_completion()));
                };
                match shared.submit_here(data.sqe(), cx.waker(), false, data.fd()) {
                    Ok(key) => {
                        this.state = State::InFlight { shared, key, data };
                        Poll::Pending
                    }
                    Err(e) => Poll::Ready(data.complete(Completion::error(e))),
                }
            }
            State::InFlight { shared, key, data } => {
                let polled = match shared.lock_driver() {
                    Some(mut core) => core.slots.poll(key, cx.waker()),
                    None => panic!(
                        "ringio: an in-flight operation of a single-threaded IoContext was polled \
                         on another thread; its futures must stay on the thread running the context"
                    ),
                };
                match polled {
                    Poll::Ready(Some(c)) => Poll::Ready(data.complete(c)),
                    Poll::Ready(None) => {
                        // Abandoned at shutdown: the kernel may still write
                        // this memory, so it is never handed back.
                        graveyard::bury(Box::new(data));
                        Poll::Pending
                    }
                    Poll::Pending => {
                        this.state = State::InFlight { shared, key, data };
                        Poll::Pending
                    }
                }
            }
            State::Done => panic!("ringio: operation polled after it completed"),
        }
    }
}

impl<T: OpCode> Drop for Op<T> {
    fn drop(&mut self) {
        if let State::InFlight {
            shared,
            key,
            mut data,
        } = std::mem::replace(&mut self.state, State::Done)
        {
            data.on_drop_in_flight();
            shared.drop_op(key, Box::new(data));
        }
    }
}

impl Shared {
    /// Submits an op from the thread running this context (the context the
    /// op binds to on its first poll).
    pub(crate) fn submit_here(
        &self,
        sqe: squeue::Entry,
        waker: &Waker,
        multishot: bool,
        fd: Option<RawFd>,
    ) -> io::Result<usize> {
        let mut core = self
            .lock_driver()
            .expect("the context running this thread is owned by it");
        self.driver.submit(&mut core, sqe, waker, multishot, fd)
    }

    /// Cancels the op in slot `key`, which its owner keeps polling.
    pub(crate) fn cancel_op(self: &Arc<Self>, key: usize) {
        self.with_driver_anywhere(move |shared, core, _| shared.driver.cancel_owned(core, key));
    }

    /// Cancels every op on `fd` (they complete with `ECANCELED`), from any
    /// thread.
    pub(crate) fn cancel_fd(self: &Arc<Self>, fd: RawFd) {
        self.with_driver_anywhere(move |shared, core, _| {
            let _ = shared.driver.cancel_fd(core, fd);
        });
    }

    /// Hands a dropped op's data to its slot (and cancels it), from any
    /// thread: a single-threaded context's owner does it directly, other
    /// threads through the context's remote queue.
    pub(crate) fn drop_op(self: &Arc<Self>, key: usize, data: Box<dyn CancelledOp>) {
        self.with_driver_anywhere(move |shared, core, fx| {
            shared.driver.drop_op(core, key, data, fx)
        });
    }

    /// Runs `f` with the driver's core, from any thread: directly where the
    /// core can be locked (then, if this thread is not a runner of the
    /// context, whatever `f` queued is submitted at once — no pass of ours
    /// will, and the leader may sleep in the kernel), else on the owner
    /// thread of a single-threaded context through its remote queue.
    /// Wakers and garbage `f` produces are handled with no lock held.
    fn with_driver_anywhere(
        self: &Arc<Self>,
        f: impl FnOnce(&Shared, &mut Core, &mut Effects) + Send + 'static,
    ) {
        let mut fx = Effects::default();
        match self.lock_driver() {
            Some(mut core) => {
                f(self, &mut core, &mut fx);
                if !crate::runtime::frame::is_running(self) {
                    self.driver.flush(&mut core, &mut fx);
                }
            }
            None => self.remote(Box::new(move |shared: &Shared| {
                let mut fx = Effects::default();
                if let Some(mut core) = shared.lock_driver() {
                    f(shared, &mut core, &mut fx);
                }
                fx.run();
            })),
        }
        fx.run();
    }
}
