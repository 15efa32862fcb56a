//! The test-service helpers themselves: URL rewriting, and that each call
//! hands out an isolated, empty PostgreSQL database / Redis logical DB.

use crate::common;

use common::services::{fresh_postgres_url, fresh_redis_url, with_path};
use sqlx::Connection;

#[test]
fn with_path_replaces_the_database_and_keeps_the_query() {
    assert_eq!(
        with_path("postgres://u@h:5/postgres", "gs_x"),
        "postgres://u@h:5/gs_x"
    );
    assert_eq!(
        with_path("postgres://u@h:5/postgres?sslmode=disable", "gs_x"),
        "postgres://u@h:5/gs_x?sslmode=disable"
    );
    assert_eq!(
        with_path("redis://127.0.0.1:6379", "7"),
        "redis://127.0.0.1:6379/7"
    );
    assert_eq!(
        with_path("redis://:pw@127.0.0.1:6379/3", "7"),
        "redis://:pw@127.0.0.1:6379/7"
    );
}

#[tokio::test]
async fn fresh_postgres_databases_are_distinct_and_empty() {
    let Some(a) = fresh_postgres_url().await else {
        return;
    };
    let Some(b) = fresh_postgres_url().await else {
        return;
    };
    assert_ne!(a, b);
    let mut conn = sqlx::PgConnection::connect(&a).await.expect("connect a");
    let tables: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_one(&mut conn)
    .await
    .expect("count tables");
    assert_eq!(tables, 0, "a fresh database is empty");
    sqlx::query("CREATE TABLE only_in_a (x BIGINT)")
        .execute(&mut conn)
        .await
        .expect("create");
    let mut conn = sqlx::PgConnection::connect(&b).await.expect("connect b");
    let seen: Option<String> = sqlx::query_scalar("SELECT to_regclass('only_in_a')::text")
        .fetch_one(&mut conn)
        .await
        .expect("regclass");
    assert_eq!(seen, None, "databases are isolated");
}

#[tokio::test]
async fn fresh_redis_dbs_are_distinct_and_empty() {
    let Some(a) = fresh_redis_url().await else {
        return;
    };
    let Some(b) = fresh_redis_url().await else {
        return;
    };
    assert_ne!(a, b);
    let mut ca = redis::Client::open(a.as_str())
        .expect("url a")
        .get_multiplexed_async_connection()
        .await
        .expect("connect a");
    let mut cb = redis::Client::open(b.as_str())
        .expect("url b")
        .get_multiplexed_async_connection()
        .await
        .expect("connect b");
    let size: i64 = redis::cmd("DBSIZE")
        .query_async(&mut ca)
        .await
        .expect("dbsize");
    assert_eq!(size, 0, "a fresh db is empty");
    let () = redis::cmd("SET")
        .arg("k")
        .arg("only in a")
        .query_async(&mut ca)
        .await
        .expect("set");
    let seen: Option<String> = redis::cmd("GET")
        .arg("k")
        .query_async(&mut cb)
        .await
        .expect("get");
    assert_eq!(seen, None, "dbs are isolated");
}
