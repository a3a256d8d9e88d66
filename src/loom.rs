//! The concurrency facade: every atomic, mutex and condition variable the
//! scheduler's wake-up protocol relies on comes from here, so that
//! `RUSTFLAGS="--cfg loom" cargo test --lib loom_` swaps in
//! [loom](https://docs.rs/loom)'s model-checked versions (as tokio's
//! `src/loom/mod.rs` does).
//!
//! Only the protocol pieces that loom can run (no syscalls) go through this
//! facade: [`crate::runtime::park`] and the queues it guards. Code that also
//! talks to the kernel uses `std` directly.

#[cfg(not(loom))]
pub(crate) mod sync {
    pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};

    pub(crate) mod atomic {
        pub(crate) use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    }
}

#[cfg(loom)]
pub(crate) mod sync {
    pub(crate) use loom::sync::{Arc, Condvar, Mutex, MutexGuard};

    pub(crate) mod atomic {
        pub(crate) use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    }
}
