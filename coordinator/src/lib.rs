//! The coordinator: spec, store, scheduler, gRPC services, reports and the `allsweep` CLI.
//!
//! It holds no libtorch: everything that trains lives in `allsweep-worker`. Its parts arrive
//! with the distributed-sweeps issue; this crate exists now so the workspace has its final shape.

pub use allsweep_proto::PROTOCOL_VERSION;
