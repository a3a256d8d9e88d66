//! [`StreamOp`]: a multishot operation (accept, poll, recv with provided
//! buffers) seen as a stream of completions.
//!
//! One SQE produces many CQEs; the slot lives across every CQE flagged
//! `IORING_CQE_F_MORE` and queues them until the owner asks
//! ([`crate::driver::slots`], state `Streaming`). The stream ends
//! (`Ready(None)`) once the terminal CQE — the one without `F_MORE` — has been
//! taken; the owner re-arms by starting a new `StreamOp` when it wants more
//! (that is where it can apply back-pressure). Dropping a running stream
//! cancels it like a single-shot op, and every completion that arrives later
//! goes to the data's `on_cqe` (e.g. to close accepted fds nobody took).

use std::sync::Arc;
use std::task::{Context, Poll};

use io_uring::squeue;

use crate::driver::graveyard;
use crate::driver::slots::{CancelledOp, Completion, StreamEvent};
use crate::runtime::scheduler::Shared;

/// One kind of multishot operation.
pub(crate) trait MultiOpCode: CancelledOp + Sized + Send + 'static {
    type Item;

    /// Builds the SQE (the driver sets user_data). Pointers in it must point
    /// at heap memory owned by `self`.
    fn sqe(&mut self) -> squeue::Entry;

    /// The fd the op works on (see [`OpCode::fd`](crate::driver::op::OpCode::fd)).
    fn fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }

    /// Turns one CQE (or a submission error) into an item.
    fn item(&mut self, completion: Completion) -> Self::Item;
}

enum State<T> {
    Idle(T),
    Running {
        shared: Arc<Shared>,
        key: usize,
        data: T,
    },
    Finished(T),
    /// Abandoned by shutdown: the data was leaked.
    Gone,
}

/// A running multishot operation. See the module docs.
pub(crate) struct StreamOp<T: MultiOpCode> {
    state: State<T>,
}

impl<T: MultiOpCode> StreamOp<T> {
    pub(crate) fn new(data: T) -> Self {
        StreamOp {
            state: State::Idle(data),
        }
    }

    /// Whether the terminal CQE has been taken (the stream must be re-armed
    /// to produce more).
    pub(crate) fn is_finished(&self) -> bool {
        matches!(self.state, State::Finished(_) | State::Gone)
    }

    /// The next completion, submitting the SQE on the first call.
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<T::Item>> {
        match std::mem::replace(&mut self.state, State::Gone) {
            State::Idle(mut data) => {
                let Some(shared) = Shared::current() else {
                    let item = data.item(crate::driver::no_context_completion());
                    self.state = State::Finished(data);
                    return Poll::Ready(Some(item));
                };
                match shared.submit_here(data.sqe(), cx.waker(), true, data.fd()) {
                    Ok(key) => {
                        self.state = State::Running { shared, key, data };
                        Poll::Pending
                    }
                    Err(e) => {
                        let item = data.item(Completion::error(e));
                        self.state = State::Finished(data);
                        Poll::Ready(Some(item))
                    }
                }
            }
            State::Running {
                shared,
                key,
                mut data,
            } => {
                let polled = match shared.lock_driver() {
                    Some(mut core) => core.slots.poll_stream(key, cx.waker()),
                    None => panic!(
                        "ringio: a multishot operation of a single-threaded IoContext was polled \
                         on another thread; it must stay on the thread running the context"
                    ),
                };
                match polled {
                    Poll::Ready(StreamEvent::Item(c)) => {
                        let last = !c.more();
                        let item = data.item(c);
                        self.state = if last {
                            State::Finished(data)
                        } else {
                            State::Running { shared, key, data }
                        };
                        Poll::Ready(Some(item))
                    }
                    Poll::Ready(StreamEvent::End) => {
                        self.state = State::Finished(data);
                        Poll::Ready(None)
                    }
                    Poll::Ready(StreamEvent::Abandoned) => {
                        // The kernel may still write this memory: leak it.
                        graveyard::bury(Box::new(data));
                        Poll::Ready(None)
                    }
                    Poll::Pending => {
                        self.state = State::Running { shared, key, data };
                        Poll::Pending
                    }
                }
            }
            State::Finished(data) => {
                self.state = State::Finished(data);
                Poll::Ready(None)
            }
            State::Gone => Poll::Ready(None),
        }
    }

    /// Asks the kernel to stop the operation while this stream still owns
    /// it: completions already produced, and the terminal `ECANCELED` one,
    /// still come out of [`poll_next`](Self::poll_next) (unlike dropping
    /// the stream, which hands them to `on_cqe`).
    pub(crate) fn cancel(&self) {
        if let State::Running { shared, key, .. } = &self.state {
            shared.cancel_op(*key);
        }
    }

    /// Takes the data back from a finished (or never started) stream, to
    /// re-arm it.
    pub(crate) fn into_data(mut self) -> Option<T> {
        match std::mem::replace(&mut self.state, State::Gone) {
            State::Idle(d) | State::Finished(d) => Some(d),
            other => {
                self.state = other;
                None
            }
        }
    }
}

impl<T: MultiOpCode> Drop for StreamOp<T> {
    fn drop(&mut self) {
        if let State::Running {
            shared,
            key,
            mut data,
        } = std::mem::replace(&mut self.state, State::Gone)
        {
            data.on_drop_in_flight();
            shared.drop_op(key, Box::new(data));
        }
    }
}

#[cfg(test)]
mod tests {
    //! A real multishot `POLL_ADD` on a pipe: several CQEs with `F_MORE` from
    //! one SQE, then cancellation by dropping the stream.
    use super::*;
    use crate::IoContext;
    use io_uring::{opcode, types};
    use std::future::poll_fn;
    use std::os::fd::RawFd;

    struct PollMulti(RawFd);
    impl CancelledOp for PollMulti {}
    impl MultiOpCode for PollMulti {
        type Item = (std::io::Result<u32>, bool);
        fn sqe(&mut self) -> squeue::Entry {
            opcode::PollAdd::new(types::Fd(self.0), libc::POLLIN as u32)
                .multi(true)
                .build()
        }
        fn item(&mut self, c: Completion) -> Self::Item {
            let more = c.more();
            (c.result, more)
        }
    }

    fn pipe() -> (RawFd, RawFd) {
        let mut fds = [0; 2];
        // SAFETY: room for two fds.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        assert_eq!(rc, 0);
        (fds[0], fds[1])
    }

    fn write_byte(fd: RawFd) {
        // SAFETY: writes one byte from a live buffer.
        assert_eq!(unsafe { libc::write(fd, b"x".as_ptr().cast(), 1) }, 1);
    }

    fn drain(fd: RawFd) {
        let mut b = [0u8; 64];
        // SAFETY: reads into a live buffer of the given size.
        unsafe { libc::read(fd, b.as_mut_ptr().cast(), b.len()) };
    }

    #[test]
    fn multishot_poll_lives_across_more_and_cancels_on_drop() {
        for st in [false, true] {
            let ctx = IoContext::builder().single_threaded(st).build().unwrap();
            let (r, w) = pipe();
            ctx.block_on(async {
                let mut s = StreamOp::new(PollMulti(r));
                for _ in 0..3 {
                    let wake = ringio_spawn_write(w);
                    let (res, more) = poll_fn(|cx| s.poll_next(cx)).await.expect("item");
                    assert!(res.unwrap() & libc::POLLIN as u32 != 0);
                    assert!(more, "multishot keeps the slot (F_MORE)");
                    wake.await.unwrap();
                    drain(r);
                }
                assert!(!s.is_finished());
                drop(s); // cancels; the late CQE frees the slot
                crate::io::nop().await.unwrap();
            });
            assert_eq!(ctx.metrics().ops_cancelled, 1);
            // SAFETY: closing our own fds after the context stopped using them.
            unsafe {
                libc::close(r);
                libc::close(w);
            }
        }
    }

    fn ringio_spawn_write(w: RawFd) -> crate::JoinHandle<()> {
        crate::spawn(async move {
            crate::time::sleep(std::time::Duration::from_millis(2)).await;
            write_byte(w);
        })
    }
}
