//! The I/O methods every stream socket type shares (`TcpStream`,
//! `UnixStream`), written once and stamped onto each type by
//! [`stream_io!`]: owned-buffer reads and writes, vectored I/O, shutdown,
//! cancellation, and the `futures_io` traits for the type and for `&Type`.
//! The type must have a field `socket: Socket`.

macro_rules! stream_io {
    ($ty:ident) => {
        impl $ty {
            /// Reads into `buf`, from its start up to its capacity, and
            /// returns the buffer with the count; the data is `buf[..n]`.
            /// `Ok(0)` means the peer closed its write side (or `buf` has no
            /// capacity).
            ///
            /// Dropping the future cancels the read; bytes the kernel had
            /// already received for it are kept and returned by the next
            /// read, so none are lost.
            pub async fn read<B: $crate::buf::IoBufMut>(
                &self,
                buf: B,
            ) -> $crate::buf::BufResult<usize, B> {
                self.socket.recv(buf).await
            }

            /// Fills `buf` to its capacity (`bytes_total`), or fails with
            /// `UnexpectedEof` if the stream ends first (the bytes read so
            /// far are in `buf`).
            pub async fn read_exact<B: $crate::buf::IoBufMut>(
                &self,
                buf: B,
            ) -> $crate::buf::BufResult<(), B> {
                self.socket.recv_exact(buf).await
            }

            /// Receives into the buffers of `ring`, one multishot receive
            /// for every chunk that arrives: the returned
            /// [`RecvStream`]($crate::net::RecvStream) yields each chunk as
            /// a [`RingBuf`]($crate::buf::RingBuf), which goes back to the
            /// ring when dropped. No buffer is tied up by an idle
            /// connection, and one SQE serves every chunk.
            ///
            /// Bytes an earlier cancelled read (or the futures-io adapter)
            /// already took from the socket come first; dropping the stream
            /// keeps whatever it still receives for the next read.
            pub fn recv_multishot<'a>(
                &'a self,
                ring: &$crate::buf::BufRing,
            ) -> $crate::net::RecvStream<'a> {
                $crate::net::RecvStream::new(&self.socket, ring)
            }

            /// Reads into several buffers in order, in one operation.
            pub async fn readv<B: $crate::buf::IoBufMut>(
                &self,
                bufs: Vec<B>,
            ) -> $crate::buf::BufResult<usize, Vec<B>> {
                self.socket.recv_vectored(bufs).await
            }

            /// Writes `buf[..len]` (or part of it); returns how many bytes
            /// went. Never raises `SIGPIPE`: writing to a reset peer is an
            /// error (`BrokenPipe` or `ConnectionReset`).
            pub async fn write<B: $crate::buf::IoBuf>(
                &self,
                buf: B,
            ) -> $crate::buf::BufResult<usize, B> {
                self.socket.send(buf).await
            }

            /// Writes all of `buf[..len]`, in as many writes as it takes.
            pub async fn write_all<B: $crate::buf::IoBuf>(
                &self,
                buf: B,
            ) -> $crate::buf::BufResult<(), B> {
                self.socket.send_all(buf).await
            }

            /// [`write`](Self::write) without copying: the kernel sends
            /// from `buf`'s own pages (`IORING_OP_SEND_ZC`) and gives the
            /// buffer back only once it no longer references them (for
            /// TCP, once the bytes are acknowledged), so the call takes
            /// longer than a plain write. Worth it for large buffers (tens
            /// of KiB) sent to a network device; over loopback the kernel
            /// copies anyway. Needs Linux 6.0; TCP only (a Unix stream
            /// gets `ErrorKind::Unsupported`, `EOPNOTSUPP`, and its buffer
            /// back). Dropping the future cancels the send, and the buffer
            /// stays alive until the kernel lets go of it.
            pub async fn write_zc<B: $crate::buf::IoBuf>(
                &self,
                buf: B,
            ) -> $crate::buf::BufResult<usize, B> {
                self.socket.send_zc(buf).await
            }

            /// [`write_all`](Self::write_all) with zero-copy writes (see
            /// [`write_zc`](Self::write_zc)).
            pub async fn write_all_zc<B: $crate::buf::IoBuf>(
                &self,
                buf: B,
            ) -> $crate::buf::BufResult<(), B> {
                self.socket.send_all_zc(buf).await
            }

            /// Writes several buffers in order, in one operation; returns
            /// how many bytes went in all.
            pub async fn writev<B: $crate::buf::IoBuf>(
                &self,
                bufs: Vec<B>,
            ) -> $crate::buf::BufResult<usize, Vec<B>> {
                self.socket.send_vectored(bufs).await
            }

            /// Shuts down the read side, the write side (the peer reads
            /// EOF), or both.
            pub fn shutdown(&self, how: std::net::Shutdown) -> std::io::Result<()> {
                self.socket.sock_ref().shutdown(how)
            }

            /// Cancels every operation in flight on this socket, from any
            /// task: each fails with `ECANCELED` (`raw_os_error()`). Bytes a
            /// cancelled read already received are returned by the next read.
            pub fn cancel(&self) {
                self.socket.cancel()
            }
        }

        impl std::os::fd::AsRawFd for $ty {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                self.socket.raw()
            }
        }

        impl std::os::fd::AsFd for $ty {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                std::os::fd::AsFd::as_fd(&self.socket)
            }
        }

        impl futures_io::AsyncRead for $ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.socket.poll_read_compat(cx, buf)
            }
        }

        impl futures_io::AsyncRead for &$ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.socket.poll_read_compat(cx, buf)
            }
        }

        impl futures_io::AsyncWrite for $ty {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.socket.poll_write_compat(cx, buf)
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                self.socket.poll_flush_compat(cx)
            }

            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                self.socket.poll_close_compat(cx)
            }
        }

        impl futures_io::AsyncWrite for &$ty {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.socket.poll_write_compat(cx, buf)
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                self.socket.poll_flush_compat(cx)
            }

            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                self.socket.poll_close_compat(cx)
            }
        }

        #[cfg(feature = "tokio")]
        $crate::net::stream_io::tokio_io!($ty);
        #[cfg(feature = "tokio")]
        $crate::net::stream_io::tokio_io!(&$ty);
    };
}

/// `tokio::io::AsyncRead`/`AsyncWrite` (feature `tokio`), over the same
/// internal buffers as the `futures_io` impls.
#[cfg(feature = "tokio")]
macro_rules! tokio_io {
    ($ty:ty) => {
        impl tokio::io::AsyncRead for $ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                let n =
                    std::task::ready!(self.socket.poll_read_compat(cx, buf.initialize_unfilled()))?;
                buf.advance(n);
                std::task::Poll::Ready(Ok(()))
            }
        }

        impl tokio::io::AsyncWrite for $ty {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.socket.poll_write_compat(cx, buf)
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                self.socket.poll_flush_compat(cx)
            }

            fn poll_shutdown(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                self.socket.poll_close_compat(cx)
            }
        }
    };
}

pub(crate) use stream_io;
#[cfg(feature = "tokio")]
pub(crate) use tokio_io;
