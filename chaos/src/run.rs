//! One sweep, start to finish, under a fault plan: the coordinator and its workers started,
//! the spec submitted through `allsweep submit`, each planned fault injected when due (the
//! fault-free run is the same code with an empty plan), dead workers replaced, and the run
//! timed from submission until the sweep is finished in the database.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sqlx::Row;
use tokio::task::block_in_place;

use crate::db::{safe_id, Db};
use crate::netns::Namespace;
use crate::observer::{self, Observations};
use crate::plan::{Fault, Planned};
use crate::pool::Pool;
use crate::postgres::PrivatePostgres;
use crate::processes::{Coordinator, CoordinatorConfig};
use crate::Options;

/// A kill lands on a worker that has trained for at least this long.
const VICTIM_MIN_AGE: Duration = Duration::from_millis(1500);

/// Where one run happens.
pub struct Setup<'a> {
    pub options: &'a Options,
    pub db_url: String,
    /// Logs, artifacts, the spec and the workers' directories.
    pub dir: PathBuf,
    /// Workers on the host.
    pub workers: usize,
    pub plan: Vec<Planned>,
    pub postgres: Option<&'a PrivatePostgres>,
    pub netns: Option<&'a mut Namespace>,
}

/// What happened during one run.
pub struct Outcome {
    /// From submission until the sweep was finished (or the run gave up).
    pub wall: Duration,
    pub injected: BTreeMap<Fault, u32>,
    /// Planned faults never injected because the sweep finished first.
    pub not_injected: usize,
    pub peak_rss_kib: u64,
    /// Process-level findings: unasked exits, slow or failed SIGTERM exits, a sweep that
    /// never finished.
    pub findings: Vec<String>,
    pub clean_leaves: u32,
    pub workers_started: u32,
    /// The workers sent SIGKILL or SIGTERM.
    pub signalled: Vec<Signalled>,
    /// The (trial, attempt) the namespace's worker held at each cut.
    pub cut_attempts: Vec<(String, i64)>,
    /// What the observer saw of the checkpoints table.
    pub observations: Observations,
    pub artifacts: PathBuf,
    /// Files the workers left in their work directory once the sweep was finished (no trial
    /// runs then, so each is a checkpoint nobody needs), relative to it.
    pub worker_leftovers: Vec<String>,
}

/// A worker sent a signal.
pub struct Signalled {
    pub name: String,
    /// `KILL` or `TERM`.
    pub signal: &'static str,
    /// Its id as it logged it (`None`: it had not yet registered).
    pub worker_id: Option<String>,
    /// When, in ms since the Unix epoch (the coordinator's clock: the same machine's).
    pub at_ms: i64,
}

/// Runs the sweep of `setup.options` under `setup.plan`.
pub async fn run(setup: Setup<'_>) -> anyhow::Result<Outcome> {
    let Setup { options, db_url, dir, workers, plan, postgres, mut netns } = setup;
    std::fs::create_dir_all(&dir)?;
    let artifacts = dir.join("artifacts");
    let host = netns.as_ref().map_or("127.0.0.1".to_string(), |ns| ns.host_ip.clone());
    let mut coordinator = block_in_place(|| {
        Coordinator::start(CoordinatorConfig {
            binary: options.coordinator_binary.clone(),
            db: db_url.clone(),
            listen: format!("{host}:0"),
            artifacts: artifacts.clone(),
            lease_seconds: options.lease_seconds,
            log: dir.join("coordinator.log"),
        })
    })?;
    let db = Db::connect(&db_url).await?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (seen, observer) = observer::spawn(db.clone(), artifacts.clone(), Duration::from_millis(250), stopped);
    let ns_name = netns.as_ref().map(|ns| ns.name.clone());
    let mut pool = Pool::new(&options.worker_binary, &dir, coordinator.url(), workers, ns_name);
    block_in_place(|| pool.maintain())?;

    let spec = dir.join("spec.toml");
    std::fs::write(&spec, options.spec_toml())?;
    let start = Instant::now();
    let mut log = FaultLog::create(&dir.join("faults.log"), start)?;
    block_in_place(|| submit(&options.coordinator_binary, &coordinator.url(), &spec))?;

    let mut rng = ChaCha8Rng::seed_from_u64(options.seed ^ 0x5eed);
    let mut pending = plan.into_iter().peekable();
    let mut window_start: Option<Instant> = None;
    let mut injected: BTreeMap<Fault, u32> = BTreeMap::new();
    let mut findings = Vec::new();
    let mut heal_at: Option<Instant> = None;
    let mut cut_attempts = Vec::new();
    let mut signalled = Vec::new();
    let mut finished = false;
    let mut last_poll = Instant::now() - Duration::from_secs(1);
    let deadline = start + options.timeout;

    while Instant::now() < deadline {
        block_in_place(|| pool.maintain())?;
        if let Some(status) = coordinator.exited() {
            findings.push(format!(
                "the coordinator exited by itself with {status} (see {})",
                dir.join("coordinator.log").display()
            ));
            block_in_place(|| coordinator.restart())?;
        }
        if let (Some(at), Some(ns)) = (heal_at, netns.as_mut()) {
            if Instant::now() >= at {
                ns.heal()?;
                log.note("partition healed");
                heal_at = None;
            }
        }
        if last_poll.elapsed() >= Duration::from_millis(300) {
            last_poll = Instant::now();
            coordinator.sample_rss();
            if let Ok(n) = db.count("SELECT count(*) FROM sweeps WHERE state = 'finished'").await {
                if n > 0 {
                    finished = true;
                    break;
                }
            }
            if window_start.is_none() && db.count("SELECT count(*) FROM attempts").await.unwrap_or(0) > 0 {
                window_start = Some(Instant::now());
            }
        }
        let due = match (window_start, pending.peek()) {
            (Some(w), Some(next)) => w.elapsed() >= next.at,
            _ => false,
        };
        if due {
            let fault = pending.peek().map(|p| p.fault).context("a due fault")?;
            let began = Instant::now();
            let done = match fault {
                Fault::KillWorker | Fault::TermWorker => {
                    let signal = if fault == Fault::KillWorker { "KILL" } else { "TERM" };
                    match pool.pick_victim(&mut rng, VICTIM_MIN_AGE) {
                        Some(victim) => {
                            victim.signal(signal);
                            let (name, worker_id) = (victim.name.clone(), victim.worker_id());
                            let what = format!("{name} ({})", worker_id.as_deref().unwrap_or("no id yet"));
                            signalled.push(Signalled { name, signal, worker_id, at_ms: now_ms() });
                            Some(what)
                        }
                        None => None,
                    }
                }
                Fault::KillCoordinator => {
                    block_in_place(|| coordinator.kill_and_restart())?;
                    Some(format!("pid {}", coordinator.pid()))
                }
                Fault::RestartPostgres(mode) => {
                    let pg = postgres.context("a Postgres restart is planned but the run has no private Postgres")?;
                    block_in_place(|| pg.restart(mode))?;
                    Some(String::new())
                }
                Fault::Partition => match (netns.as_mut(), heal_at) {
                    (Some(ns), None) => match held_attempt(&db, &pool).await {
                        Some(held) => {
                            ns.cut()?;
                            let what = format!("trial {} attempt {}", held.0, held.1);
                            cut_attempts.push(held);
                            heal_at = Some(Instant::now() + options.partition);
                            Some(what)
                        }
                        None => None,
                    },
                    (None, _) => bail!("a partition is planned but the run has no network namespace"),
                    (Some(_), Some(_)) => None,
                },
            };
            if let Some(what) = done {
                log.note(&format!("{fault} {what} ({} ms)", began.elapsed().as_millis()));
                *injected.entry(fault).or_default() += 1;
                pending.next();
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let wall = start.elapsed();
    if !finished {
        findings.push(format!("the sweep did not finish within {} s", options.timeout.as_secs()));
    }
    let worker_leftovers = settled_leftovers(&crate::processes::work_root(&dir)).await;
    if let Some(ns) = netns.as_mut() {
        if ns.is_cut() {
            ns.heal()?;
        }
    }
    block_in_place(|| {
        pool.shut_down(Duration::from_secs(30));
        coordinator.stop();
    });
    pool.remove_work_dir();
    let _ = stop.send(true);
    let _ = observer.await;
    db.close().await;
    findings.append(&mut pool.findings);
    let observations = std::mem::take(&mut *seen.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(Outcome {
        wall,
        injected,
        not_injected: pending.count(),
        peak_rss_kib: coordinator.peak_rss_kib(),
        findings,
        clean_leaves: pool.clean_leaves,
        workers_started: pool.started(),
        signalled,
        cut_attempts,
        observations,
        artifacts,
        worker_leftovers,
    })
}

/// The files under the workers' work directory, once none has appeared or gone for a
/// second (a worker told to stop a superseded attempt removes its checkpoint at its next
/// step), waiting at most 15 s.
async fn settled_leftovers(root: &Path) -> Vec<String> {
    let mut last = files_under(root, root);
    for _ in 0..15 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = files_under(root, root);
        if now == last {
            break;
        }
        last = now;
    }
    last
}

/// Every file under `dir` at any depth, relative to `root`, sorted.
fn files_under(dir: &Path, root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return found };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path, root));
        } else {
            found.push(path.strip_prefix(root).unwrap_or(&path).display().to_string());
        }
    }
    found.sort();
    found
}

/// The (trial, attempt) the namespace's worker is running now, if any.
async fn held_attempt(db: &Db, pool: &Pool) -> Option<(String, i64)> {
    let id = pool.partitioned.as_ref()?.worker_id()?;
    let id = safe_id(&id)?;
    let rows = db
        .rows(&format!("SELECT id, attempt FROM trials WHERE state = 'running' AND worker_id = '{id}'"))
        .await
        .ok()?;
    let row = rows.first()?;
    Some((row.try_get::<String, _>(0).ok()?, row.try_get::<i64, _>(1).ok()?))
}

/// `allsweep submit SPEC`, retried for a while (the coordinator has just started).
fn submit(binary: &Path, url: &str, spec: &Path) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let output = Command::new(binary).arg("submit").arg(spec).args(["--coordinator", url]).output()?;
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).trim().to_string());
        }
        if Instant::now() > deadline {
            bail!("allsweep submit failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// `faults.log` in the run's directory: each fault as it was injected, with the time since
/// submission and how long injecting it took, to line up with the processes' logs.
struct FaultLog {
    file: std::fs::File,
    start: Instant,
}

impl FaultLog {
    fn create(path: &Path, start: Instant) -> anyhow::Result<Self> {
        let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self { file, start })
    }

    fn note(&mut self, line: &str) {
        use std::io::Write;
        let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let _ = writeln!(
            self.file,
            "{:>8.3} s (unix {:.3})  {line}",
            self.start.elapsed().as_secs_f64(),
            wall.as_secs_f64()
        );
    }
}
