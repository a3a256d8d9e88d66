//! [`BufRing`]: a provided-buffer ring, and [`RingBuf`]: one of its buffers
//! lent to the application.
//!
//! # What it is
//!
//! A `BufRing` is `count` buffers of `size` bytes and a ring of `count`
//! descriptors (`struct io_uring_buf`) shared with the kernel
//! (`IORING_REGISTER_PBUF_RING`). A receive that selects from the ring
//! (multishot `RECV` with `IOSQE_BUFFER_SELECT`) takes the next descriptor
//! when data arrives, so no memory is committed to idle connections and one
//! SQE serves every message. Each completion names the buffer it filled
//! (`IORING_CQE_F_BUFFER`, the buffer id in the upper 16 bits of its flags);
//! that buffer then belongs to the application as a [`RingBuf`] until it is
//! dropped, which puts it back at the ring's tail.
//!
//! # Protocol with the kernel
//!
//! * Only we write the tail (the `resv` field of descriptor 0); the kernel
//!   keeps its head to itself. Descriptors between head and tail are the
//!   kernel's to take. A descriptor is written at `tail & mask` and then the
//!   tail is published with a release store (the kernel reads it with an
//!   acquire load). Descriptor 0 is written field by field, never as a
//!   whole, so its `resv` (the tail) is never clobbered.
//! * At most `count` buffers exist and each is either in the ring or lent
//!   out, so `tail - head <= count`: writing at the tail never overwrites a
//!   descriptor the kernel has yet to take.
//! * All of this runs under [`Inner::state`]'s mutex, so buffers may be
//!   dropped on any thread.
//!
//! # Lifetime and registration
//!
//! A ring is registered with the first [`IoContext`](crate::IoContext) that
//! receives into it, under a buffer-group id (`bgid`) that context's driver
//! hands out, and stays bound to that context. The memory is freed only
//! when the last reference goes — the `BufRing` handles, every lent
//! [`RingBuf`], and every receive operation using the ring (a cancelled
//! receive keeps its reference until its final completion) — and only
//! after the ring was unregistered. So the kernel can only select a
//! descriptor on behalf of a receive that still holds the memory alive, and
//! a buffer-group id is never reused while such a receive is in flight.

use std::alloc::{self, Layout};
use std::fmt;
use std::io;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::Waker;

use crate::runtime::scheduler::Shared;

/// The largest ring the kernel accepts (`IORING_REGISTER_PBUF_RING`).
pub const MAX_BUFFERS: u16 = 1 << 15;

/// `struct io_uring_buf`.
#[repr(C)]
struct RawBufEntry {
    addr: u64,
    len: u32,
    bid: u16,
    /// The ring's tail, in descriptor 0 only.
    resv: u16,
}

const PAGE: usize = 4096;

/// A ring of provided buffers for multishot receives (see
/// [`TcpStream::recv_multishot`](crate::net::TcpStream::recv_multishot)).
///
/// Cloning is cheap (a reference count); all clones are the same ring, and
/// one ring can serve many sockets of one [`IoContext`](crate::IoContext).
/// It is registered with the context that first receives into it and
/// cannot be used with another one.
///
/// ```no_run
/// # async fn demo(stream: ringio::net::TcpStream) -> std::io::Result<()> {
/// use ringio::buf::BufRing;
///
/// let ring = BufRing::new(64, 4096)?; // 64 buffers of 4 KiB
/// let mut incoming = stream.recv_multishot(&ring);
/// while let Some(buf) = incoming.next().await {
///     let buf = buf?; // a `RingBuf`: the bytes received
///     println!("{} bytes", buf.len());
/// } // each buffer goes back to the ring when dropped
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct BufRing {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// `count` descriptors, page-aligned.
    entries: NonNull<RawBufEntry>,
    /// `count * size` bytes of buffers.
    bufs: NonNull<u8>,
    count: u16,
    size: u32,
    /// The context the ring is registered with, and its buffer-group id.
    /// Lock order: `bound`, then the driver's core, then `state`.
    bound: Mutex<Option<Bound>>,
    state: Mutex<State>,
}

/// Where a ring is registered.
struct Bound {
    ctx: Weak<Shared>,
    bgid: u16,
    /// The driver's ring generation at registration.
    generation: u64,
}

struct State {
    /// The tail as last published.
    tail: u16,
    /// Buffers lent out as `RingBuf`s (or being copied out of a cancelled
    /// receive's completion).
    lent: u16,
    /// Buffers given back so far (wrapping): a receive notes it when it
    /// arms, and after `ENOBUFS` re-arms only once it has moved (see
    /// [`BufRing::poll_returned`]).
    returns: u64,
    /// Receives waiting for a buffer to come back.
    waiters: Vec<Waker>,
}

// SAFETY: the raw pointers are to memory owned by `Inner`; the buffers'
// bytes are only read through a `RingBuf` that holds that buffer alone, and
// the descriptors are only written under the `state` mutex.
unsafe impl Send for Inner {}
// SAFETY: as above.
unsafe impl Sync for Inner {}

impl BufRing {
    /// A ring of `count` buffers of `size` bytes each.
    ///
    /// `count` must be a power of two from 1 to [`MAX_BUFFERS`] (the
    /// kernel's rule), `size` from 1 to `u32::MAX`; anything else is
    /// `InvalidInput`. The memory is allocated here and registered with the
    /// context on first use.
    pub fn new(count: u16, size: usize) -> io::Result<BufRing> {
        if count == 0 || !count.is_power_of_two() || count > MAX_BUFFERS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "ringio: a BufRing's buffer count must be a power of two from 1 to \
                     {MAX_BUFFERS}, not {count}"
                ),
            ));
        }
        let size32 = u32::try_from(size).ok().filter(|&s| s > 0).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "ringio: a BufRing's buffer size must be 1 to {} bytes, not {size}",
                    u32::MAX
                ),
            )
        })?;
        let too_big = || io::Error::new(io::ErrorKind::OutOfMemory, "ringio: BufRing too large");
        let entries_layout = Layout::array::<RawBufEntry>(usize::from(count))
            .and_then(|l| l.align_to(PAGE))
            .map_err(|_| too_big())?;
        let bufs_layout = Layout::array::<u8>(usize::from(count) * size)
            .and_then(|l| l.align_to(64))
            .map_err(|_| too_big())?;
        // SAFETY: both layouts have a non-zero size (count >= 1, size >= 1).
        let entries = NonNull::new(unsafe { alloc::alloc_zeroed(entries_layout) })
            .ok_or_else(too_big)?
            .cast::<RawBufEntry>();
        // SAFETY: as above.
        let Some(bufs) = NonNull::new(unsafe { alloc::alloc(bufs_layout) }) else {
            // SAFETY: allocated just above with this layout.
            unsafe { alloc::dealloc(entries.as_ptr().cast(), entries_layout) };
            return Err(too_big());
        };
        let inner = Inner {
            entries,
            bufs,
            count,
            size: size32,
            bound: Mutex::new(None),
            state: Mutex::new(State {
                tail: 0,
                lent: 0,
                returns: 0,
                waiters: Vec::new(),
            }),
        };
        {
            let mut st = inner.lock();
            for bid in 0..count {
                inner.push(&mut st, bid);
            }
        }
        Ok(BufRing {
            inner: Arc::new(inner),
        })
    }

    /// How many buffers the ring has.
    pub fn count(&self) -> u16 {
        self.inner.count
    }

    /// The size of each buffer in bytes.
    pub fn buf_size(&self) -> usize {
        self.inner.size as usize
    }

    /// How many buffers are lent out as [`RingBuf`]s right now.
    pub fn lent(&self) -> u16 {
        self.inner.lock().lent
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    /// The buffer-group id of this ring in `shared`'s ring, registering it
    /// there first if it is not yet bound. Call on a thread that runs
    /// `shared` (single-threaded contexts may only register from their
    /// owner thread).
    pub(crate) fn bind(&self, shared: &Arc<Shared>) -> io::Result<u16> {
        let mut bound = lock(&self.inner.bound);
        if let Some(b) = &*bound {
            if b.ctx.as_ptr() == Arc::as_ptr(shared) {
                return Ok(b.bgid);
            }
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "ringio: this BufRing is registered with another IoContext; make one ring per \
                 context",
            ));
        }
        let mut core = shared
            .lock_driver()
            .expect("bind runs on a thread running the context");
        let (bgid, generation) = shared
            .driver
            .register_buf_ring(
                &mut core,
                self.inner.entries.as_ptr() as u64,
                self.inner.count,
            )
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "ringio: registering a BufRing with the ring failed (provided-buffer \
                         rings need Linux 5.19, multishot receives 6.0): {e}"
                    ),
                )
            })?;
        *bound = Some(Bound {
            ctx: Arc::downgrade(shared),
            bgid,
            generation,
        });
        Ok(bgid)
    }

    /// The count of buffers given back so far, for [`poll_returned`](Self::poll_returned).
    pub(crate) fn returns(&self) -> u64 {
        self.inner.lock().returns
    }

    /// Whether a buffer came back since `returns` was read (then a receive
    /// the kernel ended with `ENOBUFS` may re-arm); else `waker` is woken
    /// by the next one.
    ///
    /// Why this test: `ENOBUFS` means the ring was empty when the kernel
    /// looked, after the receive armed (when `returns` was read). Only a
    /// buffer given back since then can have refilled it; buffers sitting
    /// in completions not yet taken (another receive's, whose owner may not
    /// poll for a while) cannot. So re-arming without a return would spin,
    /// and waiting for one never hangs: any return after the kernel looked
    /// moves the count or wakes the waiter.
    pub(crate) fn poll_returned(&self, returns: u64, waker: &Waker) -> bool {
        let mut st = self.inner.lock();
        if st.returns != returns {
            return true;
        }
        if !st.waiters.iter().any(|w| w.will_wake(waker)) {
            st.waiters.push(waker.clone());
        }
        false
    }
}

impl fmt::Debug for BufRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bgid = lock(&self.inner.bound).as_ref().map(|b| b.bgid);
        f.debug_struct("BufRing")
            .field("count", &self.inner.count)
            .field("buf_size", &self.inner.size)
            .field("lent", &self.inner.lock().lent)
            .field("bgid", &bgid)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn buf_ptr(&self, bid: u16) -> *mut u8 {
        // SAFETY: `bid < count`, so the offset stays inside the allocation.
        unsafe {
            self.bufs
                .as_ptr()
                .add(usize::from(bid) * self.size as usize)
        }
    }

    /// Writes buffer `bid` at the tail and publishes the new tail.
    fn push(&self, st: &mut State, bid: u16) {
        let idx = usize::from(st.tail & (self.count - 1));
        // SAFETY: `idx < count`: inside the descriptor array. Fields are
        // written one by one through raw pointers, so descriptor 0's `resv`
        // (the tail, which the kernel may be reading) is not touched; the
        // descriptor itself is not one the kernel may read yet (module docs).
        unsafe {
            let e = self.entries.as_ptr().add(idx);
            std::ptr::addr_of_mut!((*e).addr).write(self.buf_ptr(bid) as u64);
            std::ptr::addr_of_mut!((*e).len).write(self.size);
            std::ptr::addr_of_mut!((*e).bid).write(bid);
        }
        st.tail = st.tail.wrapping_add(1);
        // SAFETY: the tail lives in descriptor 0's `resv`, a naturally aligned
        // u16 in memory we own; the kernel only reads it.
        let tail =
            unsafe { AtomicU16::from_ptr(std::ptr::addr_of_mut!((*self.entries.as_ptr()).resv)) };
        tail.store(st.tail, Ordering::Release);
    }

    /// The kernel filled buffer `bid`: lend it out, its data being the
    /// `len` bytes at `start`.
    ///
    /// # Safety
    ///
    /// `bid` comes from a completion of a receive on this ring (so the
    /// kernel took it out of the ring and wrote `start + len <= size` bytes).
    pub(crate) unsafe fn lend(self: &Arc<Self>, bid: u16, start: usize, len: usize) -> RingBuf {
        debug_assert!(bid < self.count && start + len <= self.size as usize);
        self.lock().lent += 1;
        let start = start.min(self.size as usize);
        RingBuf(Backing::Ring {
            ring: self.clone(),
            bid,
            start: start as u32,
            len: len.min(self.size as usize - start) as u32,
        })
    }

    /// The first `len` bytes of buffer `bid` (clamped to its size).
    ///
    /// # Safety
    ///
    /// The buffer is out of the ring (lent, or just taken by the kernel for
    /// a completion being handled) and the kernel wrote those bytes.
    pub(crate) unsafe fn filled(&self, bid: u16, len: usize) -> &[u8] {
        // SAFETY: inside the buffer; the caller vouches for the contents.
        unsafe { std::slice::from_raw_parts(self.buf_ptr(bid), len.min(self.size as usize)) }
    }

    fn give_back(&self, bid: u16) {
        let waiters = {
            let mut st = self.lock();
            st.lent -= 1;
            st.returns = st.returns.wrapping_add(1);
            self.push(&mut st, bid);
            std::mem::take(&mut st.waiters)
        };
        for w in waiters {
            w.wake();
        }
    }

    fn entries_layout(&self) -> Layout {
        Layout::array::<RawBufEntry>(usize::from(self.count))
            .and_then(|l| l.align_to(PAGE))
            .expect("checked at creation")
    }

    fn bufs_layout(&self) -> Layout {
        Layout::array::<u8>(usize::from(self.count) * self.size as usize)
            .and_then(|l| l.align_to(64))
            .expect("checked at creation")
    }
}

/// The ring's memory, freed on drop (after unregistration).
struct Memory {
    entries: (NonNull<RawBufEntry>, Layout),
    bufs: (NonNull<u8>, Layout),
}

// SAFETY: plain owned allocations.
unsafe impl Send for Memory {}

impl Drop for Memory {
    fn drop(&mut self) {
        // SAFETY: allocated in `BufRing::new` with these layouts, freed once.
        unsafe {
            alloc::dealloc(self.entries.0.as_ptr().cast(), self.entries.1);
            alloc::dealloc(self.bufs.0.as_ptr(), self.bufs.1);
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let memory = Memory {
            entries: (self.entries, self.entries_layout()),
            bufs: (self.bufs, self.bufs_layout()),
        };
        let bound = lock(&self.bound).take();
        let Some(Bound {
            ctx,
            bgid,
            generation,
        }) = bound
        else {
            return; // never registered
        };
        let Some(shared) = ctx.upgrade() else {
            // The context is gone and its ring closed. Nothing in flight can
            // select from this ring: such a receive would hold a reference
            // to it (a receive abandoned at shutdown leaked its reference).
            return;
        };
        shared.driver.buf_ring_dropped();
        // Unregister first, then free (module docs).
        let done_here = match shared.lock_driver() {
            Some(mut core) => {
                shared
                    .driver
                    .unregister_buf_ring(&mut core, bgid, generation);
                true
            }
            None => false,
        };
        if done_here {
            drop(memory);
        } else {
            // On the owner thread of a single-threaded context. Until then
            // the memory stays registered (and allocated); if the ring is
            // replaced first, nothing is left to unregister.
            shared.remote(Box::new(move |shared: &Shared| {
                if let Some(mut core) = shared.lock_driver() {
                    shared
                        .driver
                        .unregister_buf_ring(&mut core, bgid, generation);
                }
                drop(memory);
            }));
        }
    }
}

/// Bytes received into a [`BufRing`] buffer (or carried over from a
/// cancelled read, see [`TcpStream::recv_multishot`](crate::net::TcpStream::recv_multishot)).
///
/// Dereferences to the received bytes. Dropping it gives the buffer back to
/// its ring. It is also an [`IoBuf`](crate::buf::IoBuf), so it can be
/// written out as is (an echo sends what it received without a copy).
pub struct RingBuf(Backing);

enum Backing {
    Ring {
        ring: Arc<Inner>,
        bid: u16,
        /// The data's offset in the buffer (a datagram's payload follows
        /// its header and source address).
        start: u32,
        len: u32,
    },
    Owned(Vec<u8>),
}

impl RingBuf {
    pub(crate) fn owned(bytes: Vec<u8>) -> RingBuf {
        RingBuf(Backing::Owned(bytes))
    }

    /// The buffer's id in its ring (`None` for carried-over bytes).
    pub fn buffer_id(&self) -> Option<u16> {
        match &self.0 {
            Backing::Ring { bid, .. } => Some(*bid),
            Backing::Owned(_) => None,
        }
    }
}

impl Deref for RingBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.0 {
            Backing::Ring {
                ring,
                bid,
                start,
                len,
            } => {
                let data = ring.buf_ptr(*bid).wrapping_add(*start as usize);
                // SAFETY: the kernel wrote `start + len <= size` bytes into
                // buffer `bid`, which is lent to this value alone until it
                // drops.
                unsafe { std::slice::from_raw_parts(data, *len as usize) }
            }
            Backing::Owned(v) => v,
        }
    }
}

impl AsRef<[u8]> for RingBuf {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl fmt::Debug for RingBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingBuf")
            .field("buffer_id", &self.buffer_id())
            .field("len", &self.len())
            .finish()
    }
}

impl Drop for RingBuf {
    fn drop(&mut self) {
        if let Backing::Ring { ring, bid, .. } = &self.0 {
            ring.give_back(*bid);
        }
    }
}

// SAFETY: the bytes live in the ring's heap memory (or the Vec's), which
// does not move with the value and stays allocated while it lives (it holds
// the ring); the buffer is out of the ring, so the kernel does not write it.
unsafe impl crate::buf::IoBuf for RingBuf {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tail(inner: &Inner) -> u16 {
        // SAFETY: reading the published tail, as the kernel would.
        unsafe { AtomicU16::from_ptr(std::ptr::addr_of_mut!((*inner.entries.as_ptr()).resv)) }
            .load(Ordering::Acquire)
    }

    fn entry(inner: &Inner, idx: usize) -> (u64, u32, u16) {
        // SAFETY: `idx < count`; fields read one by one.
        unsafe {
            let e = inner.entries.as_ptr().add(idx);
            (
                std::ptr::addr_of!((*e).addr).read(),
                std::ptr::addr_of!((*e).len).read(),
                std::ptr::addr_of!((*e).bid).read(),
            )
        }
    }

    #[test]
    fn a_new_ring_offers_every_buffer_in_order() {
        let ring = BufRing::new(4, 100).unwrap();
        let inner = ring.inner();
        assert_eq!(tail(inner), 4);
        for bid in 0..4u16 {
            let (addr, len, id) = entry(inner, usize::from(bid));
            assert_eq!((len, id), (100, bid));
            assert_eq!(addr, inner.buf_ptr(bid) as u64);
        }
        assert_eq!(
            inner.entries.as_ptr() as usize % PAGE,
            0,
            "page-aligned descriptors"
        );
    }

    #[test]
    fn returned_buffers_go_to_the_tail_and_wrap() {
        let ring = BufRing::new(2, 8).unwrap();
        let inner = ring.inner().clone();
        // The "kernel" takes both, in order; they come back 1 then 0, twice.
        for round in 0..2u16 {
            // SAFETY: ids below `count`; nothing else uses the ring.
            let (b0, b1) = unsafe { (inner.lend(0, 0, 3), inner.lend(1, 0, 8)) };
            assert_eq!(ring.lent(), 2);
            assert_eq!((b0.len(), b1.len()), (3, 8));
            assert_eq!(b1.buffer_id(), Some(1));
            drop(b1);
            drop(b0);
            assert_eq!(ring.lent(), 0);
            assert_eq!(tail(&inner), 2 + 2 * (round + 1));
            // Slots (tail-2) and (tail-1), masked: ids 1 then 0.
            assert_eq!(entry(&inner, 0).2, 1);
            assert_eq!(entry(&inner, 1).2, 0);
        }
        // Descriptor 0's fields never clobbered the tail.
        assert_eq!(entry(&inner, 0).1, 8);
    }

    #[test]
    fn a_starved_receive_waits_for_a_return_since_it_armed() {
        let ring = BufRing::new(2, 8).unwrap();
        let inner = ring.inner().clone();
        let (count, waker) = crate::test_util::count_waker();
        // SAFETY: ids below `count`.
        let (a, b) = unsafe { (inner.lend(0, 0, 1), inner.lend(1, 7, 1)) };
        drop(a);
        // A receive arms now: the return above is older.
        let armed = ring.returns();
        assert!(!ring.poll_returned(armed, &waker), "no return since: wait");
        assert!(!ring.poll_returned(armed, &waker), "registered once");
        drop(b);
        assert_eq!(count.count(), 1, "a return wakes the waiter");
        assert!(ring.poll_returned(armed, &waker), "a return since: re-arm");
        assert!(!ring.poll_returned(ring.returns(), &waker));
    }

    #[test]
    fn owned_bytes_are_a_ring_buf_too() {
        let b = RingBuf::owned(b"carried".to_vec());
        assert_eq!(&b[..], b"carried");
        assert_eq!(b.buffer_id(), None);
        use crate::buf::IoBuf;
        assert_eq!((b.bytes_init(), b.bytes_total()), (7, 7));
        assert!(format!("{b:?}").contains("len: 7"));
    }
}
