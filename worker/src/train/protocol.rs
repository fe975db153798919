//! The learning rate of each epoch and the epoch whose weights are tested, both decided by
//! the validation losses so far: the authors' `ReduceLROnPlateau` and
//! `ModelCheckpoint(save_best_only)`, or the paper's constant rate and last epoch.
//!
//! Both are functions of the epoch history alone, which a checkpoint already holds, so a
//! resumed run replays them and needs no state of its own (the best epoch's weights aside).

use allsweep_config::{LrSchedule, Selection, TrainConfig};

use super::events::EpochRecord;

/// The learning rate for the epoch after `history` (the first one when it is empty).
pub fn lr_for_next_epoch(train: &TrainConfig, history: &[EpochRecord]) -> f64 {
    match &train.lr_schedule {
        LrSchedule::Constant => train.lr,
        LrSchedule::Step { milestones, factor } => {
            let done = history.len();
            let cuts = milestones.iter().filter(|m| **m <= done).count();
            train.lr * factor.powi(cuts as i32)
        }
        LrSchedule::Plateau(p) => {
            // Keras: an epoch improves when its loss is below the best by more than the
            // threshold; after `patience` epochs without one the rate is cut (never below the
            // floor) and the count starts again. At the floor, nothing changes.
            let (mut lr, mut best, mut wait) = (train.lr, f64::INFINITY, 0);
            for record in history {
                if record.validation_loss < best - p.threshold {
                    best = record.validation_loss;
                    wait = 0;
                } else {
                    wait += 1;
                    if wait >= p.patience && lr > p.floor {
                        lr = (lr * p.factor).max(p.floor);
                        wait = 0;
                    }
                }
            }
            lr
        }
    }
}

/// The 1-based epoch whose weights are tested: the last, or the first with the lowest
/// validation loss (Keras keeps a checkpoint only when the loss is strictly lower). `None`
/// before any epoch.
pub fn selected_epoch(train: &TrainConfig, history: &[EpochRecord]) -> Option<usize> {
    match train.select {
        Selection::Last => history.last().map(|r| r.epoch),
        Selection::BestValidation => {
            let mut best: Option<&EpochRecord> = None;
            for record in history {
                if best.is_none_or(|b| record.validation_loss < b.validation_loss) {
                    best = Some(record);
                }
            }
            best.map(|r| r.epoch)
        }
    }
}

#[cfg(test)]
mod tests {
    use allsweep_config::Plateau;

    use super::*;
    use crate::metrics::{Confusion, KerasMetrics, Metrics};

    fn history(losses: &[f64]) -> Vec<EpochRecord> {
        losses
            .iter()
            .enumerate()
            .map(|(i, &validation_loss)| EpochRecord {
                epoch: i + 1,
                train_loss: 1.0,
                validation_loss,
                validation: Metrics::from_counts(Confusion::default(), None),
                validation_keras: KerasMetrics { jaccard: 1.0, dice: 1.0, recall: 1.0, tnr: 1.0 },
                lr: 1e-4,
                seconds: 1.0,
                train_images_per_second: 1.0,
            })
            .collect()
    }

    fn config(select: Selection, lr_schedule: LrSchedule) -> TrainConfig {
        TrainConfig { select, lr_schedule, ..TrainConfig::default() }
    }

    #[test]
    fn the_plateau_rule_cuts_after_patience_epochs_without_a_large_enough_improvement() {
        let plateau = Plateau { factor: 0.1, patience: 2, threshold: 0.05, floor: 1e-6 };
        let c = config(Selection::Last, LrSchedule::Plateau(plateau));
        let lr = |losses: &[f64]| lr_for_next_epoch(&c, &history(losses));
        assert_eq!(lr(&[]), 1e-4);
        assert_eq!(lr(&[1.0, 0.9]), 1e-4, "0.1 below the best improves");
        assert_eq!(lr(&[1.0, 0.97]), 1e-4, "one epoch without improvement is within patience");
        assert!((lr(&[1.0, 0.97, 0.96]) - 1e-5).abs() < 1e-18, "two epochs improving by less than 0.05");
        assert!((lr(&[1.0, 0.97, 0.96, 0.5]) - 1e-5).abs() < 1e-18, "the count starts again after a cut");
        let cut = lr(&[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
        assert!((cut - 1e-6).abs() < 1e-18, "cut twice in eight flat epochs, then held at the floor: {cut}");
    }

    #[test]
    fn the_step_schedule_cuts_once_each_milestone_is_done() {
        let c = config(Selection::Last, LrSchedule::Step { milestones: vec![16, 26, 41], factor: 0.1 });
        let lr = |epochs: usize| lr_for_next_epoch(&c, &history(&vec![1.0; epochs]));
        // The authors' schedule(epoch) for the 0-based epoch e: 1e-4 while e <= 15, ...
        for (done, want) in [(0, 1e-4), (15, 1e-4), (16, 1e-5), (25, 1e-5), (26, 1e-6), (40, 1e-6), (41, 1e-7)] {
            assert!((lr(done) - want).abs() < want * 1e-9, "after {done} epochs: {} != {want}", lr(done));
        }
        assert_eq!(lr_for_next_epoch(&TrainConfig::default(), &history(&[1.0, 2.0])), 1e-4);
    }

    #[test]
    fn the_tested_epoch_is_the_last_or_the_first_best_on_validation() {
        let losses = [0.9, 0.5, 0.7, 0.5, 0.6];
        assert_eq!(selected_epoch(&config(Selection::Last, LrSchedule::Constant), &history(&losses)), Some(5));
        let best = config(Selection::BestValidation, LrSchedule::Constant);
        assert_eq!(selected_epoch(&best, &history(&losses)), Some(2), "a tie keeps the earlier epoch");
        assert_eq!(selected_epoch(&best, &[]), None);
    }
}
