//! The scheduler: every rule that decides what happens to a trial. The store executes the
//! transitions below inside its transactions; it decides none of them.
//!
//! # A trial
//!
//! ```text
//!                        lease
//!        ┌────────┐ ─────────────► ┌─────────┐    complete     ┌───────────┐
//!        │ queued │                │ running │ ──────────────► │ completed │
//!        └────────┘ ◄───────────── └─────────┘                 └───────────┘
//!            │      fail (retry), expire,  │ ▲ renew
//!            │      release, worker fault  │ └──┘
//!            │                             │ fail (permanent),       ┌────────┐
//!            │                             │ out of attempts ──────► │ failed │
//!            │ cancel                      │ cancel                  └────────┘
//!            │                             ▼
//!            │                       ┌───────────┐
//!            ├─────────────────────► │ cancelled │
//!            │                       └───────────┘
//!            │ early stopping        ┌─────────┐
//!            └─────────────────────► │ stopped │
//!                                    └─────────┘
//! ```
//!
//! | from | to | caused by |
//! |---|---|---|
//! | queued | running | [`Transition::Lease`]: a worker with a free slot leases it (a new attempt) |
//! | running | running | [`Transition::Renew`]: the holder's heartbeat moves the lease's expiry on |
//! | running | completed | [`Transition::Complete`]: the holder reports final metrics |
//! | running | queued | [`Transition::FailRetry`]: the holder fails it with [`TrialFault::Retry`] and attempts remain |
//! | running | failed | [`Transition::FailPermanent`]: the holder fails it with [`TrialFault::Permanent`] |
//! | running | failed | [`Transition::FailOutOfAttempts`]: a retried failure or expiry used the last attempt |
//! | running | queued | [`Transition::Expire`]: no heartbeat for a lease time, attempts remain |
//! | running | queued | [`Transition::Release`]: the holder is leaving and gives it back |
//! | running | queued | [`Transition::WorkerFault`]: the holder cannot serve it on its machine ([`TrialFault::Worker`]) |
//! | running | queued | [`Transition::OutOfMemory`]: its device ran out of memory ([`TrialFault::OutOfMemory`]); it asks twice the memory now |
//! | running | failed | [`Transition::OutOfMemoryGiveUp`]: it ran out of memory [`MAX_OUT_OF_MEMORY`] times |
//! | queued, running | cancelled | [`Transition::Cancel`]: a user cancels the sweep |
//!
//! Under early stopping ([`early_stopping`], [`race`]) a queued trial may be *held*
//! (`trials.hold`): not leased until its sweep's rule decides. The store holds a trial handed
//! back (or requeued) with its checkpoint at a rung, and a race's seeds of waves not yet open;
//! the rule then lets it go (promoted: it resumes from that checkpoint), or stops it:
//!
//! | from | to | caused by |
//! |---|---|---|
//! | running | queued, held | the worker hands it back at its rung (`pause_at_epoch` in its lease) |
//! | queued, held | queued | the rule promotes it, or a race opens its wave |
//! | queued, held | stopped | the rule stops it at its rung, or a race eliminates its config |
//!
//! Completed, failed, cancelled and stopped are final. A trial goes back to the queue with its latest
//! checkpoint, so the next attempt resumes from it.
//!
//! # An attempt
//!
//! An attempt is one lease of a trial, a row of `attempts`. It is opened `running` by a
//! lease and closed exactly once:
//!
//! ```text
//!              ┌──► completed   Complete
//!              ├──► failed      FailRetry, FailPermanent, FailOutOfAttempts (counts)
//!   running ───┼──► expired     Expire, and FailOutOfAttempts by expiry (counts)
//!              ├──► failed      OutOfMemory, OutOfMemoryGiveUp (cause 'oom'; does not count)
//!              ├──► released    Release, WorkerFault (does not count)
//!              └──► cancelled   Cancel (does not count)
//! ```
//!
//! Only failed and expired attempts count against the sweep's `max_attempts`
//! ([`COUNTED_OUTCOMES`]), and an expired one only when its worker went silent while the
//! coordinator and its database were up ([`ExpiryCause`]): a lease last renewed before an
//! outage ended expires without using up an attempt. Every write a worker makes names (trial, attempt) and is refused
//! unless that attempt is the trial's running one, so a superseded worker changes nothing.
//!
//! # Order, clocks and liveness
//!
//! - **Lease order** ([`LEASE_ORDER`]): first come, first served. Queued trials of active
//!   sweeps go out oldest sweep first, then by the trial's ordinal within the sweep (its grid
//!   order, seeds innermost), so a sweep that was submitted first finishes first and a newer
//!   sweep's trials start as soon as the older one has nothing left queued. A lease hands out
//!   at most [`MAX_LEASE_BATCH`] trials.
//! - **Clocks** ([`Clocks`]): a lease lasts `lease_ttl` from its last renewal; workers
//!   heartbeat three times per lease; the expiry tick looks for silent leases four times per
//!   lease; a worker is alive while it was seen within three lease times.
//! - **Failures** ([`after_failure`]): one classification, [`TrialFault`], shared with the
//!   worker (which classifies its errors) and sent as the wire's `FailureKind`.
//! - **Memory** ([`MemoryFit`]): a worker that knows its free device memory leases only
//!   trials whose estimate (`trials.memory_bytes`, from `allsweep_config::memory`) fits, as
//!   many as fit together. A trial that runs out of memory anyway doubles its estimate, and
//!   that of every queued trial of its shape, without using up an attempt.

pub mod early_stopping;
mod expiry;
pub mod fusion;
pub mod race;
mod states;

pub use allsweep_proto::fault::TrialFault;
pub use expiry::run_expiry;
pub use states::{AttemptOutcome, SweepState, TrialState};

use std::time::Duration;

/// The ORDER BY of a lease, over `trials t JOIN sweeps s`: oldest sweep first, then ordinal.
pub const LEASE_ORDER: &str = "s.created_at, s.id, t.ordinal";

/// The most trials one lease call hands out.
pub const MAX_LEASE_BATCH: u32 = 64;

/// How many times a trial may run out of device memory before it fails for good: its
/// estimate has doubled this many times by then (16x), so it fits no device it was offered.
pub const MAX_OUT_OF_MEMORY: u32 = 4;

/// The attempt outcomes that count against `max_attempts`, but for an expiry caused by an
/// outage ([`ExpiryCause::Outage`]).
pub const COUNTED_OUTCOMES: [AttemptOutcome; 2] = [AttemptOutcome::Failed, AttemptOutcome::Expired];

/// Every transition of a trial, as the table above lists them. Tests name the one they check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Lease,
    Renew,
    Complete,
    FailRetry,
    FailPermanent,
    FailOutOfAttempts,
    Expire,
    Release,
    WorkerFault,
    OutOfMemory,
    OutOfMemoryGiveUp,
    Cancel,
}

/// Where a trial goes when its attempt ends without completing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    /// Queued again for another attempt.
    Queued,
    /// Failed for good (permanent error, or out of attempts).
    Failed,
}

/// Why a lease expired, as the attempts table records it (`attempts.cause`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryCause {
    /// The worker went silent for a lease time while the coordinator and its database were
    /// up: it died, hung or was cut off. Counts against `max_attempts`.
    Worker,
    /// The lease was last renewed before the coordinator or its database came back from an
    /// outage: the worker may never have been heard since. Does not count.
    Outage,
}

impl ExpiryCause {
    pub fn as_str(self) -> &'static str {
        match self {
            ExpiryCause::Worker => "worker",
            ExpiryCause::Outage => "outage",
        }
    }
}

/// Why an attempt that failed without counting failed, as `attempts.cause` records it.
pub const OUT_OF_MEMORY_CAUSE: &str = "oom";

/// How an attempt that did not complete ended, and what becomes of its trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ending {
    /// The attempt's outcome.
    pub outcome: AttemptOutcome,
    /// Whether it counts against `max_attempts`.
    pub counts: bool,
    /// Why it expired, for an expiry.
    pub expiry: Option<ExpiryCause>,
    /// The trial's next state.
    pub next: Requeue,
    pub transition: Transition,
}

impl Ending {
    /// What `attempts.cause` records for this ending: why it expired, or that it ran out of
    /// memory; `None` for other endings.
    pub fn cause(&self) -> Option<&'static str> {
        match self.transition {
            Transition::OutOfMemory | Transition::OutOfMemoryGiveUp => Some(OUT_OF_MEMORY_CAUSE),
            _ => self.expiry.map(ExpiryCause::as_str),
        }
    }
}

/// Why an attempt ended without completing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The worker reported a failure of this class.
    Failed(TrialFault),
    /// The lease ran out without a heartbeat.
    Expired(ExpiryCause),
}

/// Decides what an attempt that ended by `cause` becomes and where its trial goes.
/// `before` says how many earlier attempts of the trial count against `max_attempts`, and
/// how many ran out of memory.
pub fn after_failure(cause: Cause, before: Earlier, max_attempts: u32) -> Ending {
    if cause == Cause::Failed(TrialFault::OutOfMemory) {
        let (next, transition) = if before.out_of_memory + 1 >= MAX_OUT_OF_MEMORY {
            (Requeue::Failed, Transition::OutOfMemoryGiveUp)
        } else {
            (Requeue::Queued, Transition::OutOfMemory)
        };
        return Ending { outcome: AttemptOutcome::Failed, counts: false, expiry: None, next, transition };
    }
    let counted_before = before.counted;
    let (outcome, expiry) = match cause {
        Cause::Failed(TrialFault::Worker) => (AttemptOutcome::Released, None),
        Cause::Failed(_) => (AttemptOutcome::Failed, None),
        Cause::Expired(why) => (AttemptOutcome::Expired, Some(why)),
    };
    let counts = COUNTED_OUTCOMES.contains(&outcome) && expiry != Some(ExpiryCause::Outage);
    let counted = counted_before + u32::from(counts);
    let (next, transition) = match cause {
        Cause::Failed(TrialFault::Permanent) => (Requeue::Failed, Transition::FailPermanent),
        Cause::Failed(TrialFault::Worker) => (Requeue::Queued, Transition::WorkerFault),
        _ if counts && counted >= max_attempts => (Requeue::Failed, Transition::FailOutOfAttempts),
        Cause::Failed(_) => (Requeue::Queued, Transition::FailRetry),
        Cause::Expired(_) => (Requeue::Queued, Transition::Expire),
    };
    Ending { outcome, counts, expiry, next, transition }
}

/// A trial's earlier attempts, as [`after_failure`] weighs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Earlier {
    /// Those that count against `max_attempts`.
    pub counted: u32,
    /// Those that ran out of device memory.
    pub out_of_memory: u32,
}

/// The error a trial keeps when its attempt failed or expired; `counted` includes this attempt.
pub fn trial_error(ending: Ending, counted: u32, error: &str) -> String {
    match ending.transition {
        Transition::FailOutOfAttempts => format!("gave up after {counted} failed attempts; last: {error}"),
        Transition::OutOfMemoryGiveUp => {
            format!(
                "ran out of device memory {MAX_OUT_OF_MEMORY} times, asking twice the memory each time; last: {error}"
            )
        }
        _ => error.to_string(),
    }
}

/// The error an expired attempt records.
pub fn expiry_error(worker_id: &str, why: ExpiryCause) -> String {
    match why {
        ExpiryCause::Worker => format!("lease of worker {worker_id:?} expired"),
        ExpiryCause::Outage => format!(
            "lease of worker {worker_id:?} expired, not renewed since the coordinator or its database was away (not counted)"
        ),
    }
}

/// How many trials a worker registered with `slots` and asking for `free_slots` may lease at
/// once: never more than its slots, nor than [`MAX_LEASE_BATCH`].
pub fn lease_batch(free_slots: u32, slots: u32) -> u32 {
    free_slots.min(slots).min(MAX_LEASE_BATCH)
}

/// The memory a lease may fill: trials whose estimate is at most `bytes` each, and at most
/// `bytes` together, taken in lease order (a trial too big for this worker is passed over,
/// not waited for). A worker that sends no free memory leases by slots alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryFit {
    pub bytes: i64,
}

impl MemoryFit {
    /// From a lease request's `free_memory_bytes` (0: not memory-aware).
    pub fn from_request(free_memory_bytes: u64) -> Self {
        let bytes =
            if free_memory_bytes == 0 { i64::MAX } else { i64::try_from(free_memory_bytes).unwrap_or(i64::MAX) };
        Self { bytes }
    }
}

/// The largest memory estimate stored (1 PiB): the sums a lease takes stay far from
/// overflowing.
pub const MAX_MEMORY_ESTIMATE: i64 = 1 << 50;

/// The estimate a trial asks for after running out of memory with `estimate` bytes.
pub fn after_out_of_memory(estimate: i64) -> i64 {
    estimate.max(1).saturating_mul(2).min(MAX_MEMORY_ESTIMATE)
}

/// A config's estimate as stored.
pub fn stored_estimate(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX).min(MAX_MEMORY_ESTIMATE)
}

/// The lease, heartbeat, expiry and liveness clocks, all derived from the lease time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clocks {
    /// How long a lease lasts without a heartbeat.
    pub lease_ttl: Duration,
}

impl Clocks {
    pub fn new(lease_ttl: Duration) -> Self {
        Self { lease_ttl }
    }

    /// Workers heartbeat three times per lease, so one lost heartbeat costs nothing.
    pub fn heartbeat_interval(&self) -> Duration {
        self.lease_ttl / 3
    }

    /// When a lease granted or renewed at `now` (ms) runs out.
    pub fn lease_expiry(&self, now: i64) -> i64 {
        now + self.lease_ttl.as_millis() as i64
    }

    /// How often the expiry tick looks for silent leases: four times per lease, at most 5 Hz.
    pub fn expiry_tick(&self) -> Duration {
        (self.lease_ttl / 4).max(Duration::from_millis(200))
    }

    /// Whether a worker last seen at `last_seen` (ms) counts as alive at `now`.
    pub fn worker_alive(&self, last_seen: i64, now: i64) -> bool {
        now - last_seen < 3 * self.lease_ttl.as_millis() as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permanent_failures_fail_at_once_and_retried_ones_until_the_last_attempt() {
        let permanent = after_failure(Cause::Failed(TrialFault::Permanent), counted(0), 3);
        assert_eq!((permanent.outcome, permanent.next), (AttemptOutcome::Failed, Requeue::Failed));
        assert_eq!(after_failure(Cause::Failed(TrialFault::Retry), counted(1), 3).next, Requeue::Queued);
        let last = after_failure(Cause::Failed(TrialFault::Retry), counted(2), 3);
        assert_eq!((last.next, last.transition), (Requeue::Failed, Transition::FailOutOfAttempts));
        assert_eq!(trial_error(last, 3, "boom"), "gave up after 3 failed attempts; last: boom");
    }

    #[test]
    fn expiries_count_and_worker_faults_do_not() {
        let expired = after_failure(Cause::Expired(ExpiryCause::Worker), counted(2), 3);
        assert_eq!((expired.outcome, expired.next), (AttemptOutcome::Expired, Requeue::Failed));
        let worker = after_failure(Cause::Failed(TrialFault::Worker), counted(2), 3);
        assert_eq!((worker.outcome, worker.next), (AttemptOutcome::Released, Requeue::Queued));
        assert_eq!(worker.transition, Transition::WorkerFault);
    }

    #[test]
    fn an_expiry_after_an_outage_never_uses_up_an_attempt() {
        let outage = after_failure(Cause::Expired(ExpiryCause::Outage), counted(2), 3);
        assert_eq!((outage.outcome, outage.counts, outage.next), (AttemptOutcome::Expired, false, Requeue::Queued));
        assert_eq!(outage.expiry, Some(ExpiryCause::Outage));
        assert_eq!(outage.cause(), Some("outage"));
        let worker = after_failure(Cause::Expired(ExpiryCause::Worker), counted(2), 3);
        assert_eq!((worker.counts, worker.next), (true, Requeue::Failed), "the third counted expiry fails it");
    }

    fn counted(n: u32) -> Earlier {
        Earlier { counted: n, out_of_memory: 0 }
    }

    #[test]
    fn running_out_of_memory_never_uses_up_an_attempt_but_gives_up_after_a_few() {
        let oom = Cause::Failed(TrialFault::OutOfMemory);
        // The last counted attempt is used up, yet an out-of-memory failure queues it again.
        let first = after_failure(oom, Earlier { counted: 2, out_of_memory: 0 }, 3);
        assert_eq!((first.outcome, first.counts, first.next), (AttemptOutcome::Failed, false, Requeue::Queued));
        assert_eq!((first.transition, first.cause()), (Transition::OutOfMemory, Some("oom")));
        let last = after_failure(oom, Earlier { counted: 0, out_of_memory: MAX_OUT_OF_MEMORY - 1 }, 3);
        assert_eq!((last.next, last.transition), (Requeue::Failed, Transition::OutOfMemoryGiveUp));
        assert!(trial_error(last, 0, "CUDA out of memory").starts_with("ran out of device memory 4 times"));
        assert_eq!(after_out_of_memory(3 << 30), 6 << 30);
        assert_eq!(after_out_of_memory(i64::MAX), MAX_MEMORY_ESTIMATE, "saturates");
        assert_eq!(stored_estimate(u64::MAX), MAX_MEMORY_ESTIMATE);
    }

    #[test]
    fn a_worker_without_memory_figures_leases_by_slots_alone() {
        assert_eq!(MemoryFit::from_request(0).bytes, i64::MAX);
        assert_eq!(MemoryFit::from_request(8 << 30).bytes, 8 << 30);
        assert_eq!(MemoryFit::from_request(u64::MAX).bytes, i64::MAX, "a hostile size is clamped, not wrapped");
    }

    #[test]
    fn clocks_follow_the_lease_time() {
        let clocks = Clocks::new(Duration::from_secs(15));
        assert_eq!(clocks.heartbeat_interval(), Duration::from_secs(5));
        assert_eq!(clocks.lease_expiry(1_000), 16_000);
        assert!(clocks.worker_alive(0, 44_999));
        assert!(!clocks.worker_alive(0, 45_000));
        assert_eq!(Clocks::new(Duration::from_millis(300)).expiry_tick(), Duration::from_millis(200));
    }

    #[test]
    fn a_lease_never_exceeds_the_registered_slots() {
        assert_eq!(lease_batch(u32::MAX, 1), 1, "free_slots -1 from a careless client");
        assert_eq!(lease_batch(2, 4), 2);
        assert_eq!(lease_batch(500, 1000), MAX_LEASE_BATCH);
    }
}
