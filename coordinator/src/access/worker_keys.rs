//! A worker's identity on its calls. `Register` gives each worker a key (kept as its SHA-256);
//! every later worker call carries the worker's id and key in metadata
//! ([`allsweep_proto::auth::WORKER_ID_HEADER`], [`allsweep_proto::auth::WORKER_KEY_HEADER`]).
//! [`WorkerKeys::identify`] turns them into the one worker id the call may act for; the store
//! then refuses any write to a lease that worker does not hold. Keys are cached in memory
//! after the first lookup (a key never changes for an id), so a call costs one hash.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use allsweep_proto::auth::{WORKER_ID_HEADER, WORKER_KEY_HEADER};
use tonic::metadata::MetadataMap;
use tonic::Status;

use super::tokens::hash;
use crate::store::Store;

/// The key hashes of the workers seen so far, by worker id.
#[derive(Clone, Debug, Default)]
pub struct WorkerKeys {
    known: Arc<RwLock<HashMap<String, String>>>,
}

impl WorkerKeys {
    /// Remembers a worker's key hash (after it registered).
    pub fn remember(&self, worker_id: &str, key_hash: &str) {
        self.known.write().unwrap_or_else(|e| e.into_inner()).insert(worker_id.to_string(), key_hash.to_string());
    }

    /// The worker id a call's metadata proves; `None` when no worker of that id is registered
    /// (the caller should register again); UNAUTHENTICATED naming what is missing or wrong.
    /// `check_id` validates the id before it reaches the database.
    pub async fn identify(
        &self,
        store: &dyn Store,
        metadata: &MetadataMap,
        check_id: impl Fn(&str) -> Result<(), Status>,
    ) -> Result<Option<String>, Status> {
        let read = |key: &str| metadata.get(key).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty());
        let (Some(id), Some(key)) = (read(WORKER_ID_HEADER), read(WORKER_KEY_HEADER)) else {
            return Err(Status::unauthenticated(format!(
                "worker calls carry {WORKER_ID_HEADER} and {WORKER_KEY_HEADER} (the key Register returned): register first"
            )));
        };
        check_id(id).map_err(|s| Status::unauthenticated(format!("{WORKER_ID_HEADER}: {}", s.message())))?;
        let presented = hash(key);
        let cached = self.known.read().unwrap_or_else(|e| e.into_inner()).get(id).cloned();
        let stored = match cached {
            Some(h) => Some(h),
            None => {
                let found = store.worker_key_hash(id).await.map_err(crate::service::status)?;
                if let Some(h) = &found {
                    self.remember(id, h);
                }
                found
            }
        };
        match stored {
            Some(h) if h == presented => Ok(Some(id.to_string())),
            Some(_) => Err(Status::unauthenticated(format!("wrong key for worker {id}"))),
            None => Ok(None),
        }
    }
}
