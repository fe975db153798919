//! A private Postgres server for the Postgres leg of the suite, so that it can be restarted
//! (`pg_ctl restart -m fast|immediate`) without disturbing anyone else's databases: made with
//! `initdb` in a temporary directory, listening on 127.0.0.1 on a free port, and removed at
//! the end. Postgres refuses to run as root, so under root its commands run as the
//! `postgres` user (`runuser -u postgres --`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use sqlx::Connection;

use crate::plan::StopMode;

/// Where Debian's PostgreSQL 15 keeps its server binaries.
pub const DEFAULT_BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

/// A running private server; stopped (immediately) and deleted when dropped.
pub struct PrivatePostgres {
    bin_dir: PathBuf,
    /// Holds `data/` and `postgres.log`; owned by `postgres` under root.
    dir: tempfile::TempDir,
    port: u16,
    /// Whether the commands run as the `postgres` user.
    as_postgres: bool,
}

impl PrivatePostgres {
    /// `initdb` and start a server from `bin_dir` on a free port.
    pub fn start(bin_dir: &Path) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("allsweep-chaos-pg").tempdir()?;
        let as_postgres = is_root();
        if as_postgres {
            run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()))
                .context("giving the server's directory to the postgres user")?;
        }
        let port = free_port()?;
        let server = Self { bin_dir: bin_dir.to_path_buf(), dir, port, as_postgres };
        let data = server.data_dir();
        server
            .pg("initdb", &["-D", path_str(&data)?, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
            .context("initdb")?;
        let options = format!("-p {port} -c listen_addresses=127.0.0.1 -k {}", path_str(server.dir.path())?);
        server.pg_ctl(&["-o", &options, "start"]).context("starting the private Postgres")?;
        Ok(server)
    }

    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates database `name`.
    pub async fn create_database(&self, name: &str) -> anyhow::Result<String> {
        let mut admin =
            sqlx::PgConnection::connect(&self.url("postgres")).await.context("connecting to the private Postgres")?;
        sqlx::raw_sql(&format!("CREATE DATABASE {name}")).execute(&mut admin).await?;
        let _ = admin.close().await;
        Ok(self.url(name))
    }

    /// `pg_ctl restart -m MODE`: every connection drops; `immediate` also skips the shutdown
    /// checkpoint, so the server recovers from its WAL on the way up, as after a crash.
    pub fn restart(&self, mode: StopMode) -> anyhow::Result<()> {
        self.pg_ctl(&["-m", mode.flag(), "restart"]).with_context(|| format!("pg_ctl restart -m {}", mode.flag()))
    }

    pub fn log(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn pg_ctl(&self, args: &[&str]) -> anyhow::Result<()> {
        let data = self.data_dir();
        let log = self.log();
        let mut all = vec!["-D", path_str(&data)?, "-l", path_str(&log)?, "-w", "-t", "120"];
        all.extend_from_slice(args);
        self.pg("pg_ctl", &all)
    }

    /// Runs the server binary `name` (as `postgres` under root).
    fn pg(&self, name: &str, args: &[&str]) -> anyhow::Result<()> {
        let binary = self.bin_dir.join(name);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&binary);
            c
        } else {
            Command::new(&binary)
        };
        command.args(args).current_dir(self.dir.path());
        run(&mut command).with_context(|| format!("{} (see {})", binary.display(), self.log().display()))
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["-m", "immediate", "stop"]);
    }
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let output = command.output().with_context(|| format!("cannot run {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

fn path_str(path: &Path) -> anyhow::Result<&str> {
    path.to_str().with_context(|| format!("{} is not UTF-8", path.display()))
}

/// A port free on 127.0.0.1 just now.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Whether this process runs as root (uid 0), from `/proc/self/status`.
pub fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(1)) == Some("0")
}
