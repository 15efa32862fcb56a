//! A creator's message rules, compiled, and their verdict on one message.
//!
//! Owns: [`MessageRules`] (the word filter of the creator's muted words
//! plus the built-in lists switched on, the review rules, the message
//! interval) and [`Verdict`]. Order: a matching word filters the message
//! (whatever the review rules say); otherwise a review rule holds it
//! (account age first, then coins); otherwise it passes.
//! Must not: read the ledger (the cache builds rules from its rows).

use super::filter::{builtin, parse_list, Mode, Pattern, WordFilter};
use crate::ledger::message_rules::{ModerationSettings, MutedWordRow};

/// A day, ms.
const DAY_MS: i64 = 86_400_000;

/// What happens to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Shown to everyone.
    Pass,
    /// A muted word matched: nobody but the creator and moderators sees it.
    Filtered {
        /// `word:<the creator's spelling>` or `builtin:<lang>`.
        reason: String,
    },
    /// Held for review: shown once approved.
    Held {
        /// `account_age` or `coins_below`.
        reason: String,
    },
}

impl Verdict {
    /// `filtered` or `held` (None for a pass).
    pub fn state(&self) -> Option<&'static str> {
        match self {
            Verdict::Pass => None,
            Verdict::Filtered { .. } => Some("filtered"),
            Verdict::Held { .. } => Some("held"),
        }
    }

    /// Why it was kept back ("" for a pass).
    pub fn reason(&self) -> &str {
        match self {
            Verdict::Pass => "",
            Verdict::Filtered { reason } | Verdict::Held { reason } => reason,
        }
    }
}

/// A creator's rules, ready to judge messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageRules {
    /// Muted words and the built-in lists switched on.
    pub filter: WordFilter,
    /// Hold messages of accounts younger than this many days.
    pub review_account_age_days: Option<i64>,
    /// Hold messages on gifts or tips under this many coins.
    pub review_coins_below: Option<i64>,
    /// The creator's interval setting (0: the platform default).
    pub message_interval_ms: i64,
}

impl MessageRules {
    /// Compile the stored settings and words.
    pub fn new(settings: Option<&ModerationSettings>, words: &[MutedWordRow]) -> MessageRules {
        let mut patterns: Vec<Pattern> = words
            .iter()
            .filter_map(|w| {
                let mode = Mode::parse(&w.mode).unwrap_or(Mode::Word);
                Pattern::new(&w.original, mode, format!("word:{}", w.original))
            })
            .collect();
        let s = settings.cloned().unwrap_or_default();
        for lang in &s.builtin_langs {
            if let Some(text) = builtin(lang) {
                patterns.extend(parse_list(lang, text));
            }
        }
        MessageRules {
            filter: WordFilter::new(patterns),
            review_account_age_days: s.review_account_age_days,
            review_coins_below: s.review_coins_below,
            message_interval_ms: s.message_interval_ms,
        }
    }

    /// The verdict on `text`, sent with `coins` (a gift's coins; a tip's
    /// amount in cents) by an account created at `account_created_ms`
    /// (None: unknown, which no age rule holds), at `now_ms`.
    pub fn verdict(
        &self,
        text: &str,
        coins: i64,
        account_created_ms: Option<i64>,
        now_ms: i64,
    ) -> Verdict {
        if let Some(p) = self.filter.first_match(text) {
            return Verdict::Filtered {
                reason: p.label.clone(),
            };
        }
        if let (Some(days), Some(created)) = (self.review_account_age_days, account_created_ms) {
            if now_ms - created < days.saturating_mul(DAY_MS) {
                return Verdict::Held {
                    reason: "account_age".into(),
                };
            }
        }
        if self.review_coins_below.is_some_and(|m| coins < m) {
            return Verdict::Held {
                reason: "coins_below".into(),
            };
        }
        Verdict::Pass
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(w: &str, mode: &str) -> MutedWordRow {
        MutedWordRow {
            normalised: super::super::normalise::key(w).text(),
            mode: mode.into(),
            original: w.into(),
        }
    }

    #[test]
    fn words_filter_before_review_holds() {
        let s = ModerationSettings {
            builtin_langs: vec!["fr".into()],
            review_account_age_days: Some(7),
            review_coins_below: Some(10),
            message_interval_ms: 0,
        };
        let r = MessageRules::new(Some(&s), &[row("spoiler", "word"), row("bad", "substring")]);
        let day = DAY_MS;
        let now = 100 * day;
        assert_eq!(
            r.verdict("S P O I L E R!", 1, Some(now), now),
            Verdict::Filtered {
                reason: "word:spoiler".into()
            }
        );
        assert_eq!(r.verdict("badge", 100, None, now).state(), Some("filtered"));
        assert_eq!(r.verdict("putain", 100, None, now).reason(), "builtin:fr");
        assert_eq!(
            r.verdict("hello", 100, Some(now - day), now).reason(),
            "account_age"
        );
        assert_eq!(
            r.verdict("hello", 9, Some(now - 8 * day), now).reason(),
            "coins_below"
        );
        assert_eq!(
            r.verdict("hello", 10, Some(now - 8 * day), now),
            Verdict::Pass
        );
        assert_eq!(r.verdict("hello", 10, None, now), Verdict::Pass);
        assert_eq!(
            MessageRules::default().verdict("putain", 1, Some(now), now),
            Verdict::Pass
        );
    }
}
