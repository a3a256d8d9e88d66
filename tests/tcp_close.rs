//! Closing a socket: a plain `close(2)` when every op on it has finished
//! (no cancel SQE, no enter), the full cancel-flush-close when one may still
//! be in the kernel.

mod common;

use std::time::Duration;

use common::each_mode;
use ringio::net::{TcpListener, TcpStream};

async fn connected_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (c, s) = futures_util::future::join(TcpStream::connect(addr), listener.accept()).await;
    (c.unwrap(), s.unwrap().0)
}

#[test]
fn close_after_finished_ops_submits_nothing() {
    each_mode(|mode, ctx| {
        let ctx2 = ctx.clone();
        ctx.block_on(async move {
            let (c, s) = connected_pair().await;
            // A read that goes through the ring (nothing to read yet), then
            // completes when the peer writes.
            let reader = ringio::spawn(async move {
                let (res, _) = s.read(Vec::with_capacity(8)).await;
                assert_eq!(res.unwrap(), 2);
                s
            });
            ringio::time::sleep(Duration::from_millis(5)).await;
            let (res, _) = c.write(b"hi".to_vec()).await;
            res.unwrap();
            let s = reader.await.unwrap();
            let before = ctx2.metrics();
            drop(s);
            let after = ctx2.metrics();
            assert_eq!(
                after.sqes_submitted, before.sqes_submitted,
                "[{mode}] nothing in flight: no cancel submitted"
            );
            assert_eq!(after.enter_calls, before.enter_calls, "[{mode}] no enter");
            // The peer sees the close.
            let (res, _) = c.read(Vec::with_capacity(8)).await;
            assert_eq!(res.unwrap(), 0, "[{mode}]");
        });
    });
}

#[test]
fn close_with_a_read_in_flight_cancels_it_first() {
    each_mode(|mode, ctx| {
        let ctx2 = ctx.clone();
        ctx.block_on(async move {
            let (c, s) = connected_pair().await;
            let s = std::sync::Arc::new(s);
            let s2 = s.clone();
            let reader = ringio::spawn(async move { s2.read(Vec::with_capacity(8)).await.0 });
            ringio::time::sleep(Duration::from_millis(5)).await;
            reader.abort();
            assert!(reader.await.is_err());
            let before = ctx2.metrics();
            drop(std::sync::Arc::try_unwrap(s).unwrap());
            let after = ctx2.metrics();
            assert!(
                after.enter_calls > before.enter_calls,
                "[{mode}] a read was cancelled in flight: the close must submit a cancel by \
                 fd and flush it first ({before:?} -> {after:?})"
            );
            // The socket really closed: the peer reads EOF.
            let r =
                ringio::time::timeout(Duration::from_secs(5), c.read(Vec::with_capacity(8))).await;
            assert_eq!(
                r.expect("peer never saw the close").0.unwrap(),
                0,
                "[{mode}]"
            );
        });
    });
}
