//! `[ledger]`: the durable ledger's URL.
//!
//! Owns: [`LedgerConfig`], its defaults and a `Debug` that hides the URL's
//! password.
//! Must not: connect to anything.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::redact::redacted_debug;

impl fmt::Debug for LedgerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        redacted_debug(f, "LedgerConfig", self, &[], &["url"])
    }
}

/// `[ledger]`
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LedgerConfig {
    /// `sqlite://PATH`, `sqlite::memory:` or `postgres://...`.
    pub url: String,
    /// Database connections at most.
    pub pool_len_max: u32,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig {
            url: "sqlite://data/giftstream.db".into(),
            pool_len_max: 4,
        }
    }
}
