//! Networking: TCP, UDP and Unix-domain sockets driven through the ring.
