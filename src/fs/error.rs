//! [`PathError`]: the path (and operation) an error from a path operation
//! is about.

use std::error::Error;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// The payload of every `io::Error` returned by a `ringio::fs` operation
/// that names a path: the operation, the path(s), and the underlying error.
///
/// The outer `io::Error` keeps the underlying error's
/// [`kind`](io::Error::kind); its [`raw_os_error`](io::Error::raw_os_error)
/// is `None` (a std limitation of errors that carry a message), so reach
/// the OS error code with [`super::raw_os_error`] or through
/// [`io_error`](PathError::io_error):
///
/// ```
/// # let ctx = ringio::IoContext::new().unwrap();
/// # ctx.block_on(async {
/// let err = ringio::fs::File::open("/no/such/file").await.unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
/// assert!(err.to_string().contains("/no/such/file"));
/// assert_eq!(ringio::fs::raw_os_error(&err), Some(libc::ENOENT));
/// let detail = err.get_ref().unwrap().downcast_ref::<ringio::fs::PathError>().unwrap();
/// assert_eq!(detail.path(), std::path::Path::new("/no/such/file"));
/// # });
/// ```
#[derive(Debug)]
pub struct PathError {
    operation: &'static str,
    path: PathBuf,
    to: Option<PathBuf>,
    source: io::Error,
}

impl PathError {
    /// What was attempted: `"open"`, `"read"`, `"rename"`, ...
    pub fn operation(&self) -> &str {
        self.operation
    }

    /// The path the operation was about (for a rename, its source).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A rename's destination.
    pub fn to(&self) -> Option<&Path> {
        self.to.as_deref()
    }

    /// The underlying error, with its `raw_os_error`.
    pub fn io_error(&self) -> &io::Error {
        &self.source
    }
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.operation, self.path.display())?;
        if let Some(to) = &self.to {
            write!(f, " -> {}", to.display())?;
        }
        write!(f, ": {}", self.source)
    }
}

impl Error for PathError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.source)
    }
}

/// Wraps `e` with the operation and path, keeping its kind.
pub(crate) fn with_path(operation: &'static str, path: &Path, e: io::Error) -> io::Error {
    wrap(operation, path, None, e)
}

/// As [`with_path`], for an operation on two paths.
pub(crate) fn with_paths(
    operation: &'static str,
    from: &Path,
    to: &Path,
    e: io::Error,
) -> io::Error {
    wrap(operation, from, Some(to), e)
}

fn wrap(operation: &'static str, path: &Path, to: Option<&Path>, e: io::Error) -> io::Error {
    if e.get_ref().is_some_and(|inner| inner.is::<PathError>()) {
        return e; // already names its path (e.g. `read` of a file `open` failed)
    }
    io::Error::new(
        e.kind(),
        PathError {
            operation,
            path: path.to_path_buf(),
            to: to.map(Path::to_path_buf),
            source: e,
        },
    )
}

/// The OS error code of `e`, also when `ringio::fs` wrapped it in a
/// [`PathError`].
pub fn raw_os_error(e: &io::Error) -> Option<i32> {
    e.raw_os_error().or_else(|| {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<PathError>())
            .and_then(|p| p.source.raw_os_error())
    })
}
