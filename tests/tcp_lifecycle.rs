//! TCP lifecycles: a listener dropped with an accept pending (future
//! dropped, task aborted), a context dropped with reads and accepts in
//! flight, listeners created and torn down while long-lived connections
//! keep echoing, and a storm of connect/close cycles. Descriptor counts are
//! compared before and after (under the binary's exclusive fd lock). Both
//! modes.

mod common;

use std::net::Shutdown;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{
    assert_fds_back_to, each_mode, fd_exclusive, fd_shared, open_fds, poll_once, watchdog, Mode,
};
use ringio::buf::IoBuf;
use ringio::net::{TcpListener, TcpStream};
use ringio::time::{sleep, timeout};
use ringio::IoContext;

async fn echo(s: TcpStream) {
    let mut buf = vec![0u8; 4096];
    loop {
        let (res, b) = s.read(buf).await;
        let n = match res {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let (res, b) = s.write_all(b.slice(..n)).await;
        if res.is_err() {
            return;
        }
        buf = b.into_inner();
    }
}

/// Waits (running the context) until the open descriptors are back to
/// `before`, then checks with the common helper (which lists them).
async fn fds_back_to(before: usize, what: &str) {
    for _ in 0..400 {
        if open_fds() == before {
            return;
        }
        sleep(Duration::from_millis(5)).await;
    }
    assert_fds_back_to(before, what);
}

#[test]
fn listener_dropped_with_accept_pending() {
    let _fd = fd_exclusive();
    each_mode(|mode, ctx| {
        let before = open_fds();
        ctx.block_on(async {
            // 1. The accept future polled once (multishot armed), dropped,
            //    then the listener.
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            {
                let mut acc = Box::pin(listener.accept());
                assert!(poll_once(&mut acc).await.is_pending());
                sleep(Duration::from_millis(2)).await;
            }
            drop(listener);
            // Refused at once: the drop released the socket (see
            // `rebind_right_after_drop`).
            let e = TcpStream::connect(addr).await.unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "[{mode}]");

            // 2. A task waiting in accept aborted, then the listener
            //    dropped (shared through an Arc).
            let listener = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
            let l = listener.clone();
            let task = ringio::spawn(async move { l.accept().await.map(|_| ()) });
            sleep(Duration::from_millis(5)).await;
            task.abort();
            assert!(task.await.is_err(), "[{mode}] aborted accept completed");
            drop(listener);

            // 3. Connections queued in the listener (accepted by the
            //    multishot, never taken) are closed with it.
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let mut clients = Vec::new();
            for _ in 0..5 {
                clients.push(TcpStream::connect(addr).await.unwrap());
            }
            let (first, _) = listener.accept().await.unwrap();
            sleep(Duration::from_millis(5)).await;
            drop(listener);
            drop(first);
            // Every client sees its connection closed (EOF or reset).
            for c in &clients {
                let r = timeout(Duration::from_secs(5), c.read(Vec::with_capacity(4))).await;
                match r.expect("queued connection never closed").0 {
                    Ok(0) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
                    other => panic!("[{mode}] {other:?}"),
                }
            }
            drop(clients);
            fds_back_to(before, &format!("[{mode}] listener drop")).await;
        });
    });
}

/// Dropping a listener whose multishot accept is armed must release its
/// port at once: binding the same address again right away works (as with
/// std and tokio). On a single-threaded context the socket lived on until
/// the next kernel wait: the cancel-by-fd was submitted without
/// `IORING_ENTER_GETEVENTS`, so the deferred (DEFER_TASKRUN) cancellation
/// that drops the request's file reference did not run
/// (`Driver::cancel_fd_and_flush` in src/driver/mod.rs now runs task work).
#[test]
fn rebind_right_after_drop() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            for round in 0..20 {
                let l = TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = l.local_addr().unwrap();
                let mut acc = Box::pin(l.accept());
                assert!(poll_once(&mut acc).await.is_pending());
                sleep(Duration::from_millis(1)).await;
                drop(acc);
                drop(l);
                let again = TcpListener::bind(addr);
                assert!(
                    again.is_ok(),
                    "[{mode}] round {round}: rebind {addr}: {again:?}"
                );
            }
        });
    });
}

#[test]
fn context_dropped_with_reads_and_accepts_in_flight() {
    let _fd = fd_exclusive();
    for mode in common::modes() {
        watchdog(Duration::from_secs(20), move || {
            let before = open_fds();
            let ctx = mode.build();
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let peers = ctx.block_on(async move {
                let listener = Arc::new(listener);
                let mut peers = Vec::new();
                let mut conns = Vec::new();
                for _ in 0..20 {
                    peers.push(TcpStream::connect(addr).await.unwrap());
                    conns.push(listener.accept().await.unwrap().0);
                }
                // Reads that will never complete.
                for s in conns {
                    drop(ringio::spawn(async move {
                        let _ = s.read(Vec::with_capacity(64)).await;
                        unreachable!("read completed");
                    }));
                }
                // Accepts that will never complete.
                for _ in 0..3 {
                    let l = listener.clone();
                    drop(ringio::spawn(async move {
                        let _ = l.accept().await;
                    }));
                }
                sleep(Duration::from_millis(20)).await;
                assert!(IoContext::current().metrics().ops_in_flight >= 21);
                peers
            });
            drop(ctx);
            // The server ends were closed with the context: peers see EOF.
            for p in peers {
                let p = p_into_std(p);
                p.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut b = [0u8; 4];
                let n = std::io::Read::read(&mut &p, &mut b);
                assert!(
                    matches!(n, Ok(0))
                        || n.as_ref()
                            .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
                    "[{mode}] peer: {n:?}"
                );
            }
            assert_fds_back_to(before, &format!("[{mode}] context drop"));
        });
    }
}

/// A ringio stream's fd as a blocking std stream (the ringio context is
/// gone; the fd is plain).
fn p_into_std(p: TcpStream) -> std::net::TcpStream {
    use std::os::fd::{AsRawFd, FromRawFd};
    // SAFETY: dup of an open descriptor.
    let fd = unsafe { libc::dup(p.as_raw_fd()) };
    assert!(fd >= 0);
    drop(p);
    // SAFETY: `fd` is a fresh duplicate we own.
    let s = unsafe { std::net::TcpStream::from_raw_fd(fd) };
    s.set_nonblocking(false).unwrap();
    s
}

#[test]
fn listener_churn_while_connections_echo() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        let echoed = Arc::new(AtomicUsize::new(0));
        let e2 = echoed.clone();
        ctx.block_on(async move {
            // Long-lived connections, served by one listener.
            let main = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = main.local_addr().unwrap();
            let server = ringio::spawn(async move {
                for _ in 0..8 {
                    let (s, _) = main.accept().await.unwrap();
                    drop(ringio::spawn(echo(s)));
                }
            });
            let mut longs = Vec::new();
            for c in 0..8u8 {
                let e2 = e2.clone();
                longs.push(ringio::spawn(async move {
                    let s = TcpStream::connect(addr).await.unwrap();
                    for i in 0..150u32 {
                        let msg: Vec<u8> = (0..100).map(|k| c ^ (i as u8) ^ k).collect();
                        let (res, _) = s.write_all(msg.clone()).await;
                        res.unwrap();
                        let (res, back) = s.read_exact(Vec::with_capacity(100)).await;
                        res.unwrap();
                        assert_eq!(back, msg);
                        e2.fetch_add(1, Ordering::Relaxed);
                        if i % 10 == 0 {
                            sleep(Duration::from_micros(200)).await;
                        }
                    }
                    s.shutdown(Shutdown::Both).unwrap();
                }));
            }
            server.await.unwrap();
            // Meanwhile: 50 listeners, each accepting two connections.
            for round in 0..50u32 {
                let l = TcpListener::bind("127.0.0.1:0").unwrap();
                let a = l.local_addr().unwrap();
                let clients = ringio::spawn(async move {
                    let mut v = Vec::new();
                    for _ in 0..2 {
                        v.push(TcpStream::connect(a).await.unwrap());
                    }
                    v
                });
                for _ in 0..2 {
                    let (s, _) = l.accept().await.unwrap();
                    let (res, _) = s.write_all(round.to_le_bytes().to_vec()).await;
                    res.unwrap();
                }
                // A third accept left pending when the listener goes.
                if round % 2 == 0 {
                    let mut acc = Box::pin(l.accept());
                    assert!(poll_once(&mut acc).await.is_pending());
                }
                drop(l);
                for c in clients.await.unwrap() {
                    let (res, buf) = c.read_exact(Vec::with_capacity(4)).await;
                    res.unwrap();
                    assert_eq!(buf, round.to_le_bytes());
                }
            }
            for l in longs {
                l.await.unwrap();
            }
        });
        assert_eq!(echoed.load(Ordering::Relaxed), 8 * 150, "[{mode}]");
    });
}

#[test]
fn connect_close_storm_leaks_nothing() {
    let _fd = fd_exclusive();
    each_mode(|mode, ctx| {
        let before = open_fds();
        ctx.block_on(async {
            let listener = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
            let addr = listener.local_addr().unwrap();
            let l = listener.clone();
            let acceptor = ringio::spawn(async move {
                let mut n = 0usize;
                while n < 2000 {
                    let (s, _) = l.accept().await.unwrap();
                    n += 1;
                    // Every third one is read to EOF by a task.
                    if n % 3 == 0 {
                        drop(ringio::spawn(async move {
                            let _ = s.read(Vec::with_capacity(8)).await;
                        }));
                    }
                }
            });
            // 1000 sequential cycles, then 1000 in 10 concurrent tasks.
            for i in 0..1000 {
                let c = TcpStream::connect(addr).await.unwrap();
                if i % 2 == 0 {
                    let (res, _) = c.write(b"x".to_vec()).await;
                    res.unwrap();
                }
                drop(c);
            }
            let mut tasks = Vec::new();
            for _ in 0..10 {
                tasks.push(ringio::spawn(async move {
                    for _ in 0..100 {
                        let c = TcpStream::connect(addr).await.unwrap();
                        drop(c);
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            acceptor.await.unwrap();
            drop(listener);
            fds_back_to(before, &format!("[{mode}] connect/close storm")).await;
        });
    });
}

#[test]
fn runner_threads_storm() {
    let _fd = fd_shared();
    watchdog(Duration::from_secs(20), || {
        let ctx = Mode::Multi.build();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let done = Arc::new(AtomicUsize::new(0));
        drop(ctx.spawn(async move {
            for _ in 0..400 {
                let (s, _) = listener.accept().await.unwrap();
                drop(ringio::spawn(echo(s)));
            }
        }));
        for _ in 0..8 {
            let done = done.clone();
            drop(ctx.spawn(async move {
                for i in 0..50u8 {
                    let c = TcpStream::connect(addr).await.unwrap();
                    let (res, _) = c.write_all(vec![i; 10]).await;
                    res.unwrap();
                    let (res, b) = c.read_exact(Vec::with_capacity(10)).await;
                    res.unwrap();
                    assert_eq!(b, vec![i; 10]);
                    done.fetch_add(1, Ordering::SeqCst);
                }
            }));
        }
        for r in common::spawn_runners(&ctx, 4) {
            r.join().unwrap();
        }
        assert_eq!(done.load(Ordering::SeqCst), 400);
    });
}
