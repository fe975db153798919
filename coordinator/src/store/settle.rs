//! Early stopping in the store: a trial handed back at a rung is held out of leases in the
//! same transaction, and a sweep's rule is applied to what is stored in a transaction of its
//! own, under the sweep's lock ([`crate::scheduler::early_stopping`] decides; this module
//! reads and writes).

use std::collections::{BTreeMap, HashMap, HashSet};

use sqlx::AnyConnection;

use super::body::SqlStore;
use super::rows::{self, Cols};
use super::statements as sql;
use super::{DecisionRow, Millis, Result, StoreError, TrialState};
use crate::scheduler::early_stopping::{self, Decision, Rule, TrialSeen, Verdict};
use crate::scheduler::race::{self, RaceTrial};

/// A decision to record: on which trial, at which rung (a race: after which wave) and epoch.
struct NewDecision<'a> {
    trial_id: &'a str,
    rung: u32,
    epoch: u32,
    value: f64,
    verdict: Verdict,
    reason: &'a str,
}

/// A sweep's rule as stored; a rule that does not read back is an error that names the sweep.
pub(super) fn parse_rule(sweep_id: &str, json: &str) -> Result<Rule> {
    serde_json::from_str(json)
        .map_err(|e| StoreError::Constraint(format!("sweep {sweep_id}: early_stopping does not read back: {e}")))
}

/// What a race's seed says while its wave is not open.
pub(super) fn race_wait(wave: usize, open: usize) -> String {
    format!("race: seed wave {} opens once wave {} is done and tested", wave + 1, open.max(1))
}

/// What a held trial says while it waits, before its rule has judged it.
fn waiting_for_earlier(rule: &Rule, rung: usize, epoch: u32) -> String {
    format!("{} rung {rung} (epoch {epoch}): waiting for the trials before it to reach the rung", rule.name())
}

impl SqlStore {
    /// Holds queued trial `trial_id` out of leases when its checkpoint sits at a rung of its
    /// sweep's rule: it was handed back there, and only the rule may let it go on. Runs in
    /// the transaction that queued it (a release, a retried failure, an expiry). Returns the
    /// sweep to settle after the commit, when it held the trial.
    pub(super) async fn hold_at_rung(&self, conn: &mut AnyConnection, trial_id: &str) -> Result<Option<String>> {
        let Some(row) = sqlx::query(sql::RUNG_OF_QUEUED).bind(trial_id).fetch_optional(&mut *conn).await? else {
            return Ok(None);
        };
        let (Some(json), Some(epoch)) = (row.text_opt("early_stopping")?, row.int_opt("checkpoint_epoch")?) else {
            return Ok(None);
        };
        let sweep_id = row.text("sweep_id")?;
        let rule = parse_rule(&sweep_id, &json)?;
        let epoch = rows::small(epoch);
        let Some(rung) = rule.rungs().iter().position(|&r| r == epoch) else {
            return Ok(None);
        };
        let why = waiting_for_earlier(&rule, rung, epoch);
        sqlx::query(sql::HOLD_AT_RUNG).bind(trial_id).bind(why).bind(i64::from(epoch)).execute(&mut *conn).await?;
        Ok(Some(sweep_id))
    }

    /// Records the decisions in `made` not recorded yet: one read of the sweep's recorded
    /// keys, then an insert for each new one (a settle re-derives every decision; most are
    /// recorded already).
    async fn record_decisions(
        &self,
        conn: &mut AnyConnection,
        sweep_id: &str,
        rule: &Rule,
        made: Vec<NewDecision<'_>>,
        now: Millis,
    ) -> Result<()> {
        let recorded: HashSet<(String, u32)> = sqlx::query(sql::RECORDED_DECISIONS)
            .bind(sweep_id)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| Ok((r.text("trial_id")?, rows::small(r.int("rung")?))))
            .collect::<Result<_>>()?;
        for d in made.into_iter().filter(|d| !recorded.contains(&(d.trial_id.to_string(), d.rung))) {
            sqlx::query(sql::INSERT_DECISION)
                .bind(d.trial_id)
                .bind(i64::from(d.rung))
                .bind(i64::from(d.epoch))
                .bind(rule.name())
                .bind(rule.metric())
                .bind(d.value.is_finite().then_some(d.value))
                .bind(d.verdict.as_str())
                .bind(d.reason)
                .bind(now)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    pub(super) async fn settle(&self, sweep_id: &str, now: Millis) -> Result<u32> {
        let mut tx = self.write().await?;
        let lock = format!("{}{}", sql::ACTIVE_RULE, self.dialect().lock_rows("sweeps"));
        let Some(row) = sqlx::query(&lock).bind(sweep_id).fetch_optional(&mut *tx).await? else {
            return Ok(0);
        };
        let Some(json) = row.text_opt("early_stopping")? else {
            return Ok(0);
        };
        let rule = parse_rule(sweep_id, &json)?;
        let trials = sqlx::query(sql::RULED_TRIALS).bind(sweep_id).fetch_all(&mut *tx).await?;
        let values = sqlx::query(sql::RULED_VALUES).bind(sweep_id).bind(rule.metric()).fetch_all(&mut *tx).await?;
        if let Rule::Race { mode, alpha, min_seeds, max_epochs, .. } = rule {
            let changed = self
                .settle_race(&mut tx, sweep_id, &rule, &trials, &values, (mode, alpha, min_seeds, max_epochs), now)
                .await?;
            tx.commit().await?;
            self.finish_sweep_if_done(sweep_id, now).await;
            return Ok(changed);
        }
        let mut curves: HashMap<String, BTreeMap<u32, f64>> = HashMap::new();
        for v in &values {
            curves.entry(v.text("trial_id")?).or_default().insert(rows::small(v.int("epoch")?), v.real("value")?);
        }
        let mut seen = Vec::with_capacity(trials.len());
        let mut by_ordinal = HashMap::with_capacity(trials.len());
        for t in &trials {
            let id = t.text("id")?;
            let state = rows::parse_word(TrialState::parse, "trial state", &t.text("state")?)?;
            let ordinal = rows::small(t.int("ordinal")?);
            seen.push(TrialSeen {
                ordinal,
                values: curves.remove(&id).unwrap_or_default(),
                ended: matches!(state, TrialState::Failed | TrialState::Cancelled),
            });
            let checkpoint = t.int_opt("checkpoint_epoch")?.map(rows::small);
            by_ordinal.insert(ordinal, (id, state, t.text_opt("hold")?, checkpoint));
        }
        let decisions = early_stopping::decide(&rule, &seen);
        let made = decisions
            .iter()
            .filter(|d| d.verdict != Verdict::Waiting)
            .map(|d| NewDecision {
                trial_id: &by_ordinal[&d.ordinal].0,
                rung: d.rung,
                epoch: d.epoch,
                value: d.value,
                verdict: d.verdict,
                reason: &d.reason,
            })
            .collect();
        self.record_decisions(&mut tx, sweep_id, &rule, made, now).await?;
        let at: HashMap<(u32, u32), &Decision> = decisions.iter().map(|d| ((d.ordinal, d.epoch), d)).collect();
        let rungs = rule.rungs();
        let mut changed = 0;
        for (ordinal, (id, state, hold, checkpoint)) in &by_ordinal {
            if *state != TrialState::Queued {
                continue;
            }
            let rung = checkpoint.and_then(|c| rungs.iter().position(|&r| r == c));
            let (Some(rung), Some(epoch)) = (rung, *checkpoint) else {
                if hold.is_some() {
                    sqlx::query(sql::SET_HOLD).bind(id).bind(None::<String>).execute(&mut *tx).await?;
                }
                continue;
            };
            match at.get(&(*ordinal, epoch)).map(|d| (d.verdict, d)) {
                Some((Verdict::Promoted, _)) => {
                    if hold.is_some() {
                        sqlx::query(sql::SET_HOLD).bind(id).bind(None::<String>).execute(&mut *tx).await?;
                        changed += 1;
                    }
                }
                Some((Verdict::Stopped, _)) => {
                    let q = sqlx::query(sql::STOP_TRIAL).bind(id).bind(i64::from(epoch)).bind(rule.name()).bind(now);
                    q.execute(&mut *tx).await?;
                    changed += 1;
                }
                Some((Verdict::Waiting, d)) => {
                    let why = format!("{} rung {rung} (epoch {epoch}): {}", rule.name(), d.reason);
                    if hold.as_deref() != Some(why.as_str()) {
                        sqlx::query(sql::SET_HOLD).bind(id).bind(why).execute(&mut *tx).await?;
                    }
                }
                None => {
                    let why = waiting_for_earlier(&rule, rung, epoch);
                    if hold.as_deref() != Some(why.as_str()) {
                        sqlx::query(sql::SET_HOLD).bind(id).bind(why).execute(&mut *tx).await?;
                    }
                }
            }
        }
        tx.commit().await?;
        self.finish_sweep_if_done(sweep_id, now).await;
        Ok(changed)
    }

    /// [`SqlStore::settle`] for a race: each racing config's seeds of the open waves are let
    /// go, those of an eliminated config that have not run stop, and each test is recorded
    /// on the trial that completed its config's wave.
    #[allow(clippy::too_many_arguments)]
    async fn settle_race(
        &self,
        conn: &mut AnyConnection,
        sweep_id: &str,
        rule: &Rule,
        trials: &[sqlx::any::AnyRow],
        values: &[sqlx::any::AnyRow],
        (mode, alpha, min_seeds, max_epochs): (early_stopping::Mode, f64, u32, u32),
        now: Millis,
    ) -> Result<u32> {
        let mut last: HashMap<String, f64> = HashMap::new();
        for v in values {
            if rows::small(v.int("epoch")?) == max_epochs {
                last.insert(v.text("trial_id")?, v.real("value")?);
            }
        }
        let mut seen = Vec::with_capacity(trials.len());
        let mut rows_of: HashMap<u32, (String, TrialState, Option<String>)> = HashMap::new();
        for t in trials {
            let id = t.text("id")?;
            let state = rows::parse_word(TrialState::parse, "trial state", &t.text("state")?)?;
            let ordinal = rows::small(t.int("ordinal")?);
            let done = matches!(state, TrialState::Completed | TrialState::Failed | TrialState::Cancelled);
            let value = if state == TrialState::Completed { last.get(&id).copied() } else { None };
            seen.push(RaceTrial { ordinal, config: t.text("config_key")?, value, done });
            rows_of.insert(ordinal, (id, state, t.text_opt("hold")?));
        }
        let outcome = race::race(&seen, mode, alpha, min_seeds as usize);
        let configs = race::configs(&seen);
        let mut made = Vec::with_capacity(outcome.tests.len());
        for test in &outcome.tests {
            let Some((_, seeds)) = configs.iter().find(|(c, _)| *c == test.config) else { continue };
            let Some(trial) = seeds.get(test.wave) else { continue };
            made.push(NewDecision {
                trial_id: &rows_of[&trial.ordinal].0,
                rung: test.wave as u32,
                epoch: max_epochs,
                value: test.mean,
                verdict: if test.eliminated { Verdict::Stopped } else { Verdict::Promoted },
                reason: &test.reason,
            });
        }
        self.record_decisions(conn, sweep_id, rule, made, now).await?;
        let mut changed = 0;
        for (config, seeds) in &configs {
            let eliminated = outcome.eliminated_after(config);
            for (wave, trial) in seeds.iter().enumerate() {
                let (id, state, hold) = &rows_of[&trial.ordinal];
                if *state != TrialState::Queued {
                    continue;
                }
                if eliminated.is_some() {
                    let q = sqlx::query(sql::STOP_TRIAL).bind(id).bind(0_i64).bind(rule.name()).bind(now);
                    q.execute(&mut *conn).await?;
                    changed += 1;
                } else if wave < outcome.open {
                    if hold.is_some() {
                        sqlx::query(sql::SET_HOLD).bind(id).bind(None::<String>).execute(&mut *conn).await?;
                        changed += 1;
                    }
                } else {
                    let why = race_wait(wave, outcome.open);
                    if hold.as_deref() != Some(why.as_str()) {
                        sqlx::query(sql::SET_HOLD).bind(id).bind(why).execute(&mut *conn).await?;
                    }
                }
            }
        }
        Ok(changed)
    }

    /// [`SqlStore::settle`] for every active sweep with a rule and a trial held for it: the
    /// expiry tick's sweep-up of a settle lost between a commit and the next (a coordinator
    /// killed there). Sweeps with nothing held cost one indexed probe.
    pub(super) async fn settle_all(&self, now: Millis) -> Result<u32> {
        let sweeps = sqlx::query(sql::RULED_SWEEPS_WITH_HELD_TRIALS).fetch_all(self.pool()).await?;
        let mut changed = 0;
        for s in &sweeps {
            changed += self.settle(&s.text("id")?, now).await?;
        }
        Ok(changed)
    }

    pub(super) async fn select_decisions(&self, sweep_id: &str) -> Result<Vec<DecisionRow>> {
        let found = sqlx::query(sql::SELECT_DECISIONS).bind(sweep_id).fetch_all(self.pool()).await?;
        found
            .iter()
            .map(|r| {
                Ok(DecisionRow {
                    trial_id: r.text("trial_id")?,
                    ordinal: rows::small(r.int("ordinal")?),
                    label: r.text("label")?,
                    rung: rows::small(r.int("rung")?),
                    epoch: rows::small(r.int("epoch")?),
                    rule: r.text("rule")?,
                    metric: r.text("metric")?,
                    value: r.real_opt("value")?,
                    verdict: r.text("verdict")?,
                    reason: r.text("reason")?,
                })
            })
            .collect()
    }
}
