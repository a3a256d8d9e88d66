//! Recycling of task cell memory: each thread keeps a few freed cells per
//! size class and hands them to the next spawn of that class, so a burst of
//! short tasks costs a vector pop and push per task instead of a trip
//! through the system allocator (glibc's, whose bins hold only a handful of
//! blocks per size and then fall back to its slow path).
//!
//! # Rules
//!
//! * Only layouts of at most [`MAX_SIZE`] bytes and [`ALIGN`] alignment are
//!   recycled. Such a cell is always allocated as its whole class
//!   (`class_size` bytes, `ALIGN`-aligned), so a block can serve any cell
//!   of its class and, when a cache is full, be returned to the system
//!   allocator with the layout it was allocated with.
//! * A block freed on the thread that allocated it goes to that thread's
//!   cache. A block freed on another thread is handed back to its
//!   allocating ("home") thread through that thread's [`Remote`] lists: a
//!   lock-free stack per class (push: one CAS; the home thread takes a
//!   whole list at once with one swap, so there is no ABA). Caching such
//!   blocks on the freeing thread instead, which in a producer/consumer
//!   pattern never allocates, halved the multi-threaded spawn rate
//!   (`io_context.multithreaded`, 1 runner: 11.1 M → 6.7 M tasks/s), and
//!   so does glibc with a large per-thread cache; returning memory to the
//!   producer is what an allocator like mimalloc does.
//! * A remote list holds at most the class's cap of blocks (counted, so
//!   a producer that stops allocating does not pin memory); past that,
//!   blocks go back to the system allocator.
//! * A thread's `Remote` lives as long as the process (cells may be freed
//!   after their home thread exited). At thread exit each list is swapped
//!   for the `DEAD` sentinel and emptied, and the `Remote` is parked in
//!   `SPARE_REMOTES` for the next thread to adopt; a remote free that sees
//!   `DEAD` frees to the system allocator, so nothing is left behind, and
//!   there are never more `Remote`s than threads alive at once.
//! * Each class keeps at most [`MAX_CACHED_BYTES`] / class size blocks, as
//!   an intrusive list (a block's first word links to the next). The cache
//!   is a destructor-free thread-local (a plain thread-local address per
//!   access); an [`ExitGuard`] registered with the first recycled cell frees
//!   it when the thread exits, after which the thread caches nothing and its
//!   blocks go straight back to the system allocator.
//! * Building with `RUSTFLAGS="--cfg ringio_no_recycle"` turns recycling
//!   off, so AddressSanitizer sees every task cell freed.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::cell::Cell;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// Alignment of every recycled block.
const ALIGN: usize = 16;
/// Width of a size class.
const CLASS: usize = 64;
/// Largest recycled cell.
pub(super) const MAX_SIZE: usize = 512;
const CLASSES: usize = MAX_SIZE / CLASS;
/// Memory a thread may keep per size class.
const MAX_CACHED_BYTES: usize = 256 * 1024;

/// Blocks kept per class: [`MAX_CACHED_BYTES`] over the class size
/// (a table, so a free does no division).
const CAPS: [usize; CLASSES] = {
    let mut caps = [0; CLASSES];
    let mut i = 0;
    while i < CLASSES {
        caps[i] = MAX_CACHED_BYTES / ((i + 1) * CLASS);
        i += 1;
    }
    caps
};

/// Blocks freed by other threads for one home thread, per class: each
/// block's first word links to the next (see the module rules).
pub(super) struct Remote {
    heads: [AtomicPtr<u8>; CLASSES],
    counts: [AtomicUsize; CLASSES],
}

/// A list head meaning "the home thread has exited".
const DEAD: *mut u8 = ptr::dangling_mut::<u8>();

/// `Remote`s of exited threads, adopted by new threads (so there are never
/// more than the most threads alive at once, and all stay reachable).
static SPARE_REMOTES: std::sync::Mutex<Vec<&'static Remote>> = std::sync::Mutex::new(Vec::new());

/// This thread's cache: per class, an intrusive list of free blocks (each
/// block's first word links to the next) and its length.
///
/// A `const`-initialised thread-local without a destructor, so every access
/// is a plain thread-local address; the clean-up at thread exit is done by
/// the separate [`ExitGuard`], registered with the first recycled cell.
struct Local {
    heads: [Cell<*mut u8>; CLASSES],
    counts: [Cell<usize>; CLASSES],
    /// This thread's `Remote` (its address), 0 until made: the home token.
    home: Cell<usize>,
    state: Cell<LocalState>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum LocalState {
    /// Nothing cached yet, no exit guard registered.
    New,
    /// The exit guard is registered: blocks may be cached.
    Live,
    /// The thread is exiting (the guard ran, or could not be registered):
    /// nothing is cached any more, blocks go to the system allocator.
    Dead,
}

thread_local! {
    static LOCAL: Local = const {
        Local {
            heads: [const { Cell::new(ptr::null_mut()) }; CLASSES],
            counts: [const { Cell::new(0) }; CLASSES],
            home: Cell::new(0),
            state: Cell::new(LocalState::New),
        }
    };
    static EXIT: ExitGuard = const { ExitGuard };
}

/// Empties this thread's cache and retires its `Remote` at thread exit.
struct ExitGuard;

impl Drop for ExitGuard {
    fn drop(&mut self) {
        // `LOCAL` has no destructor: it is still usable here.
        let _ = LOCAL.try_with(|l| {
            l.state.set(LocalState::Dead);
            if let Some(remote) = l.remote() {
                for class in 0..CLASSES {
                    let p = remote.heads[class].swap(DEAD, Ordering::Acquire);
                    // SAFETY: every block on the list was pushed by
                    // `send_home` with its link written first (Release push,
                    // Acquire swap); the list is ours now.
                    let n = unsafe { free_list(p, class) };
                    remote.counts[class].fetch_sub(n, Ordering::Relaxed);
                }
                SPARE_REMOTES
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(remote);
            }
            for class in 0..CLASSES {
                let p = l.heads[class].replace(ptr::null_mut());
                l.counts[class].set(0);
                // SAFETY: the cached blocks are this thread's alone.
                unsafe { free_list(p, class) };
            }
        });
    }
}

/// Frees every block of a list of `class`; returns how many.
///
/// # Safety
///
/// `p` is null or heads a list of blocks of `class` linked through their
/// first word, owned by the caller.
unsafe fn free_list(mut p: *mut u8, class: usize) -> usize {
    let mut n = 0;
    while !p.is_null() {
        // SAFETY: see above.
        let next = unsafe { p.cast::<*mut u8>().read() };
        // SAFETY: a block of this class, allocated with its class layout.
        unsafe { dealloc(p, class_layout(class)) };
        p = next;
        n += 1;
    }
    n
}

impl Local {
    fn remote(&self) -> Option<&'static Remote> {
        let home = self.home.get();
        // SAFETY: a non-zero home is a leaked `Remote`, alive forever.
        (home != 0).then(|| unsafe { &*(home as *const Remote) })
    }

    /// Makes the cache usable (registers the exit guard, adopts or makes
    /// the remote lists); `false` if the thread is exiting.
    #[cold]
    fn start(&self) -> bool {
        if self.state.get() == LocalState::Dead || EXIT.try_with(|_| ()).is_err() {
            self.state.set(LocalState::Dead);
            return false;
        }
        let spare = SPARE_REMOTES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        let remote: &'static Remote = match spare {
            Some(remote) => {
                // Back to life: frees of cells homed at the exited thread
                // now come here, which is as good a home as any.
                for head in &remote.heads {
                    head.store(ptr::null_mut(), Ordering::Release);
                }
                remote
            }
            None => Box::leak(Box::new(Remote {
                heads: [const { AtomicPtr::new(ptr::null_mut()) }; CLASSES],
                counts: [const { AtomicUsize::new(0) }; CLASSES],
            })),
        };
        self.home.set(remote as *const Remote as usize);
        self.state.set(LocalState::Live);
        true
    }

    #[inline]
    fn live(&self) -> bool {
        self.state.get() == LocalState::Live || self.start()
    }

    /// Moves the blocks other threads gave back into the (empty) local list.
    /// Walking the list one block at a time pulls every block into this
    /// core's cache in one go, before the spawns that write them. Adopting
    /// the list whole instead (its length carried in the head word's top
    /// bits), with a prefetch one block ahead at each pop, cut the
    /// 2-runner `io_context.multithreaded` rate from 7.8 M to 5.0 M tasks/s.
    #[cold]
    fn take_remote(&self, class: usize) {
        let Some(remote) = self.remote() else { return };
        let mut p = remote.heads[class].swap(ptr::null_mut(), Ordering::Acquire);
        let mut n = 0;
        while !p.is_null() {
            // SAFETY: every block on the list was pushed by `send_home` with
            // its link written first (Release push, Acquire swap).
            let next = unsafe { p.cast::<*mut u8>().read() };
            self.push(class, p);
            p = next;
            n += 1;
        }
        if n > 0 {
            remote.counts[class].fetch_sub(n, Ordering::Relaxed);
        }
    }

    #[inline]
    fn push(&self, class: usize, p: *mut u8) {
        // SAFETY: the block is ours and at least a pointer wide; its first
        // word becomes the link.
        unsafe { p.cast::<*mut u8>().write(self.heads[class].get()) };
        self.heads[class].set(p);
        self.counts[class].set(self.counts[class].get() + 1);
    }

    #[inline]
    fn pop(&self, class: usize) -> Option<NonNull<u8>> {
        let p = NonNull::new(self.heads[class].get())?;
        // SAFETY: a cached block's first word links to the next one.
        self.heads[class].set(unsafe { p.as_ptr().cast::<*mut u8>().read() });
        self.counts[class].set(self.counts[class].get() - 1);
        Some(p)
    }
}

/// The class of `layout`, if it is recycled.
#[inline]
fn class_of(layout: Layout) -> Option<usize> {
    if cfg!(ringio_no_recycle) || layout.size() > MAX_SIZE || layout.align() > ALIGN {
        return None;
    }
    Some(layout.size().saturating_sub(1) / CLASS)
}

fn class_layout(class: usize) -> Layout {
    // Sizes are multiples of 64 up to 512 and ALIGN is a power of two.
    Layout::from_size_align((class + 1) * CLASS, ALIGN).expect("valid class layout")
}

/// Memory for one cell of `layout` (size non-zero), and the calling
/// thread's home token to record with it for [`release`] (0 if it has
/// none: thread-locals being torn down; such blocks go to the system
/// allocator).
#[inline]
pub(super) fn allocate(layout: Layout) -> (NonNull<u8>, usize) {
    let (real, home) = match class_of(layout) {
        Some(class) => {
            let found = LOCAL
                .try_with(|l| {
                    if !l.live() {
                        return (None, 0);
                    }
                    let mut p = l.pop(class);
                    if p.is_none() {
                        l.take_remote(class);
                        p = l.pop(class);
                    }
                    (p, l.home.get())
                })
                .unwrap_or((None, 0));
            if let (Some(p), home) = found {
                return (p, home);
            }
            (class_layout(class), found.1)
        }
        None => (layout, 0),
    };
    // SAFETY: `real` has a non-zero size (a task cell has a header).
    let p = unsafe { alloc(real) };
    (
        NonNull::new(p).unwrap_or_else(|| handle_alloc_error(real)),
        home,
    )
}

/// Gives back the memory of a cell of `layout` from [`allocate`], which
/// gave `home`.
///
/// # Safety
///
/// `p` came from `allocate(layout)` with this same `layout`, its contents
/// are already dropped, and nothing refers to it any more.
#[inline]
pub(super) unsafe fn release(p: NonNull<u8>, layout: Layout, home: usize) {
    let Some(class) = class_of(layout) else {
        // SAFETY: allocated with exactly `layout` (not recycled).
        unsafe { dealloc(p.as_ptr(), layout) };
        return;
    };
    let kept = LOCAL
        .try_with(|l| {
            if home != 0 && l.home.get() == home && l.state.get() == LocalState::Live {
                let room = l.counts[class].get() < CAPS[class];
                if room {
                    l.push(class, p.as_ptr());
                }
                return room;
            }
            // SAFETY: `home` is 0 or a leaked `Remote`, and the block is ours.
            unsafe { send_home(p, class, home) }
        })
        // SAFETY: as above.
        .unwrap_or_else(|_| unsafe { send_home(p, class, home) });
    if !kept {
        // SAFETY: recycled layouts are allocated as their class layout.
        unsafe { dealloc(p.as_ptr(), class_layout(class)) };
    }
}

/// Pushes a block freed on a foreign thread onto its home thread's remote
/// list; `false` if it must go to the system allocator instead (no home,
/// home thread gone, or its list full).
///
/// # Safety
///
/// `home` is 0 or the address of a (leaked, never freed) `Remote`; `p` is a
/// block of `class` that nothing else refers to.
unsafe fn send_home(p: NonNull<u8>, class: usize, home: usize) -> bool {
    if home == 0 {
        return false;
    }
    // SAFETY: see above: a `Remote` lives as long as the process.
    let remote = unsafe { &*(home as *const Remote) };
    if remote.counts[class].fetch_add(1, Ordering::Relaxed) >= CAPS[class] {
        remote.counts[class].fetch_sub(1, Ordering::Relaxed);
        return false;
    }
    let head = &remote.heads[class];
    let mut cur = head.load(Ordering::Relaxed);
    loop {
        if cur == DEAD {
            remote.counts[class].fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        // SAFETY: the block is ours and at least a pointer wide; its first
        // word becomes the link.
        unsafe { p.as_ptr().cast::<*mut u8>().write(cur) };
        match head.compare_exchange_weak(cur, p.as_ptr(), Ordering::Release, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(actual) => cur = actual,
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn cached(class: usize) -> usize {
        LOCAL.with(|l| l.counts[class].get())
    }

    #[test]
    fn classes_cover_sizes_up_to_the_limit() {
        if cfg!(ringio_no_recycle) {
            return;
        }
        let l = |size, align| Layout::from_size_align(size, align).unwrap();
        assert_eq!(class_of(l(1, 8)), Some(0));
        assert_eq!(class_of(l(64, 8)), Some(0));
        assert_eq!(class_of(l(65, 16)), Some(1));
        assert_eq!(class_of(l(512, 16)), Some(7));
        assert_eq!(class_of(l(513, 8)), None);
        assert_eq!(class_of(l(64, 32)), None);
    }

    #[test]
    fn a_freed_block_is_reused_by_its_class_and_the_cache_is_bounded() {
        if cfg!(ringio_no_recycle) {
            return;
        }
        let layout = Layout::from_size_align(200, 8).unwrap(); // class 3
        let before = cached(3);
        let (a, home) = allocate(layout);
        // SAFETY: from `allocate(layout)`, never used.
        unsafe { release(a, layout, home) };
        assert_eq!(cached(3), before + 1);
        assert_eq!(allocate(layout).0, a, "the block just freed comes back");
        let cap = CAPS[3];
        assert_eq!(cap, MAX_CACHED_BYTES / 256);
        let blocks: Vec<_> = (0..cap + 10).map(|_| allocate(layout).0).collect();
        for p in blocks {
            // SAFETY: as above.
            unsafe { release(p, layout, home) };
        }
        assert_eq!(cached(3), cap);
        // SAFETY: `a` is ours again (it was handed out by the allocate above).
        unsafe { release(a, layout, home) };
        assert_eq!(cached(3), cap);
    }

    #[test]
    fn large_or_overaligned_cells_bypass_the_cache() {
        let layout = Layout::from_size_align(4096, 64).unwrap();
        let (p, home) = allocate(layout);
        assert_eq!(p.as_ptr() as usize % 64, 0);
        assert_eq!(home, 0, "not recycled: no home recorded");
        // SAFETY: from `allocate(layout)`.
        unsafe { release(p, layout, home) };
    }

    #[test]
    fn a_block_freed_on_another_thread_goes_home() {
        if cfg!(ringio_no_recycle) {
            return;
        }
        let layout = Layout::from_size_align(100, 8).unwrap(); // class 1
                                                               // Empty this thread's class-1 list so the next allocation must
                                                               // look at the remote list.
        let drained: Vec<_> = LOCAL.with(|l| std::iter::from_fn(|| l.pop(1)).collect());
        let (p, home) = allocate(layout);
        let addr = p.as_ptr() as usize;
        let cached_there = std::thread::spawn(move || {
            let p = NonNull::new(addr as *mut u8).unwrap();
            // SAFETY: from `allocate(layout)` on the spawning thread, which
            // no longer uses it.
            unsafe { release(p, layout, home) };
            cached(1)
        })
        .join()
        .unwrap();
        assert_eq!(cached_there, 0, "not cached on the freeing thread");
        assert_eq!(allocate(layout).0, p, "the block came back home");
        for q in drained.into_iter().chain([p]) {
            // SAFETY: blocks of class 1 owned by this test.
            unsafe { release(q, layout, home) };
        }
    }

    #[test]
    fn a_block_whose_home_thread_exited_goes_to_the_system_allocator() {
        if cfg!(ringio_no_recycle) {
            return;
        }
        let layout = Layout::from_size_align(300, 8).unwrap(); // class 4
        let (addr, home) = std::thread::spawn(move || {
            let (p, home) = allocate(layout);
            (p.as_ptr() as usize, home)
        })
        .join()
        .unwrap();
        // The home thread is gone: its lists are DEAD (and stay so while
        // the spare pool is locked: no other test thread can adopt them).
        let spares = SPARE_REMOTES.lock().unwrap();
        // SAFETY: `home` is that thread's leaked `Remote`.
        let remote = unsafe { &*(home as *const Remote) };
        assert!(
            spares.iter().any(|r| ptr::eq(*r, remote)),
            "parked for reuse"
        );
        assert_eq!(remote.heads[4].load(Ordering::SeqCst), DEAD);
        let p = NonNull::new(addr as *mut u8).unwrap();
        // SAFETY: from `allocate(layout)` on the exited thread.
        unsafe { release(p, layout, home) };
        assert_eq!(remote.heads[4].load(Ordering::SeqCst), DEAD);
        assert_eq!(remote.counts[4].load(Ordering::SeqCst), 0);
        drop(spares);
    }
}
