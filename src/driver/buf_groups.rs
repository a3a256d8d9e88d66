//! Provided-buffer rings' registration: buffer-group ids and their
//! lifetime (the rings themselves are [`crate::buf::BufRing`]).

use std::io;
use std::sync::atomic::Ordering;

use super::{closed_error, Core, Driver};

/// Hands out buffer-group ids (`bgid`) for provided-buffer rings
/// ([`crate::buf::BufRing`]); an id is free again once its ring is
/// unregistered, which happens only when nothing can still select from it.
#[derive(Default)]
pub(super) struct BufGroups {
    /// Never handed out yet: `next..=u16::MAX`.
    next: u32,
    freed: Vec<u16>,
    /// Which ring the ids belong to: bumped when a single-threaded context
    /// rebuilds its ring, which starts with no group registered (an
    /// unregistration queued for the old ring is then skipped, and its id
    /// is not put back twice).
    generation: u64,
}

impl BufGroups {
    /// The ids of a rebuilt ring: none registered, a new generation.
    pub(super) fn for_new_ring(&self) -> BufGroups {
        BufGroups {
            generation: self.generation + 1,
            ..BufGroups::default()
        }
    }
}

impl Driver {
    /// Registers a provided-buffer ring of `entries` descriptors at `addr`;
    /// returns its buffer-group id and the ring generation it belongs to
    /// (both needed by [`unregister_buf_ring`](Self::unregister_buf_ring)).
    ///
    /// The caller keeps the memory valid until it is unregistered or the
    /// ring is closed or replaced ([`crate::buf::ring`] explains how), and
    /// calls [`buf_ring_dropped`](Self::buf_ring_dropped) when its handle
    /// goes.
    pub(crate) fn register_buf_ring(
        &self,
        core: &mut Core,
        addr: u64,
        entries: u16,
    ) -> io::Result<(u16, u64)> {
        let Some(ring) = self.ring() else {
            return Err(closed_error());
        };
        let groups = &mut core.buf_groups;
        let bgid = match groups.freed.pop() {
            Some(id) => id,
            None if groups.next <= u32::from(u16::MAX) => {
                groups.next += 1;
                (groups.next - 1) as u16
            }
            None => {
                return Err(io::Error::other(
                    "ringio: 65536 BufRings are registered with this IoContext already",
                ))
            }
        };
        // SAFETY: `addr` points at `entries` descriptors that stay valid
        // until unregistered (the caller's contract above).
        let res = unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(addr, entries, bgid, 0)
        };
        match res {
            Ok(()) => {
                self.buf_rings_live.fetch_add(1, Ordering::AcqRel);
                Ok((bgid, groups.generation))
            }
            Err(e) => {
                groups.freed.push(bgid);
                Err(e)
            }
        }
    }

    /// A registered ring's last handle is gone (from any thread); its
    /// unregistration may still be queued.
    pub(crate) fn buf_ring_dropped(&self) {
        self.buf_rings_live.fetch_sub(1, Ordering::AcqRel);
    }

    /// Unregisters buffer group `bgid` of ring `generation` (nothing to do
    /// if that ring was replaced or closed since).
    pub(crate) fn unregister_buf_ring(&self, core: &mut Core, bgid: u16, generation: u64) {
        if core.buf_groups.generation != generation {
            return;
        }
        if let Some(ring) = self.ring() {
            // Failure would mean the group is not registered: nothing to undo.
            let _ = ring.submitter().unregister_buf_ring(bgid);
        }
        core.buf_groups.freed.push(bgid);
    }
}
