//! The HTML the pages are made of, server-rendered with `maud` (every value escaped). The
//! parts that change while trials run are fragments with an id: a page embeds them, and the
//! live stream ([`super::live`]) sends them again, rendered by the same functions, so that
//! the script only swaps them in.

use maud::{html, Markup, DOCTYPE};

use crate::report::render::{mean_sd_text, paired_text};
use crate::report::{Cell, Report};
use crate::store::{Drain, GpuStatus, Millis, SweepRow, TrialRow, TrialState};

/// A page: title, navigation, the vendored charting library and the dashboard's script.
pub fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · allsweep" }
                link rel="stylesheet" href="/assets/uPlot.min.css";
                link rel="stylesheet" href="/assets/style.css";
                script src="/assets/uPlot.iife.min.js" defer {}
                script src="/assets/app.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/" { "allsweep" }
                    nav { a href="/" { "Sweeps and workers" } }
                    form.logout method="post" action="/logout" { button type="submit" { "Log out" } }
                }
                main { (body) }
            }
        }
    }
}

/// Trials of a sweep by state, and epochs done against epochs to train.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub queued: u32,
    pub running: u32,
    pub completed: u32,
    pub failed: u32,
    pub stopped: u32,
    pub cancelled: u32,
    pub epochs_done: u64,
    pub epochs_total: u64,
}

impl Counts {
    pub fn of(trials: &[TrialRow]) -> Self {
        let mut c = Counts::default();
        for t in trials {
            match t.state {
                TrialState::Queued => c.queued += 1,
                TrialState::Running => c.running += 1,
                TrialState::Completed => c.completed += 1,
                TrialState::Failed => c.failed += 1,
                TrialState::Stopped => c.stopped += 1,
                TrialState::Cancelled => c.cancelled += 1,
            }
            // A trial that ended early counts as done: nothing is left to train.
            let done = if matches!(t.state, TrialState::Queued | TrialState::Running) { t.epoch } else { t.epochs };
            c.epochs_done += u64::from(done.min(t.epochs));
            c.epochs_total += u64::from(t.epochs);
        }
        c
    }
}

fn state_badge(state: &str) -> Markup {
    html! { span class={ "state state-" (state) } { (state) } }
}

fn progress(done: u64, total: u64) -> Markup {
    html! {
        progress value=(done) max=(total.max(1)) {}
        " " span.epochs { (done) "/" (total) }
    }
}

/// How long ago `then` was, in words.
pub fn ago(then: Millis, now: Millis) -> String {
    let seconds = (now - then).max(0) / 1000;
    match seconds {
        0..=59 => format!("{seconds} s ago"),
        60..=3599 => format!("{} min ago", seconds / 60),
        3600..=86_399 => format!("{} h ago", seconds / 3600),
        _ => format!("{} d ago", seconds / 86_400),
    }
}

/// The sweeps table of `/`.
pub fn sweeps_table(sweeps: &[(SweepRow, Counts)], now: Millis) -> Markup {
    html! {
        @if sweeps.is_empty() {
            p.empty { "No sweep yet: " code { "allsweep submit SPEC.toml" } " or " code { "allsweep run SPEC.toml" } "." }
        } @else {
            table.sweeps {
                thead { tr {
                    th { "Sweep" } th { "State" } th { "Progress (epochs)" }
                    th { "Queued" } th { "Running" } th { "Completed" } th { "Failed" } th { "Stopped" } th { "Cancelled" }
                    th { "Submitted" }
                } }
                tbody {
                    @for (s, c) in sweeps {
                        tr id={ "sweep-" (s.id) } {
                            td { a href={ "/sweeps/" (s.id) } { (s.name) } br; small { (s.id) } }
                            td { (state_badge(s.state.as_str())) }
                            td { (progress(c.epochs_done, c.epochs_total)) }
                            td.n { (c.queued) } td.n { (c.running) } td.n.completed { (c.completed) }
                            td.n { (c.failed) } td.n { (c.stopped) } td.n { (c.cancelled) }
                            td { (ago(s.created_at, now)) }
                        }
                    }
                }
            }
        }
    }
}

/// One worker as `/` shows it.
pub struct WorkerView {
    pub id: String,
    pub host: String,
    pub device: String,
    pub slots: u32,
    pub alive: bool,
    pub last_seen_at: Millis,
    pub gpus: Vec<GpuStatus>,
    /// (trial id, label) of what it runs now.
    pub running: Vec<(String, String)>,
    /// Asked to leave (`allsweep workers drain`).
    pub drain: Option<Drain>,
}

fn gib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / f64::from(1u32 << 30))
}

/// The workers table of `/`.
pub fn workers_table(workers: &[WorkerView], now: Millis) -> Markup {
    html! {
        @if workers.is_empty() {
            p.empty { "No worker has registered: start " code { "allsweep-worker --coordinator URL" } "." }
        } @else {
            table.workers {
                thead { tr {
                    th { "Worker" } th { "Device" } th { "Slots" } th { "GPUs (memory, utilisation)" }
                    th { "Last seen" } th { "Running" }
                } }
                tbody {
                    @for w in workers {
                        tr id={ "worker-" (w.id) } class=(if w.alive { "alive" } else { "gone" }) {
                            td { (w.id) br; small { (w.host) } }
                            td { (w.device) }
                            td.n { (w.slots) }
                            td {
                                @if w.gpus.is_empty() { "none (CPU)" }
                                @for g in &w.gpus {
                                    div { "cuda:" (g.index) " " (g.name) ": " (gib(g.memory_used_bytes)) "/" (gib(g.memory_total_bytes)) " GiB, " (g.utilization_percent) "%" }
                                }
                            }
                            td {
                                (ago(w.last_seen_at, now)) @if !w.alive { " (not heard from)" }
                                @match w.drain {
                                    Some(Drain::Finish) => { br; small.drain { "draining: finishing its trials" } }
                                    Some(Drain::Now) => { br; small.drain { "draining: releasing its trials" } }
                                    None => {}
                                }
                            }
                            td {
                                @if w.running.is_empty() { "idle" }
                                @for (id, label) in &w.running { div { a href={ "/trials/" (id) } { (label) } } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The summary line of a sweep's page.
pub fn sweep_summary(sweep: &SweepRow, c: &Counts) -> Markup {
    html! {
        p {
            (state_badge(sweep.state.as_str())) " "
            span #sweep-progress { (progress(c.epochs_done, c.epochs_total)) }
            " · " (c.completed) " completed, " (c.running) " running, " (c.queued) " queued, "
            (c.failed) " failed, " (c.stopped) " stopped early, " (c.cancelled) " cancelled"
        }
    }
}

/// Every trial of a sweep: epoch bar, attempts, worker, error or note.
pub fn trials_table(trials: &[TrialRow]) -> Markup {
    html! {
        table.trials {
            thead { tr {
                th { "#" } th { "Trial" } th { "Seed" } th { "State" } th { "Epoch" } th { "Attempts" } th { "Worker" } th { "Note" }
            } }
            tbody {
                @for t in trials {
                    tr id={ "trial-" (t.id) } data-state=(t.state.as_str()) {
                        td.n { (t.ordinal) }
                        td { a href={ "/trials/" (t.id) } { (t.label) } }
                        td.n { (t.seed) }
                        td { (state_badge(t.state.as_str())) }
                        td.epoch { (progress(u64::from(t.epoch), u64::from(t.epochs))) }
                        td.n { (t.attempt) }
                        td { (t.worker_id.as_deref().unwrap_or("")) }
                        td.note {
                            @if let Some(e) = &t.error { span.error { (e) } }
                            @if let Some(h) = &t.hold { (h) }
                            @if let (Some(e), Some(rule)) = (t.stopped_epoch, &t.stop_rule) { "stopped by " (rule) " after epoch " (e) }
                        }
                    }
                }
            }
        }
    }
}

fn cell(cell: &Cell, digits: usize) -> Markup {
    match cell {
        Cell::Text(t) => html! { td { (t) } },
        Cell::Count(n) => html! { td.n { (n) } },
        Cell::Stat(s) => {
            let text = mean_sd_text(s.mean, s.sd, digits);
            html! {
                @if s.best { td.n.best title="best of its column" { strong { (text) } " ★" } }
                @else { td.n { (text) } }
            }
        }
        Cell::Paired(p) => html! { td.n { (paired_text(p, digits)) } },
        Cell::Empty => html! { td.n { "–" } },
    }
}

/// The per-config table of `allsweep report`, or why there is none yet.
pub fn report_table(report: &Result<Report, String>) -> Markup {
    match report {
        Err(why) => html! { p.empty { (why) } },
        Ok(r) => html! {
            table.report {
                thead { tr { @for c in &r.columns { th { (c) } } } }
                tbody {
                    @for row in &r.rows {
                        tr { @for (i, c) in row.iter().enumerate() { (cell(c, r.digits.get(i).copied().unwrap_or(2))) } }
                    }
                }
            }
            @for note in &r.notes { p.note { (note) } }
        },
    }
}
