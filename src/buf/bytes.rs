//! [`IoBuf`] / [`IoBufMut`] for the `bytes` crate (feature `bytes`).

use super::{IoBuf, IoBufMut};

// SAFETY: `Bytes` points at heap (or 'static) memory that does not move when
// the handle moves and stays alive while the handle does; all `len` bytes
// are initialised.
unsafe impl IoBuf for bytes::Bytes {
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

// SAFETY: `BytesMut` owns (or shares, uniquely for its range) heap memory of
// `capacity` bytes that does not move when the handle moves.
unsafe impl IoBuf for bytes::BytesMut {
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

// SAFETY: as above; the whole capacity is writable by this handle.
unsafe impl IoBufMut for bytes::BytesMut {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, pos: usize) {
        if self.len() < pos {
            // SAFETY: the caller guarantees `pos` initialised bytes, and
            // `pos <= bytes_total() == capacity()`.
            unsafe { self.set_len(pos) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_and_bytes_mut_report_their_memory() {
        let b = bytes::Bytes::from_static(b"abc");
        assert_eq!((b.bytes_init(), b.bytes_total()), (3, 3));
        let mut m = bytes::BytesMut::with_capacity(16);
        m.extend_from_slice(b"xy");
        assert_eq!(m.bytes_init(), 2);
        assert!(m.bytes_total() >= 16);
        // SAFETY: 2 bytes are initialised; set_init never shrinks.
        unsafe { m.set_init(1) };
        assert_eq!(&m[..], b"xy");
    }
}
