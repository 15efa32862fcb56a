//! What the ledger keeps of a creator's message rules (issue 17): the
//! review and rate settings, the muted words, the messages the filter or
//! the review rules kept back and their decisions, each write with its
//! `moderation_audit` row in the same transaction.
//!
//! Owns: [`MessageRulesLedger`] (a supertrait of [`super::Ledger`], so
//! every ledger answers it) and its row types. The SQL is in
//! `super::sql::message_rules`, written once for both dialects.
//! Must not: normalise or match text (`crate::moderation` does and hands
//! in the normalised key), or publish anything.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// A creator's message rules as stored (`creator_moderation_settings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ModerationSettings {
    /// The built-in word lists switched on (`en`, `fr`).
    pub builtin_langs: Vec<String>,
    /// Hold messages of accounts younger than this many days (None: off).
    pub review_account_age_days: Option<i64>,
    /// Hold messages on gifts or tips under this many coins (None: off).
    pub review_coins_below: Option<i64>,
    /// At most one message per viewer per room in this many ms (0: the
    /// platform default).
    pub message_interval_ms: i64,
}

/// One muted word or phrase as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MutedWordRow {
    /// Its match key (`crate::moderation::normalise`).
    pub normalised: String,
    /// `word` or `substring`.
    pub mode: String,
    /// The creator's spelling.
    pub original: String,
}

/// A message kept back, to insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptMessage {
    /// Its id (the wire's `message_id`).
    pub id: String,
    /// The creator it was sent to.
    pub creator: String,
    /// `gift` or `tip`.
    pub kind: String,
    /// `room:ID` or `video:ID`.
    pub target: String,
    /// The gift's seq (None for a tip).
    pub seq: Option<i64>,
    /// The tip's PaymentIntent (None for a gift).
    pub reference: Option<String>,
    /// Who sent it.
    pub sender: String,
    /// The original text.
    pub message: String,
    /// `filtered` or `held`.
    pub state: String,
    /// Why (`word:...`, `builtin:en`, `account_age`, `coins_below`).
    pub reason: String,
}

/// A kept-back message as the review queue shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ModeratedMessage {
    /// Its id.
    pub id: String,
    /// `gift` or `tip`.
    pub kind: String,
    /// `room:ID` or `video:ID`.
    pub target: String,
    /// The gift's seq (null for a tip).
    pub seq: Option<i64>,
    /// Who sent it.
    pub sender: String,
    /// The original text.
    pub message: String,
    /// `filtered`, `held`, `approved` or `rejected`.
    pub state: String,
    /// Why it was kept back.
    pub reason: String,
    /// When, ms since the epoch.
    pub created_ms: i64,
    /// Who approved or rejected it.
    pub decided_by: Option<String>,
    /// When, ms since the epoch.
    pub decided_ms: Option<i64>,
    /// The tip's PaymentIntent (not on the wire).
    #[serde(skip)]
    #[sqlx(rename = "ref")]
    pub reference: Option<String>,
}

/// The key of the last row of a messages page (newest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagesCursor {
    /// Its `created_ms`.
    pub created_ms: i64,
    /// Its id.
    pub id: String,
}

/// What deciding a held message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decided {
    /// It was held and is now decided (by this call): publish if approved.
    Now(ModeratedMessage),
    /// It already was in the asked state: nothing changed.
    Already(ModeratedMessage),
    /// It is in another state (filtered, or decided the other way).
    Other(ModeratedMessage),
    /// No such message of this creator.
    Missing,
}

/// The message rules and the review queue in the ledger.
#[async_trait]
pub trait MessageRulesLedger: Send + Sync {
    /// `creator`'s settings (None: never set).
    async fn moderation_settings(&self, creator: &str) -> Result<Option<ModerationSettings>>;

    /// Replace `creator`'s settings; audit `settings_set` by `actor`.
    async fn moderation_settings_set(
        &self,
        creator: &str,
        actor: &str,
        settings: &ModerationSettings,
    ) -> Result<()>;

    /// `creator`'s muted words, in the order they were set.
    async fn muted_words(&self, creator: &str) -> Result<Vec<MutedWordRow>>;

    /// Replace `creator`'s muted words; audit `words_set` by `actor`.
    async fn muted_words_set(
        &self,
        creator: &str,
        actor: &str,
        words: &[MutedWordRow],
    ) -> Result<()>;

    /// Record a kept-back message (once per id).
    async fn message_kept(&self, message: &KeptMessage) -> Result<()>;

    /// The kept-back message of a tip (by its PaymentIntent).
    async fn kept_message_of(&self, reference: &str) -> Result<Option<ModeratedMessage>>;

    /// `creator`'s kept-back messages newest first, of `state` if given,
    /// at most `len_max`, after `after`. A tip's message is listed once
    /// the tip is paid.
    async fn kept_messages(
        &self,
        creator: &str,
        state: Option<&str>,
        len_max: i64,
        after: Option<&MessagesCursor>,
    ) -> Result<Vec<ModeratedMessage>>;

    /// Approve (or reject) held message `id` of `creator`, by `actor`; the
    /// state change and its audit row in one transaction, only while it is
    /// held (so one caller ever sees [`Decided::Now`]).
    async fn message_decide(
        &self,
        creator: &str,
        id: &str,
        actor: &str,
        approve: bool,
    ) -> Result<Decided>;
}
