//! Tips: destination charges to a creator, and taking the creator's part
//! back when the platform pays a tip's refund or chargeback.
//!
//! Owns: [`create_tip`], the paid tip's posting and room event, and the
//! Transfer reversals (and their undoing when a dispute is won).
//! Must not: call Stripe without an Idempotency-Key where a retry could
//! move money twice.

use serde::Serialize;

use crate::auth::Identity;
use crate::error::{Error, ErrorCode, Result};
use crate::ledger::{OpKey, StripeEventRef, TipRecord, TipReversalOp};
use crate::model::{Target, TargetKind};
use crate::protocol::{now_ms, valid_client_id, ServerMsg};

use super::stripe::{
    currency, CreateIdTransferReversal, CreatePaymentIntent, CreatePaymentIntentTransferData,
    CreateTransfer, PaymentIntentAllowedPaymentMethodTypes, StripeError,
};
use super::webhook::{ChargeFacts, PaymentIntentFacts};

use super::{
    client, metadata, outcome::ignored, outcome::WebhookOutcome, stripe_failed, PaymentError,
    Payments, META_KIND,
};

/// `charge.succeeded`: a tip's destination charge names its Transfer,
/// recorded for a later refund or dispute (which reverses it).
pub(super) async fn charge_succeeded(
    state: &Payments<'_>,
    ev: &StripeEventRef,
    charge: &ChargeFacts,
) -> Result<WebhookOutcome> {
    if let (Some(pi), Some(tr)) = (charge.payment_intent.as_deref(), charge.transfer.as_deref()) {
        state.ledger.tip_transfer(pi, tr).await?;
    }
    ignored(state, ev).await
}

/// Take `cents` of a tip back from the creator's connected account: a
/// Transfer Reversal (Idempotency-Key `key`) for what Stripe has not
/// reversed already (a refund made with `reverse_transfer`). Answers the
/// cents recovered; 0 when there is no Transfer or Stripe refuses (the
/// creator's balance cannot cover it): the platform's loss.
pub(super) async fn reverse_tip_transfer(
    state: &Payments<'_>,
    transfer: Option<&str>,
    recovered_before: i64,
    cents: i64,
    key: &str,
) -> Result<i64> {
    let (Some(tr), Ok(c)) = (transfer, client(state)) else {
        tracing::warn!(
            key,
            "tip reversal without a known Transfer: the platform's loss"
        );
        return Ok(0);
    };
    let t = match c.retrieve_transfer(tr).await {
        Ok(t) => t,
        Err(StripeError::Refused { message, kind, .. }) => {
            tracing::warn!(transfer = tr, %kind, %message, "tip transfer not found: the platform's loss");
            return Ok(0);
        }
        Err(e @ StripeError::Unknown(_)) => {
            // Stripe redelivers the event: the retry asks again.
            return Err(PaymentError::StripeUnknown(e).into());
        }
    };
    // What Stripe reversed with the refund itself and we have not counted.
    let by_refund = (t.amount_reversed - recovered_before).clamp(0, cents);
    let ask = cents - by_refund;
    if ask == 0 {
        return Ok(cents);
    }
    let req = CreateIdTransferReversal::new(tr)
        .amount(ask)
        .metadata(metadata([("giftstream_reversal", key.to_string())]));
    match c.create_transfer_reversal(&req, key).await {
        Ok(r) => Ok(by_refund + r.amount.clamp(0, ask)),
        Err(StripeError::Refused { message, kind, .. }) => {
            tracing::warn!(transfer = tr, %kind, %message, "tip transfer reversal refused: the platform's loss");
            metrics::counter!("giftstream_tip_reversals_refused_total").increment(1);
            Ok(by_refund)
        }
        Err(e @ StripeError::Unknown(_)) => Err(PaymentError::StripeUnknown(e).into()),
    }
}

/// `charge.refunded` of a tip (a destination charge: the platform pays the
/// refund): reverse the creator's Transfer for the refunded part, record
/// it (op `tip_refund:{pi}:{total}`).
pub(super) async fn tip_refunded(
    state: &Payments<'_>,
    ev: &StripeEventRef,
    pi: &str,
    total: i64,
    transfer: Option<&str>,
) -> Result<WebhookOutcome> {
    let Some((tip, known, reversed)) = tip_reversible(state, pi, transfer).await? else {
        return ignored(state, ev).await;
    };
    let total = total.clamp(0, tip.amount_cents);
    let cents = total - reversed;
    if cents <= 0 || state.ledger.stripe_event_seen(&ev.id).await? {
        return ignored(state, ev).await;
    }
    let op_id = OpKey::TipRefund(pi, total).op_id();
    let recovered = reverse_tip_transfer(state, known.0.as_deref(), known.1, cents, &op_id).await?;
    let op = TipReversalOp {
        event: ev.clone(),
        payment_intent: pi.to_string(),
        op_id,
        cents,
        recovered,
    };
    Ok(WebhookOutcome::applied_if(
        state.ledger.tip_reversed(&op).await?,
    ))
}

/// `charge.dispute.funds_withdrawn` of a tip: as a refund (op
/// `tip_dispute:{dp}`).
pub(super) async fn tip_disputed(
    state: &Payments<'_>,
    ev: &StripeEventRef,
    pi: &str,
    dispute_id: &str,
    amount: i64,
) -> Result<WebhookOutcome> {
    let Some((tip, known, reversed)) = tip_reversible(state, pi, None).await? else {
        return ignored(state, ev).await;
    };
    let cents = amount.clamp(0, tip.amount_cents - reversed);
    if cents <= 0 || state.ledger.stripe_event_seen(&ev.id).await? {
        return ignored(state, ev).await;
    }
    let op_id = OpKey::TipDispute(dispute_id).op_id();
    let recovered = reverse_tip_transfer(state, known.0.as_deref(), known.1, cents, &op_id).await?;
    let op = TipReversalOp {
        event: ev.clone(),
        payment_intent: pi.to_string(),
        op_id,
        cents,
        recovered,
    };
    Ok(WebhookOutcome::applied_if(
        state.ledger.tip_reversed(&op).await?,
    ))
}

/// A succeeded tip's record, its Transfer (recorded, or named by this
/// event) with the cents already recovered, and the cents reversed so far.
pub(super) async fn tip_reversible(
    state: &Payments<'_>,
    pi: &str,
    transfer: Option<&str>,
) -> Result<Option<(TipRecord, (Option<String>, i64), i64)>> {
    let Some((tip, recorded, reversed, recovered)) = state.ledger.tip_record(pi).await? else {
        return Ok(None);
    };
    if let (None, Some(tr)) = (&recorded, transfer) {
        state.ledger.tip_transfer(pi, tr).await?;
    }
    let tr = recorded.or_else(|| transfer.map(str::to_string));
    Ok(Some((tip, (tr, recovered), reversed)))
}

/// `charge.dispute.funds_reinstated` of a tip: the platform won, the cents
/// are back. What the reversal took from the creator goes back to them by a
/// Transfer (Idempotency-Key `tip_dispute:{dp}:reinstated`), then the
/// ledger undoes the withdrawal (its loss always; the creator's part when
/// repaid).
pub(super) async fn tip_dispute_won(
    state: &Payments<'_>,
    ev: &StripeEventRef,
    pi: &str,
    dispute_id: &str,
    (_, recovered): (i64, i64),
) -> Result<WebhookOutcome> {
    if state.ledger.stripe_event_seen(&ev.id).await? {
        return Ok(WebhookOutcome::Replayed);
    }
    let key = OpKey::TipDisputeReinstated(dispute_id).op_id();
    let mut repaid = true;
    if recovered > 0 {
        let tip = state.ledger.tip_record(pi).await?.map(|t| t.0);
        let acct = match &tip {
            Some(t) => state.ledger.payout_account(&t.creator).await?,
            None => None,
        };
        // The tip's own currency (its accounts took the reversal).
        let fiat = tip.map_or(crate::model::Fiat::Usd, |t| t.currency);
        repaid = match (acct, client(state)) {
            (Some(a), Ok(c)) => {
                let req = CreateTransfer::new(currency(fiat.lower()), &a.account)
                    .amount(recovered)
                    .metadata(metadata([(
                        "giftstream_tip_dispute",
                        dispute_id.to_string(),
                    )]));
                match c.create_transfer(&req, &key).await {
                    Ok(_) => true,
                    Err(StripeError::Refused { message, kind, .. }) => {
                        tracing::warn!(dispute = dispute_id, %kind, %message, "won tip dispute: the creator's share could not be transferred back");
                        false
                    }
                    Err(e @ StripeError::Unknown(_)) => {
                        return Err(PaymentError::StripeUnknown(e).into())
                    }
                }
            }
            _ => false,
        };
    }
    Ok(WebhookOutcome::applied_if(
        state
            .ledger
            .tip_dispute_reinstated(ev, pi, dispute_id, repaid)
            .await?,
    ))
}

/// A tip was paid: ledger posting once, then the room's `tip_event` (and
/// the same message in the creator's inbox).
pub(super) async fn tip_paid(
    state: &Payments<'_>,
    ev: &StripeEventRef,
    pi: &PaymentIntentFacts,
) -> Result<WebhookOutcome> {
    let id = pi
        .id
        .as_deref()
        .ok_or_else(|| Error::bad_request("payment_intent.id"))?;
    let Some(tip) = state.ledger.tip_succeeded(ev, id).await? else {
        return Ok(WebhookOutcome::Replayed);
    };
    if let Some(Target {
        kind: TargetKind::Room,
        id: room,
    }) = Target::from_key(&tip.target)
    {
        // A message the creator's rules kept back (stored aside, none in
        // the tip's row): the room gets its state and id, the inbox the
        // original too.
        let kept = if tip.message.is_empty() {
            state.ledger.kept_message_of(id).await.unwrap_or_else(|e| {
                tracing::warn!(room, error = %e.report(), "kept-back tip message not read");
                None
            })
        } else {
            None
        };
        let ts = now_ms();
        let event = |message: Option<String>| ServerMsg::TipEvent {
            room: room.clone(),
            sender: tip.sender.clone(),
            amount_cents: tip.amount_cents,
            currency: tip.currency.lower().to_string(),
            message,
            ts,
            message_state: kept.as_ref().map(|k| k.state.clone()),
            message_id: kept.as_ref().map(|k| k.id.clone()),
        };
        let msg = match &kept {
            Some(_) => event(None),
            None => event(Some(tip.message.clone())),
        };
        let inbox_msg = match &kept {
            Some(k) => event(Some(k.message.clone())),
            None => msg.clone(),
        };
        let topic = crate::relay::Topic::room(room.as_str());
        if let Err(e) = state.relay.publish(&topic, &msg).await {
            // The tip is in the ledger; the animation is best-effort.
            tracing::warn!(room, error = %e.report(), "tip_event not published");
        }
        // The creator's inbox: once per tip (this runs once per ledger
        // posting; a webhook replay is answered above).
        if let Err(e) = state.relay.publish_inbox(&tip.creator, &inbox_msg).await {
            tracing::warn!(room, error = %e.report(), "tip_event not put in the inbox");
        }
    }
    Ok(WebhookOutcome::Applied)
}

/// A tip request.
#[derive(Debug, Clone)]
pub struct TipRequest {
    /// Cents.
    pub amount_cents: i64,
    /// Currency, lower case: one of `stripe.currencies` (empty: the
    /// default, `stripe.currency`).
    pub currency: String,
    /// Message shown in the room.
    pub message: String,
    /// Client id (idempotency).
    pub id: String,
    /// Set when the creator's rules kept the message back (checked by the
    /// caller, `crate::moderation::gate`): the tip's row keeps no message,
    /// the original is recorded aside under this id, with `reason`.
    pub kept: Option<(crate::model::KeptBack, String)>,
}

/// Answer to a tip: the client confirms the payment with Stripe.js.
#[derive(Debug, Clone, Serialize)]
pub struct TipAnswer {
    /// Client id.
    pub id: String,
    /// `pi_...` (a destination charge to the creator's account).
    pub payment_intent: String,
    /// For Stripe.js.
    pub client_secret: String,
    /// Cents; all of it reaches the creator.
    pub amount_cents: i64,
    /// Currency.
    pub currency: String,
    /// Receiving creator.
    pub creator: String,
}

/// `POST /v1/rooms/{room}/tips` and `/v1/videos/{video}/tips`: a
/// destination charge with no application fee; the `tip_event` and the
/// ledger posting follow its `payment_intent.succeeded`.
pub async fn create_tip(
    state: &Payments<'_>,
    who: &Identity,
    target: Target,
    req: TipRequest,
) -> Result<TipAnswer> {
    let c = client(state)?;
    let cfg = &state.cfg.stripe;
    if !valid_client_id(&req.id) {
        return Err(Error::bad_request("id must be 1..=64 characters"));
    }
    if !(cfg.tip_cents_min..=cfg.tip_cents_max).contains(&req.amount_cents) {
        return Err(Error::bad_request(format!(
            "amount_cents must be {}..={}",
            cfg.tip_cents_min, cfg.tip_cents_max
        )));
    }
    // No currency: the default one; else one of `stripe.currencies`.
    let code = if req.currency.is_empty() {
        cfg.currency.as_str()
    } else {
        req.currency.as_str()
    };
    let fiat = crate::model::Fiat::parse(code)
        .filter(|f| cfg.currencies.iter().any(|c| c == f.lower()))
        .ok_or_else(|| {
            Error::bad_request(format!("currency must be one of {:?}", cfg.currencies))
        })?;
    if req.message.chars().count() > cfg.tip_message_len_max {
        return Err(Error::bad_request(format!(
            "message must be at most {} characters",
            cfg.tip_message_len_max
        )));
    }
    if req.message.chars().any(char::is_control) {
        return Err(Error::bad_request(
            "message must not hold control characters",
        ));
    }
    let rec = state
        .ledger
        .target(&target)
        .await?
        .ok_or_else(|| match target.kind {
            TargetKind::Room => {
                Error::new(ErrorCode::UnknownRoom, format!("no room `{}`", target.id))
            }
            TargetKind::Video => {
                Error::new(ErrorCode::UnknownVideo, format!("no video `{}`", target.id))
            }
        })?;
    if !rec.live {
        return Err(Error::new(
            ErrorCode::RoomNotLive,
            format!("room `{}` is not live", target.id),
        ));
    }
    if rec.creator == who.user {
        return Err(PaymentError::SelfTip.into());
    }
    if state.counters.is_blocked(&rec.creator, &who.user).await? {
        return Err(Error::forbidden(format!(
            "the creator blocked you: no tips to {} `{}`",
            target.topic().field(),
            target.id
        )));
    }
    let acct = state
        .ledger
        .payout_account(&rec.creator)
        .await?
        .filter(|a| a.payouts_enabled)
        .ok_or(PaymentError::CreatorNotPayable)?;
    // A user name holds no `:` (auth checks `valid_name`): one key per
    // (user, id).
    let tip_key = format!("{}:{}", who.user, req.id);
    let pi_req = CreatePaymentIntent::new(req.amount_cents, currency(fiat.lower()))
        .allowed_payment_method_types(vec![PaymentIntentAllowedPaymentMethodTypes::Card])
        .transfer_data(CreatePaymentIntentTransferData::new(&acct.account))
        .metadata(metadata([
            (META_KIND, "tip".to_string()),
            ("giftstream_tip", tip_key.clone()),
            ("giftstream_target", target.key()),
        ]));
    let pi = c
        .create_payment_intent(&pi_req, &format!("tip:{tip_key}"))
        .await
        .map_err(stripe_failed)?;
    state
        .ledger
        .tip_created(&TipRecord {
            payment_intent: pi.id.as_str().to_string(),
            tip_key,
            sender: who.user.clone(),
            creator: rec.creator.clone(),
            target: target.key(),
            amount_cents: req.amount_cents,
            message: if req.kept.is_some() {
                String::new()
            } else {
                req.message.clone()
            },
            currency: fiat,
        })
        .await?;
    if let Some((k, reason)) = &req.kept {
        state
            .ledger
            .message_kept(&crate::ledger::message_rules::KeptMessage {
                id: k.id.clone(),
                creator: rec.creator.clone(),
                kind: "tip".into(),
                target: target.key(),
                seq: None,
                reference: Some(pi.id.as_str().to_string()),
                sender: who.user.clone(),
                message: req.message,
                state: k.state.clone(),
                reason: reason.clone(),
            })
            .await?;
    }
    Ok(TipAnswer {
        id: req.id,
        payment_intent: pi.id.as_str().to_string(),
        client_secret: pi.client_secret.unwrap_or_default(),
        amount_cents: pi.amount,
        currency: pi.currency.to_string(),
        creator: rec.creator,
    })
}
