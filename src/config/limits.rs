//! `[limits]`: per-user hourly limits on what costs the platform.
//!
//! Owns: [`LimitsConfig`] and its defaults.
//! Must not: count anything (the counters engine does).

use serde::{Deserialize, Serialize};

/// `[limits]`: per user, answered 429 `rate_limited` beyond. The hourly
/// counts are fixed one-hour windows in the counters engine (shared by
/// every node on Redis); each request counts, refused or replayed ones too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// `POST /v1/rooms` per creator per hour.
    pub rooms_per_hour_max: u64,
    /// `POST /v1/videos` per creator per hour.
    pub videos_per_hour_max: u64,
    /// Rooms of one creator live at once (read from the ledger); opening
    /// another is refused, re-opening a live one is not.
    pub live_rooms_per_creator_max: u64,
    /// PaymentIntents (coin purchases and tips together) per user per hour.
    pub payment_intents_per_hour_max: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            rooms_per_hour_max: 20,
            videos_per_hour_max: 60,
            live_rooms_per_creator_max: 3,
            payment_intents_per_hour_max: 30,
        }
    }
}
