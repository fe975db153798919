//! Early stopping (issue 12): which trials of a sweep go on past a rung and which stop there,
//! decided from stored metrics alone, so that a restarted coordinator, or workers reporting in
//! another order, reach the same decisions.
//!
//! # Rungs and pauses
//!
//! A rule names the epochs at which trials are judged, its rungs: ASHA's grow geometrically
//! (`min_epochs`, `min_epochs * eta`, ...), the median rule's every `interval` epochs from
//! `min_epochs`; none is the last epoch. A trial leased under a rule trains to its next rung,
//! writes its checkpoint there and is handed back; a trial promoted at a rung is leased again
//! and **resumes from that checkpoint** (on any worker), a trial stopped there ends `stopped`.
//!
//! # Order-free decisions
//!
//! Asynchronous rules decide as results arrive, so they depend on the order of arrival. Here
//! that order is fixed by the data, not by the clock: at the first rung trials arrive in
//! ordinal order; at each later rung, in the order of the arrivals that promoted them at the
//! rung below (then in their own order there). A rung's arrivals are judged only along the
//! prefix of that order whose outcome is known (a value at the rung, or an end without one:
//! failed, cancelled); a trial behind an unknown one waits (held, using no worker). So the
//! decisions are a function of the metric values: the same after a coordinator restart, and
//! the same whatever the order in which workers report.
//!
//! - **ASHA** (Li et al., MLSys 2020): after the `m`-th arrival at a rung, the best
//!   `floor(m / eta)` arrivals so far are promoted (ties to the earlier arrival); a promotion
//!   is never taken back. An arrival not promoted waits, and stops once every trial's outcome
//!   at the rung is known. A rung whose outcomes are all known and that promoted nobody (fewer
//!   than `eta` trials reached it) promotes its best, so that a search always finishes a trial.
//! - **Median** (Golovin et al., KDD 2017): an arrival goes on unless fewer than `min_samples`
//!   earlier arrivals exist, or its best value so far is better than or equal to the median of
//!   the earlier arrivals' running means at that epoch; otherwise it stops at once.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// Which way a metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Max,
    Min,
}

impl Mode {
    /// `a` is strictly better than `b`. NaN is worse than any number.
    pub fn better(self, a: f64, b: f64) -> bool {
        match (a.is_nan(), b.is_nan()) {
            (true, _) => false,
            (false, true) => true,
            _ => match self {
                Mode::Max => a > b,
                Mode::Min => a < b,
            },
        }
    }

    /// A total order, best first (NaN last).
    fn cmp_best_first(self, a: f64, b: f64) -> std::cmp::Ordering {
        if self.better(a, b) {
            std::cmp::Ordering::Less
        } else if self.better(b, a) {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Max => "max",
            Mode::Min => "min",
        }
    }
}

/// A sweep's early-stopping rule, as the spec's `[search.early_stopping]` gives it and
/// `sweeps.early_stopping` stores it (JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Rule {
    Asha {
        metric: String,
        mode: Mode,
        min_epochs: u32,
        reduction_factor: u32,
        max_epochs: u32,
    },
    Median {
        metric: String,
        mode: Mode,
        min_epochs: u32,
        interval: u32,
        min_samples: u32,
        max_epochs: u32,
    },
    /// Racing over seeds ([`super::race`]): judged on the metric at the last epoch, by config.
    Race {
        metric: String,
        mode: Mode,
        alpha: f64,
        min_seeds: u32,
        max_epochs: u32,
    },
}

impl Rule {
    pub fn name(&self) -> &'static str {
        match self {
            Rule::Asha { .. } => "asha",
            Rule::Median { .. } => "median",
            Rule::Race { .. } => "race",
        }
    }

    pub fn metric(&self) -> &str {
        match self {
            Rule::Asha { metric, .. } | Rule::Median { metric, .. } | Rule::Race { metric, .. } => metric,
        }
    }

    pub fn mode(&self) -> Mode {
        match self {
            Rule::Asha { mode, .. } | Rule::Median { mode, .. } | Rule::Race { mode, .. } => *mode,
        }
    }

    pub fn max_epochs(&self) -> u32 {
        match self {
            Rule::Asha { max_epochs, .. } | Rule::Median { max_epochs, .. } | Rule::Race { max_epochs, .. } => {
                *max_epochs
            }
        }
    }

    /// The epochs at which trials are judged, ascending, all before the last epoch (none for a
    /// race, which judges configs on finished trials).
    pub fn rungs(&self) -> Vec<u32> {
        let mut rungs = Vec::new();
        match *self {
            Rule::Asha { min_epochs, reduction_factor, max_epochs, .. } => {
                let mut epoch = u64::from(min_epochs.max(1));
                while epoch < u64::from(max_epochs) {
                    rungs.push(epoch as u32);
                    epoch *= u64::from(reduction_factor.max(2));
                }
            }
            Rule::Median { min_epochs, interval, max_epochs, .. } => {
                let mut epoch = min_epochs.max(1);
                while epoch < max_epochs {
                    rungs.push(epoch);
                    epoch = epoch.saturating_add(interval.max(1));
                }
            }
            Rule::Race { .. } => {}
        }
        rungs
    }

    /// The rung a trial resuming after `epoch` trains to next, when one is left.
    pub fn next_pause(&self, epoch: u32) -> Option<u32> {
        self.rungs().into_iter().find(|&r| r > epoch)
    }
}

/// What the rule knows of one trial.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialSeen {
    pub ordinal: u32,
    /// The trial's metric per epoch (1-based), as stored.
    pub values: BTreeMap<u32, f64>,
    /// It ended without finishing (failed, cancelled): it reaches no further rung.
    pub ended: bool,
}

/// A trial's fate at one rung.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// It goes on to the next rung (or to its last epoch).
    Promoted,
    /// It stops here, for good.
    Stopped,
    /// It reached the rung and waits for the trials before it.
    Waiting,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Promoted => "promoted",
            Verdict::Stopped => "stopped",
            Verdict::Waiting => "waiting",
        }
    }
}

/// One trial's arrival at one rung and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub ordinal: u32,
    /// 0-based rung and its epoch.
    pub rung: u32,
    pub epoch: u32,
    /// The value it was judged by (ASHA: the metric at the rung; median: its best so far).
    pub value: f64,
    pub verdict: Verdict,
    /// For people: why (e.g. "rank 2 of 6 arrivals: not in the best 1/3").
    pub reason: String,
}

/// Every decision the rule makes on what is known of `trials` (any order), rung by rung.
pub fn decide(rule: &Rule, trials: &[TrialSeen]) -> Vec<Decision> {
    let mut by_ordinal: Vec<&TrialSeen> = trials.iter().collect();
    by_ordinal.sort_by_key(|t| t.ordinal);
    let rungs = rule.rungs();
    let mut decisions = Vec::new();
    // The trials that may arrive at the current rung, in their order there, and whether that
    // list is complete (no trial can join it later).
    let mut order: Vec<&TrialSeen> = by_ordinal;
    let mut complete = true;
    for (k, &epoch) in rungs.iter().enumerate() {
        let rung = Rung { rule, k: k as u32, epoch, order: &order, complete };
        let (made, promoted, all_known) = rung.judge();
        decisions.extend(made);
        order = promoted;
        complete = all_known;
    }
    decisions
}

/// One rung's judging.
struct Rung<'r, 'a> {
    rule: &'r Rule,
    k: u32,
    epoch: u32,
    order: &'r [&'a TrialSeen],
    complete: bool,
}

impl<'a> Rung<'_, 'a> {
    /// The decisions at this rung, the promoted trials in their order at the next rung, and
    /// whether every outcome at this rung is known.
    fn judge(&self) -> (Vec<Decision>, Vec<&'a TrialSeen>, bool) {
        // The known prefix: arrivals with their value, or trials known never to arrive.
        let mut arrivals: Vec<(usize, &'a TrialSeen, f64)> = Vec::new();
        let mut known = 0;
        for (position, trial) in self.order.iter().enumerate() {
            match trial.values.get(&self.epoch) {
                Some(&value) => arrivals.push((position, trial, value)),
                None if trial.ended => {}
                None => break,
            }
            known = position + 1;
        }
        let all_known = self.complete && known == self.order.len();
        let (mut decisions, promoted) = match self.rule {
            Rule::Asha { reduction_factor, mode, .. } => self.asha(&arrivals, *reduction_factor, *mode, all_known),
            Rule::Median { min_samples, mode, .. } => self.median(&arrivals, *min_samples, *mode),
            Rule::Race { .. } => (Vec::new(), Vec::new()),
        };
        decisions.sort_by_key(|d| d.ordinal);
        // Promoted trials, in the order of the arrival that promoted them, then their own.
        let mut next: Vec<(usize, usize, &'a TrialSeen)> = promoted;
        next.sort_by_key(|&(trigger, own, _)| (trigger, own));
        (decisions, next.into_iter().map(|(_, _, t)| t).collect(), all_known)
    }

    fn decision(&self, trial: &TrialSeen, value: f64, verdict: Verdict, reason: String) -> Decision {
        Decision { ordinal: trial.ordinal, rung: self.k, epoch: self.epoch, value, verdict, reason }
    }

    /// ASHA's promotions along the arrivals; returns the decisions and, for each promoted
    /// trial, (position of the arrival that promoted it, its own position, the trial).
    #[allow(clippy::type_complexity)]
    fn asha(
        &self,
        arrivals: &[(usize, &'a TrialSeen, f64)],
        eta: u32,
        mode: Mode,
        all_known: bool,
    ) -> (Vec<Decision>, Vec<(usize, usize, &'a TrialSeen)>) {
        let eta = eta.max(2) as usize;
        // Arrivals so far, best first: (value, position, index into `arrivals`).
        let mut ranked: Vec<(f64, usize, usize)> = Vec::with_capacity(arrivals.len());
        let mut promoted_by: HashMap<usize, (usize, usize)> = HashMap::new();
        for (index, &(position, _, value)) in arrivals.iter().enumerate() {
            let at = ranked.partition_point(|&(v, p, _)| mode.cmp_best_first(v, value).then(p.cmp(&position)).is_lt());
            ranked.insert(at, (value, position, index));
            let top = ranked.len() / eta;
            // Only this arrival, or the last of the best `top`, can have just entered them.
            let mut entrants = Vec::new();
            if at < top {
                entrants.push(ranked[at].2);
            }
            if top > 0 {
                entrants.push(ranked[top - 1].2);
            }
            for entrant in entrants {
                promoted_by.entry(entrant).or_insert((position, ranked.len()));
            }
        }
        // A rung whose arrivals are all in and that promoted none (fewer than eta arrived)
        // promotes its best: ASHA would end the search there without a finished trial.
        if all_known && promoted_by.is_empty() {
            if let (Some(&(_, _, best)), Some(&(last, _, _))) = (ranked.first(), arrivals.last()) {
                promoted_by.insert(best, (last, ranked.len()));
            }
        }
        let mut decisions = Vec::with_capacity(arrivals.len());
        let mut promoted = Vec::new();
        let rank_of: HashMap<usize, usize> =
            ranked.iter().enumerate().map(|(rank, &(_, _, i))| (i, rank + 1)).collect();
        for (index, &(position, trial, value)) in arrivals.iter().enumerate() {
            let rank = rank_of[&index];
            if let Some(&(trigger, seen)) = promoted_by.get(&index) {
                let reason = format!("in the best 1/{eta} once {seen} trials had arrived");
                decisions.push(self.decision(trial, value, Verdict::Promoted, reason));
                promoted.push((trigger, position, trial));
            } else if all_known {
                let reason = format!("rank {rank} of {} arrivals: never in the best 1/{eta}", ranked.len());
                decisions.push(self.decision(trial, value, Verdict::Stopped, reason));
            } else {
                let reason = format!("rank {rank} of {} arrivals so far: not in the best 1/{eta} yet", ranked.len());
                decisions.push(self.decision(trial, value, Verdict::Waiting, reason));
            }
        }
        (decisions, promoted)
    }

    /// The median rule along the arrivals.
    #[allow(clippy::type_complexity)]
    fn median(
        &self,
        arrivals: &[(usize, &'a TrialSeen, f64)],
        min_samples: u32,
        mode: Mode,
    ) -> (Vec<Decision>, Vec<(usize, usize, &'a TrialSeen)>) {
        let mut earlier: Vec<f64> = Vec::new();
        let mut decisions = Vec::with_capacity(arrivals.len());
        let mut promoted = Vec::new();
        for &(position, trial, _) in arrivals {
            let curve: Vec<f64> = trial.values.range(..=self.epoch).map(|(_, &v)| v).collect();
            let best = curve.iter().copied().fold(f64::NAN, |b, v| if mode.better(v, b) { v } else { b });
            let running_mean = curve.iter().sum::<f64>() / curve.len().max(1) as f64;
            let (verdict, reason) = if earlier.len() < min_samples as usize {
                (Verdict::Promoted, format!("{} earlier trials, fewer than {min_samples}", earlier.len()))
            } else {
                let median = median_of(&earlier);
                if mode.better(median, best) {
                    (Verdict::Stopped, format!("best {best:.6} worse than the median {median:.6} of {}", earlier.len()))
                } else {
                    (Verdict::Promoted, format!("best {best:.6} not worse than the median {median:.6}"))
                }
            };
            if verdict == Verdict::Promoted {
                promoted.push((position, position, trial));
            }
            decisions.push(self.decision(trial, best, verdict, reason));
            let at = earlier.partition_point(|&v| v.total_cmp(&running_mean).is_lt());
            earlier.insert(at, running_mean);
        }
        (decisions, promoted)
    }
}

/// The median of sorted values (the mean of the middle two for an even count).
fn median_of(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asha(eta: u32, min_epochs: u32, max_epochs: u32) -> Rule {
        Rule::Asha { metric: "dice".into(), mode: Mode::Max, min_epochs, reduction_factor: eta, max_epochs }
    }

    /// A trial whose metric is `quality * epoch / 10` at every epoch up to `reached`.
    fn trial(ordinal: u32, quality: f64, reached: u32) -> TrialSeen {
        TrialSeen { ordinal, values: (1..=reached).map(|e| (e, quality * f64::from(e) / 10.0)).collect(), ended: false }
    }

    /// The trials as they would be once the rule has run its course: each trains to the rung
    /// where it stops, or to the end.
    fn run_to_end(rule: &Rule, qualities: &[f64]) -> (Vec<TrialSeen>, Vec<Decision>) {
        let mut trials: Vec<TrialSeen> = qualities.iter().enumerate().map(|(i, &q)| trial(i as u32, q, 0)).collect();
        loop {
            let decisions = decide(rule, &trials);
            let mut moved = false;
            for t in trials.iter_mut() {
                let reached = t.values.len() as u32;
                let here = decisions.iter().find(|d| d.ordinal == t.ordinal && d.epoch == reached);
                let go_on = !rule.rungs().contains(&reached) || here.is_some_and(|d| d.verdict == Verdict::Promoted);
                if go_on && reached < rule.max_epochs() {
                    let target = rule.next_pause(reached).unwrap_or(rule.max_epochs());
                    *t = trial(t.ordinal, qualities[t.ordinal as usize], target);
                    moved = true;
                }
            }
            if !moved {
                return (trials, decisions);
            }
        }
    }

    #[test]
    fn asha_rungs_grow_by_eta_and_stop_before_the_last_epoch() {
        assert_eq!(asha(3, 1, 27).rungs(), vec![1, 3, 9]);
        assert_eq!(asha(3, 1, 28).rungs(), vec![1, 3, 9, 27]);
        assert_eq!(asha(2, 2, 9).rungs(), vec![2, 4, 8]);
        assert_eq!(asha(3, 5, 5).rungs(), Vec::<u32>::new());
        assert_eq!(asha(3, 1, 27).next_pause(3), Some(9));
        assert_eq!(asha(3, 1, 27).next_pause(9), None);
        let median = Rule::Median {
            metric: "dice".into(),
            mode: Mode::Max,
            min_epochs: 2,
            interval: 2,
            min_samples: 3,
            max_epochs: 7,
        };
        assert_eq!(median.rungs(), vec![2, 4, 6]);
    }

    #[test]
    fn asha_keeps_the_best_third_at_each_rung_and_the_best_trial_reaches_the_end() {
        let rule = asha(3, 1, 9);
        let qualities = [0.5, 0.9, 0.1, 0.3, 0.8, 0.2, 0.7, 0.4, 0.6];
        let (trials, decisions) = run_to_end(&rule, &qualities);
        let finished: Vec<u32> = trials.iter().filter(|t| t.values.len() == 9).map(|t| t.ordinal).collect();
        assert_eq!(finished, vec![1], "only the best trial trains to the end");
        assert!(decisions.iter().all(|d| d.verdict != Verdict::Waiting), "{decisions:#?}");
        let promoted_at = |rung| decisions.iter().filter(|d| d.rung == rung && d.verdict == Verdict::Promoted).count();
        // 9 arrivals at rung 0: the best 3 (ASHA may promote a few more early on).
        assert!((3..=5).contains(&promoted_at(0)), "{decisions:#?}");
        assert_eq!(promoted_at(1), 1);
        let epochs: usize = trials.iter().map(|t| t.values.len()).sum();
        assert!(epochs * 3 <= 9 * 9 + 9, "ASHA trained {epochs} epochs of the grid's 81");
    }

    #[test]
    fn asha_decisions_do_not_depend_on_the_order_in_which_results_arrive() {
        let rule = asha(3, 1, 9);
        let qualities: Vec<f64> = (0..27).map(|i| ((i * 7919) % 27) as f64 / 27.0).collect();
        let (done, reference) = run_to_end(&rule, &qualities);
        // Reveal what each trial reached in many orders, one epoch at a time: every decision
        // made along the way is one the full run makes, and the end is the same.
        for shuffle in 0..20u64 {
            let mut seen: Vec<TrialSeen> =
                done.iter().map(|t| TrialSeen { values: BTreeMap::new(), ..t.clone() }).collect();
            let mut reveals: Vec<(u32, u32)> =
                done.iter().flat_map(|t| t.values.keys().map(move |&e| (t.ordinal, e))).collect();
            let mut state = shuffle.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            for i in (1..reveals.len()).rev() {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                reveals.swap(i, (state >> 33) as usize % (i + 1));
            }
            for (ordinal, epoch) in reveals {
                let t = &mut seen[ordinal as usize];
                t.values.insert(epoch, done[ordinal as usize].values[&epoch]);
                for d in decide(&rule, &seen).iter().filter(|d| d.verdict != Verdict::Waiting) {
                    let same = reference.iter().find(|r| r.ordinal == d.ordinal && r.rung == d.rung);
                    assert_eq!(same.map(|r| r.verdict), Some(d.verdict), "order {shuffle}: {d:?}");
                }
            }
            assert_eq!(decide(&rule, &seen), reference, "order {shuffle}");
        }
    }

    #[test]
    fn a_trial_waits_behind_an_earlier_one_still_training_and_an_ended_one_does_not_block() {
        let rule = asha(2, 1, 4);
        let mut trials = vec![trial(0, 0.5, 0), trial(1, 0.9, 1), trial(2, 0.1, 0)];
        let d = decide(&rule, &trials);
        assert!(d.is_empty(), "trial 1 arrived, but trial 0's outcome is unknown: {d:?}");
        trials[0].ended = true;
        let d = decide(&rule, &trials);
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].ordinal, d[0].verdict), (1, Verdict::Waiting), "1 arrival: the best floor(1/2) = 0 go on");
        trials[2] = trial(2, 0.1, 1);
        let d = decide(&rule, &trials);
        assert_eq!(d.iter().map(|d| d.verdict).collect::<Vec<_>>(), vec![Verdict::Promoted, Verdict::Stopped]);
        assert!(d[0].reason.contains("once 2 trials had arrived"), "{}", d[0].reason);
    }

    #[test]
    fn a_trial_waiting_at_a_rung_is_promoted_when_later_arrivals_make_room() {
        let rule = asha(3, 1, 9);
        let mut trials = vec![trial(0, 0.9, 1), trial(1, 0.5, 1), trial(2, 0.1, 0), trial(3, 0.3, 0)];
        assert!(decide(&rule, &trials).iter().all(|d| d.verdict == Verdict::Waiting));
        trials[2] = trial(2, 0.1, 1);
        let d = decide(&rule, &trials);
        assert_eq!(d[0].verdict, Verdict::Promoted, "the first trial, best of three: {d:?}");
        assert_eq!((d[1].verdict, d[2].verdict), (Verdict::Waiting, Verdict::Waiting), "trial 3 may yet arrive");
    }

    #[test]
    fn a_finished_rung_that_promoted_nobody_promotes_its_best() {
        let rule = asha(3, 1, 9);
        let trials = vec![trial(0, 0.4, 1), trial(1, 0.6, 1)];
        let d = decide(&rule, &trials);
        assert_eq!(d.iter().map(|d| d.verdict).collect::<Vec<_>>(), vec![Verdict::Stopped, Verdict::Promoted]);
    }

    #[test]
    fn minimising_ranks_the_lowest_first_and_nan_is_the_worst() {
        let rule = Rule::Asha {
            metric: "validation_loss".into(),
            mode: Mode::Min,
            min_epochs: 1,
            reduction_factor: 2,
            max_epochs: 4,
        };
        let mut a = trial(0, 0.0, 0);
        a.values.insert(1, f64::NAN);
        let mut b = trial(1, 0.0, 0);
        b.values.insert(1, 0.7);
        let d = decide(&rule, &[a, b]);
        assert_eq!(d.iter().map(|d| d.verdict).collect::<Vec<_>>(), vec![Verdict::Stopped, Verdict::Promoted]);
    }

    #[test]
    fn the_median_rule_stops_a_trial_worse_than_the_median_of_earlier_running_means() {
        let rule = Rule::Median {
            metric: "dice".into(),
            mode: Mode::Max,
            min_epochs: 2,
            interval: 1,
            min_samples: 2,
            max_epochs: 5,
        };
        let trials = vec![trial(0, 0.5, 2), trial(1, 0.7, 2), trial(2, 0.2, 2), trial(3, 0.9, 2)];
        let d = decide(&rule, &trials);
        let verdicts: Vec<Verdict> = d.iter().map(|d| d.verdict).collect();
        // Earlier running means at epoch 2: 0.075 and 0.105 (median 0.09); trial 2's best is
        // 0.04, trial 3's 0.18.
        assert_eq!(verdicts, vec![Verdict::Promoted, Verdict::Promoted, Verdict::Stopped, Verdict::Promoted]);
        assert!(d[2].reason.contains("worse than the median"), "{}", d[2].reason);
    }
}
