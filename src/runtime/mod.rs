//! Runtime machinery (`pub(crate)`): the scheduler, tasks, run frames and
//! the wake-up protocol pieces. Public types live in `crate::context`.

pub(crate) mod blocking;
pub(crate) mod cell;
pub(crate) mod frame;
pub(crate) mod metrics;
pub(crate) mod park;
pub(crate) mod run_queue;
pub(crate) mod scheduler;
pub(crate) mod task;
