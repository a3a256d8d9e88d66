//! Signals delivered as awaitable events.
