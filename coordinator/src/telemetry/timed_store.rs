//! [`TimedStore`]: the store with each operation timed into
//! `allsweep_db_transaction_duration_seconds{operation}`. A decorator, so the store itself
//! knows nothing of metrics and every operation is timed the same way, failures included.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use super::Telemetry;
use crate::store::{
    AttemptRef, AttemptRow, Census, CheckpointRow, Completion, DecisionRow, Drain, Expired, GpuStatus, Leased,
    MemoryFit, MetricPoint, MetricsStored, Millis, NewSweep, Progress, Requeue, Result, ResultRow, RocPoint,
    SchemaStatus, Store, SweepRow, TokenRow, Touched, TrialFault, TrialRow, WorkerRow,
};

/// A store whose every operation is timed.
pub struct TimedStore {
    inner: Arc<dyn Store>,
    telemetry: Telemetry,
}

impl TimedStore {
    pub fn new(inner: Arc<dyn Store>, telemetry: Telemetry) -> Self {
        Self { inner, telemetry }
    }

    async fn time<T>(&self, operation: &'static str, call: impl Future<Output = Result<T>>) -> Result<T> {
        let started = Instant::now();
        let result = call.await;
        self.telemetry.db_operation(operation, started.elapsed().as_secs_f64());
        result
    }
}

#[async_trait]
impl Store for TimedStore {
    async fn insert_sweep(&self, sweep: &NewSweep, now: Millis) -> Result<bool> {
        self.time("insert_sweep", self.inner.insert_sweep(sweep, now)).await
    }

    async fn sweep(&self, id: &str) -> Result<Option<SweepRow>> {
        self.time("sweep", self.inner.sweep(id)).await
    }

    async fn sweeps(&self) -> Result<Vec<SweepRow>> {
        self.time("sweeps", self.inner.sweeps()).await
    }

    async fn trials(&self, sweep_id: &str) -> Result<Vec<TrialRow>> {
        self.time("trials", self.inner.trials(sweep_id)).await
    }

    async fn trial(&self, trial_id: &str) -> Result<Option<TrialRow>> {
        self.time("trial", self.inner.trial(trial_id)).await
    }

    async fn attempts(&self, trial_id: &str) -> Result<Vec<AttemptRow>> {
        self.time("attempts", self.inner.attempts(trial_id)).await
    }

    async fn cancel_sweep(&self, id: &str, now: Millis) -> Result<bool> {
        self.time("cancel_sweep", self.inner.cancel_sweep(id, now)).await
    }

    async fn register_worker(&self, worker: &WorkerRow, key_hash: &str) -> Result<bool> {
        self.time("register_worker", self.inner.register_worker(worker, key_hash)).await
    }

    async fn worker_key_hash(&self, id: &str) -> Result<Option<String>> {
        self.time("worker_key_hash", self.inner.worker_key_hash(id)).await
    }

    async fn touch_worker(&self, id: &str, now: Millis) -> Result<Option<Touched>> {
        self.time("touch_worker", self.inner.touch_worker(id, now)).await
    }

    async fn drain_worker(&self, id: &str, drain: Drain) -> Result<Option<WorkerRow>> {
        self.time("drain_worker", self.inner.drain_worker(id, drain)).await
    }

    async fn record_gpus(&self, id: &str, gpus: &[GpuStatus]) -> Result<()> {
        self.time("record_gpus", self.inner.record_gpus(id, gpus)).await
    }

    async fn workers(&self) -> Result<Vec<WorkerRow>> {
        self.time("workers", self.inner.workers()).await
    }

    async fn lease_fitting(
        &self,
        worker_id: &str,
        count: u32,
        memory: MemoryFit,
        now: Millis,
        expires_at: Millis,
    ) -> Result<Vec<Leased>> {
        self.time("lease_fitting", self.inner.lease_fitting(worker_id, count, memory, now, expires_at)).await
    }

    async fn mark_groups(&self, worker_id: &str, groups: &[(AttemptRef, String)]) -> Result<()> {
        self.time("mark_groups", self.inner.mark_groups(worker_id, groups)).await
    }

    async fn renew(&self, worker_id: &str, running: &[Progress], expires_at: Millis) -> Result<Vec<String>> {
        self.time("renew", self.inner.renew(worker_id, running, expires_at)).await
    }

    async fn expire_leases(&self, now: Millis, outage: Option<Millis>) -> Result<Vec<Expired>> {
        self.time("expire_leases", self.inner.expire_leases(now, outage)).await
    }

    async fn release(&self, worker_id: &str, trials: &[AttemptRef], now: Millis) -> Result<()> {
        self.time("release", self.inner.release(worker_id, trials, now)).await
    }

    async fn check_lease(&self, worker_id: &str, attempt: &AttemptRef) -> Result<()> {
        self.time("check_lease", self.inner.check_lease(worker_id, attempt)).await
    }

    async fn record_metrics(
        &self,
        worker_id: &str,
        trial_id: &str,
        attempt: u32,
        points: &[MetricPoint],
    ) -> Result<MetricsStored> {
        self.time("record_metrics", self.inner.record_metrics(worker_id, trial_id, attempt, points)).await
    }

    async fn record_checkpoint(
        &self,
        worker_id: &str,
        checkpoint: &CheckpointRow,
        now: Millis,
    ) -> Result<Option<String>> {
        self.time("record_checkpoint", self.inner.record_checkpoint(worker_id, checkpoint, now)).await
    }

    async fn checkpoint(&self, trial_id: &str) -> Result<Option<CheckpointRow>> {
        self.time("checkpoint", self.inner.checkpoint(trial_id)).await
    }

    async fn checkpoint_files(&self) -> Result<Vec<String>> {
        self.time("checkpoint_files", self.inner.checkpoint_files()).await
    }

    async fn complete(
        &self,
        worker_id: &str,
        trial_id: &str,
        attempt: u32,
        completion: &Completion,
        now: Millis,
    ) -> Result<Option<String>> {
        self.time("complete", self.inner.complete(worker_id, trial_id, attempt, completion, now)).await
    }

    async fn fail(
        &self,
        worker_id: &str,
        trial_id: &str,
        attempt: u32,
        error: &str,
        fault: TrialFault,
        now: Millis,
    ) -> Result<Requeue> {
        self.time("fail", self.inner.fail(worker_id, trial_id, attempt, error, fault, now)).await
    }

    async fn results(&self, sweep_id: &str) -> Result<Vec<ResultRow>> {
        self.time("results", self.inner.results(sweep_id)).await
    }

    async fn metric_points(&self, trial_id: &str) -> Result<Vec<MetricPoint>> {
        self.time("metric_points", self.inner.metric_points(trial_id)).await
    }

    async fn roc(&self, trial_id: &str) -> Result<Vec<RocPoint>> {
        self.time("roc", self.inner.roc(trial_id)).await
    }

    async fn ping(&self) -> Result<()> {
        self.time("ping", self.inner.ping()).await
    }

    async fn schema_status(&self) -> Result<SchemaStatus> {
        self.time("schema_status", self.inner.schema_status()).await
    }

    async fn census(&self) -> Result<Census> {
        self.time("census", self.inner.census()).await
    }

    async fn settle_early_stopping(&self, sweep_id: &str, now: Millis) -> Result<u32> {
        self.time("settle_early_stopping", self.inner.settle_early_stopping(sweep_id, now)).await
    }

    async fn decisions(&self, sweep_id: &str) -> Result<Vec<DecisionRow>> {
        self.time("decisions", self.inner.decisions(sweep_id)).await
    }

    async fn insert_token(&self, token: &TokenRow) -> Result<()> {
        self.time("insert_token", self.inner.insert_token(token)).await
    }

    async fn tokens(&self) -> Result<Vec<TokenRow>> {
        self.time("tokens", self.inner.tokens()).await
    }

    async fn revoke_token(&self, id: &str, now: Millis) -> Result<Option<TokenRow>> {
        self.time("revoke_token", self.inner.revoke_token(id, now)).await
    }
}
