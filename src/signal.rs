//! Unix signals as awaitable events: [`SignalSet`] (Asio's `signal_set`)
//! and [`ctrl_c`].
//!
//! # Mechanism, and why
//!
//! A process-wide registry, a `sigaction` handler that writes the signal
//! number to a self-pipe, and one reader thread per process that hands each
//! number to every set watching it.
//!
//! * Not `signalfd`: it only sees signals that are blocked in *every*
//!   thread, and threads started before the first set (the test harness,
//!   other libraries, the user's own) cannot have their masks changed, so
//!   the default action would still kill the process in a multi-threaded
//!   program.
//! * The handler does the one thing that is async-signal-safe and cannot
//!   block: `write(2)` of one byte to a non-blocking pipe (it saves and
//!   restores `errno`). If the pipe is full (64 KiB of undelivered signals)
//!   the byte is dropped: a flood of signals coalesces, as the kernel's own
//!   pending set does.
//! * The pipe is read by a dedicated thread (`ringio-signal`, started with
//!   the first watched signal, living as long as the process), not through
//!   a ring: signals belong to the process while sets may be awaited from
//!   any number of contexts, or from none for a while; a thread blocked in
//!   `read(2)` delivers into every set at once, whether anyone waits or not,
//!   with no op to re-arm, cancel or hand over between contexts.
//!
//! A process that `fork`s without `exec` shares the pipe with its child:
//! signals caught in such a child are not supported (after `exec` the
//! handlers are reset and the close-on-exec pipe is gone, so spawning
//! commands is fine).
//!
//! # Registry protocol
//!
//! Lock order: `REGISTRY` → one set's state. Wakers are woken after both
//! are released.
//!
//! 1. `add(sig)` on a set not yet watching `sig`: start the pipe and the
//!    reader if needed; if no set watched `sig`, install the handler with
//!    `sigaction` and keep the previous disposition; count one more watcher;
//!    set the bit in the set's mask.
//! 2. `remove(sig)` (and dropping a set, for each of its signals): clear the
//!    bit, discard the set's queued notifications of `sig`, count one
//!    watcher less; the last one restores the previous disposition.
//! 3. The reader, for each number it reads: every set whose mask holds it
//!    gets one more pending notification of it (a counter, saturating), and
//!    its waker, if any, is taken and woken. Notifications are kept until a
//!    `recv` takes them, one per call, lowest signal number first.
//! 4. `cancel` sets the set's `cancelled` flag and wakes its waker; the
//!    `recv` in progress, or else the next one, consumes the flag and fails
//!    with `ECANCELED`. Making the flag sticky means a cancel from another
//!    thread that races with a `recv` about to start is never lost.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};
use std::thread;

/// Highest signal number (Linux `SIGRTMAX`).
const MAX_SIGNAL: i32 = 64;
const SLOTS: usize = MAX_SIGNAL as usize + 1;

/// Signals that may not be watched: `SIGKILL` and `SIGSTOP` cannot be
/// caught, and returning from a handler for a fault signal re-runs the
/// faulting instruction forever.
const FORBIDDEN: [(i32, &str); 6] = [
    (libc::SIGKILL, "SIGKILL"),
    (libc::SIGSTOP, "SIGSTOP"),
    (libc::SIGSEGV, "SIGSEGV"),
    (libc::SIGBUS, "SIGBUS"),
    (libc::SIGILL, "SIGILL"),
    (libc::SIGFPE, "SIGFPE"),
];

/// The pipe's write end for the handler; -1 until the reader starts.
static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    slots: [const {
        Slot {
            watchers: 0,
            previous: None,
        }
    }; SLOTS],
    sets: Vec::new(),
    reader: false,
});

struct Registry {
    /// Indexed by signal number.
    slots: [Slot; SLOTS],
    /// Every live set.
    sets: Vec<Arc<SetInner>>,
    /// Whether the pipe and the reader thread exist.
    reader: bool,
}

struct Slot {
    /// Sets watching this signal.
    watchers: usize,
    /// The disposition replaced by ours, restored by the last watcher.
    previous: Option<libc::sigaction>,
}

struct SetInner {
    state: Mutex<SetState>,
}

struct SetState {
    /// Bit `n` set: signal `n` is watched.
    mask: u128,
    /// Queued notifications per signal number.
    pending: [u32; SLOTS],
    waker: Option<Waker>,
    cancelled: bool,
}

fn registry() -> MutexGuard<'static, Registry> {
    // No user code runs under this lock; the data stays coherent.
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

impl SetInner {
    fn lock(&self) -> MutexGuard<'_, SetState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Protocol step 4.
    fn cancel(&self) {
        let waker = {
            let mut s = self.lock();
            s.cancelled = true;
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

fn bit(sig: i32) -> u128 {
    1u128 << sig
}

/// A set of signals to wait for, like Asio's `signal_set`.
///
/// While a set watches a signal, that signal no longer has its previous
/// disposition (default action, ignore, another handler): each arrival is
/// queued in every set watching it, and [`recv`](SignalSet::recv) takes
/// the queued notifications one at a time. Notifications that arrive while
/// nobody waits are kept, not lost; repeated arrivals of one signal before
/// the handler runs may coalesce, as the kernel coalesces them. When the
/// last set watching a signal stops watching it (or is dropped), the
/// previous disposition is restored.
///
/// ```
/// use ringio::signal::SignalSet;
///
/// let ctx = ringio::IoContext::new()?;
/// ctx.block_on(async {
///     let mut set = SignalSet::new(&[libc::SIGUSR1])?;
///     // SAFETY: raise has no memory-safety preconditions; SIGUSR1 is
///     // caught by the set, so the process is not terminated.
///     unsafe { libc::raise(libc::SIGUSR1) };
///     assert_eq!(set.recv().await?, libc::SIGUSR1);
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct SignalSet {
    inner: Arc<SetInner>,
}

/// Cancels the [`recv`](SignalSet::recv) of a [`SignalSet`] from anywhere
/// (another task or thread), while the set itself is borrowed by that
/// `recv`. Made by [`SignalSet::canceller`].
#[derive(Clone)]
pub struct SignalCanceller {
    inner: Arc<SetInner>,
}

impl SignalSet {
    /// A set watching `signals` (possibly none).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a number that cannot be watched: outside
    /// `1..=64`, `SIGKILL`, `SIGSTOP`, the fault signals (`SIGSEGV`,
    /// `SIGBUS`, `SIGILL`, `SIGFPE`), or one the C library reserves for
    /// itself (below `SIGRTMIN`: 32 and 33 with glibc). Nothing stays
    /// registered then.
    pub fn new(signals: &[i32]) -> io::Result<SignalSet> {
        let mut set = SignalSet {
            inner: Arc::new(SetInner {
                state: Mutex::new(SetState {
                    mask: 0,
                    pending: [0; SLOTS],
                    waker: None,
                    cancelled: false,
                }),
            }),
        };
        registry().sets.push(set.inner.clone());
        for &sig in signals {
            // On error, dropping `set` unregisters what was added.
            set.add(sig)?;
        }
        Ok(set)
    }

    /// Starts watching `sig` (nothing happens if it already is).
    ///
    /// # Errors
    ///
    /// As [`new`](SignalSet::new) for an invalid number; the OS error if
    /// the handler cannot be installed or the reader thread not started.
    pub fn add(&mut self, sig: i32) -> io::Result<()> {
        validate(sig)?;
        let mut reg = registry();
        if self.inner.lock().mask & bit(sig) != 0 {
            return Ok(());
        }
        if !reg.reader {
            start_reader()?;
            reg.reader = true;
        }
        let slot = &mut reg.slots[sig as usize];
        if slot.watchers == 0 {
            slot.previous = Some(install(sig)?);
        }
        slot.watchers += 1;
        self.inner.lock().mask |= bit(sig);
        Ok(())
    }

    /// Stops watching `sig` and discards its queued notifications (nothing
    /// happens if it is not watched). If no other set watches it, its
    /// previous disposition is restored.
    ///
    /// # Errors
    ///
    /// As [`new`](SignalSet::new) for an invalid number.
    pub fn remove(&mut self, sig: i32) -> io::Result<()> {
        validate(sig)?;
        let mut reg = registry();
        {
            let mut s = self.inner.lock();
            if s.mask & bit(sig) == 0 {
                return Ok(());
            }
            s.mask &= !bit(sig);
            s.pending[sig as usize] = 0;
        }
        release(&mut reg, sig);
        Ok(())
    }

    /// Whether the set watches `sig`.
    pub fn contains(&self, sig: i32) -> bool {
        (1..=MAX_SIGNAL).contains(&sig) && self.inner.lock().mask & bit(sig) != 0
    }

    /// Waits for a signal of the set and returns its number. A notification
    /// queued before the call is returned at once (lowest number first).
    /// A set that watches nothing waits until cancelled.
    ///
    /// Cancel safe: dropping the future loses no notification.
    ///
    /// # Errors
    ///
    /// `ECANCELED` (`raw_os_error()`) after [`cancel`](SignalSet::cancel).
    pub async fn recv(&mut self) -> io::Result<i32> {
        poll_fn(|cx| {
            let mut s = self.inner.lock();
            if s.cancelled {
                s.cancelled = false;
                s.waker = None;
                return Poll::Ready(Err(io::Error::from_raw_os_error(libc::ECANCELED)));
            }
            if let Some(sig) = (1..SLOTS).find(|&n| s.pending[n] > 0) {
                s.pending[sig] -= 1;
                s.waker = None;
                return Poll::Ready(Ok(sig as i32));
            }
            match &mut s.waker {
                Some(w) => w.clone_from(cx.waker()),
                None => s.waker = Some(cx.waker().clone()),
            }
            Poll::Pending
        })
        .await
    }

    /// Cancels the [`recv`](SignalSet::recv) in progress, which fails with
    /// `ECANCELED`; if none is in progress, the next one fails so (only
    /// one). Queued notifications are kept. While a `recv` borrows the set,
    /// cancel through a [`canceller`](SignalSet::canceller).
    pub fn cancel(&self) {
        self.inner.cancel();
    }

    /// A handle that can [`cancel`](SignalCanceller::cancel) this set's
    /// `recv` from another task or thread.
    pub fn canceller(&self) -> SignalCanceller {
        SignalCanceller {
            inner: self.inner.clone(),
        }
    }
}

impl SignalCanceller {
    /// As [`SignalSet::cancel`].
    pub fn cancel(&self) {
        self.inner.cancel();
    }
}

impl Drop for SignalSet {
    fn drop(&mut self) {
        let mut reg = registry();
        reg.sets.retain(|s| !Arc::ptr_eq(s, &self.inner));
        let mask = std::mem::take(&mut self.inner.lock().mask);
        for sig in 1..=MAX_SIGNAL {
            if mask & bit(sig) != 0 {
                release(&mut reg, sig);
            }
        }
    }
}

impl fmt::Debug for SignalSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mask = self.inner.lock().mask;
        let sigs: Vec<i32> = (1..=MAX_SIGNAL).filter(|&s| mask & bit(s) != 0).collect();
        f.debug_struct("SignalSet").field("signals", &sigs).finish()
    }
}

impl fmt::Debug for SignalCanceller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SignalCanceller")
    }
}

/// Waits for `SIGINT` (Ctrl-C in a terminal).
///
/// The handler is installed when the future is first polled and the
/// default disposition (terminate) is restored when it completes or is
/// dropped, so a Ctrl-C that arrives while no `ctrl_c` future is alive
/// terminates the process as usual. To catch every Ctrl-C, keep a
/// [`SignalSet`] with `SIGINT` instead.
///
/// ```no_run
/// let ctx = ringio::IoContext::new()?;
/// ctx.block_on(async {
///     ringio::signal::ctrl_c().await?;
///     println!("interrupted, shutting down");
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
///
/// If the handler cannot be installed.
pub async fn ctrl_c() -> io::Result<()> {
    let mut set = SignalSet::new(&[libc::SIGINT])?;
    set.recv().await.map(|_| ())
}

fn validate(sig: i32) -> io::Result<()> {
    if !(1..=MAX_SIGNAL).contains(&sig) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("signal number {sig} is out of range 1..={MAX_SIGNAL}"),
        ));
    }
    // The C library keeps the first real-time signals for itself (glibc:
    // 32 and 33, for thread cancellation and set*id); SIGRTMIN is the
    // first one left to applications.
    if sig >= 32 && sig < libc::SIGRTMIN() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("signal {sig} is reserved by the C library"),
        ));
    }
    if let Some((_, name)) = FORBIDDEN.iter().find(|(s, _)| *s == sig) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("signal {sig} ({name}) cannot be watched"),
        ));
    }
    Ok(())
}

/// Protocol step 2 for the registry's side: one watcher less.
fn release(reg: &mut Registry, sig: i32) {
    let slot = &mut reg.slots[sig as usize];
    slot.watchers -= 1;
    if slot.watchers == 0 {
        if let Some(prev) = slot.previous.take() {
            // SAFETY: `prev` is the disposition sigaction gave back for this
            // same signal; reinstalling it is what the previous owner had.
            // It can only fail for an invalid signal, which add() excluded.
            unsafe { libc::sigaction(sig, &prev, std::ptr::null_mut()) };
        }
    }
}

/// Installs [`on_signal`] for `sig`; returns the replaced disposition.
fn install(sig: i32) -> io::Result<libc::sigaction> {
    // SAFETY: an all-zero sigaction is a valid value (SIG_DFL, no flags,
    // empty mask); every field we rely on is set below.
    let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
    new.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // Interrupted system calls of other code restart instead of failing
    // with EINTR; no SA_SIGINFO: the handler takes only the number.
    new.sa_flags = libc::SA_RESTART;
    // SAFETY: `new.sa_mask` is a valid sigset_t to initialise.
    unsafe { libc::sigemptyset(&mut new.sa_mask) };
    // SAFETY: as above, zeroed is a valid sigaction for the kernel to fill.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; the handler is
    // async-signal-safe (see `on_signal`).
    if unsafe { libc::sigaction(sig, &new, &mut old) } != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("cannot watch signal {sig}: {e}"),
        ));
    }
    Ok(old)
}

/// The signal handler: writes the number to the self-pipe. Only
/// async-signal-safe calls: an atomic load, `write(2)`, `errno` access.
extern "C" fn on_signal(sig: libc::c_int) {
    let fd = PIPE_WRITE.load(Ordering::Acquire);
    if fd < 0 {
        return;
    }
    // SAFETY: __errno_location returns this thread's errno slot, valid
    // for the thread's life; saved so the interrupted code's errno survives.
    let saved = unsafe { *libc::__errno_location() };
    let byte = sig as u8;
    // SAFETY: writing one byte from a live stack variable to an fd that is
    // never closed; the fd is non-blocking, so this cannot hang.
    unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved };
}

/// Creates the self-pipe and starts the reader thread (under the registry
/// lock, once per process).
fn start_reader() -> io::Result<()> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let [read_fd, write_fd] = fds;
    // Only the write end is non-blocking: the handler must never block, the
    // reader thread wants to.
    // SAFETY: fcntl on a descriptor we own.
    if unsafe { libc::fcntl(write_fd, libc::F_SETFL, libc::O_NONBLOCK) } != 0 {
        let e = io::Error::last_os_error();
        close_both(read_fd, write_fd);
        return Err(e);
    }
    let started = thread::Builder::new()
        .name("ringio-signal".into())
        .spawn(move || read_signals(read_fd));
    if let Err(e) = started {
        close_both(read_fd, write_fd);
        return Err(e);
    }
    PIPE_WRITE.store(write_fd, Ordering::Release);
    Ok(())
}

fn close_both(a: RawFd, b: RawFd) {
    // SAFETY: both descriptors were just created here and are not shared.
    unsafe {
        libc::close(a);
        libc::close(b);
    }
}

/// The reader thread: reads signal numbers and delivers them (protocol
/// step 3). Runs for the life of the process.
fn read_signals(fd: RawFd) {
    let mut buf = [0u8; 256];
    loop {
        // SAFETY: reading into a live buffer of the length passed, from the
        // pipe's read end, which only this thread uses.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        if n == 0 {
            return;
        }
        deliver(&buf[..n as usize]);
    }
}

fn deliver(signals: &[u8]) {
    let mut wakers = Vec::new();
    {
        let reg = registry();
        for set in &reg.sets {
            let mut s = set.lock();
            let mut hit = false;
            for &sig in signals {
                if (sig as usize) < SLOTS && s.mask & bit(sig as i32) != 0 {
                    let p = &mut s.pending[sig as usize];
                    *p = p.saturating_add(1);
                    hit = true;
                }
            }
            if hit {
                wakers.extend(s.waker.take());
            }
        }
    }
    for w in wakers {
        w.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_rejects_what_cannot_be_watched() {
        for bad in [
            0,
            -1,
            i32::MIN,
            65,
            1000,
            libc::SIGKILL,
            libc::SIGSTOP,
            libc::SIGSEGV,
            32,
            33,
        ] {
            let e = validate(bad).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad}");
        }
        for good in [libc::SIGINT, libc::SIGUSR1, libc::SIGTERM, 64] {
            validate(good).unwrap();
        }
    }
}
