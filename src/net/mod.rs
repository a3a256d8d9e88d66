//! Networking: TCP, UDP and Unix-domain sockets driven through the ring.

pub(crate) mod resolve;
pub use resolve::{lookup_addr, lookup_host};
