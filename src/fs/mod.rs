//! Files through the ring.
