//! The gRPC services: the worker API (register, lease, heartbeat, metrics, checkpoints,
//! complete, fail, release), the user API (submit, status, cancel, watch, workers,
//! results) and the admin API (tokens). Who may call which is decided before them
//! ([`crate::access`]). Wire types are converted at this edge (`crate::wire`), ids and strings are
//! checked here (`fields`) and reported values too (`validate`); below it only checked domain
//! types exist. One function ([`status`]) maps store errors to gRPC statuses.

mod admin;
pub mod edge;
pub(crate) mod fields;
pub mod page;
mod user;
pub mod validate;
mod worker;

pub use admin::AdminApi;
pub use user::UserApi;
pub use worker::WorkerApi;

use std::sync::Arc;

use allsweep_proto::fault::CallFault;
use tonic::Status;

use crate::access::{TokenBook, WorkerKeys};
use crate::artifacts::{ArtifactError, Artifacts};
use crate::scheduler::Clocks;
use crate::store::{Store, StoreError};

/// What both services share.
#[derive(Clone)]
pub struct Shared {
    pub store: Arc<dyn Store>,
    pub artifacts: Artifacts,
    /// The lease, heartbeat and liveness clocks.
    pub clocks: Clocks,
    /// The key hashes of registered workers, which prove who makes a worker call.
    pub worker_keys: WorkerKeys,
    /// The tokens the gate accepts; token management updates it.
    pub tokens: TokenBook,
    /// Trials' epochs, which every metric batch is checked against.
    pub epochs: validate::EpochCache,
    /// The Prometheus instruments the handlers count into.
    pub telemetry: crate::telemetry::Telemetry,
}

/// The gRPC status of a store error, on the side of [`CallFault`] its class is: a transient
/// database failure is `UNAVAILABLE` (the caller retries), every refusal is not.
pub fn status(error: StoreError) -> Status {
    match (error.fault(), &error) {
        (CallFault::Transient, _) => {
            tracing::error!(%error, "store error");
            Status::unavailable(format!("{error}; retry"))
        }
        (CallFault::Refused, StoreError::Superseded { .. }) => Status::failed_precondition(error.to_string()),
        (CallFault::Refused, StoreError::NotHolder { .. }) => Status::permission_denied(error.to_string()),
        (CallFault::Refused, StoreError::NotFound(_)) => Status::not_found(error.to_string()),
        (CallFault::Refused, _) => Status::invalid_argument(error.to_string()),
    }
}

/// The gRPC status of an artifact error. An I/O failure is logged with its path and answered
/// without it: callers learn nothing of the coordinator's file system.
pub fn artifact_status(error: ArtifactError) -> Status {
    match error {
        ArtifactError::Corrupt { .. } => Status::data_loss(error.to_string()),
        ArtifactError::Io { .. } => {
            tracing::error!(%error, "checkpoint storage failed");
            Status::internal("the coordinator cannot store checkpoints now (its log says why); retry")
        }
    }
}
