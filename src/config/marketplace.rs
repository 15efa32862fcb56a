//! `[marketplace]`: followers and the Creator Marketplace (issue 14): how
//! many edges one import or delete request may carry, how many
//! followers a creator needs to be eligible, the bounds of profiles and
//! campaigns, and the escrow's review time, fee and review sweep.
//!
//! Owns: [`MarketplaceConfig`], its defaults (equal to
//! `config/default.toml`) and its validation. Must not: open connections.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[marketplace]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MarketplaceConfig {
    /// Lines (edges) of one `POST`/`DELETE /v1/admin/followers/import`
    /// request, at most (beyond: 413).
    pub import_batch_max: usize,
    /// Followers a creator needs to be eligible for the marketplace (at or
    /// above it).
    pub followers_min: u64,
    /// Characters of a long text (a creator's bio, a campaign's brief, an
    /// application's pitch), at most.
    pub text_len_max: usize,
    /// Characters of a short text (a brand's name and industry, a
    /// campaign's title, a niche or language tag, a deliverable, a rate
    /// card line), at most.
    pub name_len_max: usize,
    /// Characters of a URL (a brand's website, a sample link), at most.
    pub url_len_max: usize,
    /// Entries of a list (niches, languages, rate card, sample links,
    /// deliverables), at most.
    pub list_len_max: usize,
    /// Cents of a campaign's budget or a rate card line, at most.
    pub budget_cents_max: i64,
    /// Seconds a brand has to review a submitted deliverable; after it the
    /// deliverable is approved automatically (and paid out).
    pub review_s_max: u64,
    /// The platform's fee on a contract's payout, basis points of the
    /// price (0..=10000), rounded down.
    pub fee_bps: u32,
    /// Interval of the background pass that approves contracts whose
    /// review is due and drives their pending payouts, ms.
    pub review_sweep_interval_ms: u64,
    /// Contracts one pass approves at most (the oldest due first).
    pub review_sweep_len_max: usize,
}

impl Default for MarketplaceConfig {
    fn default() -> Self {
        MarketplaceConfig {
            import_batch_max: 10_000,
            followers_min: 10_000,
            text_len_max: 2000,
            name_len_max: 100,
            url_len_max: 2048,
            list_len_max: 20,
            budget_cents_max: 100_000_000,
            review_s_max: 604_800,
            fee_bps: 0,
            review_sweep_interval_ms: 60_000,
            review_sweep_len_max: 100,
        }
    }
}

impl MarketplaceConfig {
    /// Ranges; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, message: &str| ConfigError {
            key: format!("marketplace.{key}"),
            message: message.into(),
        };
        if !(1..=100_000).contains(&self.import_batch_max) {
            return Err(bad("import_batch_max", "must be 1..=100000"));
        }
        if self.followers_min == 0 {
            return Err(bad("followers_min", "must be greater than 0"));
        }
        if !(1..=100_000).contains(&self.text_len_max) {
            return Err(bad("text_len_max", "must be 1..=100000"));
        }
        if !(1..=1000).contains(&self.name_len_max) {
            return Err(bad("name_len_max", "must be 1..=1000"));
        }
        if !(10..=8192).contains(&self.url_len_max) {
            return Err(bad("url_len_max", "must be 10..=8192"));
        }
        if !(1..=1000).contains(&self.list_len_max) {
            return Err(bad("list_len_max", "must be 1..=1000"));
        }
        if !(1..=1_000_000_000_000).contains(&self.budget_cents_max) {
            return Err(bad("budget_cents_max", "must be 1..=1000000000000"));
        }
        if !(1..=31_536_000).contains(&self.review_s_max) {
            return Err(bad("review_s_max", "must be 1..=31536000"));
        }
        if self.fee_bps > 10_000 {
            return Err(bad("fee_bps", "must be 0..=10000"));
        }
        if !(100..=86_400_000).contains(&self.review_sweep_interval_ms) {
            return Err(bad("review_sweep_interval_ms", "must be 100..=86400000"));
        }
        if !(1..=100_000).contains(&self.review_sweep_len_max) {
            return Err(bad("review_sweep_len_max", "must be 1..=100000"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_errors_name_the_key() {
        assert!(MarketplaceConfig::default().validate().is_ok());
        let c = MarketplaceConfig {
            import_batch_max: 0,
            ..MarketplaceConfig::default()
        };
        assert_eq!(
            c.validate().unwrap_err().key,
            "marketplace.import_batch_max"
        );
        let c = MarketplaceConfig {
            followers_min: 0,
            ..MarketplaceConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().key, "marketplace.followers_min");
    }

    #[test]
    fn profile_and_campaign_bounds_name_their_keys() {
        let d = MarketplaceConfig::default;
        let cases = [
            (
                MarketplaceConfig {
                    text_len_max: 0,
                    ..d()
                },
                "text_len_max",
            ),
            (
                MarketplaceConfig {
                    name_len_max: 0,
                    ..d()
                },
                "name_len_max",
            ),
            (
                MarketplaceConfig {
                    url_len_max: 9,
                    ..d()
                },
                "url_len_max",
            ),
            (
                MarketplaceConfig {
                    list_len_max: 1001,
                    ..d()
                },
                "list_len_max",
            ),
            (
                MarketplaceConfig {
                    budget_cents_max: 0,
                    ..d()
                },
                "budget_cents_max",
            ),
            (
                MarketplaceConfig {
                    review_s_max: 0,
                    ..d()
                },
                "review_s_max",
            ),
            (
                MarketplaceConfig {
                    fee_bps: 10_001,
                    ..d()
                },
                "fee_bps",
            ),
            (
                MarketplaceConfig {
                    review_sweep_interval_ms: 99,
                    ..d()
                },
                "review_sweep_interval_ms",
            ),
            (
                MarketplaceConfig {
                    review_sweep_len_max: 0,
                    ..d()
                },
                "review_sweep_len_max",
            ),
        ];
        for (c, key) in cases {
            assert_eq!(c.validate().unwrap_err().key, format!("marketplace.{key}"));
        }
    }
}
