//! The client commands: submit, status, watch, cancel, workers, results.

use std::path::PathBuf;

use allsweep_proto::v1 as pb;
use anyhow::Context;
use clap::Args;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::{summary, Connection};
use allsweep_coordinator::client::{self, explain, UserClient};
use allsweep_coordinator::wire;

#[derive(Args)]
pub struct SubmitArgs {
    pub spec: PathBuf,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Args)]
pub struct StatusArgs {
    /// A sweep id; without it, every sweep.
    pub sweep: Option<String>,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Args)]
pub struct SweepArg {
    pub sweep: String,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Args)]
pub struct WorkersArgs {
    /// Without one: list the workers.
    #[command(subcommand)]
    pub action: Option<WorkersAction>,
    #[command(flatten)]
    pub connection: Connection,
}

async fn connect(c: &Connection) -> anyhow::Result<UserClient> {
    let token = allsweep_proto::auth::resolve_token(c.token.clone(), c.token_file.as_deref())?;
    client::user_with_tls(&c.coordinator, token.as_deref(), &c.tls()).await
}

pub async fn submit(args: SubmitArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.spec).with_context(|| format!("cannot read {}", args.spec.display()))?;
    let mut c = connect(&args.connection).await?;
    let r = submit_text(&mut c, &text).await.with_context(|| format!("{} was refused", args.spec.display()))?;
    if r.created {
        eprintln!("submitted {} trials", r.trials);
    } else {
        eprintln!("this spec was already submitted ({} trials); nothing added", r.trials);
    }
    println!("{}", r.sweep_id);
    Ok(())
}

pub async fn submit_text(c: &mut UserClient, text: &str) -> anyhow::Result<pb::SubmitResponse> {
    Ok(c.submit(pb::SubmitRequest { spec_toml: text.to_string() }).await.map_err(explain)?.into_inner())
}

pub async fn status(args: StatusArgs) -> anyhow::Result<()> {
    let mut c = connect(&args.connection).await?;
    match args.sweep {
        None => {
            let mut sweeps = Vec::new();
            let mut page_token = String::new();
            loop {
                let request = pb::ListSweepsRequest { page_size: 0, page_token };
                let reply = c.list_sweeps(request).await.map_err(explain)?.into_inner();
                sweeps.extend(reply.sweeps);
                if reply.next_page_token.is_empty() {
                    break;
                }
                page_token = reply.next_page_token;
            }
            let mut table = Table::new();
            table.load_preset(UTF8_FULL_CONDENSED);
            table.set_header([
                "sweep",
                "name",
                "state",
                "queued",
                "running",
                "completed",
                "failed",
                "stopped",
                "cancelled",
            ]);
            for s in sweeps {
                table.add_row(vec![
                    s.sweep_id,
                    s.name,
                    wire::sweep_state_word(s.state).to_string(),
                    s.queued.to_string(),
                    s.running.to_string(),
                    s.completed.to_string(),
                    s.failed.to_string(),
                    s.stopped.to_string(),
                    s.cancelled.to_string(),
                ]);
            }
            println!("{table}");
        }
        Some(id) => {
            let s = get_sweep(&mut c, &id).await?;
            print_sweep(&s);
        }
    }
    Ok(())
}

/// A sweep's status with every trial, read page by page.
pub async fn get_sweep(c: &mut UserClient, id: &str) -> anyhow::Result<pb::SweepStatus> {
    let mut request = pb::SweepRequest { sweep_id: id.to_string(), page_size: STATUS_PAGE, page_token: String::new() };
    let mut status = c.get_sweep(request.clone()).await.map_err(explain)?.into_inner();
    while !status.next_page_token.is_empty() {
        request.page_token = std::mem::take(&mut status.next_page_token);
        let page = c.get_sweep(request.clone()).await.map_err(explain)?.into_inner();
        status.trials.extend(page.trials);
        status.next_page_token = page.next_page_token;
    }
    Ok(status)
}

/// Trials per status page.
const STATUS_PAGE: u32 = 2_000;

pub fn print_sweep(s: &pb::SweepStatus) {
    println!("{} ({}): {}", s.name, s.sweep_id, wire::sweep_state_word(s.state));
    println!(
        "queued {}, running {}, completed {}, failed {}, stopped early {}, cancelled {}",
        s.queued, s.running, s.completed, s.failed, s.stopped, s.cancelled
    );
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(["trial", "state", "attempt", "epoch", "worker", "memory", "fused group", "error or note"]);
    for t in &s.trials {
        let memory = match t.memory_bytes {
            0 => String::new(),
            bytes => allsweep_config::memory::human_bytes(bytes),
        };
        table.add_row(vec![
            t.label.clone(),
            wire::trial_state_word(t.state).to_string(),
            t.attempt.to_string(),
            format!("{}/{}", t.epoch, t.epochs),
            t.worker_id.clone(),
            memory,
            t.group_id.clone(),
            if t.error.is_empty() { t.note.clone() } else { t.error.clone() },
        ]);
    }
    println!("{table}");
}

pub async fn watch(args: SweepArg) -> anyhow::Result<()> {
    let mut c = connect(&args.connection).await?;
    let last = watch_sweep(&mut c, &args.sweep, true).await?;
    print_sweep(&last);
    Ok(())
}

/// Follows a sweep with progress bars until it ends; returns its last status.
pub async fn watch_sweep(c: &mut UserClient, sweep: &str, bars: bool) -> anyhow::Result<pb::SweepStatus> {
    let mut stream = c
        .watch(pb::SweepRequest { sweep_id: sweep.to_string(), ..Default::default() })
        .await
        .map_err(explain)?
        .into_inner();
    let multi = MultiProgress::new();
    if !bars {
        multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let overall = multi.add(ProgressBar::new(0));
    overall.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} done {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut trial_bars: std::collections::HashMap<String, ProgressBar> = Default::default();
    let mut last = None;
    while let Some(s) = stream.message().await.map_err(explain)? {
        overall.set_prefix(s.name.clone());
        overall.set_length(s.trials.len() as u64);
        overall.set_position((s.completed + s.failed + s.stopped + s.cancelled) as u64);
        overall.set_message(format!(
            "(queued {}, running {}, completed {}, failed {}, stopped early {})",
            s.queued, s.running, s.completed, s.failed, s.stopped
        ));
        for t in &s.trials {
            if t.state() == pb::TrialState::Running {
                let bar = trial_bars.entry(t.trial_id.clone()).or_insert_with(|| {
                    let b = multi.add(ProgressBar::new(t.epochs as u64));
                    b.set_style(
                        ProgressStyle::with_template("  {msg:50} epoch {pos}/{len}")
                            .unwrap_or_else(|_| ProgressStyle::default_bar()),
                    );
                    b
                });
                let group = if t.group_id.is_empty() { String::new() } else { format!(", fused group {}", t.group_id) };
                bar.set_message(format!("{} (attempt {}{group})", t.label, t.attempt));
                bar.set_position(t.epoch as u64);
            } else if let Some(bar) = trial_bars.remove(&t.trial_id) {
                bar.finish_and_clear();
            }
        }
        last = Some(s);
    }
    overall.finish_and_clear();
    last.ok_or_else(|| anyhow::anyhow!("the coordinator ended the watch without a status"))
}

pub async fn cancel(args: SweepArg) -> anyhow::Result<()> {
    let mut c = connect(&args.connection).await?;
    let s =
        c.cancel(pb::SweepRequest { sweep_id: args.sweep, ..Default::default() }).await.map_err(explain)?.into_inner();
    println!(
        "cancelled {}: {} trials cancelled, {} completed, {} failed",
        s.sweep_id, s.cancelled, s.completed, s.failed
    );
    Ok(())
}

#[derive(clap::Subcommand)]
pub enum WorkersAction {
    /// Asks a worker to leave without losing work (an admin token): it leases nothing more,
    /// finishes its running trials, then exits 0. The worker hears it at its next heartbeat.
    Drain {
        /// The worker's id, as `allsweep workers` lists it.
        worker_id: String,
        /// Checkpoint and release its running trials at once (they resume elsewhere), as on
        /// SIGTERM, instead of finishing them.
        #[arg(long)]
        now: bool,
    },
}

pub async fn workers(args: WorkersArgs) -> anyhow::Result<()> {
    if let Some(WorkersAction::Drain { worker_id, now }) = args.action {
        return drain(&args.connection, worker_id, now).await;
    }
    let mut c = connect(&args.connection).await?;
    let mut workers = Vec::new();
    let mut page_token = String::new();
    loop {
        let reply = c.list_workers(pb::ListWorkersRequest { page_size: 0, page_token }).await.map_err(explain)?;
        let reply = reply.into_inner();
        workers.extend(reply.workers);
        if reply.next_page_token.is_empty() {
            break;
        }
        page_token = reply.next_page_token;
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(["worker", "host", "device", "slots", "running", "alive", "draining", "version", "GPUs"]);
    for w in workers {
        let gpus = w.gpus.iter().map(gpu_line).collect::<Vec<_>>().join("\n");
        table.add_row(vec![
            w.worker_id,
            w.host,
            w.device,
            w.slots.to_string(),
            w.running.to_string(),
            if w.alive { "yes".into() } else { "no".into() },
            drain_word(w.drain).into(),
            w.version,
            gpus,
        ]);
    }
    println!("{table}");
    Ok(())
}

async fn drain(c: &Connection, worker_id: String, now: bool) -> anyhow::Result<()> {
    let token = allsweep_proto::auth::resolve_token(c.token.clone(), c.token_file.as_deref())?;
    let mut admin = client::admin_with_tls(&c.coordinator, token.as_deref(), &c.tls()).await?;
    let w = admin.drain_worker(pb::DrainWorkerRequest { worker_id, now }).await.map_err(explain)?.into_inner();
    let how = if w.drain == pb::Drain::Now as i32 {
        "checkpoints and releases its running trials now, then exits"
    } else {
        "leases nothing more, finishes its running trials, then exits"
    };
    eprintln!("worker {} on {} ({} running): {how}", w.worker_id, w.host, w.running);
    Ok(())
}

/// The `draining` column of `allsweep workers`.
fn drain_word(drain: i32) -> &'static str {
    match pb::Drain::try_from(drain) {
        Ok(pb::Drain::Finish) => "finishing",
        Ok(pb::Drain::Now) => "releasing",
        _ => "",
    }
}

/// One GPU of a worker for `allsweep workers`: `cuda:0 NVIDIA H200 21.3/139.8 GiB 87% 3 trials`.
pub fn gpu_line(g: &pb::GpuInfo) -> String {
    const GIB: f64 = (1u64 << 30) as f64;
    format!(
        "cuda:{} {} {:.1}/{:.1} GiB {}% {} trial{}",
        g.index,
        g.name,
        g.memory_used_bytes as f64 / GIB,
        g.memory_total_bytes as f64 / GIB,
        g.utilization_percent,
        g.trials,
        if g.trials == 1 { "" } else { "s" }
    )
}

pub async fn results(args: SweepArg) -> anyhow::Result<()> {
    let mut c = connect(&args.connection).await?;
    let results = c
        .query_results(pb::SweepRequest { sweep_id: args.sweep, ..Default::default() })
        .await
        .map_err(explain)?
        .into_inner()
        .results;
    println!("{}", summary::per_config(&results));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gpu_shows_its_memory_utilisation_and_trials() {
        let gpu = pb::GpuInfo {
            index: 1,
            name: "NVIDIA H200".into(),
            memory_total_bytes: 150 << 30,
            memory_used_bytes: 21 << 30,
            utilization_percent: 87,
            trials: 3,
        };
        assert_eq!(gpu_line(&gpu), "cuda:1 NVIDIA H200 21.0/150.0 GiB 87% 3 trials");
        assert_eq!(gpu_line(&pb::GpuInfo { trials: 1, ..gpu }), "cuda:1 NVIDIA H200 21.0/150.0 GiB 87% 1 trial");
    }
}
