//! `[admin]`: limits on what one admin may do.
//!
//! Owns: [`AdminConfig`] and its defaults.
//! Must not: enforce them (the admin routes do).

use serde::{Deserialize, Serialize};

/// `[admin]`: limits on what one admin may do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Coins one admin may grant in any 24 hours (rolling), at most;
    /// beyond, `POST /v1/admin/grants` answers `rate_limited`.
    pub grant_coins_per_day_max: i64,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            grant_coins_per_day_max: 1_000_000,
        }
    }
}
