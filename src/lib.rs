//! # ringio
//!
//! An async I/O runtime built directly on Linux io_uring.
//!
//! An [`IoContext`] owns one ring and a ready queue of tasks. Tasks that
//! start I/O push submission entries and park; the scheduler sends every
//! entry queued during a pass to the kernel in one `io_uring_enter`, reaps
//! the completions and wakes the tasks. Any number of threads may
//! [`run`](IoContext::run) one context (one waits in the kernel, the others
//! run ready tasks), or a context built
//! [`single_threaded`](Builder::single_threaded) runs lock-free on one thread
//! with `SINGLE_ISSUER | DEFER_TASKRUN`.
//!
//! Buffers are handed to the kernel by value and given back ([`buf`]);
//! dropping a future cancels its operation safely — the memory the kernel
//! may still touch stays owned until the completion arrives.
//!
//! ```
//! use std::time::Duration;
//!
//! let ctx = ringio::IoContext::new()?;
//! let answer = ctx.block_on(async {
//!     let task = ringio::spawn(async {
//!         ringio::time::sleep(Duration::from_millis(1)).await;
//!         42
//!     });
//!     task.await.unwrap()
//! });
//! assert_eq!(answer, 42);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Modules: [`time`] (sleep, timeout, interval, Asio-style `Timer`),
//! [`buf`] (owned buffers), [`io`] (pipes, ring no-op), [`net`] (TCP, UDP,
//! Unix sockets, name resolution), [`fs`] (files: positional and stream
//! I/O, metadata, path operations), [`signal`] (signal sets, `ctrl_c`).
//! Blocking work goes to a per-context thread pool with [`spawn_blocking`].

#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs, missing_debug_implementations)]

pub mod buf;
mod context;
pub(crate) mod driver;
pub mod fs;
pub mod io;
pub(crate) mod loom;
pub mod net;
pub(crate) mod runtime;
pub mod signal;
#[cfg(test)]
pub(crate) mod test_util;
pub mod time;
pub(crate) mod trace;

pub use context::{spawn, spawn_blocking, Builder, IoContext, Metrics, WorkGuard};
pub use runtime::task::{JoinError, JoinHandle};
