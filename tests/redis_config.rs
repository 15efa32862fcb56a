//! `config/production.toml` selects the Redis + PostgreSQL engines, and
//! refuses the development secret.

use std::path::Path;

use giftstream::config::Config;

#[test]
#[allow(clippy::result_large_err)] // figment::Jail's closure error type
fn production_toml_selects_redis_and_postgres_and_needs_a_secret() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config")
        .join("production.toml");
    figment::Jail::expect_with(|jail| {
        let e = Config::load(Some(&path)).unwrap_err();
        assert_eq!(e.key, "auth.jwt_secret");
        jail.set_env(
            "GIFTSTREAM_AUTH__JWT_SECRET",
            "a-long-production-secret-from-the-env",
        );
        jail.set_env(
            "GIFTSTREAM_COUNTERS__URL",
            "rediss://:pw@redis.example:6380/0",
        );
        let c = Config::load(Some(&path)).unwrap();
        assert_eq!(c.counters.url, "rediss://:pw@redis.example:6380/0");
        assert!(c.ledger.url.starts_with("postgres://"));
        assert!(c.auth.require_strong_secret);
        assert_eq!(c.settlement.claim_idle_ms, 30_000);
        Ok(())
    });
}
