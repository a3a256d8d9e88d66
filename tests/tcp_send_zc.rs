//! Zero-copy sends (`write_zc`, `write_all_zc`, `IORING_OP_SEND_ZC`): every
//! byte arrives and the very same buffer comes back; a reset peer is an
//! error, not a signal; a send dropped while the kernel still holds its
//! buffer (the peer reads nothing) keeps the buffer alive until the
//! kernel's notification, and the connection stays usable; Unix streams
//! report what the kernel says. Both modes.

mod common;

use std::net::Shutdown;
use std::time::Duration;

use common::{drive_with, each_mode, tcp_pair, Mode};
use ringio::net::UnixStream;
use ringio::time::{sleep, timeout};
use ringio::IoContext;

fn seq(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn drive<F: std::future::Future>(mode: Mode, ctx: &IoContext, fut: F) -> F::Output {
    drive_with(mode, ctx, 2, fut)
}

#[test]
fn every_byte_arrives_and_the_same_buffer_comes_back() {
    each_mode(|mode, ctx| {
        drive(mode, &ctx, async {
            let (c, s) = tcp_pair().await;
            const TOTAL: usize = 1 << 20;
            let reader = ringio::spawn(async move {
                let mut got = Vec::with_capacity(TOTAL);
                loop {
                    let (res, buf) = s.read(Vec::with_capacity(64 * 1024)).await;
                    match res.unwrap() {
                        0 => return got,
                        n => got.extend_from_slice(&buf[..n]),
                    }
                }
            });
            let data = seq(TOTAL);
            let ptr = data.as_ptr();
            let (res, back) = c.write_all_zc(data).await;
            res.unwrap();
            assert_eq!(back.as_ptr(), ptr, "[{mode}] the buffer itself comes back");
            assert_eq!(back.len(), TOTAL);
            // A single zero-copy write reports what went.
            let (res, small) = c.write_zc(b"tail".to_vec()).await;
            assert_eq!(res.unwrap(), 4);
            assert_eq!(small, b"tail");
            c.shutdown(Shutdown::Write).unwrap();
            let got = reader.await.unwrap();
            assert_eq!(got.len(), TOTAL + 4, "[{mode}]");
            assert!(got[..TOTAL] == back[..], "[{mode}] bytes differ");
            assert_eq!(&got[TOTAL..], b"tail");
        });
    });
}

#[test]
fn a_reset_peer_is_an_error_not_a_signal() {
    each_mode(|mode, ctx| {
        drive(mode, &ctx, async {
            let (c, s) = tcp_pair().await;
            s.set_linger(Some(Duration::ZERO)).unwrap();
            drop(s); // RST
            sleep(Duration::from_millis(20)).await;
            let mut failed = None;
            for _ in 0..10 {
                let (res, _) = c.write_all_zc(vec![1u8; 64 * 1024]).await;
                if let Err(e) = res {
                    failed = Some(e);
                    break;
                }
            }
            let e = failed.unwrap_or_else(|| panic!("[{mode}] writes to a reset peer succeeded"));
            assert!(
                matches!(
                    e.kind(),
                    std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                ),
                "[{mode}] {e:?}"
            );
        });
    });
}

#[test]
fn a_dropped_send_keeps_its_buffer_until_the_kernel_lets_go() {
    each_mode(|mode, ctx| {
        drive(mode, &ctx, async {
            let (c, s) = tcp_pair().await;
            // Nobody reads yet: the socket buffers fill and a large send
            // stays in the kernel, holding its pages.
            let mut sent = 0usize;
            let mut dropped = 0;
            for _ in 0..64 {
                match timeout(Duration::from_millis(5), c.write_zc(seq(256 * 1024))).await {
                    Ok((res, _)) => sent += res.unwrap(),
                    Err(_) => {
                        dropped += 1;
                        break;
                    }
                }
            }
            assert_eq!(dropped, 1, "[{mode}] a send should have blocked");
            // Read everything that arrives: the bytes that were sent, plus
            // whatever part of the dropped send the kernel had taken.
            let reader = ringio::spawn(async move {
                let mut n = 0usize;
                loop {
                    let (res, _) = s.read(Vec::with_capacity(64 * 1024)).await;
                    match res.unwrap() {
                        0 => return n,
                        k => n += k,
                    }
                }
            });
            // The connection still works after the dropped send.
            let (res, _) = c.write_all_zc(seq(1000)).await;
            res.unwrap();
            c.shutdown(Shutdown::Write).unwrap();
            let got = reader.await.unwrap();
            assert!(got >= sent + 1000, "[{mode}] {got} < {sent} + 1000");
        });
    });
}

#[test]
fn unix_streams_report_what_the_kernel_says() {
    each_mode(|mode, ctx| {
        drive(mode, &ctx, async {
            let (a, b) = UnixStream::pair().unwrap();
            let (res, buf) = a.write_zc(b"hello".to_vec()).await;
            assert_eq!(buf, b"hello", "[{mode}] the buffer comes back either way");
            match res {
                // Kernels without zero-copy for Unix sockets refuse it.
                Err(e) => assert!(
                    matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EINVAL)),
                    "[{mode}] {e:?}"
                ),
                Ok(n) => {
                    assert_eq!(n, 5);
                    let (res, got) = b.read(Vec::with_capacity(16)).await;
                    assert_eq!(&got[..res.unwrap()], b"hello");
                }
            }
        });
    });
}
