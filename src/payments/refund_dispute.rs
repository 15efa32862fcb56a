//! Refunds and disputes of coin purchases, and the parking of those that
//! arrive before their purchase.
//!
//! Owns: reversing a purchase's coin share (the wallet first, the rest a
//! debt), a won dispute's credit back, and the parked reversals.
//! Must not: make a wallet negative; touch tips (see `tip`).

use crate::error::{Error, Result};
use crate::ledger::{DisputeOp, EarlyReversal, OpKey, RefundOp, StripeEventRef};

use super::webhook::{ChargeFacts, DisputeFacts};

use super::{
    outcome::coin_share, outcome::credit_rest, outcome::ignored, outcome::WebhookOutcome,
    tip::tip_dispute_won, tip::tip_disputed, tip::tip_refunded, Payments,
};

/// A refund or dispute of a purchase whose `payment_intent.succeeded` has
/// not arrived yet (Stripe does not order events): parked in the ledger,
/// applied when the purchase is paid.
pub(super) async fn park(
    state: &Payments<'_>,
    ev: &StripeEventRef,
    pi: &str,
    facts: serde_json::Value,
) -> Result<WebhookOutcome> {
    let parked = state
        .ledger
        .park_reversal(&EarlyReversal {
            event: ev.clone(),
            payment_intent: pi.to_string(),
            facts: facts.to_string(),
        })
        .await?;
    if parked {
        tracing::info!(payment_intent = pi, event = %ev.id, kind = %ev.kind, "reversal before its purchase was paid: parked");
        metrics::counter!("giftstream_stripe_reversals_parked_total").increment(1);
    }
    Ok(WebhookOutcome::Ignored)
}

/// Apply the reversals parked for a purchase now paid, each under its own
/// event id (once: the ledger drops the parked row with the event's
/// effect, and a redelivered `payment_intent.succeeded` applies what is
/// left).
pub(super) async fn apply_parked(state: &Payments<'_>, pi: &str) -> Result<()> {
    for r in state.ledger.parked_reversals(pi).await? {
        let facts: serde_json::Value = serde_json::from_str(&r.facts).map_err(Error::internal)?;
        let int = |k: &str| facts.get(k).and_then(serde_json::Value::as_i64);
        let outcome = if r.event.kind == "charge.refunded" {
            let charge = ChargeFacts {
                payment_intent: Some(pi.to_string()),
                amount_refunded: int("amount_refunded"),
                transfer: None,
            };
            refunded(state, &r.event, &charge).await?
        } else {
            let d = DisputeFacts {
                id: facts.get("id").and_then(|v| v.as_str()).map(str::to_string),
                amount: int("amount"),
                payment_intent: Some(pi.to_string()),
                status: None,
            };
            dispute_withdrawn(state, &r.event, &d).await?
        };
        tracing::info!(payment_intent = pi, event = %r.event.id, ?outcome, "parked reversal applied");
    }
    Ok(())
}

/// `charge.refunded` of a purchase: reverse the refunded share of its
/// coins. The counters engine takes what the wallet still holds (it is the
/// real-time authority, as for gifts); the ledger records that and a debt
/// for the rest — never a negative wallet.
pub(super) async fn refunded(
    state: &Payments<'_>,
    ev: &StripeEventRef,
    charge: &ChargeFacts,
) -> Result<WebhookOutcome> {
    let Some(pi) = charge.payment_intent.as_deref() else {
        return Ok(WebhookOutcome::Ignored);
    };
    let total = charge
        .amount_refunded
        .ok_or_else(|| Error::bad_request("charge.amount_refunded"))?;
    let Some(rec) = state.ledger.purchase_record(pi).await? else {
        // Not a coin purchase: a tip's refund, or not ours.
        return tip_refunded(state, ev, pi, total, charge.transfer.as_deref()).await;
    };
    if !rec.paid {
        return park(
            state,
            ev,
            pi,
            serde_json::json!({ "amount_refunded": total }),
        )
        .await;
    }
    let total = total.clamp(0, rec.amount_cents);
    if total <= rec.cents_refunded {
        state.ledger.record_stripe_event(ev).await?;
        return Ok(WebhookOutcome::Replayed);
    }
    // Coins for the refunded share, rounded down; a full refund reverses all.
    let coins_reversed = (coin_share(&rec, total) - rec.coins_reversed).max(0);
    let op_id = OpKey::Refund(pi, total).op_id();
    let taken = state
        .counters
        .debit_up_to(&rec.user, coins_reversed, &op_id)
        .await?;
    let op = RefundOp {
        event: ev.clone(),
        payment_intent: pi.to_string(),
        cents_refunded_total: total,
        coins_reversed,
        coins_taken: taken,
    };
    if coins_reversed > taken {
        tracing::warn!(user = %rec.user, debt = coins_reversed - taken, "refund of coins already spent: recorded as a debt");
    }
    Ok(WebhookOutcome::applied_if(state.ledger.refund(&op).await?))
}

/// `charge.dispute.funds_withdrawn` of a purchase (a chargeback): Stripe
/// took the disputed amount back, so its share of the coins is reversed as
/// a refund's is — what the wallet still holds (counters first, they are
/// the real-time authority), the rest a debt. Op `dispute:{dp}`.
pub(super) async fn dispute_withdrawn(
    state: &Payments<'_>,
    ev: &StripeEventRef,
    dispute: &DisputeFacts,
) -> Result<WebhookOutcome> {
    let id = dispute
        .id
        .as_deref()
        .ok_or_else(|| Error::bad_request("dispute.id"))?;
    let amount = dispute
        .amount
        .ok_or_else(|| Error::bad_request("dispute.amount"))?;
    let rec = match dispute.payment_intent.as_deref() {
        Some(pi) => state.ledger.purchase_record(pi).await?.map(|r| (pi, r)),
        None => None,
    };
    let Some((pi, rec)) = rec else {
        // Not a coin purchase: a tip's chargeback, or not ours.
        return match dispute.payment_intent.as_deref() {
            Some(pi) => tip_disputed(state, ev, pi, id, amount).await,
            None => ignored(state, ev).await,
        };
    };
    if !rec.paid {
        return park(
            state,
            ev,
            pi,
            serde_json::json!({ "id": id, "amount": amount }),
        )
        .await;
    }
    if state.ledger.dispute_record(id).await?.is_some() {
        state.ledger.record_stripe_event(ev).await?;
        return Ok(WebhookOutcome::Replayed);
    }
    let cents = amount.clamp(0, rec.amount_cents);
    // What refunds already took back is not taken twice.
    let coins_reversed = coin_share(&rec, cents)
        .min(rec.coins - rec.coins_reversed)
        .max(0);
    let op_id = OpKey::Dispute(id).op_id();
    let taken = state
        .counters
        .debit_up_to(&rec.user, coins_reversed, &op_id)
        .await?;
    if coins_reversed > taken {
        tracing::warn!(user = %rec.user, debt = coins_reversed - taken, dispute = id, "chargeback of coins already spent: recorded as a debt");
    }
    let op = DisputeOp {
        event: ev.clone(),
        dispute_id: id.to_string(),
        payment_intent: pi.to_string(),
        cents,
        coins_reversed,
        coins_taken: taken,
    };
    Ok(WebhookOutcome::applied_if(
        state.ledger.dispute_withdrawn(&op).await?,
    ))
}

/// `charge.dispute.funds_reinstated`: the platform won the dispute, the
/// cents are back; the coins go back to the buyer, repaying a debt first
/// (ledger first, then the wallet under op `dispute:{dp}:reinstated`, so a
/// redelivery after a crash between the two completes the credit).
pub(super) async fn dispute_reinstated(
    state: &Payments<'_>,
    ev: &StripeEventRef,
    dispute: &DisputeFacts,
) -> Result<WebhookOutcome> {
    let id = dispute
        .id
        .as_deref()
        .ok_or_else(|| Error::bad_request("dispute.id"))?;
    if let Some(pi) = dispute.payment_intent.as_deref() {
        if let Some(amounts) = state.ledger.tip_dispute_amounts(id).await? {
            return tip_dispute_won(state, ev, pi, id, amounts).await;
        }
    }
    let applied = state.ledger.dispute_reinstated(ev, id).await?;
    let Some(rec) = state.ledger.dispute_record(id).await? else {
        state.ledger.record_stripe_event(ev).await?;
        return Ok(WebhookOutcome::Ignored);
    };
    if !rec.reinstated {
        return Ok(WebhookOutcome::Ignored);
    }
    let coins = rec.coins_reversed - rec.coins_to_debt;
    credit_rest(
        state,
        &rec.user,
        coins,
        &OpKey::DisputeReinstated(id).op_id(),
    )
    .await?;
    Ok(WebhookOutcome::applied_if(applied))
}
