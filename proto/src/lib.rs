//! The `allsweep.v1` wire API shared by the coordinator and the workers: generated from
//! `proto/allsweep/v1/allsweep.proto`, with the few rules both sides must read alike: which
//! errors are worth retrying ([`fault`]), the names of metric points ([`metric`]), the bearer
//! token every call carries ([`auth`]), how clients reach a coordinator over TLS ([`tls`]) and
//! the size of checkpoint chunks. Domain types live elsewhere; each side converts at its edge.

pub mod auth;
pub mod codec;
pub mod fault;
pub mod metric;
pub mod pem;
pub mod tls;

/// Generated messages and services.
#[allow(missing_docs, clippy::all)]
pub mod v1 {
    tonic::include_proto!("allsweep.v1");
}

/// The encoded `FileDescriptorSet` of `allsweep.v1`, which the coordinator's gRPC reflection
/// service serves.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/allsweep_descriptor.bin"));

/// The protocol version a worker announces when it registers; the coordinator refuses others.
/// Version 2: failure kinds instead of a `permanent` flag, and enum states. Version 3: a
/// worker's calls carry its identity (`auth::WORKER_ID_HEADER`, `auth::WORKER_KEY_HEADER`).
/// Version 4: the authors' Keras-style metrics and the learning rate per epoch, and the
/// tested epoch and its Keras-style metrics with the results. Version 5: memory-aware leases
/// (`free_memory_bytes`), out-of-memory failures, and each GPU's name, memory and
/// utilisation at registration and in heartbeats. Version 6: fused groups (`fuse` in a lease
/// request, `group_id` on leased trials and in a trial's status). Version 7: early stopping
/// (`pause_at_epoch` on leased trials: train to that rung, then hand the trial back).
pub const PROTOCOL_VERSION: u32 = 7;

/// Checkpoints travel in chunks of this many bytes, both ways.
pub const CHECKPOINT_CHUNK_BYTES: usize = 1 << 20;
