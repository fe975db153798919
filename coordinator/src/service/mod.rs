//! The gRPC services: the worker API (register, lease, heartbeat, metrics, checkpoints,
//! complete, fail, release) and the user API (submit, status, cancel, watch, workers,
//! results). Wire types are converted at this edge; below it only domain types exist.
//! One function ([`status`]) maps domain errors to gRPC statuses.

mod auth;
mod user;
mod worker;

pub use auth::TokenCheck;
pub use user::UserApi;
pub use worker::WorkerApi;

use std::sync::Arc;
use std::time::Duration;

use tonic::Status;

use crate::artifacts::{ArtifactError, Artifacts};
use crate::store::{Store, StoreError};

/// What both services share.
#[derive(Clone)]
pub struct Shared {
    pub store: Arc<dyn Store>,
    pub artifacts: Artifacts,
    /// How long a lease lasts without a heartbeat.
    pub lease_ttl: Duration,
}

impl Shared {
    /// Workers heartbeat three times per lease.
    pub fn heartbeat_interval(&self) -> Duration {
        self.lease_ttl / 3
    }

    pub fn expiry(&self, now: i64) -> i64 {
        now + self.lease_ttl.as_millis() as i64
    }
}

/// The gRPC status of a store error.
pub fn status(error: StoreError) -> Status {
    match error {
        StoreError::Superseded { .. } => Status::failed_precondition(error.to_string()),
        StoreError::NotFound(_) => Status::not_found(error.to_string()),
        StoreError::Url(_) => Status::invalid_argument(error.to_string()),
        StoreError::Database(_) | StoreError::Migrate(_) => {
            tracing::error!(%error, "store error");
            Status::unavailable(format!("{error}; retry"))
        }
    }
}

pub fn artifact_status(error: ArtifactError) -> Status {
    match error {
        ArtifactError::Corrupt { .. } => Status::data_loss(error.to_string()),
        ArtifactError::Io { .. } => Status::internal(error.to_string()),
    }
}
