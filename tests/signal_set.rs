//! Signals: a signal raised before `recv` is queued (and counted), one
//! raised while `recv` waits wakes it, two sets on one signal both get it,
//! `add`/`remove` (queued notifications of a removed signal are dropped),
//! `cancel` (during and before `recv`), dropping the last set restores the
//! previous disposition, invalid numbers are `InvalidInput`, and `ctrl_c`
//! in a child process that the parent interrupts. Both modes where a
//! context is involved.
//!
//! Signal dispositions belong to the process: the tests of this binary run
//! one at a time (`SERIAL`), and every test keeps a set on each signal it
//! raises (an unwatched SIGUSR1 would terminate the test process).

mod common;

use std::io::{BufRead, BufReader, ErrorKind};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use common::{each_mode, watchdog};
use ringio::signal::SignalSet;
use ringio::time::timeout;
use ringio::IoContext;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const USR1: i32 = libc::SIGUSR1;
const USR2: i32 = libc::SIGUSR2;
const LONG: Duration = Duration::from_secs(5);
/// How long to wait to be sure nothing arrives.
const QUIET: Duration = Duration::from_millis(100);

/// Sends `sig` to this process (any thread may take it).
fn kill_self(sig: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(libc::getpid(), sig) }, 0);
}

/// Raises `sig` in this thread: the handler has run when this returns.
fn raise(sig: i32) {
    // SAFETY: raise has no memory-safety preconditions.
    assert_eq!(unsafe { libc::raise(sig) }, 0);
}

/// The current handler address of `sig` (`SIG_DFL` is 0, `SIG_IGN` 1).
fn disposition(sig: i32) -> libc::sighandler_t {
    // SAFETY: zeroed is a valid sigaction for the kernel to fill; a null
    // new action only queries.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(sig, std::ptr::null(), &mut old), 0);
        old.sa_sigaction
    }
}

fn set_disposition(sig: i32, handler: libc::sighandler_t) {
    // SAFETY: SIG_DFL / SIG_IGN with an empty mask is a valid action.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = handler;
        libc::sigemptyset(&mut act.sa_mask);
        assert_eq!(libc::sigaction(sig, &act, std::ptr::null_mut()), 0);
    }
}

#[test]
fn a_signal_raised_before_recv_is_queued() {
    let _s = serial();
    each_mode(|mode, ctx| {
        let mut set = SignalSet::new(&[USR1, USR2]).unwrap();
        raise(USR1);
        raise(USR2);
        raise(USR1);
        // Let the reader deliver them while nobody waits.
        thread::sleep(Duration::from_millis(20));
        ctx.block_on(async {
            let mut got = Vec::new();
            for _ in 0..3 {
                got.push(timeout(LONG, set.recv()).await.unwrap().unwrap());
            }
            // Lowest number first; each arrival counted once.
            assert_eq!(got, [USR1, USR1, USR2], "[{mode}]");
            assert!(
                timeout(QUIET, set.recv()).await.is_err(),
                "[{mode}] a fourth notification"
            );
        });
    });
}

#[test]
fn a_signal_raised_while_recv_waits_wakes_it() {
    let _s = serial();
    each_mode(|mode, ctx| {
        let mut set = SignalSet::new(&[USR2]).unwrap();
        let sender = thread::spawn(|| {
            thread::sleep(Duration::from_millis(30));
            kill_self(USR2);
        });
        let got = ctx.block_on(async { timeout(LONG, set.recv()).await });
        sender.join().unwrap();
        assert_eq!(got.unwrap().unwrap(), USR2, "[{mode}]");
        // From a spawned task on a runner thread, too.
        ctx.restart();
        let task = ctx.spawn(async move {
            let r = set.recv().await;
            (r.unwrap(), set)
        });
        let runner = {
            let ctx = ctx.clone();
            thread::spawn(move || ctx.run())
        };
        thread::sleep(Duration::from_millis(20));
        kill_self(USR2);
        runner.join().unwrap();
        let (sig, set) = ctx.block_on(task).unwrap();
        assert_eq!(sig, USR2, "[{mode}]");
        drop(set);
    });
}

#[test]
fn every_set_watching_a_signal_gets_it() {
    let _s = serial();
    each_mode(|mode, ctx| {
        let mut a = SignalSet::new(&[USR1]).unwrap();
        let mut b = SignalSet::new(&[USR1, USR2]).unwrap();
        let mut other = SignalSet::new(&[USR2]).unwrap();
        raise(USR1);
        ctx.block_on(async {
            assert_eq!(timeout(LONG, a.recv()).await.unwrap().unwrap(), USR1);
            assert_eq!(timeout(LONG, b.recv()).await.unwrap().unwrap(), USR1);
            assert!(
                timeout(QUIET, other.recv()).await.is_err(),
                "[{mode}] a set not watching SIGUSR1 got it"
            );
        });
    });
}

#[test]
fn add_and_remove_change_what_a_set_receives() {
    let _s = serial();
    each_mode(|mode, ctx| {
        // Keeps SIGUSR1 caught while `set` stops watching it.
        let mut keeper = SignalSet::new(&[USR1]).unwrap();
        let mut set = SignalSet::new(&[]).unwrap();
        assert!(!set.contains(USR1));
        set.add(USR1).unwrap();
        set.add(USR1).unwrap(); // already there: no-op
        assert!(set.contains(USR1));
        ctx.block_on(async {
            raise(USR1);
            assert_eq!(timeout(LONG, set.recv()).await.unwrap().unwrap(), USR1);
            assert_eq!(timeout(LONG, keeper.recv()).await.unwrap().unwrap(), USR1);

            // Removed: no more notifications, and queued ones are dropped.
            raise(USR1);
            assert_eq!(timeout(LONG, keeper.recv()).await.unwrap().unwrap(), USR1);
            set.remove(USR1).unwrap();
            set.remove(USR1).unwrap(); // not there: no-op
            assert!(!set.contains(USR1));
            raise(USR1);
            assert_eq!(timeout(LONG, keeper.recv()).await.unwrap().unwrap(), USR1);
            set.add(USR1).unwrap();
            assert!(
                timeout(QUIET, set.recv()).await.is_err(),
                "[{mode}] a notification survived remove"
            );
            raise(USR1);
            assert_eq!(timeout(LONG, set.recv()).await.unwrap().unwrap(), USR1);
        });
    });
}

#[test]
fn cancel_fails_the_recv_with_ecanceled() {
    let _s = serial();
    each_mode(|mode, ctx| {
        let mut set = SignalSet::new(&[USR1]).unwrap();
        // While recv waits, from another thread.
        let canceller = set.canceller();
        let t = thread::spawn(move || {
            thread::sleep(Duration::from_millis(30));
            canceller.cancel();
        });
        let r = ctx.block_on(async { timeout(LONG, set.recv()).await.unwrap() });
        t.join().unwrap();
        let e = r.unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ECANCELED), "[{mode}] {e}");
        // Before recv: the next recv fails, the one after works; a queued
        // notification survives the cancel.
        raise(USR1);
        set.cancel();
        ctx.block_on(async {
            let e = timeout(LONG, set.recv()).await.unwrap().unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::ECANCELED), "[{mode}]");
            assert_eq!(timeout(LONG, set.recv()).await.unwrap().unwrap(), USR1);
            assert!(timeout(QUIET, set.recv()).await.is_err(), "[{mode}]");
        });
    });
}

#[test]
fn dropping_the_last_set_restores_the_previous_disposition() {
    let _s = serial();
    let sig = libc::SIGWINCH;
    set_disposition(sig, libc::SIG_IGN);
    let a = SignalSet::new(&[sig]).unwrap();
    let ours = disposition(sig);
    assert!(ours != libc::SIG_IGN && ours != libc::SIG_DFL);
    let mut b = SignalSet::new(&[sig]).unwrap();
    drop(a);
    assert_eq!(disposition(sig), ours, "restored while a set still watches");
    b.remove(sig).unwrap();
    assert_eq!(disposition(sig), libc::SIG_IGN, "not restored by remove");
    b.add(sig).unwrap();
    assert_eq!(disposition(sig), ours);
    drop(b);
    assert_eq!(disposition(sig), libc::SIG_IGN, "not restored by drop");
    set_disposition(sig, libc::SIG_DFL);
    // Default disposition restored as well.
    drop(SignalSet::new(&[libc::SIGUSR2]).unwrap());
    assert_eq!(disposition(libc::SIGUSR2), libc::SIG_DFL);
}

#[test]
fn invalid_signal_numbers_are_invalid_input() {
    let _s = serial();
    for bad in [
        0,
        -1,
        65,
        1000,
        libc::SIGKILL,
        libc::SIGSTOP,
        libc::SIGSEGV,
        32,
        33,
    ] {
        let e = SignalSet::new(&[USR1, bad]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad}: {e}");
        let mut set = SignalSet::new(&[]).unwrap();
        assert_eq!(set.add(bad).unwrap_err().kind(), ErrorKind::InvalidInput);
        assert_eq!(set.remove(bad).unwrap_err().kind(), ErrorKind::InvalidInput);
        assert!(!set.contains(bad));
    }
    // The failed `new` left nothing installed.
    assert_eq!(disposition(USR1), libc::SIG_DFL);
}

const CHILD_ENV: &str = "RINGIO_TEST_CTRL_C_CHILD";

#[test]
fn ctrl_c_in_a_child_process() {
    if std::env::var_os(CHILD_ENV).is_some() {
        // The child: wait for SIGINT, then pass (exit 0).
        let ctx = IoContext::new().unwrap();
        ctx.block_on(async {
            let waiter = ringio::spawn(ringio::signal::ctrl_c());
            while disposition(libc::SIGINT) == libc::SIG_DFL {
                ringio::time::sleep(Duration::from_millis(1)).await;
            }
            println!("READY");
            waiter.await.unwrap().unwrap();
        });
        // Dropping the last waiter restored the default action.
        assert_eq!(disposition(libc::SIGINT), libc::SIG_DFL);
        return;
    }
    let _s = serial();
    watchdog(Duration::from_secs(20), || {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["ctrl_c_in_a_child_process", "--exact", "--nocapture"])
            .env(CHILD_ENV, "1")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut seen = String::new();
        loop {
            let mut line = String::new();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "the child ended before READY: {seen}"
            );
            seen.push_str(&line);
            if line.trim_end().ends_with("READY") {
                break;
            }
        }
        // SAFETY: kill has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
        let status = child.wait().unwrap();
        assert!(status.success(), "child: {status:?}\n{seen}");
    });
}
