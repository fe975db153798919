//! The `allsweep.v1` wire API shared by the coordinator and the workers: generated from
//! `proto/allsweep/v1/allsweep.proto`. Domain types live elsewhere; each side converts at
//! its edge.

#![allow(missing_docs, clippy::all)]

/// Generated messages and services.
pub mod v1 {
    tonic::include_proto!("allsweep.v1");
}

/// The protocol version a worker announces when it registers; the coordinator refuses others.
pub const PROTOCOL_VERSION: u32 = 1;
