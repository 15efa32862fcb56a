//! `[moderation]`: the platform's bounds on creators' message rules and
//! how fast a rule change reaches every node.
//!
//! Owns: [`ModerationConfig`], its defaults (equal to
//! `config/default.toml`) and its validation. Must not: read anything but
//! its own fields.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[moderation]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModerationConfig {
    /// How long a node keeps a creator's rules (words, settings) before
    /// reading them again, ms: a change applies on every node within this
    /// time (at once on the node that made it).
    pub rules_cache_ms: u64,
    /// Creators whose rules one node keeps at most.
    pub rules_cache_len_max: usize,
    /// Muted words and phrases per creator, at most.
    pub words_len_max: usize,
    /// Characters of one muted word or phrase, at most.
    pub word_len_max: usize,
    /// Lowest `message_interval_ms` a creator may set (0: no limit).
    pub message_interval_ms_min: u64,
    /// Highest `message_interval_ms` a creator may set.
    pub message_interval_ms_max: u64,
    /// The interval of a creator who set none (0), clamped within the
    /// bounds above; 0: no limit.
    pub message_interval_ms_default: u64,
    /// Longest `review_account_age_days` a creator may set.
    pub review_account_age_days_max: i64,
}

impl Default for ModerationConfig {
    fn default() -> Self {
        ModerationConfig {
            rules_cache_ms: 2_000,
            rules_cache_len_max: 10_000,
            words_len_max: 200,
            word_len_max: 64,
            message_interval_ms_min: 0,
            message_interval_ms_max: 60_000,
            message_interval_ms_default: 0,
            review_account_age_days_max: 365,
        }
    }
}

impl ModerationConfig {
    /// The interval a creator's setting `set` (0: none) comes to.
    pub fn interval_ms(&self, set: i64) -> u64 {
        let v = if set <= 0 {
            self.message_interval_ms_default
        } else {
            set as u64
        };
        if v == 0 {
            0
        } else {
            v.clamp(self.message_interval_ms_min, self.message_interval_ms_max)
        }
    }

    /// Ranges, each error naming its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn bad(key: &str, message: &str) -> Result<(), ConfigError> {
            Err(ConfigError {
                key: format!("moderation.{key}"),
                message: message.into(),
            })
        }
        if !(100..=600_000).contains(&self.rules_cache_ms) {
            return bad("rules_cache_ms", "must be 100..=600000");
        }
        if !(1..=1_000_000).contains(&self.rules_cache_len_max) {
            return bad("rules_cache_len_max", "must be 1..=1000000");
        }
        if !(1..=10_000).contains(&self.words_len_max) {
            return bad("words_len_max", "must be 1..=10000");
        }
        if !(1..=150).contains(&self.word_len_max) {
            return bad("word_len_max", "must be 1..=150");
        }
        if self.message_interval_ms_max > 86_400_000 {
            return bad(
                "message_interval_ms_max",
                "must be at most 86400000 (a day)",
            );
        }
        if self.message_interval_ms_min > self.message_interval_ms_max {
            return bad(
                "message_interval_ms_min",
                "must be at most moderation.message_interval_ms_max",
            );
        }
        if self.message_interval_ms_default > self.message_interval_ms_max {
            return bad(
                "message_interval_ms_default",
                "must be at most moderation.message_interval_ms_max",
            );
        }
        if !(1..=36_500).contains(&self.review_account_age_days_max) {
            return bad("review_account_age_days_max", "must be 1..=36500");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_are_clamped_and_bad_bounds_name_their_key() {
        let c = ModerationConfig {
            message_interval_ms_min: 1000,
            message_interval_ms_default: 5000,
            ..ModerationConfig::default()
        };
        assert_eq!(c.interval_ms(0), 5000);
        assert_eq!(c.interval_ms(10), 1000);
        assert_eq!(c.interval_ms(10_000_000), 60_000);
        assert_eq!(ModerationConfig::default().interval_ms(0), 0);
        let bad = ModerationConfig {
            message_interval_ms_min: 70_000,
            ..ModerationConfig::default()
        };
        assert_eq!(
            bad.validate().unwrap_err().key,
            "moderation.message_interval_ms_min"
        );
        ModerationConfig::default().validate().unwrap();
    }
}
