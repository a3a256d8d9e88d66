//! `IORING_OP_STATX`: file status, of an open descriptor or of a path.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue, types};

use crate::driver::op::OpCode;
use crate::driver::slots::{CancelledOp, Completion};

/// What to stat.
pub(crate) enum StatxTarget {
    /// An open descriptor (`AT_EMPTY_PATH`), kept open by the caller's
    /// handle while the op's future is alive. A dropped future leaves the
    /// op in flight; if the fd is closed and its number reused meanwhile,
    /// the late op stats another file into this op's buffer, which is then
    /// discarded unseen: STATX only reads.
    Fd(RawFd),
    /// A path from the current directory; `follow` follows a final symlink.
    Path { path: CString, follow: bool },
}

pub(crate) struct Statx {
    target: StatxTarget,
    /// Where the kernel writes; heap memory owned until the CQE.
    buf: Box<libc::statx>,
}

/// Everything `Metadata` reports.
const MASK: u32 = libc::STATX_BASIC_STATS | libc::STATX_BTIME;

impl Statx {
    pub(crate) fn new(target: StatxTarget) -> Self {
        Statx {
            target,
            // SAFETY: `statx` is a plain C struct of integers, for which
            // all-zero bytes are a valid value.
            buf: Box::new(unsafe { std::mem::zeroed() }),
        }
    }
}

impl CancelledOp for Statx {}

impl OpCode for Statx {
    type Output = io::Result<libc::statx>;

    fn sqe(&mut self) -> squeue::Entry {
        const EMPTY: &CStr = c"";
        let (dirfd, path, flags) = match &self.target {
            StatxTarget::Fd(fd) => (*fd, EMPTY.as_ptr(), libc::AT_EMPTY_PATH),
            StatxTarget::Path { path, follow } => (
                libc::AT_FDCWD,
                path.as_ptr(),
                if *follow {
                    0
                } else {
                    libc::AT_SYMLINK_NOFOLLOW
                },
            ),
        };
        let buf: *mut libc::statx = &mut *self.buf;
        opcode::Statx::new(types::Fd(dirfd), path, buf.cast::<types::statx>())
            .flags(flags | libc::AT_STATX_SYNC_AS_STAT)
            .mask(MASK)
            .build()
    }

    fn complete(self, c: Completion) -> io::Result<libc::statx> {
        c.result?;
        Ok(*self.buf)
    }
}
