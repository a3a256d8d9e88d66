//! One file per operation kind. Each defines the op's data (what the kernel
//! may touch, owned until the CQE) and its [`OpCode`](super::op::OpCode).

pub(crate) mod accept;
pub(crate) mod connect;
pub(crate) mod fsync;
pub(crate) mod ftruncate;
pub(crate) mod msg;
pub(crate) mod nop;
pub(crate) mod open;
pub(crate) mod path_ops;
pub(crate) mod read;
pub(crate) mod recv;
pub(crate) mod recv_multi;
pub(crate) mod recvmsg_multi;
pub(crate) mod send;
pub(crate) mod send_zc;
pub(crate) mod statx;
pub(crate) mod write;
