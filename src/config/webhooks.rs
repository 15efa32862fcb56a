//! `[webhooks]`: signed webhooks out (issue 13): how many endpoints a
//! creator may register, where they may point, and the bounds of the
//! delivery worker (concurrency, timeouts, retries, response size).
//!
//! Owns: [`WebhooksConfig`], its defaults (equal to `config/default.toml`)
//! and its validation. Must not: open connections.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[webhooks]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Endpoints per creator, at most.
    pub endpoints_per_creator_max: u32,
    /// Length of an endpoint URL, at most (bytes).
    pub url_len_max: usize,
    /// Allow destinations on private, loopback, link-local, unique-local,
    /// CGNAT or other non-public addresses (tests, private deployments).
    pub allow_private: bool,
    /// How long one event is retried (from its first attempt), s; after
    /// that it is marked failed and the endpoint moves on.
    pub retry_age_s_max: u64,
    /// An endpoint whose every attempt failed for longer than this is
    /// disabled, s.
    pub disable_after_s: u64,
    /// The first retry waits about this long (doubling each time, with
    /// jitter), ms.
    pub retry_base_ms: u64,
    /// The longest wait between two attempts, ms.
    pub retry_interval_ms_max: u64,
    /// How often the worker looks for due events, ms.
    pub poll_interval_ms: u64,
    /// Endpoints delivered to at once per node, at most.
    pub concurrency_max: u32,
    /// Events delivered to one endpoint per claim, at most.
    pub batch_len_max: u32,
    /// TCP (and TLS) connect timeout, ms.
    pub connect_timeout_ms: u64,
    /// Time for the receiver to answer (status and the bytes read), ms.
    pub response_timeout_ms: u64,
    /// Bytes of a response body read, at most (the rest is dropped).
    pub response_bytes_max: usize,
    /// Recent attempts kept per endpoint (older ones are pruned).
    pub deliveries_per_endpoint_max: u32,
    /// Outbox rows older than this are deleted, s (must exceed
    /// `retry_age_s_max`).
    pub outbox_retention_s: u64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            endpoints_per_creator_max: 5,
            url_len_max: 2048,
            allow_private: false,
            retry_age_s_max: 259_200,
            disable_after_s: 432_000,
            retry_base_ms: 1000,
            retry_interval_ms_max: 3_600_000,
            poll_interval_ms: 1000,
            concurrency_max: 16,
            batch_len_max: 50,
            connect_timeout_ms: 3000,
            response_timeout_ms: 5000,
            response_bytes_max: 4096,
            deliveries_per_endpoint_max: 100,
            outbox_retention_s: 604_800,
        }
    }
}

impl WebhooksConfig {
    /// Ranges; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn bad(key: &str, message: impl Into<String>) -> Result<(), ConfigError> {
            Err(ConfigError {
                key: format!("webhooks.{key}"),
                message: message.into(),
            })
        }
        let positive: [(&str, u64); 13] = [
            (
                "endpoints_per_creator_max",
                self.endpoints_per_creator_max.into(),
            ),
            ("url_len_max", self.url_len_max as u64),
            ("retry_age_s_max", self.retry_age_s_max),
            ("disable_after_s", self.disable_after_s),
            ("retry_base_ms", self.retry_base_ms),
            ("retry_interval_ms_max", self.retry_interval_ms_max),
            ("poll_interval_ms", self.poll_interval_ms),
            ("concurrency_max", self.concurrency_max.into()),
            ("batch_len_max", self.batch_len_max.into()),
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("response_timeout_ms", self.response_timeout_ms),
            ("response_bytes_max", self.response_bytes_max as u64),
            (
                "deliveries_per_endpoint_max",
                self.deliveries_per_endpoint_max.into(),
            ),
        ];
        for (key, v) in positive {
            if v == 0 {
                return bad(key, "must be greater than 0");
            }
        }
        if self.endpoints_per_creator_max > 100 {
            return bad("endpoints_per_creator_max", "at most 100");
        }
        if self.url_len_max > 8192 {
            return bad("url_len_max", "at most 8192");
        }
        if self.concurrency_max > 1024 {
            return bad("concurrency_max", "at most 1024");
        }
        if self.batch_len_max > 1000 {
            return bad("batch_len_max", "at most 1000");
        }
        if self.response_bytes_max > 65_536 {
            return bad("response_bytes_max", "at most 65536 (a few KB are enough)");
        }
        if self.connect_timeout_ms > 60_000 || self.response_timeout_ms > 60_000 {
            let key = if self.connect_timeout_ms > 60_000 {
                "connect_timeout_ms"
            } else {
                "response_timeout_ms"
            };
            return bad(key, "at most 60000");
        }
        if self.retry_interval_ms_max < self.retry_base_ms {
            return bad(
                "retry_interval_ms_max",
                "must be at least webhooks.retry_base_ms",
            );
        }
        if self.deliveries_per_endpoint_max > 10_000 {
            return bad("deliveries_per_endpoint_max", "at most 10000");
        }
        if self.outbox_retention_s <= self.retry_age_s_max {
            return bad(
                "outbox_retention_s",
                "must be greater than webhooks.retry_age_s_max",
            );
        }
        Ok(())
    }
}
