//! The coordinator: spec, store, scheduler, gRPC services, reports and the `allsweep` CLI.
//!
//! It holds no libtorch: everything that trains lives in `allsweep-worker`. The database is
//! its only state ([`store`]); the services ([`service`]) turn gRPC calls into store
//! transactions, the scheduler ([`scheduler`]) owns the rules that move trials between
//! states (and expires the leases of silent workers), and [`wire`] converts between the gRPC
//! messages and the domain types.

pub mod access;
pub mod artifacts;
pub mod client;
pub mod plot;
pub mod report;
pub mod scheduler;
pub mod server;
pub mod service;
pub mod spec;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod web;
pub mod wire;

pub use allsweep_proto::PROTOCOL_VERSION;
