//! The expiry tick: every few seconds, running trials whose lease was not renewed in time
//! go back to the queue (next attempt, resuming from their latest checkpoint) or fail after
//! their sweep's maximum of attempts. All of it is one store call, so a coordinator that
//! restarts simply resumes the sweep where the database left it.
//!
//! The tick holds back for one lease time after the coordinator starts and after the database
//! was unreachable or slow to answer: workers whose heartbeats could not get through meanwhile (the coordinator
//! was down, Postgres restarted) must have a lease time to renew before their leases are
//! judged. Without it, a database restart cost healthy workers their leases and an attempt
//! (found by the fault-injection suite, `chaos/`).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::watch;

use super::Requeue;
use crate::store::{now_ms, Store};
use crate::telemetry::Telemetry;

/// Runs until `shutdown` turns true.
pub async fn run_expiry(
    store: Arc<dyn Store>,
    every: Duration,
    grace: Duration,
    telemetry: Telemetry,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    let mut quiet_until = Instant::now() + grace;
    // When the coordinator or its database was last away (from now on: this start). A lease
    // expiring less than a lease time after it was last renewed before then: its expiry is
    // the outage's, not the worker's, and does not use up an attempt.
    let mut away_until = now_ms();
    let lease_ms = grace.as_millis() as i64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        // A database that failed or stalled (a Postgres restart holds calls for seconds
        // without failing them) held the workers' heartbeats up too: give them a lease time.
        let asked = Instant::now();
        let answered = store.ping().await;
        if answered.is_err() || asked.elapsed() > every {
            quiet_until = Instant::now() + grace;
            away_until = now_ms();
            continue;
        }
        if Instant::now() < quiet_until {
            continue;
        }
        match store.expire_leases(now_ms(), Some(away_until + lease_ms)).await {
            Ok(expired) => {
                for e in expired {
                    let (trial, attempt) = (&e.trial_id, e.attempt);
                    telemetry.lease_expired(match e.next {
                        Requeue::Queued => "queued",
                        Requeue::Failed => "failed",
                    });
                    match e.next {
                        Requeue::Queued => tracing::warn!(%trial, attempt, "lease expired; trial queued again"),
                        Requeue::Failed => {
                            tracing::warn!(%trial, attempt, "lease expired; out of attempts, trial failed")
                        }
                    }
                }
            }
            Err(error) => {
                tracing::error!(%error, "lease expiry sweep failed; retrying after a lease time");
                quiet_until = Instant::now() + grace;
                away_until = now_ms();
            }
        }
    }
}
