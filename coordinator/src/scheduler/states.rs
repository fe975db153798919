//! The states of sweeps, trials and attempts, as the database stores them (lower-case words)
//! and as the domain and the wire use them (enums). [`super`] draws how they change.

use serde::Serialize;

/// Defines a state enum with its database word, both ways.
macro_rules! state_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $word:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every state, in the order of the diagram.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The word the database stores.
            pub fn as_str(&self) -> &'static str {
                match self {
                    $($name::$variant => $word),+
                }
            }

            /// The state a database word names; `None` for any other word.
            pub fn parse(word: &str) -> Option<Self> {
                match word {
                    $($word => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

state_enum!(
    /// Lifecycle of a sweep.
    SweepState {
        /// Trials are queued or running.
        Active => "active",
        /// A user cancelled it; its unfinished trials were cancelled.
        Cancelled => "cancelled",
        /// Every trial completed, failed or stopped.
        Finished => "finished",
    }
);

state_enum!(
    /// Lifecycle of a trial.
    TrialState {
        Queued => "queued",
        Running => "running",
        Completed => "completed",
        Failed => "failed",
        Cancelled => "cancelled",
        /// An early-stopping rule stopped it at a rung (`trials.stopped_epoch`,
        /// `trials.stop_rule`): not a failure, and not a missing seed of a finished config.
        Stopped => "stopped",
    }
);

state_enum!(
    /// How one attempt (one lease of a trial) ended.
    AttemptOutcome {
        /// Still leased.
        Running => "running",
        Completed => "completed",
        /// The worker reported a failure of the trial (counts against `max_attempts`).
        Failed => "failed",
        /// The worker went silent past its lease (counts against `max_attempts`).
        Expired => "expired",
        /// The worker gave the trial back: it was leaving, or cannot serve it on its machine.
        Released => "released",
        /// The sweep was cancelled while the attempt ran.
        Cancelled => "cancelled",
    }
);

impl TrialState {
    /// Whether the trial will not change any more.
    pub fn is_final(self) -> bool {
        matches!(self, TrialState::Completed | TrialState::Failed | TrialState::Cancelled | TrialState::Stopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_reads_back_from_its_database_word() {
        for s in SweepState::ALL {
            assert_eq!(SweepState::parse(s.as_str()), Some(*s));
        }
        for s in TrialState::ALL {
            assert_eq!(TrialState::parse(s.as_str()), Some(*s));
        }
        for s in AttemptOutcome::ALL {
            assert_eq!(AttemptOutcome::parse(s.as_str()), Some(*s));
        }
        assert_eq!(TrialState::parse("Queued"), None);
    }
}
