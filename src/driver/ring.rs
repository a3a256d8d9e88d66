//! Ring set-up: the flags each mode asks for, and errors that say what to do.
//!
//! Multi-threaded contexts get a plain ring (any thread may submit or wait;
//! completions are delivered by task work with `TWA_SIGNAL`, so a runner that
//! sleeps on a condition variable still has its completions posted).
//!
//! Single-threaded contexts get `SINGLE_ISSUER | DEFER_TASKRUN |
//! TASKRUN_FLAG`, created `R_DISABLED` so the ring is bound to the thread that
//! first drives it (`IORING_REGISTER_ENABLE_RINGS`), not to the thread that
//! called `build()`. `TASKRUN_FLAG` makes the kernel raise `IORING_SQ_TASKRUN`
//! when deferred completions wait, so the scheduler can skip
//! `io_uring_enter` entirely when nothing is pending. With SQPOLL the kernel
//! refuses `DEFER_TASKRUN`, so it (and `TASKRUN_FLAG`) is dropped.

use std::fmt;
use std::io;
use std::time::Duration;

use io_uring::IoUring;

/// Largest SQ size the kernel accepts (`IORING_MAX_ENTRIES`).
pub(crate) const MAX_ENTRIES: u32 = 32_768;

/// What the builder chose.
#[derive(Debug, Clone)]
pub(crate) struct RingConfig {
    pub(crate) entries: u32,
    pub(crate) single_threaded: bool,
    pub(crate) sqpoll: Option<(Duration, Option<usize>)>,
    /// How long a runner polls the ring before it sleeps in the kernel
    /// (zero: never; see `Builder::spin_before_park`).
    pub(crate) spin_before_park: Duration,
}

impl RingConfig {
    /// Whether the ring is created `DEFER_TASKRUN` (single-threaded, no
    /// SQPOLL): completions are then posted only inside the owner's enters.
    pub(crate) fn defer_taskrun(&self) -> bool {
        self.single_threaded && self.sqpoll.is_none()
    }

    /// Rejects sizes the kernel would refuse, before any syscall.
    pub(crate) fn validate(&self) -> io::Result<()> {
        if self.entries == 0 || self.entries > MAX_ENTRIES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "ringio: Builder::entries({}) is out of range: the submission queue holds 1..={MAX_ENTRIES} entries",
                    self.entries
                ),
            ));
        }
        if let Some((idle, _)) = self.sqpoll {
            if idle.as_millis() > u128::from(u32::MAX) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "ringio: Builder::sqpoll idle time does not fit in u32 milliseconds",
                ));
            }
        }
        Ok(())
    }
}

/// Creates the ring for `cfg`.
pub(crate) fn create(cfg: &RingConfig) -> io::Result<IoUring> {
    cfg.validate()?;
    let mut b = IoUring::builder();
    b.setup_cqsize(cfg.entries.saturating_mul(4).min(2 * MAX_ENTRIES));
    b.setup_submit_all();
    if cfg.single_threaded {
        b.setup_single_issuer();
        b.setup_r_disabled();
    }
    if cfg.defer_taskrun() {
        b.setup_defer_taskrun();
        b.setup_taskrun_flag();
    }
    if let Some((idle, cpu)) = cfg.sqpoll {
        b.setup_sqpoll(idle.as_millis() as u32);
        if let Some(cpu) = cpu {
            let cpu = u32::try_from(cpu).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "ringio: sqpoll cpu out of range",
                )
            })?;
            b.setup_sqpoll_cpu(cpu);
        }
    }
    b.build(cfg.entries)
        .map_err(|e| explain_setup_error(e, cfg))
}

/// An `io_uring_setup` failure with its cause and fix spelled out.
#[derive(Debug)]
pub(crate) struct SetupError {
    errno: i32,
    message: String,
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (os error {})", self.message, self.errno)
    }
}

impl std::error::Error for SetupError {}

pub(crate) fn explain_setup_error(e: io::Error, cfg: &RingConfig) -> io::Error {
    let Some(errno) = e.raw_os_error() else {
        return e;
    };
    let message = match errno {
        libc::EPERM | libc::EACCES => "ringio: io_uring_setup refused: io_uring is disabled on this host \
             (sysctl kernel.io_uring_disabled is 1 or 2, or a seccomp filter such as a container's \
             default profile blocks io_uring_setup). Fix: `sysctl -w kernel.io_uring_disabled=0`, \
             or run the container with a seccomp profile that allows io_uring_setup/enter/register"
            .to_string(),
        libc::ENOSYS => "ringio: io_uring_setup is not implemented by this kernel \
             (needs Linux 6.1+ built with CONFIG_IO_URING=y)"
            .to_string(),
        libc::ENOMEM => format!(
            "ringio: io_uring_setup could not allocate a {}-entry ring: the locked-memory limit \
             (RLIMIT_MEMLOCK, `ulimit -l`) is too low for this kernel's ring accounting. \
             Fix: raise `ulimit -l` (or LimitMEMLOCK= in systemd), or ask for fewer entries",
            cfg.entries
        ),
        libc::EINVAL => format!(
            "ringio: io_uring_setup rejected the ring parameters (entries={}, single_threaded={}, sqpoll={}): \
             SINGLE_ISSUER/DEFER_TASKRUN need Linux 6.1+, SQPOLL needs 5.11+ and a valid CPU. \
             Fix: upgrade the kernel, or build without single_threaded/sqpoll",
            cfg.entries,
            cfg.single_threaded,
            cfg.sqpoll.is_some()
        ),
        libc::EMFILE | libc::ENFILE => {
            "ringio: io_uring_setup needs a file descriptor and the process (EMFILE) or system \
             (ENFILE) has none left. Fix: close descriptors or raise `ulimit -n`"
                .to_string()
        }
        _ => return e,
    };
    io::Error::new(e.kind(), SetupError { errno, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(entries: u32) -> RingConfig {
        RingConfig {
            entries,
            single_threaded: false,
            sqpoll: None,
            spin_before_park: Duration::ZERO,
        }
    }

    #[test]
    fn entries_out_of_range_are_invalid_input() {
        for n in [0, MAX_ENTRIES + 1, u32::MAX] {
            let Err(e) = create(&cfg(n)) else {
                panic!("entries({n}) accepted")
            };
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{n}");
            assert!(e.to_string().contains("entries"), "{e}");
        }
    }

    #[test]
    fn setup_errors_name_cause_and_fix() {
        let e = explain_setup_error(io::Error::from_raw_os_error(libc::EPERM), &cfg(8));
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert!(e.to_string().contains("kernel.io_uring_disabled"), "{e}");
        let e = explain_setup_error(io::Error::from_raw_os_error(libc::ENOMEM), &cfg(8));
        assert!(e.to_string().contains("RLIMIT_MEMLOCK"), "{e}");
        let e = explain_setup_error(io::Error::from_raw_os_error(libc::EINVAL), &cfg(8));
        assert!(e.to_string().contains("DEFER_TASKRUN"), "{e}");
        let e = explain_setup_error(io::Error::from_raw_os_error(libc::ENOSYS), &cfg(8));
        assert!(e.to_string().contains("CONFIG_IO_URING"), "{e}");
        let other = explain_setup_error(io::Error::from_raw_os_error(libc::EIO), &cfg(8));
        assert_eq!(other.raw_os_error(), Some(libc::EIO));
    }

    #[test]
    fn rings_of_each_mode_are_created() {
        for st in [false, true] {
            let r = create(&RingConfig {
                entries: 8,
                single_threaded: st,
                sqpoll: None,
                spin_before_park: Duration::ZERO,
            })
            .unwrap();
            assert_eq!(r.params().sq_entries(), 8);
            assert_eq!(r.params().is_setup_single_issuer(), st);
        }
    }
}
