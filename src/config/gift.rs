//! `[gift]` and `[catalog]`: gift behaviour and where the catalog comes from.
//!
//! Owns: [`GiftConfig`], [`CatalogConfig`] and their defaults.
//! Must not: load the catalog (that is `crate::catalog`).

use serde::{Deserialize, Serialize};

use super::AckMode;

/// `[gift]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GiftConfig {
    /// `counter` or `ledger`.
    pub ack: AckMode,
    /// How long an ack may wait for its ledger commit, ms (ledger mode).
    pub ack_timeout_ms: u64,
    /// How long a gift may wait for room in a full pending queue or room
    /// queue before it is refused with `rate_limited`, ms. While it waits,
    /// that socket's further frames wait in TCP: back-pressure instead of
    /// a refusal the client would only retry. 0 refuses at once.
    pub busy_wait_ms_max: u64,
}

impl Default for GiftConfig {
    fn default() -> Self {
        GiftConfig {
            ack: AckMode::Counter,
            ack_timeout_ms: 10_000,
            busy_wait_ms_max: 1_000,
        }
    }
}

/// `[catalog]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogConfig {
    /// Path of a catalog TOML; empty means the catalog built into the
    /// binary (a copy of `config/catalog.toml`).
    pub path: String,
}
