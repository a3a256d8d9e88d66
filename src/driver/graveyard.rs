//! Memory the kernel may still write, kept alive for the life of the process.
//!
//! When shutdown gives up waiting for an op's CQE (see `Driver::shutdown`),
//! freeing that op's buffers could let the kernel write into reused memory.
//! They are moved here instead: leaked on purpose, but still reachable, so
//! leak checkers do not report them and a debugger can find them.

use std::any::Any;
use std::sync::Mutex;

static GRAVEYARD: Mutex<Vec<Box<dyn Any + Send>>> = Mutex::new(Vec::new());

/// Keeps `memory` alive until the process exits.
pub(crate) fn bury<T: Send + ?Sized + 'static>(memory: Box<T>) {
    GRAVEYARD
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Box::new(memory));
}

/// How many allocations were buried (tests).
#[cfg(test)]
pub(crate) fn buried() -> usize {
    GRAVEYARD.lock().unwrap_or_else(|e| e.into_inner()).len()
}
