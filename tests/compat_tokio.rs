//! `tokio::io` traits on ringio streams (feature `tokio`):
//! `cargo test --features tokio --test compat_tokio`.
#![cfg(feature = "tokio")]

mod common;

use common::each_mode;
use ringio::net::{TcpListener, TcpStream, UnixStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[test]
fn tokio_read_write_on_tcp_and_unix() {
    each_mode(|_, ctx| {
        ctx.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let server = ringio::spawn(async move {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut got = Vec::new();
                AsyncReadExt::read_to_end(&mut s, &mut got).await.unwrap();
                AsyncWriteExt::write_all(&mut s, &got).await.unwrap();
                AsyncWriteExt::shutdown(&mut s).await.unwrap();
            });
            let mut c = TcpStream::connect(addr).await.unwrap();
            let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7) as u8).collect();
            AsyncWriteExt::write_all(&mut c, &data).await.unwrap();
            AsyncWriteExt::shutdown(&mut c).await.unwrap();
            let mut back = Vec::new();
            AsyncReadExt::read_to_end(&mut &c, &mut back).await.unwrap();
            assert_eq!(back, data);
            server.await.unwrap();

            let (mut a, b) = UnixStream::pair().unwrap();
            AsyncWriteExt::write_all(&mut a, b"tokio traits")
                .await
                .unwrap();
            AsyncWriteExt::flush(&mut a).await.unwrap();
            let mut buf = [0u8; 12];
            AsyncReadExt::read_exact(&mut &b, &mut buf).await.unwrap();
            assert_eq!(&buf, b"tokio traits");
        });
    });
}
