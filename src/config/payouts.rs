//! `[payouts]`: the hold on settled diamonds and the cash-out limits.
//!
//! Owns: [`PayoutsConfig`] and its defaults.
//! Must not: enforce the limits (the payments flows and the ledger do).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::Fiat;

/// What a cash-out in one currency pays (`payouts.rates.<currency>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayoutRate {
    /// Cents of the currency paid for 100 diamonds.
    pub cents_per_100_diamonds: i64,
    /// Cents of the currency cashed out per creator in any 24 hours, at
    /// most.
    pub cents_per_day_max: i64,
}

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
    /// Cents of `stripe.currency` cashed out per creator in any 24 hours,
    /// at most.
    pub cashout_cents_per_day_max: i64,
    /// The rate and daily cap of cash-outs in each currency, keyed by
    /// lower-case code: required for every currency of `stripe.currencies`
    /// but `stripe.currency`, which may use
    /// `stripe.cashout_cents_per_100_diamonds` and
    /// `cashout_cents_per_day_max` instead (an entry here wins).
    pub rates: BTreeMap<String, PayoutRate>,
}

impl Default for PayoutsConfig {
    fn default() -> Self {
        PayoutsConfig {
            hold_s: 604_800,
            cashouts_per_day_max: 5,
            cashout_cents_per_day_max: 1_000_000,
            rates: BTreeMap::from([(
                "eur".to_string(),
                PayoutRate {
                    cents_per_100_diamonds: 46,
                    cents_per_day_max: 920_000,
                },
            )]),
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
            fiat_cents_per_day_max: Fiat::ALL
                .map(|f| self.rates.get(f.lower()).map(|r| r.cents_per_day_max)),
        }
    }
}
