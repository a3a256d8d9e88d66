//! `IORING_OP_OPENAT`: opens a path (relative paths from the current
//! directory) and yields the new descriptor.

use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use io_uring::{opcode, squeue, types};

use crate::driver::op::OpCode;
use crate::driver::slots::{CancelledOp, Completion};

pub(crate) struct OpenAt {
    /// Heap memory the kernel reads while it resolves the path; owned until
    /// the CQE.
    path: CString,
    flags: i32,
    mode: libc::mode_t,
}

impl OpenAt {
    /// `flags` are `open(2)` flags; `O_CLOEXEC` is always added.
    pub(crate) fn new(path: CString, flags: i32, mode: libc::mode_t) -> Self {
        OpenAt {
            path,
            flags: flags | libc::O_CLOEXEC,
            mode,
        }
    }
}

impl CancelledOp for OpenAt {
    /// The open was cancelled too late: the kernel made a descriptor that no
    /// one will ever see. Close it, or it leaks.
    fn on_cqe(&mut self, completion: &Completion) {
        if let Ok(fd) = completion.result {
            // SAFETY: the kernel just created this descriptor for this op,
            // and the op's future is gone: nothing else knows the number.
            drop(unsafe { OwnedFd::from_raw_fd(fd as i32) });
        }
    }
}

impl OpCode for OpenAt {
    type Output = io::Result<OwnedFd>;

    fn sqe(&mut self) -> squeue::Entry {
        opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), self.path.as_ptr())
            .flags(self.flags)
            .mode(self.mode)
            .build()
    }

    fn complete(self, c: Completion) -> io::Result<OwnedFd> {
        let fd = c.result?;
        // SAFETY: a successful OPENAT returns a fresh descriptor owned by
        // its submitter, i.e. by us.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }
}
