//! Racing over seeds (F-Race, Birattari et al. 2002; irace's t-test): a comparison's seeds
//! run in waves, and a config that a paired test over the seeds done so far shows worse than
//! the current best stops receiving seeds.
//!
//! The seeds of each config are its trials in ordinal order (seeds innermost), and wave `w`
//! is every config's `w`-th seed. The first `min_seeds` waves are open from the start; each
//! later wave opens once the wave before it is done (every racing config's trial of it
//! completed, failed or cancelled) and tested. A test compares each racing config with the
//! best one (the best mean over its seeds so far): a paired t-test over the seeds both have,
//! one-sided; a config worse at level `alpha` is eliminated and its seeds not yet run stop.
//! The best config is never eliminated, so it gets every seed. Decisions depend only on the
//! values of completed waves, never on the order in which trials finish.

use crate::report::stats;

use super::early_stopping::Mode;

/// What the race knows of one trial.
#[derive(Debug, Clone, PartialEq)]
pub struct RaceTrial {
    pub ordinal: u32,
    /// Trials that differ only in seed share it.
    pub config: String,
    /// The metric at the trial's last epoch, once it completed.
    pub value: Option<f64>,
    /// Completed, failed or cancelled: it will not change.
    pub done: bool,
}

/// One config's test after one wave.
#[derive(Debug, Clone, PartialEq)]
pub struct WaveTest {
    pub config: String,
    /// 0-based wave after which it was tested.
    pub wave: usize,
    /// Its mean over its values so far, and how many.
    pub mean: f64,
    pub n: usize,
    /// Eliminated by this test.
    pub eliminated: bool,
    pub reason: String,
}

/// Where the race stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Race {
    /// Waves whose trials may run: `0..open`.
    pub open: usize,
    /// Every test made, in wave then config order.
    pub tests: Vec<WaveTest>,
    /// The configs eliminated, each with the wave after which it was.
    pub eliminated: Vec<(String, usize)>,
}

impl Race {
    pub fn eliminated_after(&self, config: &str) -> Option<usize> {
        self.eliminated.iter().find(|(c, _)| c == config).map(|&(_, w)| w)
    }
}

/// Each config's trials in ordinal order, the configs in the order of their first trial.
pub fn configs(trials: &[RaceTrial]) -> Vec<(String, Vec<&RaceTrial>)> {
    let mut sorted: Vec<&RaceTrial> = trials.iter().collect();
    sorted.sort_by_key(|t| t.ordinal);
    let mut out: Vec<(String, Vec<&RaceTrial>)> = Vec::new();
    for t in sorted {
        match out.iter_mut().find(|(c, _)| *c == t.config) {
            Some((_, seeds)) => seeds.push(t),
            None => out.push((t.config.clone(), vec![t])),
        }
    }
    out
}

/// Runs the race over what is known of `trials`.
pub fn race(trials: &[RaceTrial], mode: Mode, alpha: f64, min_seeds: usize) -> Race {
    let configs = configs(trials);
    let waves = configs.iter().map(|(_, seeds)| seeds.len()).max().unwrap_or(0);
    let mut racing: Vec<bool> = vec![true; configs.len()];
    let mut open = min_seeds.min(waves);
    let mut tests = Vec::new();
    let mut eliminated = Vec::new();
    for wave in 0..waves {
        if wave >= open {
            break;
        }
        let done = configs
            .iter()
            .zip(&racing)
            .filter(|(_, &r)| r)
            .all(|((_, seeds), _)| seeds.get(wave).is_none_or(|t| t.done));
        if !done {
            break;
        }
        if wave + 1 < min_seeds {
            continue;
        }
        let values = |c: usize| -> Vec<Option<f64>> {
            configs[c].1.iter().take(wave + 1).map(|t| t.value.filter(|v| v.is_finite())).collect()
        };
        let mean_of = |c: usize| {
            let v: Vec<f64> = values(c).into_iter().flatten().collect();
            (v.iter().sum::<f64>() / v.len().max(1) as f64, v.len())
        };
        let alive: Vec<usize> = (0..configs.len()).filter(|&c| racing[c]).collect();
        let Some(&best) = alive.iter().filter(|&&c| mean_of(c).1 > 0).reduce(|b, c| {
            if mode.better(mean_of(*c).0, mean_of(*b).0) {
                c
            } else {
                b
            }
        }) else {
            open = (wave + 2).min(waves);
            continue;
        };
        for &c in &alive {
            let (mean, n) = mean_of(c);
            let (eliminated_now, reason) = if c == best {
                (false, format!("the best mean so far, {mean:.6} over {n} seeds"))
            } else {
                let (mine, theirs): (Vec<f64>, Vec<f64>) =
                    values(c).into_iter().zip(values(best)).filter_map(|(a, b)| Some((a?, b?))).unzip();
                one_sided(&mine, &theirs, mode, alpha, &configs[best].0)
            };
            if eliminated_now {
                racing[c] = false;
                eliminated.push((configs[c].0.clone(), wave));
            }
            tests.push(WaveTest { config: configs[c].0.clone(), wave, mean, n, eliminated: eliminated_now, reason });
        }
        open = (wave + 2).min(waves);
    }
    Race { open, tests, eliminated }
}

/// Whether `mine` is worse than `best`'s values, pair by pair, at level `alpha` (one-sided
/// paired t-test), and why.
fn one_sided(mine: &[f64], best: &[f64], mode: Mode, alpha: f64, best_name: &str) -> (bool, String) {
    let Some(paired) = stats::paired_t(mine, best) else {
        return (false, format!("no seed shared with the best ({best_name})"));
    };
    let Some(p) = paired.p else {
        return (false, format!("{} shared seeds with the best: too few to test", paired.n));
    };
    let worse = match mode {
        Mode::Max => paired.mean_difference < 0.0,
        Mode::Min => paired.mean_difference > 0.0,
    };
    let p_worse = if worse { p / 2.0 } else { 1.0 - p / 2.0 };
    let text = format!(
        "vs the best over {} seeds: difference {:+.6}, one-sided p = {p_worse:.4}",
        paired.n, paired.mean_difference
    );
    if p_worse < alpha {
        (true, format!("{text} < {alpha}: worse than the best"))
    } else {
        (false, text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `configs` configs x `seeds` seeds, ordinals config-major; config c's seed s scores
    /// `quality[c] + noise`, known for the seeds listed done.
    fn trials(quality: &[f64], seeds: usize, done: impl Fn(usize, usize) -> bool) -> Vec<RaceTrial> {
        let mut out = Vec::new();
        for (c, q) in quality.iter().enumerate() {
            for s in 0..seeds {
                let noise = (((c * 7 + s * 13) % 5) as f64 - 2.0) * 0.002;
                let finished = done(c, s);
                out.push(RaceTrial {
                    ordinal: (c * seeds + s) as u32,
                    config: format!("c{c}"),
                    value: finished.then_some(q + noise),
                    done: finished,
                });
            }
        }
        out
    }

    #[test]
    fn only_the_first_waves_are_open_until_they_are_done() {
        let r = race(&trials(&[0.5, 0.6], 6, |_, _| false), Mode::Max, 0.05, 3);
        assert_eq!((r.open, r.tests.len()), (3, 0));
        let r = race(&trials(&[0.5, 0.6], 6, |c, s| s < 3 && !(c == 1 && s == 2)), Mode::Max, 0.05, 3);
        assert_eq!(r.open, 3, "wave 2 is not done: no test, no new wave");
    }

    #[test]
    fn a_clearly_worse_config_stops_after_min_seeds_and_the_best_gets_every_seed() {
        let quality = [0.50, 0.80, 0.79, 0.30];
        let all = trials(&quality, 8, |_, _| true);
        let r = race(&all, Mode::Max, 0.05, 3);
        assert_eq!(r.eliminated_after("c0"), Some(2), "{:#?}", r.tests);
        assert_eq!(r.eliminated_after("c3"), Some(2));
        assert_eq!(r.eliminated_after("c1"), None, "the best is never eliminated");
        assert_eq!(r.open, 8);
        let test = r.tests.iter().find(|t| t.config == "c0" && t.eliminated).unwrap();
        assert!(test.reason.contains("worse than the best"), "{}", test.reason);
    }

    #[test]
    fn eliminated_configs_do_not_hold_back_the_next_wave() {
        let quality = [0.2, 0.8];
        // Wave 3 of config 0 never runs: it was eliminated after wave 2.
        let r = race(&trials(&quality, 5, |c, s| s < 3 || c == 1), Mode::Max, 0.05, 3);
        assert_eq!(r.eliminated_after("c0"), Some(2));
        assert_eq!(r.open, 5);
    }

    #[test]
    fn minimising_eliminates_the_higher_losses_and_decisions_ignore_finishing_order() {
        let quality = [0.9, 0.2, 0.25];
        let all = trials(&quality, 4, |_, _| true);
        let r = race(&all, Mode::Min, 0.05, 3);
        assert_eq!(r.eliminated_after("c0"), Some(2));
        let mut shuffled = all.clone();
        shuffled.reverse();
        assert_eq!(race(&shuffled, Mode::Min, 0.05, 3), r, "the input's order changes nothing");
    }

    #[test]
    fn failed_seeds_are_left_out_of_the_pairs() {
        let mut all = trials(&[0.3, 0.8], 4, |_, _| true);
        all[1].value = None; // config 0, seed 1 failed
        let r = race(&all, Mode::Max, 0.05, 3);
        let test = r.tests.iter().find(|t| t.config == "c0").unwrap();
        assert_eq!(test.n, 2);
        assert!(test.reason.contains("over 2 seeds"), "{}", test.reason);
    }
}
