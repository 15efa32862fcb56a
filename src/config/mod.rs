//! Configuration: TOML files in `config/` plus `GIFTSTREAM_<SECTION>__<KEY>`
//! environment overrides, validated once at start.
//!
//! Owns: [`Config`] and its sections, their defaults (which equal
//! `config/default.toml`), loading through figment, and validation with an
//! error that names the bad key.
//! Must not: open connections or files other than the config file itself.

use std::path::Path;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

mod admin;
mod auth;
mod counters;
mod currency;
mod gift;
mod http;
mod hub;
mod ledger;
mod limits;
mod marketplace;
mod moderation;
mod pages;
mod payouts;
mod redact;
mod settlement;
mod stripe;
mod validate;
mod webhooks;

pub use admin::AdminConfig;
pub use auth::{AuthConfig, DEV_JWT_SECRET, JWT_SECRET_LEN_MIN};
pub use counters::CountersConfig;
pub use gift::{CatalogConfig, GiftConfig};
pub use http::HttpConfig;
pub use hub::{AckMode, HubConfig};
pub use ledger::LedgerConfig;
pub use limits::LimitsConfig;
pub use marketplace::MarketplaceConfig;
pub use moderation::ModerationConfig;
pub use pages::PagesConfig;
pub use payouts::{PayoutRate, PayoutsConfig};
pub use redact::redact_url;
pub use settlement::SettlementConfig;
pub use stripe::{CoinPackage, StripeConfig};
pub use webhooks::WebhooksConfig;

/// The top-level sections; environment variables outside them are ignored.
pub const SECTIONS: [&str; 16] = [
    "http",
    "auth",
    "counters",
    "ledger",
    "settlement",
    "hub",
    "gift",
    "catalog",
    "stripe",
    "payouts",
    "admin",
    "limits",
    "webhooks",
    "pages",
    "marketplace",
    "moderation",
];

/// Everything the binary can be told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// HTTP and WebSocket listener.
    pub http: HttpConfig,
    /// Authentication.
    pub auth: AuthConfig,
    /// The counters engine: wallets, room seq, pending credits, fan-out.
    pub counters: CountersConfig,
    /// The durable ledger.
    pub ledger: LedgerConfig,
    /// The settlement worker.
    pub settlement: SettlementConfig,
    /// The WebSocket hub.
    pub hub: HubConfig,
    /// Gift behaviour.
    pub gift: GiftConfig,
    /// The gift catalog.
    pub catalog: CatalogConfig,
    /// Payments through Stripe (off while `secret_key` is empty).
    pub stripe: StripeConfig,
    /// The hold on settled diamonds and the cash-out limits.
    pub payouts: PayoutsConfig,
    /// Limits on admin operations.
    pub admin: AdminConfig,
    /// Per-user limits on what costs the platform (rooms, videos,
    /// PaymentIntents).
    pub limits: LimitsConfig,
    /// Signed webhooks out.
    pub webhooks: WebhooksConfig,
    /// The browser pages and their session cookies.
    pub pages: PagesConfig,
    /// Followers and the Creator Marketplace.
    pub marketplace: MarketplaceConfig,
    /// Bounds on creators' message rules (word filters, review, rates).
    pub moderation: ModerationConfig,
}

/// A configuration error that names the key at fault.
#[derive(Debug, thiserror::Error)]
#[error("config key `{key}`: {message}")]
pub struct ConfigError {
    /// Dotted key, e.g. `settlement.batch_len_max`.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl Config {
    /// Defaults, then the TOML file (if given), then `GIFTSTREAM_*` env vars.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError {
                    key: "--config".into(),
                    message: format!("file {} does not exist", path.display()),
                });
            }
            fig = fig.merge(Toml::file(path));
        }
        // Only `GIFTSTREAM_<SECTION>__<KEY>` variables are config; others
        // under the prefix (GIFTSTREAM_CONFIG, GIFTSTREAM_TOKEN, the test
        // suite's GIFTSTREAM_TEST_*) belong to the CLI or the tests.
        fig = fig.merge(
            Env::prefixed("GIFTSTREAM_")
                .split("__")
                .filter(|k| k.as_str().contains('.')),
        );
        let cfg: Config = fig.extract().map_err(|e| {
            let key = e.path.join(".");
            let key = if key.is_empty() {
                "(top level)".to_string()
            } else {
                key
            };
            ConfigError {
                key,
                message: e.kind.to_string(),
            }
        })?;
        cfg.validate()?;
        Ok(cfg)
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closure error type
mod tests {
    use super::*;

    fn repo_file(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("config")
            .join(name)
    }

    #[test]
    fn default_toml_equals_built_in_defaults() {
        let text = std::fs::read_to_string(repo_file("default.toml")).unwrap();
        let from_file: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(&text))
            .extract()
            .unwrap();
        assert_eq!(from_file, Config::default());
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns its own Error
    fn errors_name_the_key() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "[settlement]\nbatch_len_max = 0\n")?;
            let e = Config::load(Some(Path::new("bad.toml"))).unwrap_err();
            assert_eq!(e.key, "settlement.batch_len_max");
            jail.create_file("typo.toml", "[hub]\nviewer_queue_len = 3\n")?;
            let e = Config::load(Some(Path::new("typo.toml"))).unwrap_err();
            assert!(e.to_string().contains("viewer_queue_len"), "{e}");
            jail.create_file("type.toml", "[settlement]\nflush_interval_ms = \"soon\"\n")?;
            let e = Config::load(Some(Path::new("type.toml"))).unwrap_err();
            assert_eq!(e.key, "settlement.flush_interval_ms");
            Ok(())
        });
    }

    #[test]
    fn net_limits_are_validated_with_their_key() {
        type Breaks = fn(&mut Config);
        let cases: [(&str, Breaks); 7] = [
            ("hub.idle_timeout_ms", |c| {
                c.hub.idle_timeout_ms = c.hub.ping_interval_ms
            }),
            ("http.header_read_timeout_ms", |c| {
                c.http.header_read_timeout_ms = 0
            }),
            ("hub.connections_per_ip_max", |c| {
                c.hub.connections_per_ip_max = 0
            }),
            ("http.metrics_listen", |c| {
                c.http.metrics_listen = "9464".into()
            }),
            ("http.client_ip_header", |c| {
                c.http.client_ip_header = "X Forwarded".into()
            }),
            ("http.overlay_frame_ancestors", |c| {
                c.http.overlay_frame_ancestors = "'self'; script-src *".into()
            }),
            ("limits.live_rooms_per_creator_max", |c| {
                c.limits.live_rooms_per_creator_max = 0
            }),
        ];
        for (key, bad) in cases {
            let mut c = Config::default();
            bad(&mut c);
            assert_eq!(c.validate().unwrap_err().key, key);
        }
        let mut c = Config::default();
        c.http.metrics_listen = String::new();
        c.http.client_ip_header = "X-Forwarded-For".into();
        c.validate().unwrap();
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn env_overrides_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", "[hub]\nviewer_queue_len_max = 7\n")?;
            jail.set_env("GIFTSTREAM_HUB__VIEWER_QUEUE_LEN_MAX", "9");
            jail.set_env(
                "GIFTSTREAM_AUTH__JWT_SECRET",
                "a-much-longer-secret-from-env",
            );
            let c = Config::load(Some(Path::new("c.toml"))).unwrap();
            assert_eq!(c.hub.viewer_queue_len_max, 9);
            assert_eq!(c.auth.jwt_secret, "a-much-longer-secret-from-env");
            jail.set_env("GIFTSTREAM_TEST_REDIS_URL", "redis://127.0.0.1:1");
            jail.set_env("GIFTSTREAM_CONFIG", "elsewhere.toml");
            jail.set_env("GIFTSTREAM_TOKEN", "x");
            assert_eq!(
                Config::load(None).unwrap().hub.viewer_queue_len_max,
                9,
                "non-config GIFTSTREAM_* vars are ignored (the section var still applies)"
            );
            jail.set_env("GIFTSTREAM_COUNTERS__URL", "mongodb://x");
            assert_eq!(Config::load(None).unwrap_err().key, "counters.url");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn stripe_keys_come_from_env_and_are_checked() {
        figment::Jail::expect_with(|jail| {
            assert!(
                !Config::load(None).unwrap().stripe.enabled(),
                "off by default"
            );
            jail.set_env("GIFTSTREAM_STRIPE__SECRET_KEY", "sk_test_x");
            assert_eq!(
                Config::load(None).unwrap_err().key,
                "auth.jwt_secret",
                "payments refuse the development secret"
            );
            jail.set_env(
                "GIFTSTREAM_AUTH__JWT_SECRET",
                "a-production-secret-of-at-least-32-bytes",
            );
            assert_eq!(Config::load(None).unwrap_err().key, "stripe.webhook_secret");
            jail.set_env("GIFTSTREAM_STRIPE__WEBHOOK_SECRET", "whsec_x");
            let c = Config::load(None).unwrap();
            assert!(c.stripe.enabled());
            assert_eq!(c.stripe.webhook_secret, "whsec_x");
            jail.create_file("s.toml", "[stripe]\ntip_cents_min = 0\n")?;
            let e = Config::load(Some(Path::new("s.toml"))).unwrap_err();
            assert_eq!(e.key, "stripe.tip_cents_max");
            jail.create_file("p.toml", "[stripe]\npackages = [{ id = \"x\", coins = 0, price_cents = 1, currency = \"usd\" }]\n")?;
            let e = Config::load(Some(Path::new("p.toml"))).unwrap_err();
            assert_eq!(e.key, "stripe.packages[0]");
            Ok(())
        });
    }
}
