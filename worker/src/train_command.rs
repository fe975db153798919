//! `allsweep-worker train RUN.toml`: one trial, offline, with a progress bar per epoch,
//! metrics as JSON lines, a summary table at the end, and `--resume CHECKPOINT`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::Context;
use clap::Args;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use allsweep_worker::config::TrialConfig;
use allsweep_worker::metrics::Metrics;
use allsweep_worker::train::{self, EpochRecord, EventSink, RunOptions, TrainEvent, TrialOutcome};

use crate::inspect::parse_device;

#[derive(Args)]
pub struct TrainArgs {
    /// The trial: a spec without [grid] and with one seed.
    pub config: PathBuf,
    /// Resume from this checkpoint (same config; epochs may be raised).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Where to write the checkpoint after every epoch [default: RUN.ckpt beside RUN.toml].
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Metrics as JSON lines [default: RUN.metrics.jsonl beside RUN.toml].
    #[arg(long)]
    pub metrics_out: Option<PathBuf>,
    /// Where relative data-set roots resolve [default: $ALLSWEEP_DATA, else ../shared/data].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// auto (CUDA when present), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto", value_parser = parse_device)]
    pub device: tch::Device,
    /// CPU threads for libtorch [default: all cores].
    #[arg(long)]
    pub threads: Option<i32>,
    /// No progress bars (logs and the summary only).
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(&args.config).with_context(|| format!("cannot read {}", args.config.display()))?;
    let config = TrialConfig::from_toml_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", args.config.display()))?;
    if let Some(threads) = args.threads {
        anyhow::ensure!(threads > 0, "--threads must be at least 1");
        tch::set_num_threads(threads);
    }
    let beside = |extension: &str| args.config.with_extension(extension);
    let checkpoint = args.checkpoint.clone().unwrap_or_else(|| beside("ckpt"));
    let metrics_path = args.metrics_out.clone().unwrap_or_else(|| beside("metrics.jsonl"));
    let metrics_file =
        File::create(&metrics_path).with_context(|| format!("cannot create {}", metrics_path.display()))?;
    let reporter = Reporter { bar: Mutex::new(None), quiet: args.quiet, out: Mutex::new(BufWriter::new(metrics_file)) };
    let options = RunOptions {
        device: args.device,
        data_dir: allsweep_worker::data::data_dir(args.data_dir.clone()),
        checkpoint: Some(checkpoint.clone()),
        resume: args.resume.clone(),
        stop: None,
        pause_after_epoch: None,
        loss_read_every: train::loss_read_every(args.device),
        float64: false,
    };
    println!("{}: {} on {:?}", args.config.display(), config.name, args.device);
    let outcome = train::train(&config, &options, &reporter);
    reporter.finish_bar();
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(error) => {
            reporter.line(json!({ "event": "failed", "error": error.to_string() }));
            return Err(error).with_context(|| format!("trial {:?} failed", config.name));
        }
    };
    reporter.line(json!({
        "event": "test",
        "metrics": outcome.test,
        "keras_metrics": outcome.test_keras,
        "selected_epoch": outcome.selected_epoch,
        "roc": outcome.roc,
        "split": outcome.split
    }));
    reporter.out.lock().map_err(|_| anyhow::anyhow!("metrics writer poisoned"))?.flush()?;
    print_summary(&outcome);
    println!("checkpoint: {}\nmetrics:    {}", checkpoint.display(), metrics_path.display());
    Ok(())
}

/// Draws progress bars and writes metric lines as events arrive.
struct Reporter {
    bar: Mutex<Option<ProgressBar>>,
    quiet: bool,
    out: Mutex<BufWriter<File>>,
}

impl Reporter {
    fn line(&self, value: serde_json::Value) {
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "{value}");
        }
    }

    fn finish_bar(&self) {
        if let Some(bar) = self.bar.lock().ok().and_then(|mut b| b.take()) {
            bar.finish_and_clear();
        }
    }
}

impl EventSink for Reporter {
    fn send(&self, event: TrainEvent) {
        match event {
            TrainEvent::Started { epoch, step, epochs, steps_per_epoch, parameters, split } => {
                println!("{parameters} parameters; {split}");
                if epoch > 0 || step > 0 {
                    println!("resuming at epoch {} step {step}", epoch + 1);
                }
                self.line(json!({ "event": "started", "epoch": epoch, "step": step, "epochs": epochs,
                    "steps_per_epoch": steps_per_epoch, "parameters": parameters, "split": split }));
                if !self.quiet {
                    let bar = ProgressBar::new(steps_per_epoch as u64);
                    bar.set_style(
                        ProgressStyle::with_template("epoch {prefix:>3} [{bar:30}] {pos}/{len} {msg} ({eta})")
                            .unwrap_or_else(|_| ProgressStyle::default_bar())
                            .progress_chars("=> "),
                    );
                    bar.set_prefix(format!("{}/{epochs}", epoch + 1));
                    bar.set_position(step as u64);
                    if let Ok(mut slot) = self.bar.lock() {
                        *slot = Some(bar);
                    }
                }
            }
            TrainEvent::Step { epoch, step, loss } => {
                if let Some(bar) = self.bar.lock().ok().as_ref().and_then(|b| b.as_ref()) {
                    bar.set_prefix(format!("{}", epoch + 1));
                    bar.set_position(step as u64 + 1);
                    bar.set_message(format!("loss {loss:.4}"));
                }
            }
            TrainEvent::Epoch(record) => {
                let text = epoch_line(&record);
                match self.bar.lock().ok().as_ref().and_then(|b| b.as_ref()) {
                    Some(bar) => {
                        bar.println(text);
                        bar.reset();
                    }
                    None => println!("{text}"),
                }
                self.line(json!({ "event": "epoch", "record": record }));
            }
            TrainEvent::Checkpoint { epoch, step, path } => {
                self.line(json!({ "event": "checkpoint", "epoch": epoch, "step": step, "path": path }));
            }
        }
    }
}

fn epoch_line(r: &EpochRecord) -> String {
    format!(
        "epoch {:>3}: train loss {:.4}, val loss {:.4}, val Jaccard {:.2}%, F1 {:.2}%, lr {:.1e}, {:.1} img/s",
        r.epoch,
        r.train_loss,
        r.validation_loss,
        100.0 * r.validation.jaccard,
        100.0 * r.validation.dice,
        r.lr,
        r.train_images_per_second
    )
}

fn print_summary(outcome: &TrialOutcome) {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(["", "loss", "Jaccard %", "F1 %", "precision %", "recall %", "TNR %", "AUC"]);
    let row = |label: String, loss: String, m: &Metrics| {
        let pct = |v: f64| format!("{:.2}", 100.0 * v);
        vec![
            label,
            loss,
            pct(m.jaccard),
            pct(m.dice),
            pct(m.precision),
            pct(m.recall),
            pct(m.tnr),
            m.auc.map_or("-".into(), |a| format!("{a:.4}")),
        ]
    };
    for r in &outcome.epochs {
        table.add_row(row(format!("epoch {}", r.epoch), format!("{:.4}", r.validation_loss), &r.validation));
    }
    table.add_row(row(format!("test (epoch {})", outcome.selected_epoch), String::new(), &outcome.test));
    let k = &outcome.test_keras;
    let pct = |v: f64| format!("{:.2}", 100.0 * v);
    table.add_row(vec![
        "test, Keras-style".into(),
        String::new(),
        pct(k.jaccard),
        pct(k.dice),
        "-".into(),
        pct(k.recall),
        pct(k.tnr),
        "-".into(),
    ]);
    println!("{table}");
    println!("split: {}", outcome.split);
    println!(
        "test: pooled over every pixel at 0.5; Keras-style: the authors' soft, smoothed, per-batch metrics (docs: README)"
    );
}
