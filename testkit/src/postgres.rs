//! A fresh Postgres database per test (or per load run), created through an admin database
//! on the server that [`URL_VARIABLE`] names and dropped afterwards, so that runs never see
//! each other's rows. Tests never skip: without a server, [`ThrowawayPostgres::create`]
//! panics and says which variable to set.

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection;

/// The environment variable naming the Postgres server the tests use: the URL of a database
/// to connect to while creating (and dropping) each throwaway one.
pub const URL_VARIABLE: &str = "ALLSWEEP_TEST_POSTGRES";

/// The admin database used when [`URL_VARIABLE`] is unset.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// What went wrong creating or dropping a throwaway database. Each message carries its
/// cause, so that `{e}` alone says everything (the cause is not repeated as a `source`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{url:?} is not a Postgres URL of the form postgres://USER@HOST:PORT/DATABASE")]
    Url { url: String },
    #[error("cannot connect to Postgres at {url}: {cause}")]
    Connect { url: String, cause: sqlx::Error },
    #[error("cannot create database {name} on {url}: {cause}")]
    Create { name: String, url: String, cause: sqlx::Error },
    #[error("cannot drop database {name} on {url}: {cause}")]
    Drop { name: String, url: String, cause: sqlx::Error },
}

/// The admin database URL: [`URL_VARIABLE`] if set, else [`DEFAULT_ADMIN_URL`].
pub fn admin_url() -> String {
    std::env::var(URL_VARIABLE).unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_string())
}

/// A database of its own on a Postgres server, dropped (`WITH (FORCE)`, so open connections
/// do not keep it alive) by [`drop_now`](Self::drop_now) or, failing that, when the value is
/// dropped.
#[derive(Debug)]
pub struct ThrowawayPostgres {
    /// The database connected to for `CREATE DATABASE` and `DROP DATABASE`.
    admin_url: String,
    /// The throwaway database's name: unique per process and per call.
    name: String,
    /// The admin URL with its database replaced by `name`.
    url: String,
    /// Set once the database is gone, so that `Drop` does not try again.
    dropped: bool,
}

impl ThrowawayPostgres {
    /// A fresh database on the server named by [`URL_VARIABLE`] (default
    /// [`DEFAULT_ADMIN_URL`]). Panics, naming the variable, when the server cannot be reached.
    pub async fn create() -> Self {
        let admin = admin_url();
        Self::create_on(&admin).await.unwrap_or_else(|e| {
            panic!("{e}\n(a throwaway test database needs a Postgres server: start one, or set {URL_VARIABLE} to the URL of a database on one)")
        })
    }

    /// A fresh database on the server of `admin_url`, created while connected to that URL.
    pub async fn create_on(admin_url: &str) -> Result<Self, Error> {
        let name = unique_name();
        let url = with_database(admin_url, &name).ok_or_else(|| Error::Url { url: admin_url.to_string() })?;
        let mut admin = connect(admin_url).await?;
        let created = sqlx::raw_sql(&format!("CREATE DATABASE {name}")).execute(&mut admin).await;
        let _ = admin.close().await;
        created.map_err(|cause| Error::Create { name: name.clone(), url: admin_url.to_string(), cause })?;
        Ok(Self { admin_url: admin_url.to_string(), name, url, dropped: false })
    }

    /// The throwaway database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The throwaway database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops the database now, on this runtime, and says whether that worked.
    pub async fn drop_now(mut self) -> Result<(), Error> {
        self.dropped = true;
        drop_database(&self.admin_url, &self.name).await
    }
}

impl Drop for ThrowawayPostgres {
    /// Drops the database from a helper thread with a runtime of its own: `Drop` cannot await,
    /// and may run inside a runtime that must not be blocked on.
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let helper = std::thread::spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(e) => return eprintln!("cannot drop database {name}: no runtime: {e}"),
            };
            if let Err(e) = runtime.block_on(drop_database(&admin_url, &name)) {
                eprintln!("{e}");
            }
        });
        let _ = helper.join();
    }
}

async fn connect(url: &str) -> Result<sqlx::PgConnection, Error> {
    sqlx::PgConnection::connect(url).await.map_err(|cause| Error::Connect { url: url.to_string(), cause })
}

async fn drop_database(admin_url: &str, name: &str) -> Result<(), Error> {
    let mut admin = connect(admin_url).await?;
    let dropped = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin).await;
    let _ = admin.close().await;
    dropped.map(|_| ()).map_err(|cause| Error::Drop { name: name.to_string(), url: admin_url.to_string(), cause })
}

/// `allsweep_test_<pid>_<n>_<nanos>`: the process and a counter keep names apart within one
/// run; the clock keeps a new process clear of databases an earlier one (killed before it
/// could drop them) left behind under the same pid.
fn unique_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("allsweep_test_{}_{n}_{nanos}", std::process::id())
}

/// `url` with its database replaced by `name`, keeping any query (`?sslmode=...`); `None`
/// when `url` is not a `postgres://` or `postgresql://` URL with a host.
fn with_database(url: &str, name: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "postgres" && scheme != "postgresql" {
        return None;
    }
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    let authority = path.split_once('/').map_or(path, |(authority, _)| authority);
    if authority.is_empty() {
        return None;
    }
    Some(match query {
        Some(query) => format!("{scheme}://{authority}/{name}?{query}"),
        None => format!("{scheme}://{authority}/{name}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_in_a_url_is_replaced_and_the_rest_kept() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "t1").as_deref(),
            Some("postgres://postgres@127.0.0.1:5432/t1")
        );
        assert_eq!(
            with_database("postgresql://u:p@db.example:6543/admin?sslmode=disable", "t1").as_deref(),
            Some("postgresql://u:p@db.example:6543/t1?sslmode=disable")
        );
        assert_eq!(with_database("postgres://localhost", "t1").as_deref(), Some("postgres://localhost/t1"));
        assert_eq!(with_database("sqlite://x.db", "t1"), None);
        assert_eq!(with_database("postgres:///test", "t1"), None);
        assert_eq!(with_database("127.0.0.1:5432/test", "t1"), None);
    }

    #[test]
    fn names_are_unique_within_a_process_and_valid_identifiers() {
        let (a, b) = (unique_name(), unique_name());
        assert_ne!(a, b);
        for name in [a, b] {
            assert!(name.len() <= 63, "Postgres truncates identifiers past 63 bytes: {name}");
            assert!(name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'), "{name}");
        }
    }
}
