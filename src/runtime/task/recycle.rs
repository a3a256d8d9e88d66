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
//! * Each class keeps at most [`MAX_CACHED_BYTES`] / class size blocks; a
//!   thread's cache is freed when the thread exits (or, if the thread-local
//!   is already gone, blocks go straight back to the system allocator).
//! * Building with `RUSTFLAGS="--cfg ringio_no_recycle"` turns recycling
//!   off, so AddressSanitizer sees every task cell freed.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::cell::{Cell, RefCell};
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

struct Cache {
    free: [Vec<NonNull<u8>>; CLASSES],
    /// This thread's remote lists, created with the first recycled cell.
    remote: Option<&'static Remote>,
}

impl Cache {
    fn remote(&mut self) -> &'static Remote {
        self.remote.get_or_insert_with(|| {
            let spare = SPARE_REMOTES
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop();
            match spare {
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
            }
        })
    }

    /// Moves the blocks other threads gave back into the local list.
    fn take_remote(&mut self, class: usize) {
        let Some(remote) = self.remote else { return };
        let mut p = remote.heads[class].swap(ptr::null_mut(), Ordering::Acquire);
        let mut n = 0;
        while !p.is_null() {
            // SAFETY: every block on the list was pushed by `release` with
            // its link written first (Release push, Acquire swap).
            let next = unsafe { p.cast::<*mut u8>().read() };
            // SAFETY: blocks on the list are non-null.
            self.free[class].push(unsafe { NonNull::new_unchecked(p) });
            p = next;
            n += 1;
        }
        if n > 0 {
            remote.counts[class].fetch_sub(n, Ordering::Relaxed);
        }
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        if let Some(remote) = self.remote {
            for class in 0..CLASSES {
                let mut p = remote.heads[class].swap(DEAD, Ordering::Acquire);
                let mut n = 0;
                while !p.is_null() {
                    // SAFETY: as in `take_remote`; the list is ours now.
                    let next = unsafe { p.cast::<*mut u8>().read() };
                    // SAFETY: a block of this class, nobody else's.
                    unsafe { dealloc(p, class_layout(class)) };
                    p = next;
                    n += 1;
                }
                remote.counts[class].fetch_sub(n, Ordering::Relaxed);
            }
            SPARE_REMOTES
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(remote);
        }
        for (i, class) in self.free.iter_mut().enumerate() {
            let layout = class_layout(i);
            for p in class.drain(..) {
                // SAFETY: every cached block was allocated with its class
                // layout and is owned by this cache alone.
                unsafe { dealloc(p.as_ptr(), layout) };
            }
        }
    }
}

thread_local! {
    static CACHE: RefCell<Cache> = const {
        RefCell::new(Cache {
            free: [const { Vec::new() }; CLASSES],
            remote: None,
        })
    };
    /// The address of this thread's `Remote` once created (a plain copy,
    /// readable without borrowing `CACHE`, and still after it is gone).
    static HOME: Cell<usize> = const { Cell::new(0) };
}

/// The calling thread's remote lists, as a token recorded with each cell
/// so that [`release`] can send the block home; 0 if they cannot be made
/// (thread-locals being torn down: such blocks go to the system allocator).
#[inline]
pub(super) fn home() -> usize {
    let known = HOME.try_with(Cell::get).unwrap_or(0);
    if known != 0 {
        return known;
    }
    let made = CACHE
        .try_with(|c| c.borrow_mut().remote() as *const Remote as usize)
        .unwrap_or(0);
    let _ = HOME.try_with(|h| h.set(made));
    made
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

/// Memory for one cell of `layout` (size non-zero).
#[inline]
pub(super) fn allocate(layout: Layout) -> NonNull<u8> {
    let real = match class_of(layout) {
        Some(class) => {
            let reused = CACHE
                .try_with(|c| {
                    let mut c = c.borrow_mut();
                    if c.free[class].is_empty() {
                        c.take_remote(class);
                    }
                    c.free[class].pop()
                })
                .ok()
                .flatten();
            if let Some(p) = reused {
                return p;
            }
            class_layout(class)
        }
        None => layout,
    };
    // SAFETY: `real` has a non-zero size (a task cell has a header).
    let p = unsafe { alloc(real) };
    NonNull::new(p).unwrap_or_else(|| handle_alloc_error(real))
}

/// Gives back the memory of a cell of `layout` from [`allocate`].
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
    let here = home != 0 && HOME.try_with(Cell::get).is_ok_and(|h| h == home);
    // `Some(kept)` when freed on its home thread, `None` otherwise.
    let local = here
        .then(|| {
            let cap = CAPS[class];
            CACHE
                .try_with(|c| {
                    let list = &mut c.borrow_mut().free[class];
                    let room = list.len() < cap;
                    if room {
                        list.push(p);
                    }
                    room
                })
                .ok()
        })
        .flatten();
    let kept = match local {
        Some(kept) => kept,
        // SAFETY: `home` is 0 or a leaked `Remote`, and the block is ours.
        None => unsafe { send_home(p, class, home) },
    };
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
        CACHE.with(|c| c.borrow().free[class].len())
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
        let a = allocate(layout);
        // SAFETY: from `allocate(layout)`, never used.
        unsafe { release(a, layout, home()) };
        assert_eq!(cached(3), before + 1);
        assert_eq!(allocate(layout), a, "the block just freed comes back");
        let cap = CAPS[3];
        assert_eq!(cap, MAX_CACHED_BYTES / 256);
        let blocks: Vec<_> = (0..cap + 10).map(|_| allocate(layout)).collect();
        for p in blocks {
            // SAFETY: as above.
            unsafe { release(p, layout, home()) };
        }
        assert_eq!(cached(3), cap);
        // SAFETY: `a` is ours again (it was handed out by the allocate above).
        unsafe { release(a, layout, home()) };
        assert_eq!(cached(3), cap);
    }

    #[test]
    fn large_or_overaligned_cells_bypass_the_cache() {
        let layout = Layout::from_size_align(4096, 64).unwrap();
        let p = allocate(layout);
        assert_eq!(p.as_ptr() as usize % 64, 0);
        // SAFETY: from `allocate(layout)`.
        unsafe { release(p, layout, home()) };
    }

    #[test]
    fn a_block_freed_on_another_thread_goes_home() {
        if cfg!(ringio_no_recycle) {
            return;
        }
        let layout = Layout::from_size_align(100, 8).unwrap(); // class 1
                                                               // Empty this thread's class-1 list so the next allocation must
                                                               // look at the remote list.
        let drained: Vec<_> = CACHE.with(|c| c.borrow_mut().free[1].drain(..).collect());
        let p = allocate(layout);
        let home = home();
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
        assert_eq!(allocate(layout), p, "the block came back home");
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
            let p = allocate(layout);
            (p.as_ptr() as usize, home())
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
