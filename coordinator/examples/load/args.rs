//! The load generator's command line: which store, how many simulated workers, trials and
//! metric points, and how the workers reach the coordinator.

use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Throughput of the coordinator with N simulated workers")]
pub struct Args {
    /// `sqlite` / `sqlite://...` (a fresh file in a temp dir) or `postgres` / `postgres://ADMIN_URL`
    /// (a fresh database created on that server, dropped afterwards; `postgres` alone is the
    /// server named by ALLSWEEP_TEST_POSTGRES, default postgres://postgres@127.0.0.1:5432/test).
    #[arg(long, default_value = "sqlite")]
    pub db: String,
    /// Simulated workers, one trial at a time each.
    #[arg(long, default_value_t = 10)]
    pub workers: usize,
    /// Trials in the sweep.
    #[arg(long, default_value_t = 1000)]
    pub trials: u32,
    /// Metric points per trial, sent in batches of 10.
    #[arg(long, default_value_t = 20)]
    pub points: u32,
    /// HTTP/2 connections the workers share (0: one per worker).
    #[arg(long, default_value_t = 0)]
    pub connections: usize,
    /// Lease length; long enough that no lease expires during the run.
    #[arg(long, default_value_t = 600.0)]
    pub lease_seconds: f64,
    /// How long each simulated epoch trains before its metric batch is sent, in ms (0: none):
    /// with it, workers call as often as real ones do, not as fast as they can.
    #[arg(long, default_value_t = 0)]
    pub epoch_ms: u64,
    /// Send a heartbeat every this many ms while a trial runs (0: none).
    #[arg(long, default_value_t = 0)]
    pub heartbeat_ms: u64,
    /// Spread the workers' first leases evenly over this many ms (0: all at once). Workers a
    /// scheduler starts on a cluster join over seconds, not in the same millisecond.
    #[arg(long, default_value_t = 0)]
    pub start_spread_ms: u64,
    /// Each simulated epoch lasts `--epoch-ms` times a factor drawn uniformly from
    /// [1 - J, 1 + J] (seeded by the worker's index: the same run twice draws the same). Real
    /// epochs vary with data loading and the machine; 0 keeps every worker in lockstep.
    #[arg(long, default_value_t = 0.0)]
    pub epoch_jitter: f64,
    /// Run the coordinator as its own process, this `allsweep` binary's `serve` (default: in
    /// this process), so that its memory is measured apart from the simulated workers'.
    #[arg(long)]
    pub serve: Option<std::path::PathBuf>,
    /// Set TCP_NODELAY on the listening socket (Linux hands it down to accepted sockets).
    /// `serve` does not set it on the connections it accepts, so by default the coordinator
    /// runs as `allsweep serve` does; this shows what the missing option costs.
    #[arg(long)]
    pub nodelay: bool,
}
