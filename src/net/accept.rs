//! [`Acceptor`]: the multishot accept behind `TcpListener` and
//! `UnixListener`.
//!
//! # How it works
//!
//! One multishot `IORING_OP_ACCEPT` stays armed on the listening socket; the
//! kernel posts a CQE per connection, which queue in the op's slot until an
//! `accept` call takes them. Several tasks may call `accept` on one listener
//! at once: the op's waker is a [`Waiters`] list that wakes them all, so no
//! caller depends on another still being around to pass the news on.
//!
//! # Back-pressure and re-arming
//!
//! * When the multishot ends (a CQE without `F_MORE`: an error, or the
//!   kernel stopping it), the next `accept` arms a new one.
//! * Connections moved out of the slot queue up in `ready`; when more than
//!   [`READY_BOUND`] wait there, the op is cancelled (its late connections
//!   still come out, none is closed) and is not re-armed until the queue
//!   drains below the bound.
//! * `EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM` (out of descriptors or memory)
//!   end the multishot. The error is returned once, then the listener backs
//!   off — 10 ms, doubling up to 1 s, reset by the next success — before it
//!   re-arms: a caller that loops on errors sleeps instead of spinning, and
//!   the pending connections stay in the kernel's backlog until then.
//!
//! # Teardown
//!
//! Dropping the acceptor drops the running multishot (cancelled; any
//! connection it still produces is closed by the op's `on_cqe`), closes the
//! queued connections, then the listening fd (cancel-by-fd, flush, close).

use std::collections::VecDeque;
use std::future::poll_fn;
use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use crate::driver::fd::RingFd;
use crate::driver::ops::accept::AcceptMulti;
use crate::driver::stream::StreamOp;
use crate::time::Sleep;

/// Accepted connections queued before the multishot is paused.
pub(crate) const READY_BOUND: usize = 256;
const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(crate) struct Acceptor {
    // Field order is drop order: the op and queued fds go before the
    // listening fd is closed.
    state: Mutex<State>,
    waiters: Arc<Waiters>,
    fd: RingFd,
}

struct State {
    multishot: Option<StreamOp<AcceptMulti>>,
    ready: VecDeque<OwnedFd>,
    /// The multishot was cancelled because `ready` passed the bound.
    paused: bool,
    backoff: Option<Pin<Box<Sleep>>>,
    next_backoff: Duration,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("armed", &self.multishot.is_some())
            .field("ready", &self.ready.len())
            .field("paused", &self.paused)
            .field("backing_off", &self.backoff.is_some())
            .finish()
    }
}

/// Every task waiting in `accept`, woken together.
#[derive(Debug, Default)]
struct Waiters(Mutex<Vec<Waker>>);

impl Waiters {
    fn register(&self, waker: &Waker) {
        let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !list.iter().any(|w| w.will_wake(waker)) {
            list.push(waker.clone());
        }
    }
}

impl Wake for Waiters {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let list = std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()));
        for w in list {
            w.wake();
        }
    }
}

fn out_of_resources(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

impl Acceptor {
    /// `fd` must be a listening socket.
    pub(crate) fn new(fd: OwnedFd) -> Acceptor {
        Acceptor {
            state: Mutex::new(State {
                multishot: None,
                ready: VecDeque::new(),
                paused: false,
                backoff: None,
                next_backoff: BACKOFF_MIN,
            }),
            waiters: Arc::default(),
            fd: RingFd::new(fd),
        }
    }

    pub(crate) fn ring_fd(&self) -> &RingFd {
        &self.fd
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next accepted connection.
    pub(crate) async fn accept(&self) -> io::Result<OwnedFd> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    pub(crate) fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<OwnedFd>> {
        let mut st = self.lock();
        self.waiters.register(cx.waker());
        let waker = Waker::from(self.waiters.clone());
        let mut op_cx = Context::from_waker(&waker);
        loop {
            // Move whatever the kernel produced into `ready`.
            let mut failure = None;
            while let Some(op) = st.multishot.as_mut() {
                match op.poll_next(&mut op_cx) {
                    Poll::Ready(Some(Ok(fd))) => {
                        st.next_backoff = BACKOFF_MIN;
                        st.ready.push_back(fd);
                    }
                    Poll::Ready(Some(Err(e))) => {
                        st.multishot = None;
                        if out_of_resources(&e) {
                            let delay = st.next_backoff;
                            st.next_backoff = (delay * 2).min(BACKOFF_MAX);
                            st.backoff = Some(Box::pin(Sleep::new(Instant::now() + delay)));
                        }
                        // A cancellation we asked for (pause) is no error.
                        if !(st.paused && e.raw_os_error() == Some(libc::ECANCELED)) {
                            failure = Some(e);
                        }
                        break;
                    }
                    Poll::Ready(None) => {
                        st.multishot = None;
                    }
                    Poll::Pending => break,
                }
            }
            if st.ready.len() > READY_BOUND && !st.paused {
                if let Some(op) = &st.multishot {
                    op.cancel();
                    st.paused = true;
                }
            }
            if let Some(fd) = st.ready.pop_front() {
                if !st.ready.is_empty() {
                    // Others may be waiting for these.
                    Waker::from(self.waiters.clone()).wake();
                }
                // Connections in hand come before an error that ended the
                // multishot (any backoff still applies once they are out).
                return Poll::Ready(Ok(fd));
            }
            if let Some(e) = failure {
                return Poll::Ready(Err(e));
            }
            if let Some(sleep) = st.backoff.as_mut() {
                match sleep.as_mut().poll(&mut op_cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(()) => st.backoff = None,
                }
            }
            if st.multishot.is_some() {
                return Poll::Pending;
            }
            // Re-arm (the queue is empty, so any pause is over).
            st.paused = false;
            st.multishot = Some(StreamOp::new(AcceptMulti::new(self.fd.raw())));
            self.fd.note_context();
        }
    }
}
