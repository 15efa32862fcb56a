//! `[payouts]`: the hold on settled diamonds and the cash-out limits.
//!
//! Owns: [`PayoutsConfig`] and its defaults.
//! Must not: enforce the limits (the payments flows and the ledger do).

use serde::{Deserialize, Serialize};

/// `[payouts]`: when diamonds become cashable, and how much a creator may
/// cash out per day (money-laundering and stolen-card limits).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PayoutsConfig {
    /// Settled diamonds become cashable this long after settlement, s
    /// (a refund or dispute of the coins claws them back meanwhile).
    pub hold_s: u64,
    /// Cash-outs per creator in any 24 hours, at most.
    pub cashouts_per_day_max: u32,
    /// Cents cashed out per creator in any 24 hours, at most.
    pub cashout_cents_per_day_max: i64,
}

impl Default for PayoutsConfig {
    fn default() -> Self {
        PayoutsConfig {
            hold_s: 604_800,
            cashouts_per_day_max: 5,
            cashout_cents_per_day_max: 1_000_000,
        }
    }
}

impl PayoutsConfig {
    /// The limits the ledger enforces.
    pub fn limits(&self) -> crate::model::PayoutLimits {
        crate::model::PayoutLimits {
            hold_ms: (self.hold_s as i64).saturating_mul(1000),
            cashouts_per_day_max: i64::from(self.cashouts_per_day_max),
            cashout_cents_per_day_max: self.cashout_cents_per_day_max,
        }
    }
}
