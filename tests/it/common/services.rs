//! Test services: a fresh PostgreSQL database or Redis logical DB per test.
//!
//! `scripts/test` starts throwaway servers and exports their URLs in
//! `GIFTSTREAM_TEST_POSTGRES_URL` / `GIFTSTREAM_TEST_REDIS_URL` /
//! `GIFTSTREAM_TEST_STRIPE_URL` (localstripe) with
//! `GIFTSTREAM_TEST_REQUIRE_SERVICES=1`. Without the URLs a test skips its
//! service-backed part (a plain `cargo test` on a laptop), unless services
//! are required: then a missing URL is a failure, never a silent skip.

use sqlx::Connection;

/// Admin URL of the test PostgreSQL server.
pub const POSTGRES_URL_ENV: &str = "GIFTSTREAM_TEST_POSTGRES_URL";
/// URL of the test Redis server.
pub const REDIS_URL_ENV: &str = "GIFTSTREAM_TEST_REDIS_URL";
/// URL of the test localstripe server (a fake Stripe on loopback).
pub const STRIPE_URL_ENV: &str = "GIFTSTREAM_TEST_STRIPE_URL";
/// `1` makes a missing service URL fail the test instead of skipping it.
pub const REQUIRE_SERVICES_ENV: &str = "GIFTSTREAM_TEST_REQUIRE_SERVICES";

/// Redis logical DBs handed out (1..=1023; db 0 holds the counter). The
/// server runs with `--databases 1024`.
const REDIS_DBS: i64 = 1023;

/// Whether service-backed tests must run (`GIFTSTREAM_TEST_REQUIRE_SERVICES=1`).
pub fn require_services() -> bool {
    std::env::var(REQUIRE_SERVICES_ENV).is_ok_and(|v| v.trim() == "1")
}

/// The service URL in `var`, None (with a note on stderr) when it is not set
/// and services are not required; panics when they are required.
fn service_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().to_string()),
        _ if require_services() => {
            panic!("{var} is not set but {REQUIRE_SERVICES_ENV}=1: start the services with scripts/test (or source scripts/services.sh and run services_start)")
        }
        _ => {
            eprintln!("skipping: {var} not set");
            None
        }
    }
}

/// The localstripe URL, or None (skip) when it is not configured and
/// services are not required.
pub fn stripe_url() -> Option<String> {
    service_url(STRIPE_URL_ENV)
}

/// `url` with its path (database part) replaced by `/{path}`; query kept.
pub fn with_path(url: &str, path: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map(|i| i + 3).unwrap_or(0);
    let authority_end = base[authority_start..]
        .find('/')
        .map(|i| authority_start + i)
        .unwrap_or(base.len());
    let mut out = format!("{}/{path}", &base[..authority_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// A brand-new, empty PostgreSQL database for one test: its URL, or None
/// when PostgreSQL is not configured and not required.
pub async fn fresh_postgres_url() -> Option<String> {
    let admin = service_url(POSTGRES_URL_ENV)?;
    let name = format!("gs_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("connecting to {POSTGRES_URL_ENV} ({admin}): {e}"));
    // `name` is generated here (gs_ + 32 hex digits): safe to splice.
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
    if let Err(e) = conn.close().await {
        eprintln!("closing the admin connection: {e}");
    }
    Some(with_path(&admin, &name))
}

/// A flushed Redis logical DB (1..=1023, a new one per call, round robin)
/// for one test: its URL `redis://host:port/N`, or None when Redis is not
/// configured and not required.
pub async fn fresh_redis_url() -> Option<String> {
    fresh_redis_db().await.map(|(url, _)| url)
}

/// As [`fresh_redis_url`], also answering the database number (tests use
/// it to name rooms apart: pub/sub channels span databases).
pub async fn fresh_redis_db() -> Option<(String, u64)> {
    let admin = service_url(REDIS_URL_ENV)?;
    let admin0 = with_path(&admin, "0");
    let client = redis::Client::open(admin0.as_str())
        .unwrap_or_else(|e| panic!("{REDIS_URL_ENV} ({admin}): {e}"));
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("connecting to {REDIS_URL_ENV} ({admin}): {e}"));
    let n: i64 = redis::cmd("INCR")
        .arg("giftstream:test:next_db")
        .query_async(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("INCR giftstream:test:next_db: {e}"));
    let db = 1 + n.rem_euclid(REDIS_DBS);
    let url = with_path(&admin, &db.to_string());
    let client =
        redis::Client::open(url.as_str()).unwrap_or_else(|e| panic!("redis url {url}: {e}"));
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    let () = redis::cmd("FLUSHDB")
        .query_async(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("FLUSHDB on {url}: {e}"));
    Some((url, db as u64))
}
