//! One classification of failures, read alike by every side that must decide whether to try
//! again:
//!
//! - a **call** that failed ([`CallFault`], from its gRPC code): the agent retries a
//!   [`CallFault::Transient`] one later and drops a [`CallFault::Refused`] one; the
//!   coordinator answers each of its errors with a code from the matching side of
//!   [`CallFault::of`] (a broken database connection is `UNAVAILABLE`, a constraint the
//!   caller violated is not);
//! - a **trial attempt** that failed ([`TrialFault`], sent as `FailureKind`): the trainer
//!   classifies its errors, and the coordinator's scheduler decides the trial's next state
//!   from the class alone.

use tonic::Code;

use crate::v1::FailureKind;

/// What the caller of a failed RPC does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallFault {
    /// The coordinator or the network is down, restarting or busy: the same call succeeds later.
    Transient,
    /// The call itself was refused (bad input, a superseded attempt, no such thing, no
    /// permission): sending it again cannot help.
    Refused,
}

impl CallFault {
    /// The class of a gRPC status code. `INTERNAL` counts as transient: the coordinator uses
    /// it only for its own I/O (a full disk), which clears.
    pub fn of(code: Code) -> Self {
        match code {
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Unknown
            | Code::Internal
            | Code::Aborted
            | Code::ResourceExhausted
            | Code::Cancelled => CallFault::Transient,
            Code::Ok
            | Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::PermissionDenied
            | Code::FailedPrecondition
            | Code::OutOfRange
            | Code::Unimplemented
            | Code::DataLoss
            | Code::Unauthenticated => CallFault::Refused,
        }
    }

    /// Whether a failed call is worth sending again.
    pub fn is_transient(status: &tonic::Status) -> bool {
        Self::of(status.code()) == CallFault::Transient
    }
}

/// Why a trial attempt failed, which decides what becomes of the trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrialFault {
    /// Another attempt may succeed (a libtorch error, checkpoint I/O): the trial is queued
    /// again while attempts remain, and this attempt counts against `max_attempts`.
    Retry,
    /// No attempt anywhere can succeed (a bad config, unreadable data, a diverged run): the
    /// trial fails for good.
    Permanent,
    /// This worker cannot serve the trial (its data set is missing on this machine): the
    /// trial goes back to the queue for another worker without counting an attempt, and the
    /// worker stops leasing.
    Worker,
    /// The device ran out of memory: the trial needs more room than its estimate gave it.
    /// The trial goes back to the queue asking twice the memory, without counting an
    /// attempt, a few times at most.
    OutOfMemory,
}

impl From<TrialFault> for FailureKind {
    fn from(fault: TrialFault) -> Self {
        match fault {
            TrialFault::Retry => FailureKind::Retry,
            TrialFault::Permanent => FailureKind::Permanent,
            TrialFault::Worker => FailureKind::Worker,
            TrialFault::OutOfMemory => FailureKind::OutOfMemory,
        }
    }
}

impl From<FailureKind> for TrialFault {
    /// An unspecified kind (an old or careless client) is read as [`TrialFault::Retry`]:
    /// it neither loses the trial nor hides the failure.
    fn from(kind: FailureKind) -> Self {
        match kind {
            FailureKind::Unspecified | FailureKind::Retry => TrialFault::Retry,
            FailureKind::Permanent => TrialFault::Permanent,
            FailureKind::Worker => TrialFault::Worker,
            FailureKind::OutOfMemory => TrialFault::OutOfMemory,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_is_retried_and_a_refusal_is_not() {
        assert_eq!(CallFault::of(Code::Unavailable), CallFault::Transient);
        for code in [Code::InvalidArgument, Code::FailedPrecondition, Code::NotFound, Code::AlreadyExists] {
            assert_eq!(CallFault::of(code), CallFault::Refused, "{code:?}");
        }
    }

    #[test]
    fn failure_kinds_round_trip_and_unspecified_means_retry() {
        for fault in [TrialFault::Retry, TrialFault::Permanent, TrialFault::Worker, TrialFault::OutOfMemory] {
            assert_eq!(TrialFault::from(FailureKind::from(fault)), fault);
        }
        assert_eq!(TrialFault::from(FailureKind::Unspecified), TrialFault::Retry);
    }
}
