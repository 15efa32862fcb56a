//! The checks a gift or tip message goes through before any money moves,
//! and what is recorded of a kept-back one after.
//!
//! Owns: [`Gate`] (the handles the checks need), [`Gate::check`] (the
//! per-viewer message rate limit in the counters engine, then the
//! creator's rules: pass, filtered or held) and [`Gate::record`] (the
//! kept-back original into `moderated_messages`).
//! Must not: refuse a gift or tip for its words (the money is real: only
//! the message is kept back), or move money.

use rand::Rng;

use super::cache::RulesCache;
use super::rules::Verdict;
use crate::config::ModerationConfig;
use crate::counters::Counters;
use crate::error::{Error, ErrorCode, Result};
use crate::ledger::message_rules::KeptMessage;
use crate::ledger::Ledger;
use crate::model::KeptBack;
use crate::protocol::now_ms;

/// What the message checks reach.
pub struct Gate<'a> {
    /// The platform's bounds.
    pub cfg: &'a ModerationConfig,
    /// Where the rules and kept-back messages are.
    pub ledger: &'a dyn Ledger,
    /// Where the per-viewer message slots are (shared by every node).
    pub counters: &'a dyn Counters,
    /// This node's rules cache.
    pub cache: &'a RulesCache,
}

/// A message that passed the rate limit: kept back or not, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// Set when the rules keep the message back.
    pub kept: Option<KeptBack>,
    /// Why (empty for a pass).
    pub reason: String,
}

/// A fresh message id: `m` and 24 hex digits.
pub fn message_id() -> String {
    let n: u128 = rand::thread_rng().gen();
    format!("m{:024x}", n & ((1u128 << 96) - 1))
}

impl Gate<'_> {
    /// Check `message` of `sender` to `creator`'s target `target_key`
    /// (`room:ID` or `video:ID`), sent with `coins` (a tip: its cents),
    /// from an account created at `account_created_ms` (if known):
    /// `rate_limited` when the sender's last message to this target is
    /// younger than the creator's interval (nothing else happened), else
    /// the verdict.
    pub async fn check(
        &self,
        creator: &str,
        target_key: &str,
        sender: &str,
        message: &str,
        coins: i64,
        account_created_ms: Option<i64>,
    ) -> Result<Checked> {
        let rules = self.cache.get(self.ledger, creator).await?;
        let interval = self.cfg.interval_ms(rules.message_interval_ms);
        if interval > 0 {
            let slot = format!("{target_key}|{sender}");
            if !self.counters.message_slot(&slot, interval).await? {
                metrics::counter!("giftstream_messages_rate_limited_total").increment(1);
                return Err(Error::new(
                    ErrorCode::RateLimited,
                    format!(
                        "one message per {interval} ms in this room; send again later or without a message"
                    ),
                ));
            }
        }
        let verdict = rules.verdict(message, coins, account_created_ms, now_ms());
        let kept = verdict.state().map(|state| {
            metrics::counter!("giftstream_messages_kept_total", "state" => state).increment(1);
            KeptBack {
                id: message_id(),
                state: state.to_string(),
            }
        });
        debug_assert_eq!(kept.is_some(), verdict != Verdict::Pass);
        Ok(Checked {
            reason: verdict.reason().to_string(),
            kept,
        })
    }

    /// Keep the original of a kept-back message (once per id).
    pub async fn record(&self, message: &KeptMessage) -> Result<()> {
        self.ledger.message_kept(message).await
    }
}
