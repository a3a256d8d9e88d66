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
//! * Only a block freed on the thread that allocated it is cached (the
//!   caller passes the allocating thread's [`home`] token back). A block
//!   freed elsewhere goes back to the system allocator: caching it on the
//!   freeing thread, which in a producer/consumer pattern never allocates,
//!   halved the multi-threaded spawn rate (`io_context.multithreaded`,
//!   1 runner: 11.1 M → 6.7 M tasks/s), while the allocator's own
//!   cross-thread path keeps it.
//! * Each class keeps at most [`MAX_CACHED_BYTES`] / class size blocks; a
//!   thread's cache is freed when the thread exits (or, if the thread-local
//!   is already gone, blocks go straight back to the system allocator).
//! * Building with `RUSTFLAGS="--cfg ringio_no_recycle"` turns recycling
//!   off, so AddressSanitizer sees every task cell freed.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::cell::RefCell;
use std::ptr::NonNull;

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

struct Cache {
    free: [Vec<NonNull<u8>>; CLASSES],
}

impl Drop for Cache {
    fn drop(&mut self) {
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
        })
    };
}

/// A token of the calling thread, recorded with each cell so that
/// [`release`] caches only blocks freed where they were allocated.
#[inline]
pub(super) fn home() -> usize {
    crate::runtime::frame::thread_token()
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
                .try_with(|c| c.borrow_mut().free[class].pop())
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
    if home != self::home() {
        // SAFETY: recycled layouts are allocated as their class layout.
        unsafe { dealloc(p.as_ptr(), class_layout(class)) };
        return;
    }
    let cap = CAPS[class];
    let kept = CACHE
        .try_with(|c| {
            let mut c = c.borrow_mut();
            let list = &mut c.free[class];
            if list.len() < cap {
                list.push(p);
                true
            } else {
                false
            }
        })
        .unwrap_or(false);
    if !kept {
        // SAFETY: recycled layouts are allocated as their class layout.
        unsafe { dealloc(p.as_ptr(), class_layout(class)) };
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
    fn a_block_freed_on_another_thread_is_not_cached_there() {
        if cfg!(ringio_no_recycle) {
            return;
        }
        let layout = Layout::from_size_align(100, 8).unwrap(); // class 1
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
        assert_eq!(cached_there, 0);
    }
}
