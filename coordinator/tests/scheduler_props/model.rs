//! The scheduler's rules, written again as plain data in memory (the state diagrams of
//! `coordinator/src/scheduler/mod.rs`): a reference the store's every answer and every row
//! are compared with after each step. It decides only from what the rules say, never from
//! the store.

use allsweep_coordinator::store::{AttemptOutcome, Millis, Requeue, SweepState, TrialFault, TrialState};

/// How long a lease lasts from its grant or last renewal.
pub const LEASE_MS: Millis = 60_000;

/// Why a worker's write is refused, as the store must say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The attempt no longer holds the trial (`StoreError::Superseded`).
    Superseded,
    /// Another worker holds it (`StoreError::NotHolder`).
    NotHolder,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TrialModel {
    pub id: String,
    pub sweep: usize,
    pub state: TrialState,
    /// Attempts started so far.
    pub attempt: u32,
    /// The holder while running.
    pub worker: Option<String>,
    pub expires: Option<Millis>,
    /// Each attempt's worker and outcome, attempt 1 first.
    pub attempts: Vec<(String, AttemptOutcome)>,
}

impl TrialModel {
    /// Attempts that count against `max_attempts`.
    pub fn counted(&self) -> u32 {
        let counted = |o: &&(String, AttemptOutcome)| matches!(o.1, AttemptOutcome::Failed | AttemptOutcome::Expired);
        self.attempts.iter().filter(counted).count() as u32
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SweepModel {
    pub id: String,
    pub state: SweepState,
    pub max_attempts: u32,
}

#[derive(Debug, Clone, Default)]
pub struct Model {
    /// In lease order: oldest sweep first.
    pub sweeps: Vec<SweepModel>,
    /// In lease order: by sweep, then ordinal.
    pub trials: Vec<TrialModel>,
}

impl Model {
    /// Whether `worker` may write for `trial` under `attempt` (the store's holder check).
    pub fn may_write(&self, worker: &str, trial: usize, attempt: u32) -> Result<(), Refusal> {
        let t = &self.trials[trial];
        if t.attempt != attempt || t.state != TrialState::Running {
            Err(Refusal::Superseded)
        } else if t.worker.as_deref() != Some(worker) {
            Err(Refusal::NotHolder)
        } else {
            Ok(())
        }
    }

    /// Leases up to `count` queued trials of active sweeps, in lease order.
    pub fn lease(&mut self, worker: &str, count: u32, now: Millis) -> Vec<(usize, u32)> {
        let mut leased = Vec::new();
        for i in 0..self.trials.len() {
            if leased.len() as u32 == count {
                break;
            }
            let active = self.sweeps[self.trials[i].sweep].state == SweepState::Active;
            let t = &mut self.trials[i];
            if active && t.state == TrialState::Queued {
                t.state = TrialState::Running;
                t.attempt += 1;
                t.worker = Some(worker.to_string());
                t.expires = Some(now + LEASE_MS);
                t.attempts.push((worker.to_string(), AttemptOutcome::Running));
                leased.push((i, t.attempt));
            }
        }
        leased
    }

    /// Renews what `worker` holds among `running`; returns the trials it must stop.
    pub fn renew(&mut self, worker: &str, running: &[(usize, u32)], now: Millis) -> Vec<usize> {
        let mut stop = Vec::new();
        for &(trial, attempt) in running {
            if self.may_write(worker, trial, attempt).is_ok() {
                self.trials[trial].expires = Some(now + LEASE_MS);
            } else {
                stop.push(trial);
            }
        }
        stop
    }

    /// Ends every lease that ran out before `now`; returns (trial, attempt, where it went).
    pub fn expire(&mut self, now: Millis) -> Vec<(usize, u32, Requeue)> {
        let expired: Vec<usize> = (0..self.trials.len())
            .filter(|&i| self.trials[i].state == TrialState::Running && self.trials[i].expires < Some(now))
            .collect();
        expired.into_iter().map(|i| (i, self.trials[i].attempt, self.end(i, AttemptOutcome::Expired, None))).collect()
    }

    pub fn complete(&mut self, trial: usize) {
        let t = &mut self.trials[trial];
        t.state = TrialState::Completed;
        t.expires = None;
        t.attempts.last_mut().expect("a running attempt").1 = AttemptOutcome::Completed;
        self.finish_if_done(self.trials[trial].sweep);
    }

    pub fn fail(&mut self, trial: usize, fault: TrialFault) -> Requeue {
        let outcome = if fault == TrialFault::Worker { AttemptOutcome::Released } else { AttemptOutcome::Failed };
        self.end(trial, outcome, Some(fault))
    }

    pub fn release(&mut self, worker: &str, trial: usize, attempt: u32) {
        if self.may_write(worker, trial, attempt).is_ok() {
            self.end(trial, AttemptOutcome::Released, Some(TrialFault::Worker));
        }
    }

    pub fn cancel(&mut self, sweep: usize) {
        if self.sweeps[sweep].state != SweepState::Active {
            return;
        }
        self.sweeps[sweep].state = SweepState::Cancelled;
        for t in self.trials.iter_mut().filter(|t| t.sweep == sweep) {
            if matches!(t.state, TrialState::Queued | TrialState::Running) {
                if t.state == TrialState::Running {
                    t.attempts.last_mut().expect("a running attempt").1 = AttemptOutcome::Cancelled;
                }
                t.state = TrialState::Cancelled;
                t.expires = None;
            }
        }
    }

    /// Ends the running attempt of `trial` as `outcome`: queued again, or failed for good when
    /// the failure is permanent or the counted attempts reach the sweep's maximum.
    fn end(&mut self, trial: usize, outcome: AttemptOutcome, fault: Option<TrialFault>) -> Requeue {
        let max_attempts = self.sweeps[self.trials[trial].sweep].max_attempts;
        let t = &mut self.trials[trial];
        t.attempts.last_mut().expect("a running attempt").1 = outcome;
        let next = match fault {
            Some(TrialFault::Permanent) => Requeue::Failed,
            Some(TrialFault::Worker) => Requeue::Queued,
            _ if t.counted() >= max_attempts => Requeue::Failed,
            _ => Requeue::Queued,
        };
        t.state = if next == Requeue::Failed { TrialState::Failed } else { TrialState::Queued };
        t.worker = None;
        t.expires = None;
        if next == Requeue::Failed {
            self.finish_if_done(self.trials[trial].sweep);
        }
        next
    }

    fn finish_if_done(&mut self, sweep: usize) {
        let settled =
            |t: &TrialModel| t.sweep != sweep || matches!(t.state, TrialState::Completed | TrialState::Failed);
        if self.sweeps[sweep].state == SweepState::Active && self.trials.iter().all(settled) {
            self.sweeps[sweep].state = SweepState::Finished;
        }
    }
}
