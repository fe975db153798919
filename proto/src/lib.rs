//! The `allsweep.v1` wire API shared by the coordinator and the workers.
//!
//! The `.proto` files and their generated code arrive with the distributed-sweeps issue;
//! until then this crate only fixes the protocol version both sides will check.

/// The protocol version a worker announces when it registers; the coordinator refuses others.
pub const PROTOCOL_VERSION: u32 = 1;
