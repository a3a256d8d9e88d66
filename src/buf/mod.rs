//! Buffers handed to the kernel by value and given back.
//!
//! An operation that lets the kernel read or write memory takes the buffer by
//! value, keeps it alive (inside the future, then inside the op's slot if the
//! future is dropped) until the kernel's completion arrives, and returns it
//! with the result as a [`BufResult`]. The type says who owns the memory
//! while the kernel uses it.
//!
//! * A write sends `buf[..bytes_init()]`.
//! * A read writes from the start of the buffer's memory, up to
//!   [`IoBuf::bytes_total`], and on success sets the initialised length to
//!   `max(len, n)`; so `vec![0u8; N]` and `Vec::with_capacity(N)` both work
//!   and the data is always `buf[..n]`.
//! * [`IoBuf::slice`] reads or writes part of a buffer; [`Slice::into_inner`]
//!   gives the whole buffer back.
//! * The other way round, a [`BufRing`] lends buffers to the kernel up front
//!   (a provided-buffer ring): a multishot receive fills them as data comes
//!   and each arrives as a [`RingBuf`], which goes back to the ring when
//!   dropped (see `TcpStream::recv_multishot`).
//!
//! ```no_run
//! # async fn demo(reader: ringio::io::PipeReader) -> std::io::Result<()> {
//! let buf = Vec::with_capacity(4096);
//! let (res, buf) = reader.read(buf).await;
//! let n = res?;
//! println!("{:?}", &buf[..n]);
//! # Ok(()) }
//! ```

pub(crate) mod repeat;
pub(crate) mod ring;
mod slice;

use std::io;

pub use ring::{BufRing, RingBuf, MAX_BUFFERS};
pub use slice::Slice;

/// The result of an operation that borrowed a buffer, and the buffer.
pub type BufResult<T, B> = (io::Result<T>, B);

/// Memory the kernel may read from (a write's source).
///
/// # Safety
///
/// Implementors guarantee that [`stable_ptr`](IoBuf::stable_ptr) points at
/// [`bytes_total`](IoBuf::bytes_total) bytes of memory, the first
/// [`bytes_init`](IoBuf::bytes_init) of them initialised, and that this
/// pointer and memory stay valid and do not move for as long as the value is
/// alive, **even if the value itself is moved** (the kernel keeps using the
/// address while the op future, then the driver, carry the buffer around).
/// Heap-backed and `'static` buffers qualify; an array stored inline does not.
pub unsafe trait IoBuf: Unpin + Send + 'static {
    /// Start of the memory.
    fn stable_ptr(&self) -> *const u8;

    /// Bytes that hold data (what a write sends).
    fn bytes_init(&self) -> usize;

    /// Bytes of memory in all (what a read may fill).
    fn bytes_total(&self) -> usize;

    /// A view of `range` of this buffer, for reading or writing part of it.
    ///
    /// # Panics
    ///
    /// If the range is decreasing or ends past [`bytes_total`](IoBuf::bytes_total),
    /// as slicing a `Vec` would.
    fn slice(self, range: impl std::ops::RangeBounds<usize>) -> Slice<Self>
    where
        Self: Sized,
    {
        Slice::new(self, range)
    }
}

/// Memory the kernel may write to (a read's destination).
///
/// # Safety
///
/// As for [`IoBuf`], and [`stable_mut_ptr`](IoBufMut::stable_mut_ptr) must
/// allow writes of [`bytes_total`](IoBuf::bytes_total) bytes.
pub unsafe trait IoBufMut: IoBuf {
    /// Start of the memory, writable.
    fn stable_mut_ptr(&mut self) -> *mut u8;

    /// Records that the first `pos` bytes are now initialised. Never shrinks
    /// the initialised length.
    ///
    /// # Safety
    ///
    /// The first `pos` bytes must have been initialised (by the kernel).
    unsafe fn set_init(&mut self, pos: usize);
}

// SAFETY: a Vec's heap buffer does not move when the Vec does, and is
// `capacity` bytes long with `len` initialised.
unsafe impl IoBuf for Vec<u8> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

// SAFETY: as for `IoBuf`; `set_init` only grows `len` up to the capacity.
unsafe impl IoBufMut for Vec<u8> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, pos: usize) {
        if self.len() < pos {
            // SAFETY: the caller guarantees `pos` bytes are initialised and
            // `pos <= bytes_total() == capacity()`.
            unsafe { self.set_len(pos) };
        }
    }
}

// SAFETY: a boxed slice's memory does not move with the box; all of it is
// initialised.
unsafe impl IoBuf for Box<[u8]> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

// SAFETY: as above; the slice is writable and always fully initialised.
unsafe impl IoBufMut for Box<[u8]> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, _pos: usize) {}
}

// SAFETY: 'static memory never moves or goes away.
unsafe impl IoBuf for &'static [u8] {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

// SAFETY: 'static memory never moves or goes away.
unsafe impl IoBuf for &'static str {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

#[cfg(feature = "bytes")]
mod bytes;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vec_reports_len_and_capacity() {
        let mut v = Vec::with_capacity(16);
        v.extend_from_slice(b"abc");
        assert_eq!(v.bytes_init(), 3);
        assert!(v.bytes_total() >= 16);
        // SAFETY: the first 3 bytes are initialised; set_init never shrinks.
        unsafe { v.set_init(1) };
        assert_eq!(v.len(), 3);
    }

    #[test]
    fn static_and_boxed_buffers() {
        let s: &'static str = "hello";
        assert_eq!((s.bytes_init(), s.bytes_total()), (5, 5));
        let b: Box<[u8]> = vec![1, 2, 3].into_boxed_slice();
        assert_eq!((b.bytes_init(), b.bytes_total()), (3, 3));
        let st: &'static [u8] = b"xy";
        assert_eq!(st.bytes_init(), 2);
    }
}
