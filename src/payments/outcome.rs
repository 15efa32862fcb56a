//! What every payment flow answers a webhook event with, and the small
//! steps the coin flows share (a purchase's coin share, the wallet credit
//! after the ledger).
//!
//! Owns: [`WebhookOutcome`], [`ignored`], [`coin_share`], [`credit_rest`].
//! Must not: dispatch events (`events` does) or hold a flow.

use serde::Serialize;

use crate::error::Result;
use crate::ledger::{PurchaseRecord, StripeEventRef};

use super::Payments;

/// What the webhook did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookOutcome {
    /// Its effect was applied now.
    Applied,
    /// Already applied (a replay): nothing changed.
    Replayed,
    /// Acknowledged, no effect (unknown type, or not ours).
    Ignored,
}

impl WebhookOutcome {
    /// Applied now, or a replay.
    pub(super) fn applied_if(applied: bool) -> WebhookOutcome {
        if applied {
            WebhookOutcome::Applied
        } else {
            WebhookOutcome::Replayed
        }
    }
}

/// Acknowledge an event with no effect (recorded once).
pub(super) async fn ignored(state: &Payments<'_>, ev: &StripeEventRef) -> Result<WebhookOutcome> {
    Ok(if state.ledger.record_stripe_event(ev).await? {
        WebhookOutcome::Ignored
    } else {
        WebhookOutcome::Replayed
    })
}

/// The coins a purchase's `cents` (of its price) stand for, rounded down;
/// the whole price is all its coins.
pub(super) fn coin_share(rec: &PurchaseRecord, cents: i64) -> i64 {
    if cents >= rec.amount_cents {
        rec.coins
    } else {
        ((rec.coins as i128 * cents.max(0) as i128) / rec.amount_cents as i128) as i64
    }
}

/// Credit the wallet with what the ledger decided (after a debt took its
/// part), under `op_id`: idempotent, so a redelivered event after a crash
/// between ledger and counters completes it.
pub(super) async fn credit_rest(
    state: &Payments<'_>,
    user: &str,
    coins: i64,
    op_id: &str,
) -> Result<()> {
    if coins > 0 {
        state.counters.credit(user, coins, op_id).await?;
    }
    Ok(())
}
