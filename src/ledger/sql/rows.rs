//! Rows as the SQL flows read them (`#[derive(sqlx::FromRow)]`, by column
//! name), and their conversion to the ledger's records.
//!
//! Owns: the mapping of columns to fields and the range checks of stored
//! values. Must not: hold SQL text beyond the column lists.

use super::to_u64;
use crate::ledger::error::{LedgerError, LedgerResult};
use crate::ledger::rules::DisputeStatus;
use crate::ledger::{DisputeRecord, EarlyReversal, PurchaseRecord, StripeEventRef};
use crate::model::{Fiat, PendingGift};

/// The columns of [`GiftRow`].
pub(super) const GIFT_COLUMNS: &str =
    "target, seq, sender, client_id, creator, gift, count, coins, diamonds, balance_after, ts_ms";

/// A `gifts` row.
#[derive(sqlx::FromRow)]
pub(super) struct GiftRow {
    target: String,
    seq: i64,
    sender: String,
    client_id: String,
    creator: String,
    gift: String,
    count: i64,
    coins: i64,
    diamonds: i64,
    balance_after: i64,
    ts_ms: i64,
}

impl TryFrom<GiftRow> for PendingGift {
    type Error = LedgerError;
    fn try_from(r: GiftRow) -> LedgerResult<PendingGift> {
        Ok(PendingGift {
            target: r.target,
            seq: to_u64(r.seq, "seq")?,
            sender: r.sender,
            client_id: r.client_id,
            creator: r.creator,
            gift: r.gift,
            count: u32::try_from(r.count)
                .map_err(|_| LedgerError::invariant("gift count out of range"))?,
            coins: r.coins,
            diamonds: r.diamonds,
            balance_after: r.balance_after,
            ts: r.ts_ms,
            message: None,
        })
    }
}

/// A room or video with the highest seq of its gifts.
#[derive(sqlx::FromRow)]
pub(super) struct TargetRow {
    /// `room:ID` or `video:ID`.
    pub key: String,
    pub creator: String,
    pub live: bool,
    pub max_seq: Option<i64>,
}

/// A `purchases` row.
#[derive(sqlx::FromRow)]
pub(super) struct PurchaseRow {
    buyer: String,
    coins: i64,
    amount_cents: i64,
    coins_reversed: i64,
    cents_refunded: i64,
    paid: bool,
    coins_to_debt: i64,
    #[sqlx(try_from = "String")]
    currency: Fiat,
}

impl From<PurchaseRow> for PurchaseRecord {
    fn from(r: PurchaseRow) -> Self {
        PurchaseRecord {
            user: r.buyer,
            coins: r.coins,
            amount_cents: r.amount_cents,
            coins_reversed: r.coins_reversed,
            cents_refunded: r.cents_refunded,
            paid: r.paid,
            coins_to_debt: r.coins_to_debt,
            currency: r.currency,
        }
    }
}

/// A dispute joined with its purchase's buyer.
#[derive(sqlx::FromRow)]
pub(super) struct DisputeRow {
    pub payment_intent: String,
    pub buyer: String,
    pub cents: i64,
    pub coins_reversed: i64,
    pub status: String,
    pub coins_to_debt: i64,
    /// The purchase's currency.
    #[sqlx(try_from = "String")]
    pub currency: Fiat,
}

impl From<DisputeRow> for DisputeRecord {
    fn from(r: DisputeRow) -> Self {
        DisputeRecord {
            payment_intent: r.payment_intent,
            user: r.buyer,
            cents: r.cents,
            coins_reversed: r.coins_reversed,
            reinstated: DisputeStatus::parse(&r.status) == DisputeStatus::Reinstated,
            coins_to_debt: r.coins_to_debt,
        }
    }
}

/// An `early_reversals` row.
#[derive(sqlx::FromRow)]
pub(super) struct EarlyReversalRow {
    event_id: String,
    #[sqlx(rename = "type")]
    kind: String,
    payment_intent: String,
    facts: String,
}

impl From<EarlyReversalRow> for EarlyReversal {
    fn from(r: EarlyReversalRow) -> Self {
        EarlyReversal {
            event: StripeEventRef {
                id: r.event_id,
                kind: r.kind,
            },
            payment_intent: r.payment_intent,
            facts: r.facts,
        }
    }
}

/// The columns of [`crate::ledger::CashoutRecord`] (its `FromRow`).
pub(super) const CASHOUT_COLUMNS: &str = "cashout_id, creator, diamonds, amount_cents, status, transfer, transfer_key, transfer_group, attempt, attempt_ms, failures, next_try_ms, currency";

/// The columns of [`crate::ledger::TipRecord`] (its `FromRow`).
pub(super) const TIP_COLUMNS: &str =
    "payment_intent, tip_key, sender, creator, target, amount_cents, message, currency";

/// A tip with its Transfer and reversals.
#[derive(sqlx::FromRow)]
pub(super) struct TipFullRow {
    #[sqlx(flatten)]
    pub tip: crate::ledger::TipRecord,
    pub transfer: Option<String>,
    pub cents_reversed: i64,
    pub cents_recovered: i64,
}

/// An entry's account and amount.
#[derive(sqlx::FromRow)]
pub(super) struct EntryRow {
    pub account: String,
    pub amount: i64,
}

/// An entry's account, amount and currency.
#[derive(sqlx::FromRow)]
pub(super) struct FiatEntryRow {
    pub account: String,
    pub amount: i64,
    #[sqlx(try_from = "String")]
    pub currency: Fiat,
}

/// Entries as (account, amount) pairs, as the postings read them.
pub(super) fn entry_pairs(rows: Vec<EntryRow>) -> Vec<(String, i64)> {
    rows.into_iter().map(|e| (e.account, e.amount)).collect()
}
