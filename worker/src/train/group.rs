//! Fused training: a group of compatible trials (same network, width, data, input shape,
//! batch size and epochs; each its own seed, loss, learning rate and schedule) trained as
//! one fused network ([`Segmenter::fused`]), so a comparison fills a GPU that one small trial
//! leaves idle. Each step runs one forward and one backward pass for the whole group: every
//! trial's batch comes from its own sample order, its dropout masks from its own (seed,
//! epoch, step), its loss is its own, and the summed loss keeps their gradients apart (no
//! weight is shared). Adam is elementwise, with each trial's learning rate on its own rows.
//!
//! What stays per trial is everything a trial trained alone has: its events, its epoch
//! records, its checkpoint (the same format: its share of the weights and moments, its own
//! position), its best-epoch weights and its outcome. A member that leaves (diverged, or
//! stopped on request) ends with its own result while the rest train on; on the CPU its pass
//! is no longer computed, with a GPU's grouped kernels its rows still are (outside the loss)
//! until the group ends. A stopped member's checkpoint resumes alone, or in another group at
//! the same position.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Instant;

use allsweep_config::{Selection, TrialConfig};
use tch::{nn, Device, Tensor};

use super::adam::Adam;
use super::checkpoint::{self, CheckpointError, Loaded, Position, Weights};
use super::{
    batch_indices, epoch_order, fingerprint, in_kind, protocol, step_seed, steps_per_epoch, EventSink, RunOptions,
    TrainError, TrainEvent, TrialOutcome, UnreadLosses, ROC_POINTS,
};
use crate::data::{Batches, LoadedData};
use crate::losses::{Loss, LossError};
use crate::metrics::MetricsAccumulator;
use crate::models::{self, Segmenter};

/// One trial of a group: its config, where its checkpoint goes and comes from, its stop
/// flag, and where its events go. `options.device` and `options.loss_read_every` of the
/// first member hold for the group.
pub struct GroupMember<'a> {
    pub config: &'a TrialConfig,
    pub options: RunOptions<'a>,
    pub events: &'a dyn EventSink,
}

/// Why two trials cannot train in one group, or `None` when they can: the fused network,
/// its inputs and its steps must be the same for both.
pub fn group_mismatch(a: &TrialConfig, b: &TrialConfig) -> Option<String> {
    let differs = |what: &str, x: String, y: String| (x != y).then(|| format!("{what} differs ({x} vs {y})"));
    differs("the data set", json(&a.dataset), json(&b.dataset))
        .or_else(|| differs("the network", json(&a.model), json(&b.model)))
        .or_else(|| differs("the batch size", a.train.batch_size.to_string(), b.train.batch_size.to_string()))
        .or_else(|| differs("the epochs", a.train.epochs.to_string(), b.train.epochs.to_string()))
        .or_else(|| differs("the precision", json(&a.train.precision), json(&b.train.precision)))
        .or_else(|| differs("the L2 scale", a.train.l2_scale.to_string(), b.train.l2_scale.to_string()))
}

/// A config part written as JSON, to compare and to name it.
fn json<T: serde::Serialize>(part: &T) -> String {
    serde_json::to_string(part).unwrap_or_default()
}

/// A member's state while the group trains.
struct MemberState {
    position: Position,
    loss: Loss,
    best: Option<Weights>,
    keeps_best: bool,
    unread: UnreadLosses,
    resumed_from: Option<(usize, usize)>,
    /// Its result once it has left the group (or finished).
    ended: Option<Result<TrialOutcome, TrainError>>,
}

impl MemberState {
    fn active(&self) -> bool {
        self.ended.is_none()
    }
}

/// Trains `members` as one fused group on `data` to the end, each trial's result in member
/// order. `Err` when the group cannot start at all (members that do not match, checkpoints
/// at different positions): train them alone instead.
pub fn train_group(
    members: &[GroupMember],
    data: &LoadedData,
) -> Result<Vec<Result<TrialOutcome, TrainError>>, TrainError> {
    let first = members.first().ok_or_else(|| TrainError::NotGroupable("a group needs at least one trial".into()))?;
    for (i, member) in members.iter().enumerate().skip(1) {
        if let Some(why) = group_mismatch(first.config, member.config) {
            return Err(TrainError::NotGroupable(format!("member {i} ({}): {why}", member.config.name)));
        }
    }
    if data.train.len() < 2 {
        return Err(TrainError::TooFewSamples(data.train.len()));
    }
    let device = first.options.device;
    let groups = members.len() as i64;
    let seeds: Vec<u64> = members.iter().map(|m| m.config.seed).collect();
    let (mut vs, mut model) = models::build_fused(device, first.config.model, data.train.channels() as i64, &seeds)?;
    if first.options.float64 {
        vs.double();
    }
    model.set_precision(first.config.train.precision);
    if device.is_cuda() {
        tch::Cuda::cudnn_set_benchmark(true);
    }
    let mut adam = Adam::new(&vs, first.config.train.lr);
    let mut states: Vec<MemberState> = members
        .iter()
        .map(|m| MemberState {
            position: Position::start(fingerprint(m.config)),
            loss: Loss::new(m.config.loss.clone()),
            best: None,
            keeps_best: m.config.train.select == Selection::BestValidation,
            unread: UnreadLosses::default(),
            resumed_from: None,
            ended: None,
        })
        .collect();
    resume(members, &mut states, &mut vs, &mut adam, device)?;

    let mut group = Group { members, states, vs, model, adam, data, groups };
    if let Err(failure) = group.run() {
        // A failure of the group's own (libtorch, the device) ends every member still in it.
        let message = failure.to_string();
        for state in group.states.iter_mut().filter(|s| s.active()) {
            state.ended = Some(Err(TrainError::Group(message.clone())));
        }
    }
    Ok(group
        .states
        .into_iter()
        .map(|s| s.ended.unwrap_or_else(|| Err(TrainError::Group("no result".into()))))
        .collect())
}

/// Restores a group from its members' checkpoints: all or none must have one, at the same
/// epoch, step and Adam step, each of its own config.
fn resume(
    members: &[GroupMember],
    states: &mut [MemberState],
    vs: &mut nn::VarStore,
    adam: &mut Adam,
    device: Device,
) -> Result<(), TrainError> {
    let paths: Vec<&Path> = members.iter().filter_map(|m| m.options.resume.as_deref()).collect();
    if paths.is_empty() {
        return Ok(());
    }
    if paths.len() != members.len() {
        return Err(TrainError::NotGroupable(format!(
            "{} of {} members resume from a checkpoint; a group starts all fresh or all resumed",
            paths.len(),
            members.len()
        )));
    }
    let loaded: Vec<Loaded> = paths.iter().map(|p| checkpoint::load(p)).collect::<Result<_, _>>()?;
    for ((member, path), (state, l)) in members.iter().zip(&paths).zip(states.iter().zip(&loaded)) {
        if l.position.fingerprint != state.position.fingerprint {
            return Err(CheckpointError::OtherConfig {
                path: path.to_path_buf(),
                expected: state.position.fingerprint.clone(),
                found: l.position.fingerprint.clone(),
            }
            .into());
        }
        let at = |p: &Position| (p.epoch, p.step, p.adam_steps);
        if at(&l.position) != at(&loaded[0].position) {
            return Err(TrainError::NotGroupable(format!(
                "{} stands at epoch {}, step {} and {} at epoch {}, step {}",
                member.config.name,
                l.position.epoch,
                l.position.step,
                members[0].config.name,
                loaded[0].position.epoch,
                loaded[0].position.step
            )));
        }
    }
    let pairs: Vec<(&Path, &Loaded)> = paths.iter().copied().zip(&loaded).collect();
    Loaded::restore_fused(&pairs, vs, adam)?;
    for ((state, l), path) in states.iter_mut().zip(loaded).zip(&paths) {
        if state.keeps_best {
            state.best = l.best_weights(device);
        }
        state.position = l.position;
        state.resumed_from = Some((state.position.epoch, state.position.step));
        tracing::info!(epoch = state.position.epoch, step = state.position.step, checkpoint = %path.display(), "resuming in a group");
    }
    Ok(())
}

/// A group in training.
struct Group<'a, 'm> {
    members: &'a [GroupMember<'m>],
    states: Vec<MemberState>,
    vs: nn::VarStore,
    model: Segmenter,
    adam: Adam,
    data: &'a LoadedData,
    groups: i64,
}

impl Group<'_, '_> {
    fn first(&self) -> &TrialConfig {
        self.members[0].config
    }

    fn any_active(&self) -> bool {
        self.states.iter().any(MemberState::active)
    }

    /// Ends member `g` with `result`.
    fn end(&mut self, g: usize, result: Result<TrialOutcome, TrainError>) {
        if let Err(e) = &result {
            tracing::info!(trial = %self.members[g].config.name, error = %e, "left the group");
        }
        self.states[g].ended = Some(result);
        // Its passes stop (on the CPU; a GPU's grouped kernels compute every member).
        let active: Vec<bool> = self.states.iter().map(MemberState::active).collect();
        if let Err(e) = self.model.set_active_members(&active) {
            tracing::warn!(error = %e, "the group keeps computing a member that left");
        }
    }

    fn run(&mut self) -> Result<(), TrainError> {
        let config = self.first().clone();
        let (batch, epochs) = (config.train.batch_size, config.train.epochs);
        let device = self.members[0].options.device;
        let read_every = self.members[0].options.loss_read_every.max(1);
        let float64 = self.members[0].options.float64;
        let samples = self.data.train.len();
        let steps = steps_per_epoch(samples, batch);
        let train_batches = Batches::new(&self.data.train, device);
        let validation_batches = Batches::new(&self.data.validation, device);
        let parameters = models::parameter_count(&self.vs) / self.groups;
        for (member, state) in self.members.iter().zip(&self.states) {
            member.events.send(TrainEvent::Started {
                epoch: state.position.epoch,
                step: state.position.step,
                epochs,
                steps_per_epoch: steps,
                parameters,
                split: self.data.split_description.clone(),
            });
        }
        let (mut epoch, mut step) = (self.states[0].position.epoch, self.states[0].position.step);
        while epoch < epochs && self.any_active() {
            let started = Instant::now();
            let lrs: Vec<f64> = self
                .members
                .iter()
                .zip(&self.states)
                .map(|(m, s)| protocol::lr_for_next_epoch(&m.config.train, &s.position.history))
                .collect();
            self.adam.set_group_lrs(&lrs);
            let orders: Vec<Vec<usize>> =
                self.members.iter().map(|m| epoch_order(samples, m.config.seed, epoch)).collect();
            let train_started = Instant::now();
            let mut group_samples = 0usize;
            while step < steps && self.any_active() {
                self.stop_requested(epoch, step, train_started);
                if !self.any_active() {
                    break;
                }
                let seeds: Vec<u64> = self.members.iter().map(|m| step_seed(m.config.seed, epoch, step)).collect();
                self.model.set_step_seeds(&seeds)?;
                let batches: Vec<(Tensor, Tensor)> = orders
                    .iter()
                    .map(|order| in_kind(train_batches.batch(batch_indices(order, step, batch, steps)), float64))
                    .collect();
                let input = Tensor::f_cat(&batches.iter().map(|(i, _)| i).collect::<Vec<_>>(), 1)?;
                let pred = self.model.forward_t(&input, true)?;
                let mut total: Option<Tensor> = None;
                let taken = batch_indices(&orders[0], step, batch, steps).len();
                for (g, state) in self.states.iter_mut().enumerate().filter(|(_, s)| s.active()) {
                    // Contiguous, as a trial's output is alone: a reduction over a strided
                    // view may sum in another order.
                    let own = pred.narrow(1, g as i64, 1).contiguous();
                    let value = state.loss.compute_checked_shapes(&own, &batches[g].1)?;
                    state.unread.push(step, value.detach(), taken);
                    total = Some(match total {
                        None => value,
                        Some(sum) => sum + value,
                    });
                }
                let Some(total) = total else { break };
                self.adam.zero_grad();
                match self.model.l2_penalty(config.train.l2_scale) {
                    Some(penalty) => (total + penalty).backward(),
                    None => total.backward(),
                }
                self.adam.step();
                step += 1;
                group_samples += taken * self.states.iter().filter(|s| s.active()).count();
                for state in self.states.iter_mut().filter(|s| s.active()) {
                    state.position.step = step;
                }
                if self.states.iter().any(|s| s.active() && s.unread.len() >= read_every) {
                    self.read_losses(epoch);
                }
            }
            self.read_losses(epoch);
            let train_seconds = train_started.elapsed().as_secs_f64();
            for state in self.states.iter_mut().filter(|s| s.active()) {
                state.position.train_seconds += train_seconds;
            }
            tracing::info!(
                trials = self.states.iter().filter(|s| s.active()).count(),
                epoch = epoch + 1,
                images_per_second = format!("{:.1}", group_samples as f64 / train_seconds.max(1e-9)),
                "fused group trained an epoch"
            );
            if !self.any_active() {
                break;
            }
            let evaluated = self.evaluate(&validation_batches, batch)?;
            for (g, (validation_loss, validation)) in evaluated.into_iter().enumerate() {
                if !self.states[g].active() {
                    continue;
                }
                if !validation_loss.is_finite() {
                    let diverged = TrainError::Diverged { epoch: epoch + 1, step, value: validation_loss };
                    self.end(g, Err(diverged));
                    continue;
                }
                self.finish_epoch(g, lrs[g], started, validation_loss, &validation);
            }
            epoch += 1;
            step = 0;
        }
        drop((train_batches, validation_batches));
        self.test(batch)
    }

    /// Ends every member whose stop flag is set: its losses so far read, its checkpoint
    /// written, its result [`TrainError::Stopped`].
    fn stop_requested(&mut self, epoch: usize, step: usize, train_started: Instant) {
        let members = self.members;
        for (g, member) in members.iter().enumerate() {
            let asked = member.options.stop.is_some_and(|s| s.load(Ordering::Relaxed));
            if !asked || !self.states[g].active() {
                continue;
            }
            let events = member.events;
            let state = &mut self.states[g];
            if let Err(e) = state.unread.read(epoch, &mut state.position, events) {
                self.end(g, Err(e));
                continue;
            }
            self.states[g].position.train_seconds += train_started.elapsed().as_secs_f64();
            self.states[g].position.adam_steps = self.adam.steps();
            let saved = self.save_checkpoint(g);
            self.end(g, saved.and(Err(TrainError::Stopped { epoch, step })));
        }
    }

    /// Reads every active member's unread losses; a member whose loss is not finite leaves
    /// the group as diverged.
    fn read_losses(&mut self, epoch: usize) {
        let members = self.members;
        for (g, member) in members.iter().enumerate() {
            if !self.states[g].active() {
                continue;
            }
            let events = member.events;
            let state = &mut self.states[g];
            if let Err(e) = state.unread.read(epoch, &mut state.position, events) {
                self.end(g, Err(e));
            }
        }
    }

    /// Member `g`'s epoch record sent and kept, its best weights taken when this epoch is
    /// the one it tests, its position moved to the next epoch and its checkpoint written.
    fn finish_epoch(
        &mut self,
        g: usize,
        lr: f64,
        started: Instant,
        validation_loss: f64,
        validation: &MetricsAccumulator,
    ) {
        let members = self.members;
        let member = &members[g];
        let state = &mut self.states[g];
        let record = state.position.close_epoch(lr, started, validation_loss, validation);
        member.events.send(TrainEvent::Epoch(record.clone()));
        let selected = protocol::selected_epoch(&member.config.train, &state.position.history);
        if state.keeps_best && selected == Some(record.epoch) {
            let best = self.member_snapshot(g);
            self.states[g].best = Some(best);
        }
        let adam_steps = self.adam.steps();
        self.states[g].position.start_next_epoch(adam_steps);
        if let Err(e) = self.save_checkpoint(g) {
            self.end(g, Err(e));
            return;
        }
        let epoch = self.states[g].position.epoch;
        if super::pauses_here(&member.options, epoch, member.config.train.epochs) {
            self.end(g, Err(TrainError::Paused { epoch }));
        }
    }

    /// A copy of member `g`'s weights and batch-norm statistics as they are now.
    fn member_snapshot(&self, g: usize) -> Weights {
        let _guard = tch::no_grad_guard();
        models::member_weights(&self.vs, self.groups, g as i64).into_iter().map(|(n, t)| (n, t.copy())).collect()
    }

    /// Writes member `g`'s checkpoint, its share of the group only: the same file a trial
    /// trained alone writes.
    fn save_checkpoint(&self, g: usize) -> Result<(), TrainError> {
        let (member, state) = (&self.members[g], &self.states[g]);
        let Some(path) = &member.options.checkpoint else { return Ok(()) };
        let model: Vec<(String, Tensor)> =
            models::member_weights(&self.vs, self.groups, g as i64).into_iter().collect();
        let adam = self.adam.member_state(self.groups, g as i64);
        checkpoint::save_parts(path, model, adam, state.best.as_ref(), &state.position)?;
        member.events.send(TrainEvent::Checkpoint {
            epoch: state.position.epoch,
            step: state.position.step,
            path: path.clone(),
        });
        Ok(())
    }

    /// Each member's mean loss and metrics on `split` (the same samples for all), the
    /// network in eval mode: one fused pass per batch, the input repeated for every member.
    fn evaluate(&self, split: &Batches, batch: usize) -> Result<Vec<(f64, MetricsAccumulator)>, TrainError> {
        let _guard = tch::no_grad_guard();
        let n = self.members.len();
        let mut metrics: Vec<MetricsAccumulator> = (0..n).map(|_| MetricsAccumulator::new()).collect();
        let mut sums: Vec<Option<Tensor>> = (0..n).map(|_| None).collect();
        let mut count = 0usize;
        let all: Vec<usize> = (0..split.len()).collect();
        for indices in all.chunks(batch) {
            let (input, target) = in_kind(split.batch(indices), self.members[0].options.float64);
            let pred = self.model.forward_t(&input.f_repeat([1, self.groups, 1, 1])?, false)?;
            for g in (0..n).filter(|&g| self.states[g].active()) {
                let own = pred.narrow(1, g as i64, 1).contiguous();
                let weighted = self.states[g].loss.compute_checked_shapes(&own, &target)?.to_kind(tch::Kind::Double)
                    * indices.len() as f64;
                sums[g] = Some(match sums[g].take() {
                    None => weighted,
                    Some(total) => total + weighted,
                });
                metrics[g].update_unchecked_values(&own, &target).map_err(LossError::from)?;
            }
            count += indices.len();
        }
        Ok(sums
            .into_iter()
            .zip(metrics)
            .map(|(sum, m)| (sum.map_or(f64::NAN, |s| s.double_value(&[])) / count.max(1) as f64, m))
            .collect())
    }

    /// Every member still in the group tested on its selected epoch's weights (the best
    /// validation epoch's, or the last), and its outcome built.
    fn test(&mut self, batch: usize) -> Result<(), TrainError> {
        if !self.any_active() {
            return Ok(());
        }
        let mut selected = Vec::new();
        for g in 0..self.members.len() {
            let state = &self.states[g];
            let chosen = match (&state.best, state.active()) {
                (Some(best), true) => {
                    let shares = models::member_weights(&self.vs, self.groups, g as i64);
                    tch::no_grad(|| {
                        for (name, mut share) in shares {
                            if let Some(saved) = best.get(&name) {
                                share.copy_(saved);
                            }
                        }
                    });
                    protocol::selected_epoch(&self.members[g].config.train, &state.position.history)
                }
                _ => state.position.history.last().map(|r| r.epoch),
            };
            selected.push(chosen);
        }
        let device = self.members[0].options.device;
        let tested = self.evaluate(&Batches::new(&self.data.test, device), batch)?;
        let parameters = models::parameter_count(&self.vs) / self.groups;
        for (g, ((_, test), chosen)) in tested.into_iter().zip(selected).enumerate() {
            if !self.states[g].active() {
                continue;
            }
            let state = &mut self.states[g];
            let outcome = TrialOutcome {
                selected_epoch: chosen.unwrap_or(state.position.epoch),
                test_keras: test.keras_metrics(),
                epochs: std::mem::take(&mut state.position.history),
                test: test.metrics(),
                roc: test.roc_curve(ROC_POINTS),
                split: self.data.split_description.clone(),
                parameters,
                resumed_from: state.resumed_from,
            };
            state.ended = Some(Ok(outcome));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
