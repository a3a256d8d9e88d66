//! [`Slice`]: part of a buffer, handed to the kernel on its own.

use std::ops::{Bound, Deref, RangeBounds};

use super::{IoBuf, IoBufMut};

/// A byte range of an owned buffer. Reads fill from the range's start;
/// writes send the initialised part of the range.
#[derive(Debug)]
pub struct Slice<T> {
    buf: T,
    begin: usize,
    end: usize,
}

impl<T: IoBuf> Slice<T> {
    pub(crate) fn new(buf: T, range: impl RangeBounds<usize>) -> Self {
        let total = buf.bytes_total();
        let begin = match range.start_bound() {
            Bound::Included(&n) => n,
            Bound::Excluded(&n) => n.checked_add(1).expect("slice start overflows"),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&n) => n.checked_add(1).expect("slice end overflows"),
            Bound::Excluded(&n) => n,
            Bound::Unbounded => total,
        };
        assert!(
            begin <= end,
            "slice range starts at {begin} but ends at {end}"
        );
        assert!(
            end <= total,
            "slice range ends at {end} past the buffer's {total} bytes"
        );
        Slice { buf, begin, end }
    }

    /// Start of the range within the buffer.
    pub fn begin(&self) -> usize {
        self.begin
    }

    /// End of the range within the buffer.
    pub fn end(&self) -> usize {
        self.end
    }

    /// The whole buffer.
    pub fn get_ref(&self) -> &T {
        &self.buf
    }

    /// The whole buffer, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.buf
    }

    /// Gives the whole buffer back.
    pub fn into_inner(self) -> T {
        self.buf
    }
}

impl<T: IoBuf> Deref for Slice<T> {
    type Target = [u8];
    /// The initialised bytes of the range.
    fn deref(&self) -> &[u8] {
        let init = self.bytes_init();
        // SAFETY: `begin + init` bytes of the buffer are initialised and in
        // bounds (`bytes_init` clamps to the buffer's initialised length).
        unsafe { std::slice::from_raw_parts(self.buf.stable_ptr().add(self.begin), init) }
    }
}

// SAFETY: a sub-range of a stable buffer is stable; the bounds were checked
// against `bytes_total` at construction.
unsafe impl<T: IoBuf> IoBuf for Slice<T> {
    fn stable_ptr(&self) -> *const u8 {
        // SAFETY: `begin <= bytes_total`, so the offset stays in (or one past) the allocation.
        unsafe { self.buf.stable_ptr().add(self.begin) }
    }
    fn bytes_init(&self) -> usize {
        self.buf.bytes_init().clamp(self.begin, self.end) - self.begin
    }
    fn bytes_total(&self) -> usize {
        self.end - self.begin
    }
}

// SAFETY: as above; `set_init` translates to the parent's coordinates.
unsafe impl<T: IoBufMut> IoBufMut for Slice<T> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        // SAFETY: `begin <= bytes_total`, so the offset stays in (or one past) the allocation.
        unsafe { self.buf.stable_mut_ptr().add(self.begin) }
    }
    unsafe fn set_init(&mut self, pos: usize) {
        // Only contiguous growth can be recorded: if the range starts past
        // the parent's initialised bytes, the gap before it is still
        // uninitialised and must stay invisible.
        if self.begin <= self.buf.bytes_init() {
            // SAFETY: bytes `..begin` were initialised already and the
            // caller guarantees `begin..begin + pos`.
            unsafe { self.buf.set_init(self.begin + pos) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_bounds_and_init() {
        let v = b"hello world".to_vec();
        let s = v.slice(6..);
        assert_eq!(&s[..], b"world");
        assert_eq!(s.bytes_total(), 5);
        let v = s.into_inner();
        let s = v.slice(..=4);
        assert_eq!(&s[..], b"hello");
        let mut w = Vec::with_capacity(8);
        w.push(1u8);
        let mut s = w.slice(2..6);
        assert_eq!(s.bytes_init(), 0, "uninitialised range");
        // SAFETY: pretend the kernel wrote 2 bytes; the gap at index 1 keeps
        // the parent from recording them.
        unsafe { s.set_init(2) };
        assert_eq!(s.into_inner().len(), 1);
    }

    #[test]
    #[should_panic(expected = "past the buffer")]
    fn out_of_range_slice_panics_like_vec() {
        let _ = vec![0u8; 4].slice(..5);
    }
}
