//! [`Carry`]: bytes a cancelled stream read received, kept for the next read.
//!
//! # Why
//!
//! Dropping a read future (a `timeout` around `read`, a `select!` losing
//! arm) cancels its `RECV`. The cancel can lose the race: the kernel may have
//! already copied bytes out of the socket into the op's buffer. Those bytes
//! are gone from the socket, so dropping them would lose data. Instead the
//! cancelled op's late CQE moves them here, and the next read returns them
//! first.
//!
//! # Protocol (order is preserved)
//!
//! 1. A read future dropped while its op is in flight bumps `cancelled`
//!    (`on_drop_in_flight`, on the dropping thread).
//! 2. Each CQE of that op appends whatever it received to `bytes`
//!    (`on_cqe`, under the driver lock; this lock is only ever taken inside
//!    the driver lock or alone, never the other way round).
//! 3. When the op's data is dropped after its last CQE (outside every
//!    lock), `cancelled` goes down and waiting readers are woken.
//! 4. A read first waits until `cancelled == 0` — no older read can still
//!    deliver bytes — then serves `bytes` before it touches the socket.
//!    So carried bytes always come out before anything read after them.
//!
//! Reads running *concurrently* on one socket (two tasks reading one
//! `&TcpStream`) have no defined order among themselves; the protocol only
//! orders a read after the cancelled reads that preceded it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use crate::buf::IoBufMut;

/// The per-socket store of carried bytes. See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Carry {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    bytes: VecDeque<u8>,
    /// Cancelled reads whose last CQE has not been handled yet.
    cancelled: usize,
    waiters: Vec<Waker>,
}

/// What a read should do after [`Carry::poll_take`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Take {
    /// `n` carried bytes were copied into the buffer: return them.
    Served(usize),
    /// Nothing carried and nothing pending: read the socket.
    Empty,
}

impl Carry {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Step 4: waits for cancelled reads to settle, then serves carried
    /// bytes into `buf` (from its start, up to its capacity).
    pub(crate) fn poll_take<B: IoBufMut>(&self, cx: &mut Context<'_>, buf: &mut B) -> Poll<Take> {
        let mut st = self.lock();
        if st.cancelled > 0 {
            if !st.waiters.iter().any(|w| w.will_wake(cx.waker())) {
                st.waiters.push(cx.waker().clone());
            }
            return Poll::Pending;
        }
        if st.bytes.is_empty() {
            return Poll::Ready(Take::Empty);
        }
        let n = st.bytes.len().min(buf.bytes_total());
        let ptr = buf.stable_mut_ptr();
        for (i, b) in st.bytes.drain(..n).enumerate() {
            // SAFETY: `i < n <= bytes_total()`: inside the buffer's memory.
            unsafe { ptr.add(i).write(b) };
        }
        // SAFETY: the first `n` bytes were just written.
        unsafe { buf.set_init(n) };
        Poll::Ready(Take::Served(n))
    }

    /// Whether bytes or cancelled reads are pending (a cheap pre-check so
    /// the common read path skips [`poll_take`](Self::poll_take)).
    pub(crate) fn is_idle(&self) -> bool {
        let st = self.lock();
        st.cancelled == 0 && st.bytes.is_empty()
    }

    /// Step 1.
    pub(crate) fn read_cancelled(&self) {
        self.lock().cancelled += 1;
    }

    /// Step 2.
    pub(crate) fn keep(&self, bytes: &[u8]) {
        self.lock().bytes.extend(bytes);
    }

    /// Step 3.
    pub(crate) fn cancelled_read_settled(&self) {
        let waiters = {
            let mut st = self.lock();
            st.cancelled -= 1;
            if st.cancelled > 0 {
                return;
            }
            std::mem::take(&mut st.waiters)
        };
        for w in waiters {
            w.wake();
        }
    }
}

/// Step 3 as a value: tells the carry a cancelled read has settled when it
/// drops (kept in the cancelled op's data, so after its last CQE).
pub(crate) struct Settle(Arc<Carry>);

impl Settle {
    pub(crate) fn new(carry: Arc<Carry>) -> Settle {
        Settle(carry)
    }
}

impl Drop for Settle {
    fn drop(&mut self) {
        self.0.cancelled_read_settled();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_cancelled_reads_then_serves_in_order() {
        let (count, waker) = crate::test_util::count_waker();
        let mut cx = Context::from_waker(&waker);
        let c = Carry::default();
        let mut buf = Vec::with_capacity(4);
        assert_eq!(c.poll_take(&mut cx, &mut buf), Poll::Ready(Take::Empty));
        c.read_cancelled();
        assert!(!c.is_idle());
        assert!(c.poll_take(&mut cx, &mut buf).is_pending());
        c.keep(b"abcdef");
        c.cancelled_read_settled();
        assert_eq!(count.count(), 1);
        assert_eq!(c.poll_take(&mut cx, &mut buf), Poll::Ready(Take::Served(4)));
        assert_eq!(buf, b"abcd");
        let mut buf = vec![0u8; 8];
        assert_eq!(c.poll_take(&mut cx, &mut buf), Poll::Ready(Take::Served(2)));
        assert_eq!(&buf[..2], b"ef");
        assert_eq!(buf.len(), 8, "initialised length never shrinks");
        assert!(c.is_idle());
    }
}
