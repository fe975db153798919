//! The suite's own connection to the coordinator's database, beside the coordinator: the
//! checks read the tables the way a user's psql or sqlite3 would, with plain SQL that both
//! dialects accept (no parameters: the suite's databases hold one sweep, and the few ids it
//! inlines come from the database itself and are checked to be `[A-Za-z0-9-]`).

use std::time::Duration;

use anyhow::Context;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::AnyPool;

/// A small pool on `url` (`sqlite://...` or `postgres://...`).
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
}

impl Db {
    /// Connects; a SQLite file must already exist (the coordinator creates it).
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .with_context(|| format!("cannot connect to {url}"))?;
        Ok(Self { pool })
    }

    /// Every row of `sql`.
    pub async fn rows(&self, sql: &str) -> anyhow::Result<Vec<AnyRow>> {
        sqlx::query(sql).fetch_all(&self.pool).await.with_context(|| format!("query failed: {sql}"))
    }

    /// The single integer `sql` returns (a count).
    pub async fn count(&self, sql: &str) -> anyhow::Result<i64> {
        let row = sqlx::query(sql).fetch_one(&self.pool).await.with_context(|| format!("query failed: {sql}"))?;
        sqlx::Row::try_get::<i64, _>(&row, 0).with_context(|| format!("not a count: {sql}"))
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// `id` if it is safe to inline in SQL (`[A-Za-z0-9-]`, as the coordinator's ids are).
pub fn safe_id(id: &str) -> Option<&str> {
    (!id.is_empty() && id.len() <= 128 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_ids_are_inlined() {
        assert_eq!(safe_id("w-1a2B"), Some("w-1a2B"));
        assert_eq!(safe_id("x' OR 1=1 --"), None);
        assert_eq!(safe_id(""), None);
    }
}
