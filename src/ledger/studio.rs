//! What a creator's studio reads from the ledger: the history of their
//! gifts, tips and cash-outs (pages under a cursor), their daily earnings
//! and their supporters of all time.
//!
//! Owns: [`StudioLedger`] (a supertrait of [`super::Ledger`], so every
//! ledger answers it), its row types and [`StudioCursor`] (the key of the
//! last row of a page). The SQL is in `super::sql::reads`, written once
//! for both dialects.
//! Must not: write anything, or show unsettled gifts (only what the
//! ledger holds; pending diamonds are the counters engine's).

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Serialize;

use crate::error::Result;
use crate::model::Fiat;

/// The key of the last row of a history page; the next page starts after
/// it (rows are newest first): `(ms, n, key)` = `(ts_ms, seq, target)` for
/// gifts, `(created_ms, 0, payment_intent)` for tips, `(created_ms, 0,
/// cashout_id)` for cash-outs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudioCursor {
    /// Time of the row, ms since the epoch.
    pub ms: i64,
    /// Seq of a gift; 0 otherwise.
    pub n: i64,
    /// Target of a gift, id of a tip or cash-out.
    pub key: String,
}

/// One settled gift to a creator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreatorGift {
    /// Where: `room:ID` or `video:ID`.
    pub target: String,
    /// The target's seq of the gift.
    pub seq: i64,
    /// Who sent it.
    pub sender: String,
    /// Catalog gift id.
    pub gift: String,
    /// Units.
    pub count: i64,
    /// Diamonds the creator earned.
    pub diamonds: i64,
    /// The sender's message (null when none).
    pub message: Option<String>,
    /// Acceptance time, ms since the epoch.
    pub ts: i64,
}

/// One tip to a creator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreatorTip {
    /// The tip's PaymentIntent.
    pub payment_intent: String,
    /// Who tipped.
    pub sender: String,
    /// Where: `room:ID` or `video:ID`.
    pub target: String,
    /// Amount, cents of `currency`.
    pub amount_cents: i64,
    /// The tip's currency (`usd`, `eur`).
    pub currency: Fiat,
    /// The tipper's message (may be empty).
    pub message: String,
    /// `pending` (not paid yet) or `succeeded`.
    pub status: String,
    /// Cents reversed by a refund or dispute.
    pub cents_reversed: i64,
    /// When it was created, ms since the epoch.
    pub created_ms: i64,
}

/// One cash-out of a creator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreatorCashout {
    /// Its id.
    pub cashout_id: String,
    /// Diamonds cashed out.
    pub diamonds: i64,
    /// Their value, cents of `currency`.
    pub amount_cents: i64,
    /// The Transfer's currency (`usd`, `eur`).
    pub currency: Fiat,
    /// `pending`, `completed`, `reversed` or `flagged`.
    pub status: String,
    /// When it was asked for, ms since the epoch.
    pub created_ms: i64,
    /// When it ended (null while pending).
    pub finished_ms: Option<i64>,
}

/// One UTC day of a creator's earnings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DailyEarnings {
    /// Start of the day (UTC), ms since the epoch.
    pub day_ms: i64,
    /// Diamonds of the gifts accepted that day (settled).
    pub diamonds: i64,
    /// USD cents of the tips paid that day (created that day).
    pub tips_cents: i64,
    /// Cents of the tips paid that day, per currency (only those with
    /// tips).
    pub tips: BTreeMap<Fiat, i64>,
}

/// One supporter of a creator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Supporter {
    /// User id.
    pub user: String,
    /// Diamonds they gave the creator (settled gifts).
    pub diamonds: i64,
}

/// A day, ms.
pub const DAY_MS: i64 = 86_400_000;

/// What the ledger answers a creator's studio.
#[async_trait]
pub trait StudioLedger: Send + Sync {
    /// `creator`'s settled gifts newest first, at most `len_max`, after
    /// `after`.
    async fn creator_gifts(
        &self,
        creator: &str,
        len_max: i64,
        after: Option<&StudioCursor>,
    ) -> Result<Vec<CreatorGift>>;

    /// `creator`'s tips newest first (paid and pending), at most
    /// `len_max`, after `after`.
    async fn creator_tips(
        &self,
        creator: &str,
        len_max: i64,
        after: Option<&StudioCursor>,
    ) -> Result<Vec<CreatorTip>>;

    /// `creator`'s cash-outs newest first, at most `len_max`, after
    /// `after`.
    async fn creator_cashouts(
        &self,
        creator: &str,
        len_max: i64,
        after: Option<&StudioCursor>,
    ) -> Result<Vec<CreatorCashout>>;

    /// `creator`'s earnings per UTC day from the day holding `since_ms`
    /// on, oldest first; days without any are left out.
    async fn creator_daily(&self, creator: &str, since_ms: i64) -> Result<Vec<DailyEarnings>>;

    /// `creator`'s `len_max` largest supporters of all time by diamonds.
    async fn creator_supporters(&self, creator: &str, len_max: i64) -> Result<Vec<Supporter>>;
}
