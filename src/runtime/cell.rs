//! [`ModeLock`]: state that a multi-threaded context guards with a mutex and
//! a single-threaded context's owner thread touches without one.
//!
//! # Invariants
//!
//! * Multi-threaded mode: a real `std::sync::Mutex<()>` is taken for every
//!   access; the value is only touched while that guard lives.
//! * Single-threaded mode: no lock. The caller must be the context's owner
//!   thread — the one whose run frame ([`crate::runtime::frame`]) names the
//!   context; only one thread can hold such a frame at a time because
//!   `run`/`poll`/`block_on` take the context's runner lock first. That
//!   proof is checked by [`crate::runtime::frame::is_running`]
//!   before [`ModeLock::lock_unchecked`] is called (or
//!   [`ModeLock::borrow_unlocked`], for a lock known to be in this mode).
//! * Re-entrancy (a second guard on the same thread while one lives) would
//!   alias `&mut`; the `borrowed` flag turns it into a panic naming the lock.
//!   Callers avoid it by never running wakers or user code under a guard.

use std::cell::{Cell, UnsafeCell};
use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, MutexGuard};

pub(crate) struct ModeLock<T> {
    name: &'static str,
    mutex: Option<Mutex<()>>,
    borrowed: Cell<bool>,
    value: UnsafeCell<T>,
}

// SAFETY: access to `value` and `borrowed` is serialised either by `mutex`
// (multi-threaded mode) or by the single-owner-thread rule that callers of
// `lock_unchecked` uphold; so sharing the lock between threads only ever
// moves `T` between threads, which `T: Send` permits.
unsafe impl<T: Send> Sync for ModeLock<T> {}
// SAFETY: as above; the lock owns its `T`.
unsafe impl<T: Send> Send for ModeLock<T> {}

impl<T> ModeLock<T> {
    pub(crate) fn new(name: &'static str, locking: bool, value: T) -> Self {
        Self {
            name,
            mutex: locking.then(|| Mutex::new(())),
            borrowed: Cell::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Whether this lock uses a real mutex (multi-threaded mode).
    pub(crate) fn is_locking(&self) -> bool {
        self.mutex.is_some()
    }

    /// Locks (multi-threaded) or borrows (single-threaded).
    ///
    /// # Safety
    ///
    /// In single-threaded mode (`!is_locking()`), the calling thread must be
    /// the context's current owner thread, and no other thread may hold that
    /// role until the guard is dropped.
    #[inline]
    pub(crate) unsafe fn lock_unchecked(&self) -> ModeGuard<'_, T> {
        let mutex = self
            .mutex
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()));
        if self.borrowed.replace(true) {
            panic!("ringio: re-entrant access to the {} state", self.name);
        }
        ModeGuard {
            lock: self,
            _mutex: mutex,
        }
    }
}

impl<T> ModeLock<T> {
    /// [`ModeLock::lock_unchecked`] for a lock the caller knows was made in
    /// single-threaded mode (a single-threaded context's own queue): the
    /// borrow flag only, no look at the mode.
    ///
    /// # Safety
    ///
    /// `!is_locking()`, and the calling thread is the context's current
    /// owner thread, as for [`ModeLock::lock_unchecked`].
    #[inline]
    pub(crate) unsafe fn borrow_unlocked(&self) -> ModeGuard<'_, T> {
        debug_assert!(self.mutex.is_none(), "{} is a locking ModeLock", self.name);
        if self.borrowed.replace(true) {
            panic!("ringio: re-entrant access to the {} state", self.name);
        }
        ModeGuard {
            lock: self,
            _mutex: None,
        }
    }

    /// Multi-threaded mode only: the guard if the mutex is free right now.
    pub(crate) fn try_lock(&self) -> Option<ModeGuard<'_, T>> {
        let mutex = self.mutex.as_ref()?;
        let guard = match mutex.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        self.borrowed.set(true);
        Some(ModeGuard {
            lock: self,
            _mutex: Some(guard),
        })
    }
}

pub(crate) struct ModeGuard<'a, T> {
    lock: &'a ModeLock<T>,
    _mutex: Option<MutexGuard<'a, ()>>,
}

impl<T> Deref for ModeGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the guard proves exclusive access (see the module docs).
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for ModeGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves exclusive access (see the module docs).
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for ModeGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // Cleared before the mutex guard (a later field) is released.
        self.lock.borrowed.set(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locking_mode_serialises_threads() {
        let l = std::sync::Arc::new(ModeLock::new("test", true, 0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let l = l.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        // SAFETY: locking mode; no owner rule applies.
                        *unsafe { l.lock_unchecked() } += 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // SAFETY: locking mode.
        assert_eq!(*unsafe { l.lock_unchecked() }, 40_000);
    }

    #[test]
    #[should_panic(expected = "re-entrant access to the test state")]
    fn reentrancy_is_a_panic_not_aliasing() {
        let l = ModeLock::new("test", false, 0u32);
        // SAFETY: this thread is the only one that ever touches `l`.
        let _a = unsafe { l.lock_unchecked() };
        // SAFETY: as above; this second borrow must panic.
        let _b = unsafe { l.lock_unchecked() };
    }
}
