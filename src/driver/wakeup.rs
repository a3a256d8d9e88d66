//! The wake-up eventfd: how another thread ends a runner's kernel wait.
//!
//! A multishot `POLL_ADD(POLLIN)` on the eventfd stays armed in the ring
//! (user_data [`WAKEUP_TOKEN`]); each write produces a CQE. The reaper reads
//! the eventfd back to zero on every such CQE, and if a CQE arrives without
//! `IORING_CQE_F_MORE` (the kernel ended the multishot, e.g. on CQ overflow
//! or when the thread that armed it exited) the poll is re-armed at once. A
//! write that lands while the poll is disarmed is not lost: the counter stays
//! non-zero, so the re-armed poll fires immediately.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use io_uring::{opcode, squeue, types};

/// user_data of the wake-up poll's CQEs.
pub(crate) const WAKEUP_TOKEN: u64 = u64::MAX;

#[derive(Debug)]
pub(crate) struct Wakeup {
    fd: OwnedFd,
}

impl Wakeup {
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: plain syscall; the result is checked before use.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { fd })
    }

    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The SQE that (re-)arms the multishot poll.
    pub(crate) fn arm_sqe(&self) -> squeue::Entry {
        opcode::PollAdd::new(types::Fd(self.raw_fd()), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(WAKEUP_TOKEN)
    }

    /// Ends a kernel wait on the ring (from any thread).
    pub(crate) fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our own eventfd. The only
        // possible failure is EAGAIN when the counter is saturated, in which
        // case a wake-up is already pending.
        unsafe {
            libc::write(self.raw_fd(), (&one as *const u64).cast(), 8);
        }
    }

    /// Resets the counter after a poll CQE (non-blocking; EAGAIN means
    /// another CQE's read already did it).
    pub(crate) fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64 from our own eventfd.
        unsafe {
            libc::read(self.raw_fd(), (&mut v as *mut u64).cast(), 8);
        }
    }
}
