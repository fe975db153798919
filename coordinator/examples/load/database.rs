//! The store under test, fresh for each run: a SQLite file in a temporary directory, or a
//! throwaway Postgres database (the one helper the tests use too) dropped at the end.

use allsweep_testkit::postgres::{admin_url, URL_VARIABLE};
use allsweep_testkit::ThrowawayPostgres;
use anyhow::{bail, Context};

/// The store under test, with what to clean up afterwards.
pub enum Database {
    /// A new file; the directory goes with the value.
    Sqlite {
        url: String,
        _dir: tempfile::TempDir,
    },
    Postgres(ThrowawayPostgres),
}

impl Database {
    /// A fresh store for `--db`: `sqlite` or any `sqlite:` URL (a new file either way),
    /// `postgres` (the server named by ALLSWEEP_TEST_POSTGRES) or `postgres://ADMIN_URL`.
    pub async fn create(db: &str) -> anyhow::Result<Self> {
        if db == "sqlite" || db.starts_with("sqlite:") {
            let dir = tempfile::Builder::new().prefix("allsweep-load").tempdir()?;
            let url = format!("sqlite://{}", dir.path().join("load.db").display());
            Ok(Database::Sqlite { url, _dir: dir })
        } else if db == "postgres" {
            let admin = admin_url();
            let created = ThrowawayPostgres::create_on(&admin).await;
            let context = || format!("creating a database (--db postgres uses the server in {URL_VARIABLE})");
            Ok(Database::Postgres(created.with_context(context)?))
        } else if db.starts_with("postgres://") || db.starts_with("postgresql://") {
            Ok(Database::Postgres(ThrowawayPostgres::create_on(db).await.context("creating a database")?))
        } else {
            bail!("--db must be sqlite, sqlite://..., postgres or postgres://ADMIN_URL, not {db:?}")
        }
    }

    pub fn url(&self) -> &str {
        match self {
            Database::Sqlite { url, .. } => url,
            Database::Postgres(db) => db.url(),
        }
    }

    /// The `db` field of the output line.
    pub fn kind(&self) -> &'static str {
        match self {
            Database::Sqlite { .. } => "sqlite",
            Database::Postgres(_) => "postgres",
        }
    }

    /// Removes the store now; a Postgres database that cannot be dropped is reported, not fatal.
    pub async fn drop_now(self) {
        if let Database::Postgres(db) = self {
            if let Err(e) = db.drop_now().await {
                eprintln!("load: {e}");
            }
        }
    }
}
