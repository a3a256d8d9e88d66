//! TCP errors: a peer reset while a read waits (in the ring) or before it
//! starts, writes to a reset peer (an error, never `SIGPIPE`: this binary
//! counts `SIGPIPE` with a handler, as the Rust runtime would otherwise
//! ignore it), connection refused, `read_exact` hitting EOF, and reads and
//! writes with empty buffers (inline and through the ring). Both modes.

mod common;

use std::io::{self, ErrorKind};
use std::net::Shutdown;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::time::Duration;

use common::{each_mode, fd_shared, tcp_pair as pair};
use ringio::net::{TcpListener, TcpStream};
use ringio::time::sleep;

static SIGPIPES: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_sigpipe(_: libc::c_int) {
    SIGPIPES.fetch_add(1, Ordering::SeqCst);
}

/// Replaces the runtime's `SIG_IGN` for `SIGPIPE` with a counting handler,
/// so a send without `MSG_NOSIGNAL` would be seen.
fn count_sigpipes() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: a zeroed sigaction with a valid handler; the handler only
        // touches an atomic (async-signal-safe).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_sigpipe as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            assert_eq!(libc::sigaction(libc::SIGPIPE, &sa, std::ptr::null_mut()), 0);
        }
    });
}

fn reset_or_eof(res: &io::Result<usize>) -> bool {
    matches!(res, Ok(0)) || matches!(res, Err(e) if e.kind() == ErrorKind::ConnectionReset)
}

#[test]
fn peer_reset_while_read_waits() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            for round in 0..20 {
                let (c, s) = pair().await;
                let reader = ringio::spawn(async move {
                    let (res, _) = s.read(Vec::with_capacity(1024)).await;
                    res
                });
                // Let the read reach the ring (an ordering aid, not an
                // assertion: either order must give reset or EOF).
                sleep(Duration::from_micros(200 * (round % 3))).await;
                c.set_linger(Some(Duration::ZERO)).unwrap();
                drop(c);
                let res = reader.await.unwrap();
                assert!(reset_or_eof(&res), "[{mode}] round {round}: {res:?}");
            }
        });
    });
}

#[test]
fn peer_reset_with_unread_data_and_before_read() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let (c, s) = pair().await;
            let (res, _) = c.write_all(vec![1u8; 1000]).await;
            res.unwrap();
            c.set_linger(Some(Duration::ZERO)).unwrap();
            drop(c);
            // Reading until the reset shows, bounded: never a hang, never
            // more bytes than were sent.
            let mut got = 0;
            for _ in 0..100 {
                let (res, _) = s.read(Vec::with_capacity(300)).await;
                match res {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) => {
                        assert_eq!(e.kind(), ErrorKind::ConnectionReset, "[{mode}] {e}");
                        break;
                    }
                }
            }
            assert!(got <= 1000, "[{mode}] {got}");
            // And afterwards the socket keeps failing or reporting EOF.
            let (res, _) = s.read(Vec::with_capacity(10)).await;
            assert!(reset_or_eof(&res), "[{mode}] {res:?}");
        });
    });
}

#[test]
fn writes_to_reset_peer_fail_without_sigpipe() {
    let _fd = fd_shared();
    count_sigpipes();
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            // Through write (speculation, then the ring once full), writev
            // (SENDMSG) and write_all.
            for how in ["write", "writev", "write_all"] {
                let (c, s) = pair().await;
                c.set_linger(Some(Duration::ZERO)).unwrap();
                drop(c);
                let mut failed = None;
                for _ in 0..1000 {
                    let res = match how {
                        "write" => s.write(vec![7u8; 64 * 1024]).await.0.map(drop),
                        "writev" => s.writev(vec![vec![7u8; 4096]; 4]).await.0.map(drop),
                        _ => s.write_all(vec![7u8; 64 * 1024]).await.0,
                    };
                    if let Err(e) = res {
                        failed = Some(e);
                        break;
                    }
                }
                let e = failed.unwrap_or_else(|| panic!("[{mode}] {how}: never failed"));
                assert!(
                    matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
                    "[{mode}] {how}: {e}"
                );
                // Once broken, it stays broken (EPIPE now).
                let (res, _) = s.write(vec![1u8; 10]).await;
                assert_eq!(
                    res.unwrap_err().kind(),
                    ErrorKind::BrokenPipe,
                    "[{mode}] {how}"
                );
            }
            // A writer parked in the ring (peer not reading, buffers full)
            // when the peer resets.
            let (c, s) = pair().await;
            let writer = ringio::spawn(async move {
                loop {
                    let (res, _) = s.write_all(vec![3u8; 256 * 1024]).await;
                    if let Err(e) = res {
                        return e;
                    }
                }
            });
            sleep(Duration::from_millis(20)).await;
            c.set_linger(Some(Duration::ZERO)).unwrap();
            drop(c);
            let e = writer.await.unwrap();
            assert!(
                matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
                "[{mode}] parked writer: {e}"
            );
        });
    });
    assert_eq!(SIGPIPES.load(Ordering::SeqCst), 0, "SIGPIPE raised");
}

#[test]
fn connection_refused() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            for local in ["127.0.0.1:0", "[::1]:0"] {
                let Ok(l) = std::net::TcpListener::bind(local) else {
                    println!("note: {local} cannot be bound; skipped");
                    continue;
                };
                let addr = l.local_addr().unwrap();
                drop(l);
                let e = TcpStream::connect(addr).await.unwrap_err();
                assert_eq!(
                    e.kind(),
                    ErrorKind::ConnectionRefused,
                    "[{mode}] {addr}: {e}"
                );
            }
            // A listener bound but dropped through ringio too, and a name.
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = l.local_addr().unwrap().port();
            drop(l);
            let e = TcpStream::connect(format!("127.0.0.1:{port}"))
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "[{mode}] {e}");
            // A name that resolves works when the port listens.
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = l.local_addr().unwrap().port();
            let c = TcpStream::connect(format!("localhost:{port}")).await;
            match c {
                Ok(c) => assert_eq!(c.peer_addr().unwrap().port(), port),
                // localhost may resolve to ::1 only where nothing listens.
                Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "[{mode}] {e}"),
            }
        });
    });
}

#[test]
fn read_exact_hits_eof() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let (c, s) = pair().await;
            let (res, _) = c.write_all(b"abc".to_vec()).await;
            res.unwrap();
            let writer = ringio::spawn(async move {
                sleep(Duration::from_millis(5)).await;
                let (res, _) = c.write_all(b"de".to_vec()).await;
                res.unwrap();
                c.shutdown(Shutdown::Write).unwrap();
                c
            });
            let (res, buf) = s.read_exact(Vec::with_capacity(10)).await;
            let e = res.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::UnexpectedEof, "[{mode}] {e}");
            assert_eq!(&buf[..5], b"abcde", "[{mode}] the bytes read so far");
            let _c = writer.await.unwrap();
            // A zero-capacity read_exact is done at once.
            let (res, _) = s.read_exact(Vec::new()).await;
            res.unwrap();
        });
    });
}

#[test]
fn empty_buffers_inline_and_in_ring() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let (c, s) = pair().await;
            // Speculative (inline) path.
            let (res, _) = s.read(Vec::new()).await;
            assert_eq!(res.unwrap(), 0, "[{mode}] inline empty read");
            let (res, _) = c.write(Vec::new()).await;
            assert_eq!(res.unwrap(), 0, "[{mode}] inline empty write");
            // A read that found nothing stops speculating; after a read
            // through the ring, an empty read still returns at once.
            let reader = ringio::spawn(async move {
                let (res, buf) = s.read(Vec::with_capacity(8)).await;
                assert_eq!(res.unwrap(), 1);
                assert_eq!(buf, b"!");
                s
            });
            ringio::time::sleep(Duration::from_millis(5)).await;
            let (res, _) = c.write_all(b"!".to_vec()).await;
            res.unwrap();
            let s = reader.await.unwrap();
            let (res, _) = s.read(Vec::new()).await;
            assert_eq!(res.unwrap(), 0, "[{mode}] empty read after a ring read");
            let (res, _) = s.readv(vec![Vec::new(), Vec::new()]).await;
            assert_eq!(res.unwrap(), 0, "[{mode}] empty readv");
            let (res, _) = c.write_all(Vec::new()).await;
            res.unwrap();
            // And the stream is intact.
            let (res, _) = c.write_all(b"ok".to_vec()).await;
            res.unwrap();
            let (res, buf) = s.read_exact(Vec::with_capacity(2)).await;
            res.unwrap();
            assert_eq!(buf, b"ok", "[{mode}]");
        });
    });
}
