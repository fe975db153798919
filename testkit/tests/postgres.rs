//! `ThrowawayPostgres` against the real server named by `ALLSWEEP_TEST_POSTGRES`: each
//! database is fresh and usable, and gone after `drop_now` or after `Drop`, even while a
//! connection to it is still open.

#![allow(clippy::unwrap_used)]

use allsweep_testkit::postgres::{admin_url, Error};
use allsweep_testkit::ThrowawayPostgres;
use sqlx::{Connection, Row};

async fn exists(name: &str) -> bool {
    let mut admin = sqlx::PgConnection::connect(&admin_url()).await.unwrap();
    let row = sqlx::query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    row.get::<i64, _>("n") == 1
}

#[tokio::test(flavor = "multi_thread")]
async fn a_throwaway_database_is_fresh_and_gone_after_drop_now() {
    let (a, b) = (ThrowawayPostgres::create().await, ThrowawayPostgres::create().await);
    assert_ne!(a.name(), b.name());
    let mut conn = sqlx::PgConnection::connect(a.url()).await.unwrap();
    let current: String = sqlx::query("SELECT current_database() AS d").fetch_one(&mut conn).await.unwrap().get("d");
    assert_eq!(current, a.name(), "the URL leads to the new database");
    sqlx::raw_sql("CREATE TABLE t (x int)").execute(&mut conn).await.unwrap();
    let tables: i64 = sqlx::query("SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = 'public'")
        .fetch_one(&mut sqlx::PgConnection::connect(b.url()).await.unwrap())
        .await
        .unwrap()
        .get("n");
    assert_eq!(tables, 0, "the other database does not see it");

    let name = a.name().to_string();
    a.drop_now().await.expect("dropped, though a connection is open");
    assert!(!exists(&name).await);
    let name = b.name().to_string();
    drop(b);
    assert!(!exists(&name).await, "Drop drops it too");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_is_not_there_is_named() {
    let url = "postgres://postgres@127.0.0.1:1/test";
    let error = ThrowawayPostgres::create_on(url).await.expect_err("nothing listens on port 1");
    assert!(matches!(error, Error::Connect { .. }), "{error:?}");
    assert!(error.to_string().contains(url), "{error}");
    let error = ThrowawayPostgres::create_on("mysql://localhost/test").await.expect_err("not Postgres");
    assert!(error.to_string().contains("is not a Postgres URL"), "{error}");
}
