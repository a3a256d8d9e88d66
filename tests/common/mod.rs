//! Helpers shared by the `rt_*` integration tests.
//!
//! * [`open_fds`] counts this process's open descriptors (`/proc/self/fd`),
//!   to catch fd leaks; [`fd_shared`] / [`fd_exclusive`] keep the tests of
//!   one binary from opening descriptors while a leak check counts them.
//! * [`watchdog`] turns a hang into a failure; [`each_mode`] runs a test
//!   body on a fresh multi-threaded and a fresh single-threaded context.
//! * [`DropFlag`] records that a future was dropped, [`yield_now`] re-queues
//!   the calling task once, [`poll_once`] polls a future one time with the
//!   current task's waker, [`poll_outside`] polls with a no-op waker outside
//!   any context.

#![allow(dead_code)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use ringio::IoContext;

/// Number of entries in `/proc/self/fd` (the open descriptors of this
/// process, plus the one `read_dir` itself holds while it lists).
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .count()
}

static FD_LOCK: RwLock<()> = RwLock::new(());

/// Held by every test of a binary that opens descriptors (rings, pipes), so
/// that a leak check ([`fd_exclusive`]) never counts another test's fds.
/// Re-entrant on one thread ([`each_mode`] holds it around the context it
/// builds, and the test body may take it again).
pub fn fd_shared() -> FdShared {
    if HOLDS_EXCLUSIVE.with(|h| h.get()) {
        // This test (or the one that started this thread) holds the
        // exclusive lock: it is alone already.
        SHARED_DEPTH.with(|d| d.set(d.get() + 1));
        return FdShared(None);
    }
    SHARED_DEPTH.with(|d| {
        let depth = d.get();
        d.set(depth + 1);
        if depth > 0 {
            FdShared(None)
        } else {
            FdShared(Some(FD_LOCK.read().unwrap_or_else(|e| e.into_inner())))
        }
    })
}

thread_local! {
    static SHARED_DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// This thread, or the test thread that started it through
    /// [`watchdog`], holds [`fd_exclusive`].
    static HOLDS_EXCLUSIVE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The guard of [`fd_shared`].
pub struct FdShared(Option<RwLockReadGuard<'static, ()>>);

impl Drop for FdShared {
    fn drop(&mut self) {
        SHARED_DEPTH.with(|d| d.set(d.get() - 1));
    }
}

/// Held by a test that compares [`open_fds`] before and after.
pub fn fd_exclusive() -> FdExclusive {
    let guard = FD_LOCK.write().unwrap_or_else(|e| e.into_inner());
    HOLDS_EXCLUSIVE.with(|h| h.set(true));
    FdExclusive(guard)
}

/// The guard of [`fd_exclusive`].
pub struct FdExclusive(RwLockWriteGuard<'static, ()>);

impl Drop for FdExclusive {
    fn drop(&mut self) {
        HOLDS_EXCLUSIVE.with(|h| h.set(false));
    }
}

/// Asserts that the number of open descriptors comes back to `before`
/// (retrying briefly: a descriptor may be closed by a thread that is just
/// finishing).
pub fn assert_fds_back_to(before: usize, what: &str) {
    let start = Instant::now();
    loop {
        let now = open_fds();
        if now == before {
            return;
        }
        if start.elapsed() > Duration::from_secs(2) {
            let list: Vec<String> = std::fs::read_dir("/proc/self/fd")
                .unwrap()
                .filter_map(|e| e.ok())
                .map(|e| {
                    let target = std::fs::read_link(e.path())
                        .map(|p| p.display().to_string())
                        .unwrap_or_default();
                    format!("{} -> {target}", e.file_name().to_string_lossy())
                })
                .collect();
            panic!("{what}: {before} fds open before, {now} after: fd leak\n{list:#?}");
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `f` on its own thread and fails if it has not finished after
/// `limit`: a hang becomes a failure with a message. A panic in `f` is
/// propagated.
pub fn watchdog<R: Send + 'static, F: FnOnce() -> R + Send + 'static>(limit: Duration, f: F) -> R {
    let (tx, rx) = mpsc::channel();
    // The watched thread works for this test: it inherits the fd lock
    // this thread holds (taking it again from another thread could
    // deadlock behind a waiting writer).
    let exclusive = HOLDS_EXCLUSIVE.with(|h| h.get());
    let shared = SHARED_DEPTH.with(|d| d.get()) > 0;
    let h = thread::Builder::new()
        .name("watched".into())
        .spawn(move || {
            HOLDS_EXCLUSIVE.with(|h| h.set(exclusive));
            SHARED_DEPTH.with(|d| d.set(usize::from(shared)));
            let r = f();
            let _ = tx.send(());
            r
        })
        .unwrap();
    match rx.recv_timeout(limit) {
        Ok(()) => h.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => match h.join() {
            Ok(r) => r,
            Err(p) => std::panic::resume_unwind(p),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("test still running after {limit:?}: hung")
        }
    }
}

/// The two kinds of context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Multi,
    Single,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Multi => "multi",
            Mode::Single => "single",
        })
    }
}

impl Mode {
    pub const ALL: [Mode; 2] = [Mode::Multi, Mode::Single];

    pub fn build(self) -> IoContext {
        IoContext::builder()
            .single_threaded(self == Mode::Single)
            .build()
            .unwrap_or_else(|e| panic!("[{self:?}] build: {e}"))
    }
}

/// The modes to test: both, or only the one named by the environment
/// variable `RINGIO_TEST_MODE` (`multi` or `single`), to debug one.
pub fn modes() -> Vec<Mode> {
    match std::env::var("RINGIO_TEST_MODE").as_deref() {
        Ok("multi") => vec![Mode::Multi],
        Ok("single") => vec![Mode::Single],
        _ => Mode::ALL.to_vec(),
    }
}

/// Runs `f` once per mode (see [`modes`]), each on a fresh context, inside
/// a watchdog.
pub fn each_mode<F>(f: F)
where
    F: Fn(Mode, IoContext) + Send + Sync + Copy + 'static,
{
    each_mode_limit(Duration::from_secs(20), f)
}

/// [`each_mode`] with another watchdog limit per mode.
pub fn each_mode_limit<F>(limit: Duration, f: F)
where
    F: Fn(Mode, IoContext) + Send + Sync + Copy + 'static,
{
    for mode in modes() {
        watchdog(limit, move || {
            // The context's ring and eventfd are descriptors too: keep leak
            // checks of other tests from counting them.
            let _fds = fd_shared();
            f(mode, mode.build())
        });
    }
}

/// Starts `n` threads that each `run()` the context; join them for the
/// handler counts.
pub fn spawn_runners(ctx: &IoContext, n: usize) -> Vec<thread::JoinHandle<usize>> {
    (0..n)
        .map(|_| {
            let ctx = ctx.clone();
            thread::spawn(move || ctx.run())
        })
        .collect()
}

/// Sets its flag when dropped.
#[derive(Debug)]
pub struct DropFlag(Arc<AtomicBool>);

impl DropFlag {
    /// The guard and the flag it sets.
    pub fn new() -> (DropFlag, Arc<AtomicBool>) {
        let flag = Arc::new(AtomicBool::new(false));
        (DropFlag(flag.clone()), flag)
    }
}

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Returns `Pending` once after waking its own task, then `Ready`.
pub fn yield_now() -> impl Future<Output = ()> {
    let mut yielded = false;
    std::future::poll_fn(move |cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
}

/// Polls `f` once with the calling task's waker.
pub async fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *f).poll(cx))).await
}

/// Polls `f` once with a no-op waker (outside any context).
pub fn poll_outside<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    let mut cx = Context::from_waker(Waker::noop());
    Pin::new(f).poll(&mut cx)
}

/// Waits (sleeping, bounded by `limit`) until `cond` holds; returns whether
/// it did.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        thread::sleep(Duration::from_millis(1));
    }
}

/// A one-shot cross-thread signal a task can await: `fire()` from any
/// thread wakes the waiting task with the waker it registered.
#[derive(Debug, Clone, Default)]
pub struct Signal {
    inner: Arc<Mutex<(bool, Option<Waker>)>>,
}

impl Signal {
    pub fn new() -> Signal {
        Signal::default()
    }

    /// Sets the signal and wakes the waiter, if any.
    pub fn fire(&self) {
        let waker = {
            let mut g = self.inner.lock().unwrap();
            g.0 = true;
            g.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Whether a waiter has registered its waker (and not been woken yet).
    pub fn has_waiter(&self) -> bool {
        self.inner.lock().unwrap().1.is_some()
    }

    /// Completes once `fire` has been called.
    pub fn wait(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            let mut g = self.inner.lock().unwrap();
            if g.0 {
                Poll::Ready(())
            } else {
                g.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        })
    }
}

/// A panic payload as text.
pub fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "<non-string panic>".to_string())
}

/// Silences the default panic message for panics the test provokes on
/// purpose (payloads starting with `prefix`); other panics print as usual.
pub fn quiet_panics(prefix: &'static str) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    static MARKERS: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    MARKERS.lock().unwrap().push(prefix);
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let text = panic_text(info.payload());
            let quiet = MARKERS
                .lock()
                .map(|m| m.iter().any(|k| text.starts_with(k)))
                .unwrap_or(false);
            if !quiet {
                prev(info);
            }
        }));
    });
}

/// Median and max of a set of durations.
pub fn median_max(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort();
    (samples[samples.len() / 2], samples[samples.len() - 1])
}

/// A fresh directory under the system temp dir, removed when dropped.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    /// `tag` names the test; the process id and a counter keep parallel
    /// tests and test binaries apart.
    pub fn new(tag: &str) -> TempDir {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("ringio-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// A path inside the directory.
    pub fn join(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }

    /// The directory itself.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A connected TCP pair on loopback: (client, server side). Call inside a
/// running context.
pub async fn tcp_pair() -> (ringio::net::TcpStream, ringio::net::TcpStream) {
    let listener = ringio::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let c = ringio::net::TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (s, _) = listener.accept().await.unwrap();
    (c, s)
}

/// Runs `fut` on `ctx`: in single mode on this thread only, in multi mode
/// with `runners` extra runner threads (stopped afterwards).
pub fn drive_with<F: Future>(mode: Mode, ctx: &IoContext, runners: usize, fut: F) -> F::Output {
    if mode == Mode::Single {
        return ctx.block_on(fut);
    }
    let guard = ctx.work_guard();
    let threads = spawn_runners(ctx, runners);
    let out = ctx.block_on(fut);
    drop(guard);
    ctx.stop();
    for t in threads {
        t.join().expect("runner thread");
    }
    out
}
