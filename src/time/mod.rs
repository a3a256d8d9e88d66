//! Time: sleeps, timeouts, intervals and Asio-style timers.
//!
//! Timers live in one structure per [`IoContext`](crate::IoContext) (a
//! hierarchical timing wheel in front of a small 4-ary heap for the current
//! tick: arm and cancel are O(1), see `store`); the thread waiting in the
//! kernel sleeps exactly until the nearest deadline through the
//! `io_uring_enter` timeout argument — no timeout SQE per timer — and a
//! timer never fires before its deadline.

mod clock;
mod interval;
pub(crate) mod service;
mod sleep;
pub(crate) mod store;
mod timeout;
mod timer;

pub use interval::{interval, interval_at, Interval};
pub(crate) use sleep::deadline_after;
pub use sleep::{sleep, sleep_until, Sleep};
pub use timeout::{timeout, timeout_at, Elapsed, Timeout};
pub use timer::{Timer, Wait};
