//! The expiry tick: every few seconds, running trials whose lease was not renewed in time
//! go back to the queue (next attempt, resuming from their latest checkpoint) or fail after
//! their sweep's maximum of attempts. All of it is one store call, so a coordinator that
//! restarts simply resumes the sweep where the database left it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Requeue;
use crate::store::{now_ms, Store};

/// Runs until `shutdown` turns true.
pub async fn run_expiry(store: Arc<dyn Store>, every: Duration, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        match store.expire_leases(now_ms()).await {
            Ok(expired) => {
                for e in expired {
                    let (trial, attempt) = (&e.trial_id, e.attempt);
                    match e.next {
                        Requeue::Queued => tracing::warn!(%trial, attempt, "lease expired; trial queued again"),
                        Requeue::Failed => {
                            tracing::warn!(%trial, attempt, "lease expired; out of attempts, trial failed")
                        }
                    }
                }
            }
            Err(error) => tracing::error!(%error, "lease expiry sweep failed; retrying"),
        }
    }
}
