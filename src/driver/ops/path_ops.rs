//! Operations on paths alone (relative paths from the current directory):
//! `IORING_OP_UNLINKAT`, `IORING_OP_RENAMEAT`, `IORING_OP_MKDIRAT`. Each
//! owns its path strings (heap memory) until the CQE; none produces
//! anything that a cancelled op would have to release.

use std::ffi::CString;
use std::io;

use io_uring::{opcode, squeue, types};

use crate::driver::op::OpCode;
use crate::driver::slots::{CancelledOp, Completion};

const CWD: types::Fd = types::Fd(libc::AT_FDCWD);

/// `unlinkat(2)`: removes a file, or (`dir`) an empty directory.
pub(crate) struct Unlink {
    path: CString,
    dir: bool,
}

impl Unlink {
    pub(crate) fn new(path: CString, dir: bool) -> Self {
        Unlink { path, dir }
    }
}

impl CancelledOp for Unlink {}

impl OpCode for Unlink {
    type Output = io::Result<()>;

    fn sqe(&mut self) -> squeue::Entry {
        let flags = if self.dir { libc::AT_REMOVEDIR } else { 0 };
        opcode::UnlinkAt::new(CWD, self.path.as_ptr())
            .flags(flags)
            .build()
    }

    fn complete(self, c: Completion) -> io::Result<()> {
        c.result.map(|_| ())
    }
}

/// `renameat2(2)` without flags: `to` is replaced if it exists.
pub(crate) struct Rename {
    from: CString,
    to: CString,
}

impl Rename {
    pub(crate) fn new(from: CString, to: CString) -> Self {
        Rename { from, to }
    }
}

impl CancelledOp for Rename {}

impl OpCode for Rename {
    type Output = io::Result<()>;

    fn sqe(&mut self) -> squeue::Entry {
        opcode::RenameAt::new(CWD, self.from.as_ptr(), CWD, self.to.as_ptr()).build()
    }

    fn complete(self, c: Completion) -> io::Result<()> {
        c.result.map(|_| ())
    }
}

/// `mkdirat(2)`.
pub(crate) struct MkDir {
    path: CString,
    mode: libc::mode_t,
}

impl MkDir {
    pub(crate) fn new(path: CString, mode: libc::mode_t) -> Self {
        MkDir { path, mode }
    }
}

impl CancelledOp for MkDir {}

impl OpCode for MkDir {
    type Output = io::Result<()>;

    fn sqe(&mut self) -> squeue::Entry {
        opcode::MkDirAt::new(CWD, self.path.as_ptr())
            .mode(self.mode)
            .build()
    }

    fn complete(self, c: Completion) -> io::Result<()> {
        c.result.map(|_| ())
    }
}
