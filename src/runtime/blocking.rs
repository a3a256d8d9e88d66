//! The blocking thread pool.
