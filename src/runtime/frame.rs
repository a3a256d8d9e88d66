//! Thread-local run frames: which contexts the current thread is running.
//!
//! `run`, `poll`, `block_on` (and shutdown) push a [`Frame`] for the duration
//! of the call; frames nest (a handler may `block_on` another context) and
//! are popped in reverse order by [`FrameGuard`]. A frame answers three
//! questions cheaply:
//! * `IoContext::current()` / `running_in_this_thread()`;
//! * whether this thread *owns* a single-threaded context (the lockless path
//!   of [`crate::runtime::cell::ModeLock`] depends on it);
//! * the per-handler inline-completion budget of speculative I/O.
//!
//! A frame lives on the stack of the call that pushed it; the thread-local
//! only ever points at live frames because the guard restores the previous
//! pointer before the frame goes out of scope.
//!
//! # Credits: atomics paid once per batch, not once per task
//!
//! A frame keeps two stocks that spare a task spawned and freed on this
//! thread its two atomic read-modify-writes on the context's shared lines:
//! * `arcs`: strong references to the frame's `Arc<Shared>`, owned by the
//!   frame. A spawn takes one ([`Frame::shared_arc`]) instead of bumping the
//!   count; a task freed on this thread gives its reference back
//!   ([`give_back_arc`]) instead of dropping it. The references are real
//!   (counted in the `Arc`), so nothing can free the context early; the
//!   frame drops what it still holds when it is popped, and never holds
//!   more than [`MAX_ARCS`].
//! * `work_credit`: units already added to the context's outstanding-work
//!   count and not yet given to any work ([`Frame::take_work_unit`] takes
//!   one, reserving [`WORK_CHUNK`] at a time). Unused credit only makes the
//!   count look larger, so no runner stops early because of it; and every
//!   runner hands its credit back with its other tallies
//!   ([`Frame::flush_tallies`]) before it looks at the count to decide
//!   whether to stop or sleep, and before the frame is popped, so a zero is
//!   never missed either.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::ptr;
use std::sync::Arc;

use crate::context::IoContext;
use crate::runtime::scheduler::{Runnable, Shared};

/// Inline completions allowed per handler (see DESIGN.md, speculation).
pub(crate) const INLINE_BUDGET: u32 = 16;

/// Most strong references to its context a frame keeps for reuse.
const MAX_ARCS: usize = 1024;

/// Units of outstanding work a frame reserves at once.
const WORK_CHUNK: usize = 64;

pub(crate) struct Frame {
    /// From `Arc::as_ptr`; the call that pushed the frame holds a strong
    /// reference for the frame's whole life.
    shared: *const Shared,
    /// Null for the detached frame of a shutdown (no handle exists then).
    ctx: *const IoContext,
    prev: *const Frame,
    /// Handlers polled under this frame and not yet added to the metrics.
    pub(crate) polled: Cell<u64>,
    /// Tasks spawned under this frame and not yet added to the metrics.
    pub(crate) spawned: Cell<u64>,
    /// Multi-threaded runners: units of work finished by tasks run under
    /// this frame and not yet taken off the context's outstanding count
    /// (see `Shared::work_finished`).
    pub(crate) finished: Cell<usize>,
    /// A task is being polled under this frame right now.
    pub(crate) in_task: Cell<bool>,
    /// Strong references to `shared` owned by the frame (module docs).
    arcs: Cell<usize>,
    /// Outstanding-work units reserved and not yet used (module docs).
    work_credit: Cell<usize>,
    /// Handlers run since the ring and timers were last checked.
    pub(crate) since_flush: Cell<u32>,
    /// Inline completions left for the current handler.
    pub(crate) inline_budget: Cell<u32>,
    /// Other handlers were ready when the current one started (a
    /// single-threaded context sets it): the pass will enter the ring
    /// anyway, so an SQE costs no extra syscall.
    pub(crate) others_ready: Cell<bool>,
    /// Multi-threaded runners: tasks taken from the shared queue along with
    /// the one being run, to run next (see `RunQueue::next`); given back if
    /// this runner stops first.
    pub(crate) stash: RefCell<VecDeque<Runnable>>,
}

thread_local! {
    static CURRENT: Cell<*const Frame> = const { Cell::new(ptr::null()) };
    static TOKEN: u8 = const { 0 };
}

/// The innermost frame of this thread (null outside any). `LocalKey::with`
/// with only this read inside always inlines, so the accessor behind the
/// key (a function pointer) folds into one thread-local load; a `with`
/// around a larger closure may stay out of line and call the accessor
/// through the pointer on every use.
#[inline(always)]
fn innermost_ptr() -> *const Frame {
    CURRENT.with(Cell::get)
}

/// A cheap identity of the calling thread (the address of a thread-local).
#[inline]
pub(crate) fn thread_token() -> usize {
    TOKEN.with(|t| t as *const u8 as usize)
}

/// Pops its frame when dropped.
pub(crate) struct FrameGuard<'a> {
    frame: &'a Frame,
}

impl Frame {
    pub(crate) fn new(ctx: &IoContext) -> Self {
        let mut f = Frame::detached(ctx.shared_arc());
        f.ctx = ctx as *const IoContext;
        f
    }

    /// A frame with no `IoContext` handle (shutdown, or draining a closed
    /// context's remote queue). `shared` must outlive the frame.
    pub(crate) fn detached(shared: &Arc<Shared>) -> Self {
        Frame {
            shared: Arc::as_ptr(shared),
            ctx: ptr::null(),
            prev: ptr::null(),
            polled: Cell::new(0),
            spawned: Cell::new(0),
            finished: Cell::new(0),
            in_task: Cell::new(false),
            arcs: Cell::new(0),
            work_credit: Cell::new(0),
            since_flush: Cell::new(0),
            inline_budget: Cell::new(INLINE_BUDGET),
            others_ready: Cell::new(false),
            stash: RefCell::new(VecDeque::new()),
        }
    }

    /// Makes this frame the innermost one of the current thread.
    pub(crate) fn enter(&mut self) -> FrameGuard<'_> {
        self.prev = CURRENT.with(|c| c.replace(self as *const Frame));
        FrameGuard { frame: self }
    }

    pub(crate) fn shared(&self) -> &Shared {
        // SAFETY: the call that pushed the frame holds a strong reference
        // for the frame's whole life.
        unsafe { &*self.shared }
    }

    /// A new strong reference to the frame's context state: one of the
    /// frame's own if it has any, else a fresh one.
    #[inline]
    pub(crate) fn shared_arc(&self) -> Arc<Shared> {
        let held = self.arcs.get();
        if held > 0 {
            self.arcs.set(held - 1);
        } else {
            // SAFETY: `shared` came from `Arc::as_ptr` of an Arc that is
            // alive (see the field docs): bumping its count is sound.
            unsafe { Arc::increment_strong_count(self.shared) };
        }
        // SAFETY: we own one strong reference to this `Arc` (taken from the
        // frame's stock, or just added): it becomes the returned Arc.
        unsafe { Arc::from_raw(self.shared) }
    }

    /// Takes one unit of the context's outstanding-work count for work
    /// started on this thread (see the module docs).
    #[inline]
    pub(crate) fn take_work_unit(&self) {
        let credit = self.work_credit.get();
        if credit > 0 {
            self.work_credit.set(credit - 1);
        } else {
            self.shared().work_started_n(WORK_CHUNK);
            self.work_credit.set(WORK_CHUNK - 1);
        }
    }

    /// A full stock drops half of itself in one burst. A runner of tasks
    /// spawned elsewhere only ever receives references (the spawning
    /// thread takes a new one per task): dropping one per task once the
    /// stock is full would take the count's cache line from that thread
    /// on every task; a burst takes it once per `MAX_ARCS / 2` tasks.
    #[cold]
    fn release_half_of_arcs(&self) {
        let held = self.arcs.get();
        let drop_n = held / 2;
        self.arcs.set(held - drop_n);
        for _ in 0..drop_n {
            // SAFETY: as in `release_arcs`; the frame keeps the rest.
            unsafe { Arc::decrement_strong_count(self.shared) };
        }
    }

    /// Drops the strong references the frame still owns.
    fn release_arcs(&self) {
        for _ in 0..self.arcs.take() {
            // SAFETY: each counted reference is owned by the frame, and the
            // call that pushed it holds one more: the count stays above 0.
            unsafe { Arc::decrement_strong_count(self.shared) };
        }
    }
}

/// Hands a strong reference to `arc`'s context to this thread's frame of
/// that context, if any, for the next [`Frame::shared_arc`]; else drops it.
#[inline]
pub(crate) fn give_back_arc(arc: Arc<Shared>) {
    // The usual case, inline: the innermost frame is the context's and
    // its stock has room. Anything else takes the full walk below, which
    // finds that same frame first when it matches.
    // SAFETY: CURRENT only points at frames that are alive (module docs).
    if let Some(frame) = unsafe { innermost_ptr().as_ref() } {
        let held = frame.arcs.get();
        if ptr::eq(frame.shared, Arc::as_ptr(&arc)) && held < MAX_ARCS {
            frame.arcs.set(held + 1);
            // The reference now belongs to the frame's stock.
            std::mem::forget(arc);
            return;
        }
    }
    give_back_arc_slow(arc);
}

/// [`give_back_arc`] past its inline case: an outer frame, a full stock,
/// or no frame of the context at all.
#[cold]
#[inline(never)]
fn give_back_arc_slow(arc: Arc<Shared>) {
    let mut p = innermost_ptr();
    while !p.is_null() {
        // SAFETY: CURRENT and every `prev` link point at live frames.
        let frame = unsafe { &*p };
        if ptr::eq(frame.shared, Arc::as_ptr(&arc)) {
            let held = frame.arcs.get();
            if held == MAX_ARCS {
                frame.release_half_of_arcs();
            }
            frame.arcs.set(frame.arcs.get() + 1);
            // The reference now belongs to the frame's stock.
            std::mem::forget(arc);
            return;
        }
        p = frame.prev;
    }
    drop(arc);
}

impl Frame {
    /// Adds the frame's tallies to the context's metrics, and takes its
    /// finished work and unused work credit off the outstanding count.
    pub(crate) fn flush_tallies(&self) {
        let shared = self.shared();
        shared.metrics.add_polled(self.polled.take());
        shared.metrics.add_spawned(self.spawned.take());
        shared.work_finished_n(self.take_unpublished_work());
    }

    /// The work this frame finished and its unused work credit, both still
    /// counted as outstanding, to be taken off the count by the caller.
    pub(crate) fn take_unpublished_work(&self) -> usize {
        self.finished.take() + self.work_credit.take()
    }

    /// Whether [`Frame::take_unpublished_work`] would take anything.
    pub(crate) fn has_unpublished_work(&self) -> bool {
        self.finished.get() + self.work_credit.get() > 0
    }
}

impl FrameGuard<'_> {
    pub(crate) fn frame(&self) -> &Frame {
        self.frame
    }
}

impl Drop for FrameGuard<'_> {
    fn drop(&mut self) {
        let frame = self.frame;
        frame.flush_tallies();
        frame.release_arcs();
        CURRENT.with(|c| c.set(frame.prev));
    }
}

/// Calls `f` with the innermost frame, if any.
#[inline]
pub(crate) fn with_innermost<R>(f: impl FnOnce(Option<&Frame>) -> R) -> R {
    let p = innermost_ptr();
    // SAFETY: CURRENT only points at frames that are alive (see module docs).
    f(unsafe { p.as_ref() })
}

/// Calls `f` with the innermost frame of `shared` on this thread, if any.
#[inline]
pub(crate) fn with_frame_of<R>(shared: &Shared, f: impl FnOnce(Option<&Frame>) -> R) -> R {
    let mut p = innermost_ptr();
    while !p.is_null() {
        // SAFETY: CURRENT and every `prev` link point at live frames.
        let frame = unsafe { &*p };
        if ptr::eq(frame.shared, shared) {
            return f(Some(frame));
        }
        p = frame.prev;
    }
    f(None)
}

/// Whether the current thread is inside a run frame of `shared`.
#[inline]
pub(crate) fn is_running(shared: &Shared) -> bool {
    with_frame_of(shared, |f| f.is_some())
}

/// The context of the innermost frame that has a handle.
pub(crate) fn current_context() -> Option<IoContext> {
    with_innermost(|f| {
        let f = f?;
        // SAFETY: a non-null `ctx` points at the `IoContext` borrowed by the
        // call that pushed the frame, which is still executing.
        unsafe { f.ctx.as_ref() }.cloned()
    })
}

/// The context state of the innermost frame.
pub(crate) fn current_shared() -> Option<Arc<Shared>> {
    with_innermost(|f| f.map(Frame::shared_arc))
}

/// Takes one inline completion from the current handler's budget
/// (speculative I/O, DESIGN.md §3). `false` outside any run frame or when
/// the handler has used its budget: the caller then goes through the ring.
pub(crate) fn take_inline_budget() -> bool {
    with_innermost(|f| match f {
        Some(f) if f.inline_budget.get() > 0 => {
            f.inline_budget.set(f.inline_budget.get() - 1);
            true
        }
        _ => false,
    })
}

/// Whether the current pass will end in an `io_uring_enter` anyway: other
/// handlers are ready in it, or SQEs are already queued for the kernel. An
/// SQE pushed now then rides along for free, where a speculative syscall
/// would be one more (see `Socket::speculate_send`).
pub(crate) fn pass_will_enter() -> bool {
    with_innermost(|f| f.is_some_and(|f| f.others_ready.get() || f.shared().driver.sq_queued()))
}

/// Counts an operation that completed inline, without the ring.
pub(crate) fn note_inline_completion() {
    with_innermost(|f| {
        if let Some(f) = f {
            crate::runtime::metrics::Counters::bump(&f.shared().metrics.inline_completions, 1);
        }
    })
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_full_reference_stock_drops_half_and_the_frame_drops_the_rest() {
        let ctx = crate::IoContext::builder()
            .single_threaded(false)
            .build()
            .unwrap();
        let base = Arc::strong_count(ctx.shared_arc());
        let mut frame = Frame::new(&ctx);
        let guard = frame.enter();
        // References taken elsewhere (as by a spawning thread) and given
        // back here, as a runner of such tasks does.
        for i in 1..=3 * MAX_ARCS {
            give_back_arc(ctx.shared_arc().clone());
            let held = guard.frame().arcs.get();
            assert!(held <= MAX_ARCS, "stock bounded: {held}");
            assert_eq!(Arc::strong_count(ctx.shared_arc()), base + held, "{i}");
        }
        assert!(guard.frame().arcs.get() > MAX_ARCS / 2);
        drop(guard);
        assert_eq!(Arc::strong_count(ctx.shared_arc()), base);
    }
}
