//! What the simulated workers measure: per RPC kind, the client-side latency of each call
//! that succeeded and the retries before it; per worker, the trials completed and the span
//! from its first lease to its last completion. Summed over workers for the output line.

use std::time::Instant;

/// Latencies and retries of one RPC kind.
#[derive(Default)]
pub struct CallStats {
    /// The latency of each successful call, in microseconds.
    pub micros: Vec<u64>,
    /// Calls refused as UNAVAILABLE and tried again.
    pub retries: u64,
}

impl CallStats {
    pub fn merge(&mut self, other: CallStats) {
        self.micros.extend(other.micros);
        self.retries += other.retries;
    }

    /// Count, retries, mean, p50, p99 and max latency (ms) and the total time (s), as JSON.
    pub fn summary(&mut self) -> serde_json::Value {
        self.micros.sort_unstable();
        let n = self.micros.len();
        let ms = |us: u64| us as f64 / 1000.0;
        let at = |q: f64| if n == 0 { 0 } else { self.micros[((n - 1) as f64 * q).round() as usize] };
        let total: u64 = self.micros.iter().sum();
        serde_json::json!({
            "n": n,
            "retries": self.retries,
            "mean_ms": if n == 0 { 0.0 } else { ms(total / n as u64) },
            "p50_ms": ms(at(0.5)),
            "p99_ms": ms(at(0.99)),
            "max_ms": ms(at(1.0)),
            "total_s": (total as f64 / 1e3).round() / 1e3,
        })
    }
}

/// One simulated worker's calls and completions (or, merged, all of them).
#[derive(Default)]
pub struct WorkerStats {
    pub lease: CallStats,
    pub metrics: CallStats,
    pub complete: CallStats,
    pub heartbeat: CallStats,
    /// Completions the coordinator acknowledged.
    pub completed: u64,
    /// When the first lease was asked for: the run's clock starts here.
    pub first_lease: Option<Instant>,
    /// When the last completion was acknowledged: the run's clock stops here.
    pub last_completion: Option<Instant>,
}

impl WorkerStats {
    pub fn merge(&mut self, other: WorkerStats) {
        self.lease.merge(other.lease);
        self.metrics.merge(other.metrics);
        self.complete.merge(other.complete);
        self.heartbeat.merge(other.heartbeat);
        self.completed += other.completed;
        self.first_lease = match (self.first_lease, other.first_lease) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_completion = self.last_completion.max(other.last_completion);
    }

    /// From the first lease to the last completion, in seconds (0 if nothing ran).
    pub fn seconds(&self) -> f64 {
        match (self.first_lease, self.last_completion) {
            (Some(first), Some(last)) => last.duration_since(first).as_secs_f64(),
            _ => 0.0,
        }
    }
}
