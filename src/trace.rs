//! Tracing behind the `tracing` feature: the runtime's events, target
//! `ringio`, level TRACE. Without the feature the macro expands to nothing
//! (its arguments are not even evaluated), so the hot paths pay nothing.
//!
//! | event (message) | fields | where |
//! |---|---|---|
//! | `spawn` | `task` (the task cell's address) | a task is created |
//! | span `poll` | `task` | around each poll of a task |
//! | `submit` | `key` (op slot), `opcode`, `multishot` | an op's SQE is queued |
//! | `complete` | `key`, `res`, `more` | a CQE is dispatched to its op |
//! | `cancel` | `key` | an `ASYNC_CANCEL` is queued for an op |
//! | `wait` | `timeout_us` (absent: none) | a runner waits in the kernel |
//! | `timers` | `fired` | an expiry fired timers |

/// `tracing::trace!(target: "ringio", ...)` with the feature, else nothing.
#[cfg(feature = "tracing")]
macro_rules! trace_event {
    ($($arg:tt)*) => {
        ::tracing::trace!(target: "ringio", $($arg)*)
    };
}

/// `tracing::trace!(target: "ringio", ...)` with the feature, else nothing.
#[cfg(not(feature = "tracing"))]
macro_rules! trace_event {
    ($($arg:tt)*) => {};
}

pub(crate) use trace_event;
