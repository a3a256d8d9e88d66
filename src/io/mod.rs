//! Ring-level I/O primitives: a no-op round trip and pipes.
//!
//! Reads and writes take their buffer by value and give it back with the
//! result (see [`crate::buf`]).

mod pipe;

use std::io;

use crate::driver::op::Op;
use crate::driver::ops::nop::Nop;

pub use pipe::{pipe, PipeReader, PipeWriter};

/// One `IORING_OP_NOP` round trip through the ring of the context running
/// this thread: completes when the kernel has posted its CQE. Useful to
/// measure ring overhead, or to yield until the next ring pass.
///
/// ```
/// # let ctx = ringio::IoContext::new().unwrap();
/// ctx.block_on(async { ringio::io::nop().await }).unwrap();
/// ```
pub async fn nop() -> io::Result<()> {
    Op::new(Nop).await
}
