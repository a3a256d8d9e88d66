//! The task cell: one allocation holding a task's state word, its future or
//! output, its join waker and its [`TaskMeta`], with the [`Runnable`] that
//! polls it, the `Waker` that schedules it and the [`JoinRef`] behind a
//! `JoinHandle`.
//!
//! # Protocol
//!
//! The transitions live in [`super::state`]; this file does what each one
//! allows:
//! * `Runnable::run` polls the future. `Pending`: re-queue the same
//!   `Runnable` if woken during the poll, else release its reference.
//!   `Ready`: the future is dropped, the output written, then `COMPLETE` is
//!   set and the join waker woken.
//! * Dropping a `Runnable` without running it (a closed context) cancels
//!   the task: the future is dropped and the task completes with no output,
//!   which the `JoinHandle` reports as cancelled.
//! * The stage (future, output) is touched only by the holder of the
//!   `Runnable` while `RUNNING`, then, once `COMPLETE`, by the output's
//!   owner (the `JoinHandle`, or the runner if the handle is gone) — never
//!   by two threads at once.
//! * The join waker slot is guarded by `awaiter_locked`, a spin flag held
//!   for a pointer swap only (no waker is cloned, woken or dropped under
//!   it). The handle stores its waker, then sets `JOIN_WAKER` and looks at
//!   `COMPLETE` in the same step; the runner sets `COMPLETE`, and takes the
//!   waker if `JOIN_WAKER` was set: one of the two sees the other, so a
//!   completion is never missed, and a task nobody awaited never touches
//!   the slot.
//! * The cell is freed by whoever releases the last reference; its memory
//!   goes back to [`super::recycle`].
//!
//! Every function taking a `NonNull<Header>` requires it to point at a live
//! cell created by [`allocate`], with the caller holding one of its
//! references (or, for the vtable entries, the access described above).

use std::cell::UnsafeCell;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use super::recycle;
use super::state::{AfterPending, AfterWake, State, COMPLETE, HANDLE, JOIN_WAKER};
use super::TaskMeta;

/// The type-independent start of every task cell.
#[repr(C)]
pub(crate) struct Header {
    state: State,
    vtable: &'static Vtable,
    /// The allocating thread's home token (see [`recycle::allocate`]).
    home: usize,
    /// The next task in the [`TaskQueue`](super::queue::TaskQueue) that
    /// holds this task's `Runnable` (owned by that queue).
    queue_next: UnsafeCell<Option<NonNull<Header>>>,
    awaiter_locked: AtomicBool,
    awaiter: UnsafeCell<Option<Waker>>,
    meta: TaskMeta,
}

/// A header followed by the stage of one future type.
#[repr(C)]
struct Cell<F: Future> {
    header: Header,
    stage: UnsafeCell<Stage<F>>,
}

enum Stage<F: Future> {
    Running(F),
    Finished(F::Output),
    /// Cancelled, or the output was taken or dropped.
    Consumed,
}

/// The entry points that depend on the future's type.
struct Vtable {
    run: unsafe fn(NonNull<Header>),
    /// Drops whatever the stage holds (the future of a cancelled task, or
    /// an output nobody will take), leaving `Consumed`.
    drop_stage: unsafe fn(NonNull<Header>),
    /// Moves the output into `*mut Option<F::Output>` (which holds `None`),
    /// leaving `Consumed`, then releases the handle's reference.
    take_output_and_release: unsafe fn(NonNull<Header>, *mut ()),
    dealloc: unsafe fn(NonNull<Header>),
}

/// Creates a task, scheduled and with a join handle. `make` gets the
/// address its metadata will keep for the task's whole life.
#[inline(always)]
pub(super) fn allocate<F, M>(meta: TaskMeta, make: M) -> (Runnable, JoinRef)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    M: FnOnce(*const TaskMeta) -> F,
{
    let ptr = allocate_cell(meta, make, State::new());
    (Runnable { ptr }, JoinRef { ptr })
}

/// Creates a task, scheduled, that nobody will join: its `Runnable` is its
/// only reference, so no handle is ever dropped and its output is dropped
/// when it completes.
#[inline(always)]
pub(super) fn allocate_detached<F, M>(meta: TaskMeta, make: M) -> Runnable
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    M: FnOnce(*const TaskMeta) -> F,
{
    Runnable {
        ptr: allocate_cell(meta, make, State::new_detached()),
    }
}

#[inline(always)]
fn allocate_cell<F, M>(meta: TaskMeta, make: M, state: State) -> NonNull<Header>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    M: FnOnce(*const TaskMeta) -> F,
{
    let layout = std::alloc::Layout::new::<Cell<F>>();
    let (mem, home) = recycle::allocate(layout);
    let mem = mem.cast::<Cell<F>>();
    let cell = Cell::<F> {
        header: Header {
            state,
            vtable: &Cell::<F>::VTABLE,
            home,
            queue_next: UnsafeCell::new(None),
            awaiter_locked: AtomicBool::new(false),
            awaiter: UnsafeCell::new(None),
            meta,
        },
        stage: UnsafeCell::new(Stage::Consumed),
    };
    // SAFETY: fresh memory of `Cell<F>`'s layout, not shared yet; the
    // stage is written before the pointer escapes.
    unsafe {
        mem.as_ptr().write(cell);
        let meta = &(*mem.as_ptr()).header.meta as *const TaskMeta;
        (*mem.as_ptr())
            .stage
            .get()
            .write(Stage::Running(make(meta)));
    }
    mem.cast::<Header>()
}

impl<F: Future> Cell<F> {
    const VTABLE: Vtable = Vtable {
        run: Self::run,
        drop_stage: Self::drop_stage,
        take_output_and_release: Self::take_output_and_release,
        dealloc: Self::dealloc,
    };

    /// # Safety
    ///
    /// `ptr` is a cell of this `F`; the caller may access its stage (see the
    /// module protocol).
    unsafe fn stage<'a>(ptr: NonNull<Header>) -> &'a mut Stage<F> {
        // SAFETY: `Header` is the first field of a `repr(C)` `Cell<F>`, and
        // the caller has exclusive access to the stage.
        unsafe { &mut *(*ptr.cast::<Cell<F>>().as_ptr()).stage.get() }
    }

    /// Replaces the stage. A panic in the old value's destructor (user
    /// code) is swallowed so the cell stays consistent.
    fn set_stage(stage: &mut Stage<F>, new: Stage<F>) {
        let old = std::mem::replace(stage, new);
        let _ = catch_unwind(AssertUnwindSafe(move || drop(old)));
    }

    /// # Safety
    ///
    /// Called through the vtable by the holder of the task's `Runnable`.
    unsafe fn run(ptr: NonNull<Header>) {
        // SAFETY: the Runnable's reference keeps the cell alive.
        let header = unsafe { ptr.as_ref() };
        header.state.start_run();
        let waker = ManuallyDrop::new(waker_ref(ptr));
        let mut cx = Context::from_waker(&waker);
        // SAFETY: RUNNING, and we hold the Runnable: the stage is ours.
        let stage_ptr: *mut Stage<F> = unsafe { Self::stage(ptr) };
        // SAFETY: as above.
        let Stage::Running(fut) = (unsafe { &mut *stage_ptr }) else {
            unreachable!("ringio: a task was run after it finished");
        };
        let fut_ptr: *mut F = fut;
        // SAFETY: the future stays in the heap cell until it is dropped in
        // place below (or by `set_stage`); it is never moved.
        let fut = unsafe { Pin::new_unchecked(&mut *fut_ptr) };
        #[cfg(feature = "tracing")]
        let span =
            tracing::trace_span!(target: "ringio", "poll", task = ptr.as_ptr() as usize).entered();
        let polled = fut.poll(&mut cx);
        #[cfg(feature = "tracing")]
        drop(span);
        match polled {
            Poll::Ready(out) => {
                // Drop the future in place (no move of the stage, and no
                // look at its variant: it is `Running`), then write the
                // output over it.
                // SAFETY: the stage is ours; its future is dropped exactly
                // once here and the stage overwritten (with no drop) before
                // anyone can see it again. A panic in the future's
                // destructor (user code) is swallowed.
                unsafe {
                    let _ = catch_unwind(AssertUnwindSafe(|| std::ptr::drop_in_place(fut_ptr)));
                    stage_ptr.write(Stage::Finished(out));
                }
                // SAFETY: we hold the Runnable's reference; `finish` ends it.
                unsafe { finish(ptr) };
            }
            Poll::Pending => match header.state.end_run_pending() {
                AfterPending::Reschedule => super::schedule(Runnable { ptr }, false),
                AfterPending::Idle => {}
                // SAFETY: the last reference is gone.
                AfterPending::Dealloc => unsafe { Self::dealloc(ptr) },
            },
        }
    }

    /// # Safety
    ///
    /// The caller owns the stage: it holds the Runnable (RUNNING), or owns
    /// the output (see the module docs).
    unsafe fn drop_stage(ptr: NonNull<Header>) {
        // SAFETY: see above.
        Self::set_stage(unsafe { Self::stage(ptr) }, Stage::Consumed);
    }

    /// # Safety
    ///
    /// The caller is the `JoinHandle` of a complete task (it owns the
    /// output, see the module docs) and gives up its reference; `dst`
    /// points at an `Option<F::Output>` holding `None`.
    unsafe fn take_output_and_release(ptr: NonNull<Header>, dst: *mut ()) {
        // SAFETY: see above.
        let stage_ptr: *mut Stage<F> = unsafe { Self::stage(ptr) };
        // SAFETY: as above; the shared borrow ends before the write below.
        if let Stage::Finished(out) = unsafe { &*stage_ptr } {
            // SAFETY: the output is moved out exactly once: the stage is
            // overwritten with `Consumed` (no drop of the old value) before
            // anyone can look at it again. The caller passes an
            // `Option<F::Output>` holding `None` (nothing to drop before
            // the write). Only the output is copied, not the whole stage.
            unsafe {
                let out = std::ptr::read(out);
                stage_ptr.write(Stage::Consumed);
                dst.cast::<Option<F::Output>>().write(Some(out));
            }
        }
        // SAFETY: the handle's reference kept the cell alive until here.
        if unsafe { ptr.as_ref() }.state.drop_handle_and_release() {
            // SAFETY: that was the last reference.
            unsafe { Self::dealloc(ptr) };
        }
    }

    /// # Safety
    ///
    /// The last reference is gone.
    unsafe fn dealloc(ptr: NonNull<Header>) {
        let cell = ptr.cast::<Cell<F>>().as_ptr();
        // SAFETY: the cell came from `allocate` with `Cell<F>`'s layout and
        // nobody else refers to it any more: drop it, then give the memory
        // back (even if a destructor panicked). The stage goes first, while
        // the metadata a task future points at is still whole; a consumed
        // stage (the usual case: output taken or dropped) holds nothing, and
        // is not dropped at all (no call into its drop glue).
        unsafe {
            let home = (*cell).header.home;
            let stage = (*cell).stage.get();
            if !matches!(*stage, Stage::Consumed) {
                let _ = catch_unwind(AssertUnwindSafe(|| std::ptr::drop_in_place(stage)));
            }
            let header = std::ptr::addr_of_mut!((*cell).header);
            let _ = catch_unwind(AssertUnwindSafe(|| std::ptr::drop_in_place(header)));
            recycle::release(
                NonNull::new_unchecked(cell).cast(),
                std::alloc::Layout::new::<Cell<F>>(),
                home,
            );
        }
    }
}

/// The future is gone and the stage written: completes the task, hands the
/// output to its owner, wakes the join waker, releases the Runnable's
/// reference.
///
/// # Safety
///
/// The caller held the Runnable (RUNNING) and gives up its reference.
unsafe fn finish(ptr: NonNull<Header>) {
    // SAFETY: the Runnable's reference keeps the cell alive until released.
    let header = unsafe { ptr.as_ref() };
    // A handle gone now never comes back: the output is ours to drop.
    let output_dropped = header.state.load() & HANDLE == 0;
    if output_dropped {
        // SAFETY: see above.
        unsafe { (header.vtable.drop_stage)(ptr) };
    }
    let done = header.state.complete(output_dropped);
    if !done.released {
        if done.prev & HANDLE == 0 {
            // The handle went between the look above and the transition.
            // SAFETY: the output is ours.
            unsafe { (header.vtable.drop_stage)(ptr) };
        } else if done.prev & JOIN_WAKER != 0 {
            if let Some(w) = header.take_awaiter() {
                w.wake();
            }
        }
        if header.state.release() {
            // SAFETY: that was the last reference.
            unsafe { (header.vtable.dealloc)(ptr) };
        }
    } else if done.last {
        // SAFETY: that was the last reference.
        unsafe { (header.vtable.dealloc)(ptr) };
    }
}

impl Header {
    /// # Safety
    ///
    /// The caller owns the task's `Runnable` (a queue holding it).
    pub(super) unsafe fn queue_next(ptr: NonNull<Header>) -> Option<NonNull<Header>> {
        // SAFETY: see above; the link is only touched by that owner.
        unsafe { *ptr.as_ref().queue_next.get() }
    }

    /// # Safety
    ///
    /// As for [`Header::queue_next`].
    pub(super) unsafe fn set_queue_next(ptr: NonNull<Header>, next: Option<NonNull<Header>>) {
        // SAFETY: see above.
        unsafe { *ptr.as_ref().queue_next.get() = next };
    }

    fn lock_awaiter(&self) {
        while self
            .awaiter_locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
    }

    fn unlock_awaiter(&self) {
        self.awaiter_locked.store(false, Ordering::Release);
    }

    /// Runs `f` on the join waker slot under its lock. `f` must not clone,
    /// wake or drop a waker (only move them).
    fn with_awaiter<R>(&self, f: impl FnOnce(&mut Option<Waker>) -> R) -> R {
        self.lock_awaiter();
        // SAFETY: the flag gives exclusive access to the slot.
        let r = f(unsafe { &mut *self.awaiter.get() });
        self.unlock_awaiter();
        r
    }

    fn take_awaiter(&self) -> Option<Waker> {
        self.with_awaiter(Option::take)
    }
}

/// The permission to run a task once: a reference plus the `SCHEDULED`
/// flag. Dropping it unrun cancels the task.
pub(crate) struct Runnable {
    ptr: NonNull<Header>,
}

// SAFETY: the cell's future and output are `Send` (`allocate`'s bounds),
// the header is `Sync` (atomics, the lock-guarded slot, `TaskMeta`), and a
// Runnable is the only way to reach the stage while it lives.
unsafe impl Send for Runnable {}

impl Runnable {
    /// The task cell's address (its id in trace events).
    #[cfg(feature = "tracing")]
    pub(crate) fn addr(&self) -> usize {
        self.ptr.as_ptr() as usize
    }

    /// The task's metadata.
    pub(crate) fn metadata(&self) -> &TaskMeta {
        // SAFETY: our reference keeps the cell alive.
        &unsafe { self.ptr.as_ref() }.meta
    }

    /// Gives up the Runnable as a pointer (for an intrusive queue).
    pub(super) fn into_raw(self) -> NonNull<Header> {
        ManuallyDrop::new(self).ptr
    }

    /// # Safety
    ///
    /// `ptr` came from [`Runnable::into_raw`] and is turned back only once.
    pub(super) unsafe fn from_raw(ptr: NonNull<Header>) -> Runnable {
        Runnable { ptr }
    }

    /// A reference to the task that lives until the guard is dropped (for a
    /// caller that hands the Runnable over and still needs the metadata).
    pub(super) fn keep_alive(&self) -> KeepAlive {
        // SAFETY: our reference keeps the cell alive.
        unsafe { self.ptr.as_ref() }.state.add_ref();
        KeepAlive { ptr: self.ptr }
    }

    /// Polls the task once (see the module docs).
    pub(crate) fn run(self) {
        let this = ManuallyDrop::new(self);
        // SAFETY: we hold the Runnable, whose reference `run` takes over.
        unsafe { ((this.ptr.as_ref()).vtable.run)(this.ptr) }
    }
}

impl Drop for Runnable {
    fn drop(&mut self) {
        // SAFETY: our reference keeps the cell alive; `finish` releases it.
        let header = unsafe { self.ptr.as_ref() };
        header.state.start_run();
        // SAFETY: RUNNING with the Runnable held: the stage is ours.
        unsafe {
            (header.vtable.drop_stage)(self.ptr);
            finish(self.ptr);
        }
    }
}

/// A bare reference to a task (see [`Runnable::keep_alive`]).
pub(super) struct KeepAlive {
    ptr: NonNull<Header>,
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        // SAFETY: our reference keeps the cell alive until released here.
        let header = unsafe { self.ptr.as_ref() };
        if header.state.release() {
            // SAFETY: that was the last reference.
            unsafe { (header.vtable.dealloc)(self.ptr) };
        }
    }
}

/// The `JoinHandle`'s reference: the right to the task's output.
pub(super) struct JoinRef {
    ptr: NonNull<Header>,
}

// SAFETY: as for `Runnable`; the output is only moved out through `&mut`.
unsafe impl Send for JoinRef {}
// SAFETY: `&JoinRef` only reads the state and the metadata.
unsafe impl Sync for JoinRef {}

impl JoinRef {
    pub(super) fn metadata(&self) -> &TaskMeta {
        // SAFETY: our reference keeps the cell alive.
        &unsafe { self.ptr.as_ref() }.meta
    }

    fn header(&self) -> &Header {
        // SAFETY: our reference keeps the cell alive.
        unsafe { self.ptr.as_ref() }
    }

    #[inline]
    pub(super) fn is_complete(&self) -> bool {
        self.header().state.load() & COMPLETE != 0
    }

    /// Whether the task completed; registers `cx`'s waker otherwise.
    #[inline]
    pub(super) fn poll_complete(&self, cx: &mut Context<'_>) -> bool {
        self.is_complete() || self.register(cx.waker())
    }

    /// Takes the output of the completed task (`None` if it was cancelled)
    /// and gives up the handle's reference, freeing the task if it was the
    /// last — one call through the vtable for all of it.
    ///
    /// # Safety
    ///
    /// The task is complete ([`JoinRef::poll_complete`] said so), and `T`
    /// is the output type of the future the task was created with.
    pub(super) unsafe fn take_output<T>(self) -> Option<T> {
        let this = ManuallyDrop::new(self);
        let mut out: Option<T> = None;
        let take = this.header().vtable.take_output_and_release;
        // SAFETY: COMPLETE was seen (Acquire) with our HANDLE set: the output
        // is ours, and `T` is its type (caller's promise); our reference is
        // handed over (`this` is not dropped).
        unsafe { take(this.ptr, (&mut out as *mut Option<T>).cast()) };
        out
    }

    /// Stores `waker` to be woken on completion; `true` if the task
    /// completed meanwhile (the output is ready, the waker may not fire).
    fn register(&self, waker: &Waker) -> bool {
        let header = self.header();
        let same = header.with_awaiter(|slot| slot.as_ref().is_some_and(|w| w.will_wake(waker)));
        if !same {
            let new = waker.clone();
            let old = header.with_awaiter(|slot| slot.replace(new));
            drop(old);
        }
        // After the store: a completion that does not see JOIN_WAKER is
        // one this read sees (see `state`).
        header.state.set_join_waker() & COMPLETE != 0
    }
}

impl Drop for JoinRef {
    fn drop(&mut self) {
        let header = self.header();
        if header.state.load() & COMPLETE != 0 {
            // Complete while our HANDLE is set: the output is ours. Whatever
            // waker is left in the slot goes with the cell.
            // SAFETY: see above.
            unsafe { (header.vtable.drop_stage)(self.ptr) };
            if header.state.drop_handle_and_release() {
                // SAFETY: that was the last reference.
                unsafe { (header.vtable.dealloc)(self.ptr) };
            }
            return;
        }
        let prev = header.state.drop_handle();
        if prev & COMPLETE != 0 {
            // Completed meanwhile, while HANDLE was still set: ours.
            // SAFETY: see above.
            unsafe { (header.vtable.drop_stage)(self.ptr) };
        }
        // Detached: free our waker now rather than with the cell.
        drop(header.take_awaiter());
        if header.state.release() {
            // SAFETY: that was the last reference.
            unsafe { (header.vtable.dealloc)(self.ptr) };
        }
    }
}

static WAKER_VTABLE: RawWakerVTable =
    RawWakerVTable::new(waker_clone, waker_wake, waker_wake_by_ref, waker_drop);

/// A waker for the task that does not own a reference (wrap it in
/// `ManuallyDrop`).
fn waker_ref(ptr: NonNull<Header>) -> Waker {
    // SAFETY: the vtable's functions uphold the `RawWaker` contract for a
    // task cell pointer; the caller keeps the cell alive while it is used.
    unsafe { Waker::from_raw(RawWaker::new(ptr.as_ptr() as *const (), &WAKER_VTABLE)) }
}

fn header_of<'a>(data: *const ()) -> &'a Header {
    // SAFETY: every waker's data pointer is a live task cell's header (the
    // waker holds a reference, or is a borrowed one of the running task).
    unsafe { &*(data as *const Header) }
}

unsafe fn waker_clone(data: *const ()) -> RawWaker {
    header_of(data).state.add_ref();
    RawWaker::new(data, &WAKER_VTABLE)
}

unsafe fn waker_wake(data: *const ()) {
    let ptr = NonNull::from(header_of(data));
    match header_of(data).state.wake_by_val() {
        AfterWake::Schedule => super::schedule(Runnable { ptr }, false),
        AfterWake::Nothing => {}
        // SAFETY: our reference was the last.
        AfterWake::Dealloc => unsafe { (header_of(data).vtable.dealloc)(ptr) },
    }
}

unsafe fn waker_wake_by_ref(data: *const ()) {
    if header_of(data).state.wake_by_ref() == AfterWake::Schedule {
        // The waker's own reference lives through the call.
        let ptr = NonNull::from(header_of(data));
        super::schedule(Runnable { ptr }, true);
    }
}

unsafe fn waker_drop(data: *const ()) {
    let header = header_of(data);
    if header.state.release() {
        // SAFETY: that was the last reference.
        unsafe { (header.vtable.dealloc)(NonNull::from(header)) };
    }
}
