//! [`JoinError`]: why a task produced no output.

use std::any::Any;
use std::fmt;
use std::sync::Mutex;

/// Why a task produced no output.
pub struct JoinError {
    repr: Repr,
}

enum Repr {
    Cancelled,
    // Mutex only to make JoinError Sync (the payload is Send, not Sync);
    // boxed so a `Result<T, JoinError>` stays small (one pointer of error).
    Panic(Box<Mutex<Box<dyn Any + Send + 'static>>>),
}

impl JoinError {
    pub(super) fn cancelled() -> Self {
        JoinError {
            repr: Repr::Cancelled,
        }
    }

    pub(super) fn panic(payload: Box<dyn Any + Send + 'static>) -> Self {
        JoinError {
            repr: Repr::Panic(Box::new(Mutex::new(payload))),
        }
    }

    /// The task was aborted or dropped by shutdown.
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, Repr::Cancelled)
    }

    /// The task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, Repr::Panic(_))
    }

    /// The panic payload, to resume the panic with
    /// `std::panic::resume_unwind`.
    ///
    /// # Panics
    ///
    /// If the error is not a panic.
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        self.try_into_panic()
            .expect("ringio: JoinError::into_panic on a cancellation")
    }

    /// The panic payload, or the error itself if it is not a panic.
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, JoinError> {
        match self.repr {
            Repr::Panic(p) => Ok(p.into_inner().unwrap_or_else(|e| e.into_inner())),
            Repr::Cancelled => Err(self),
        }
    }

    fn panic_message(&self) -> Option<String> {
        let Repr::Panic(p) = &self.repr else {
            return None;
        };
        let p = p.lock().unwrap_or_else(|e| e.into_inner());
        Some(
            p.downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "Box<dyn Any>".to_string()),
        )
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.panic_message() {
            None => f.write_str("task was cancelled"),
            Some(msg) => write!(f, "task panicked: {msg}"),
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.panic_message() {
            None => f.write_str("JoinError::Cancelled"),
            Some(msg) => write!(f, "JoinError::Panic({msg:?})"),
        }
    }
}

impl std::error::Error for JoinError {}

impl From<JoinError> for std::io::Error {
    fn from(e: JoinError) -> std::io::Error {
        std::io::Error::other(e)
    }
}
