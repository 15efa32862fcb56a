//! Real money through Stripe: coin purchases, signed webhooks, creator
//! onboarding (Connect Express), tips (destination charges, no fee) and
//! diamond cash-outs (Transfers).
//!
//! Owns: the payment flows and their order of effects — the ledger first,
//! then the counters engine, then the room — the recovery of cash-outs
//! left pending by a crash or an unanswered Transfer, the reversal of a
//! tip's Transfer when the platform pays its refund or chargeback, and the
//! parking of refunds and disputes that arrive before their purchase.
//! Must not: credit coins or move money on anything but a verified webhook
//! or a Stripe answer; call Stripe without an Idempotency-Key where a
//! retry could repeat money movement; hold SQL (the ledger does); pass
//! Stripe's error text to clients (it is logged).

pub mod stripe;
pub mod webhook;

use std::collections::HashMap;

use serde::Serialize;

use crate::auth::Identity;
use crate::error::{Error, ErrorCode, Result};
use crate::ledger::{
    CashoutEnd, CashoutRecord, DisputeOp, EarlyReversal, OpKey, PayoutAccount, PurchaseOp,
    PurchaseRecord, RefundOp, StripeEventRef, TipRecord, TipReversalOp,
};
use crate::model::{Target, TargetKind};
use crate::protocol::{now_ms, valid_client_id, ServerMsg};

use self::stripe::{
    currency, CreateAccount, CreateAccountCapabilities, CreateAccountCapabilitiesTransfers,
    CreateAccountLink, CreateAccountLinkType, CreateAccountType, CreateIdTransferReversal,
    CreatePaymentIntent, CreatePaymentIntentTransferData, CreateTransfer, ListTransfer,
    PaymentIntentAllowedPaymentMethodTypes, StripeClient, StripeError, Transfer,
};
use self::webhook::{AccountFacts, ChargeFacts, DisputeFacts, Object, PaymentIntentFacts};

/// Metadata key naming what a PaymentIntent pays for (`purchase` | `tip`).
const META_KIND: &str = "giftstream_kind";

/// What the payment flows use of the application: a narrow view built by
/// `crate::app::AppState::payments`, so this module does not import the
/// layer above it.
pub struct Payments<'a> {
    /// Validated configuration.
    pub cfg: &'a crate::config::Config,
    /// The system of record.
    pub ledger: &'a dyn crate::ledger::Ledger,
    /// Wallets (coin credits after the ledger, tip events).
    pub counters: &'a dyn crate::counters::Counters,
    /// Room messages to every node (tip events).
    pub relay: &'a dyn crate::relay::Relay,
    /// The Stripe client; None while payments are off (no secret key).
    pub stripe: Option<&'a StripeClient>,
}

/// The Stripe client, or `bad_request` "payments are not configured" when
/// `stripe.secret_key` is empty.
/// What can lend the payment flows their view ([`Payments`]): the
/// application state, or a view itself.
pub trait PaymentsApp: Sync {
    /// The payment flows' view.
    fn payments(&self) -> Payments<'_>;
}

impl PaymentsApp for Payments<'_> {
    fn payments(&self) -> Payments<'_> {
        Payments {
            cfg: self.cfg,
            ledger: self.ledger,
            counters: self.counters,
            relay: self.relay,
            stripe: self.stripe,
        }
    }
}

fn client<'a>(state: &Payments<'a>) -> Result<&'a StripeClient> {
    state.stripe.ok_or_else(|| {
        Error::bad_request("payments are not configured on this server (stripe.secret_key)")
    })
}

fn stripe_failed(e: StripeError) -> Error {
    match e {
        StripeError::Refused {
            message,
            kind,
            status,
        } => {
            // Stripe's own words stay in the log: they can name accounts,
            // keys or internal state that a client must not see.
            tracing::warn!(status, %kind, %message, "stripe refused a request");
            Error::bad_request("the payment provider refused the request")
        }
        StripeError::Unknown(why) => Error::internal(format_args!("stripe: {why}")),
    }
}

/// Answer to a coin purchase: the client confirms it with Stripe.js.
#[derive(Debug, Clone, Serialize)]
pub struct PurchaseAnswer {
    /// The client's request id.
    pub id: String,
    /// Package bought.
    pub package: String,
    /// Coins it credits once paid.
    pub coins: i64,
    /// Price, cents.
    pub amount_cents: i64,
    /// Currency.
    pub currency: String,
    /// `pi_...`.
    pub payment_intent: String,
    /// For Stripe.js.
    pub client_secret: String,
}

/// `POST /v1/coins/purchases`: a PaymentIntent for a package, keyed by the
/// request id. Coins are credited by the webhook, not here.
pub async fn create_purchase(
    state: &Payments<'_>,
    who: &Identity,
    package: &str,
    id: &str,
) -> Result<PurchaseAnswer> {
    let c = client(state)?;
    if !valid_client_id(id) {
        return Err(Error::bad_request("id must be 1..=64 characters"));
    }
    let pkg = state
        .cfg
        .stripe
        .packages
        .iter()
        .find(|p| p.id == package)
        .ok_or_else(|| Error::bad_request(format!("no coin package `{package}`")))?;
    let req = CreatePaymentIntent::new(pkg.price_cents, currency(&pkg.currency))
        .allowed_payment_method_types(vec![PaymentIntentAllowedPaymentMethodTypes::Card])
        .metadata(metadata([
            (META_KIND, "purchase".to_string()),
            ("giftstream_user", who.user.clone()),
            ("giftstream_package", pkg.id.clone()),
            ("giftstream_coins", pkg.coins.to_string()),
        ]));
    // A user name holds no `:` (auth checks `valid_name`), so the client id
    // is the whole rest of the key: one key per (user, id).
    let key = format!("purchase:{}:{id}", who.user);
    let pi = c
        .create_payment_intent(&req, &key)
        .await
        .map_err(stripe_failed)?;
    // Recorded before the client can pay: only purchases created here are
    // ever credited.
    state
        .ledger
        .purchase_created(&PurchaseOp {
            event: StripeEventRef {
                id: String::new(),
                kind: String::new(),
            },
            payment_intent: pi.id.as_str().to_string(),
            user: who.user.clone(),
            coins: pkg.coins,
            amount_cents: pi.amount,
        })
        .await?;
    Ok(PurchaseAnswer {
        id: id.to_string(),
        package: pkg.id.clone(),
        coins: pkg.coins,
        amount_cents: pi.amount,
        currency: pi.currency.to_string(),
        payment_intent: pi.id.as_str().to_string(),
        client_secret: pi.client_secret.unwrap_or_default(),
    })
}

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
    fn applied_if(applied: bool) -> WebhookOutcome {
        if applied {
            WebhookOutcome::Applied
        } else {
            WebhookOutcome::Replayed
        }
    }
}

/// The coins a purchase's `cents` (of its price) stand for, rounded down;
/// the whole price is all its coins.
fn coin_share(rec: &PurchaseRecord, cents: i64) -> i64 {
    if cents >= rec.amount_cents {
        rec.coins
    } else {
        ((rec.coins as i128 * cents.max(0) as i128) / rec.amount_cents as i128) as i64
    }
}

/// Credit the wallet with what the ledger decided (after a debt took its
/// part), under `op_id`: idempotent, so a redelivered event after a crash
/// between ledger and counters completes it.
async fn credit_rest(state: &Payments<'_>, user: &str, coins: i64, op_id: &str) -> Result<()> {
    if coins > 0 {
        state.counters.credit(user, coins, op_id).await?;
    }
    Ok(())
}

/// `POST /v1/stripe/webhook`: verify the signature, then apply the event
/// once. A bad or old signature is `bad_request` and changes nothing.
pub async fn webhook(state: &Payments<'_>, signature: &str, body: &[u8]) -> Result<WebhookOutcome> {
    let cfg = &state.cfg.stripe;
    if !cfg.enabled() {
        return Err(Error::bad_request(
            "payments are not configured on this server (stripe.secret_key)",
        ));
    }
    let event = webhook::read_event(
        body,
        signature,
        &cfg.webhook_secret,
        cfg.webhook_tolerance_s,
        now_ms() / 1000,
    )
    .map_err(|e| {
        if let webhook::Refused::Signature(_) = e {
            metrics::counter!("giftstream_stripe_webhooks_refused_total").increment(1);
        }
        Error::bad_request(e.to_string())
    })?;
    let ev = StripeEventRef {
        id: event.id.clone(),
        kind: event.kind.clone(),
    };
    let outcome = match &event.object {
        Object::PaymentIntent(pi) => match pi.metadata.get(META_KIND).map(String::as_str) {
            Some("purchase") => purchase_paid(state, &ev, pi).await?,
            Some("tip") => tip_paid(state, &ev, pi).await?,
            _ => WebhookOutcome::Ignored,
        },
        Object::Charge(ch) if event.kind == "charge.refunded" => refunded(state, &ev, ch).await?,
        Object::Charge(ch) => charge_succeeded(state, &ev, ch).await?,
        Object::Dispute(d) => match event.kind.as_str() {
            "charge.dispute.funds_withdrawn" => dispute_withdrawn(state, &ev, d).await?,
            "charge.dispute.funds_reinstated" => dispute_reinstated(state, &ev, d).await?,
            _ => {
                state.ledger.record_stripe_event(&ev).await?;
                WebhookOutcome::Ignored
            }
        },
        Object::Account(AccountFacts {
            id,
            payouts_enabled,
        }) => {
            let acct = id
                .as_deref()
                .ok_or_else(|| Error::bad_request("account.id"))?;
            // False also for an event older than the last one applied
            // for the account: acknowledged, no effect.
            WebhookOutcome::applied_if(
                state
                    .ledger
                    .account_updated(&ev, acct, *payouts_enabled, event.created)
                    .await?,
            )
        }
        Object::Other => WebhookOutcome::Ignored,
    };
    metrics::counter!("giftstream_stripe_webhooks_total", "outcome" => match outcome {
        WebhookOutcome::Applied => "applied",
        WebhookOutcome::Replayed => "replayed",
        WebhookOutcome::Ignored => "ignored",
    })
    .increment(1);
    Ok(outcome)
}

/// Metadata for a Stripe request.
fn metadata<const N: usize>(pairs: [(&str, String); N]) -> HashMap<String, String> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// A purchase was paid: ledger first (op `purchase:{pi}`, once), then the
/// wallet (idempotent on the same op id, so a redelivery after a crash
/// between the two completes the credit). Coins and price come from the
/// purchase recorded at creation, never from the event alone.
async fn purchase_paid(
    state: &Payments<'_>,
    ev: &StripeEventRef,
    pi: &PaymentIntentFacts,
) -> Result<WebhookOutcome> {
    let id = pi
        .id
        .as_deref()
        .ok_or_else(|| Error::bad_request("payment_intent.id"))?;
    let Some(rec) = state.ledger.purchase_record(id).await? else {
        tracing::info!(
            payment_intent = id,
            "payment for a purchase not created here: ignored"
        );
        state.ledger.record_stripe_event(ev).await?;
        return Ok(WebhookOutcome::Ignored);
    };
    let amount = pi.amount_received.filter(|a| *a > 0).or(pi.amount);
    if amount != Some(rec.amount_cents)
        || pi.currency.as_deref() != Some(state.cfg.stripe.currency.as_str())
    {
        tracing::warn!(
            payment_intent = id,
            "paid amount differs from the purchase: not credited"
        );
        state.ledger.record_stripe_event(ev).await?;
        return Ok(WebhookOutcome::Ignored);
    }
    let op = PurchaseOp {
        event: ev.clone(),
        payment_intent: id.to_string(),
        user: rec.user.clone(),
        coins: rec.coins,
        amount_cents: rec.amount_cents,
    };
    let applied = state.ledger.purchase(&op).await?;
    if applied || rec.paid {
        // The ledger decided, once, how much went to an earlier debt; the
        // wallet gets the rest (the same amount on a redelivery).
        let to_debt = if applied {
            state
                .ledger
                .purchase_record(id)
                .await?
                .map_or(0, |r| r.coins_to_debt)
        } else {
            rec.coins_to_debt
        };
        let coins = rec.coins - to_debt;
        if to_debt > 0 {
            tracing::info!(user = %rec.user, repaid = to_debt, "purchase repaid a debt first");
        }
        credit_rest(state, &rec.user, coins, &OpKey::Purchase(id).op_id()).await?;
        apply_parked(state, id).await?;
    }
    Ok(WebhookOutcome::applied_if(applied))
}

/// Acknowledge an event with no effect (recorded once).
async fn ignored(state: &Payments<'_>, ev: &StripeEventRef) -> Result<WebhookOutcome> {
    Ok(if state.ledger.record_stripe_event(ev).await? {
        WebhookOutcome::Ignored
    } else {
        WebhookOutcome::Replayed
    })
}

/// A refund or dispute of a purchase whose `payment_intent.succeeded` has
/// not arrived yet (Stripe does not order events): parked in the ledger,
/// applied when the purchase is paid.
async fn park(
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
async fn apply_parked(state: &Payments<'_>, pi: &str) -> Result<()> {
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
            };
            dispute_withdrawn(state, &r.event, &d).await?
        };
        tracing::info!(payment_intent = pi, event = %r.event.id, ?outcome, "parked reversal applied");
    }
    Ok(())
}

/// `charge.succeeded`: a tip's destination charge names its Transfer,
/// recorded for a later refund or dispute (which reverses it).
async fn charge_succeeded(
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
async fn reverse_tip_transfer(
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
        Err(StripeError::Unknown(why)) => {
            // Stripe redelivers the event: the retry asks again.
            return Err(Error::internal(format_args!("stripe: {why}")));
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
        Err(StripeError::Unknown(why)) => Err(Error::internal(format_args!("stripe: {why}"))),
    }
}

/// `charge.refunded` of a tip (a destination charge: the platform pays the
/// refund): reverse the creator's Transfer for the refunded part, record
/// it (op `tip_refund:{pi}:{total}`).
async fn tip_refunded(
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
async fn tip_disputed(
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
async fn tip_reversible(
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

/// `charge.refunded` of a purchase: reverse the refunded share of its
/// coins. The counters engine takes what the wallet still holds (it is the
/// real-time authority, as for gifts); the ledger records that and a debt
/// for the rest — never a negative wallet.
async fn refunded(
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
async fn dispute_withdrawn(
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
async fn dispute_reinstated(
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

/// `charge.dispute.funds_reinstated` of a tip: the platform won, the cents
/// are back. What the reversal took from the creator goes back to them by a
/// Transfer (Idempotency-Key `tip_dispute:{dp}:reinstated`), then the
/// ledger undoes the withdrawal (its loss always; the creator's part when
/// repaid).
async fn tip_dispute_won(
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
        let creator = state.ledger.tip_record(pi).await?.map(|t| t.0.creator);
        let acct = match creator {
            Some(c) => state.ledger.payout_account(&c).await?,
            None => None,
        };
        repaid = match (acct, client(state)) {
            (Some(a), Ok(c)) => {
                let req = CreateTransfer::new(currency(&state.cfg.stripe.currency), &a.account)
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
                    Err(StripeError::Unknown(why)) => {
                        return Err(Error::internal(format_args!("stripe: {why}")))
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

/// A tip was paid: ledger posting once, then the room's `tip_event`.
async fn tip_paid(
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
        let msg = ServerMsg::TipEvent {
            room: room.clone(),
            sender: tip.sender.clone(),
            amount_cents: tip.amount_cents,
            currency: state.cfg.stripe.currency.clone(),
            message: tip.message.clone(),
            ts: now_ms(),
        };
        let topic = crate::relay::Topic::room(room.as_str());
        if let Err(e) = state.relay.publish(&topic, &msg).await {
            // The tip is in the ledger; the animation is best-effort.
            tracing::warn!(room, error = %e, "tip_event not published");
        }
    }
    Ok(WebhookOutcome::Applied)
}

/// A creator's payout status.
#[derive(Debug, Clone, Serialize)]
pub struct PayoutStatus {
    /// Creator.
    pub creator: String,
    /// Connected account, once onboarding started.
    pub account: Option<String>,
    /// Whether Stripe pays out to it (kept current by `account.updated`).
    pub payouts_enabled: bool,
}

/// `GET /v1/creators/me/payouts`.
pub async fn payout_status(state: &Payments<'_>, creator: &str) -> Result<PayoutStatus> {
    let a = state.ledger.payout_account(creator).await?;
    Ok(PayoutStatus {
        creator: creator.to_string(),
        payouts_enabled: a.as_ref().is_some_and(|a| a.payouts_enabled),
        account: a.map(|a| a.account),
    })
}

/// Answer of onboarding: where the creator finishes it.
#[derive(Debug, Clone, Serialize)]
pub struct OnboardAnswer {
    /// `acct_...`.
    pub account: String,
    /// Stripe-hosted onboarding page.
    pub url: String,
    /// Link expiry, seconds since epoch.
    pub expires_at: i64,
    /// Current payout status.
    pub payouts_enabled: bool,
}

/// `POST /v1/creators/me/payouts/onboard`: one Express account per creator
/// (Idempotency-Key `account:{creator}`), then a fresh account link.
pub async fn onboard(state: &Payments<'_>, creator: &str) -> Result<OnboardAnswer> {
    let c = client(state)?;
    let acct: PayoutAccount = match state.ledger.payout_account(creator).await? {
        Some(a) => a,
        None => {
            let mut transfers = CreateAccountCapabilitiesTransfers::new();
            transfers.requested = Some(true);
            let mut capabilities = CreateAccountCapabilities::new();
            capabilities.transfers = Some(transfers);
            let req = CreateAccount::new()
                .type_(CreateAccountType::Express)
                .capabilities(capabilities)
                .metadata(metadata([("giftstream_creator", creator.to_string())]));
            let a = c
                .create_account(&req, &format!("account:{creator}"))
                .await
                .map_err(stripe_failed)?;
            state
                .ledger
                .put_payout_account(creator, a.id.as_str())
                .await?
        }
    };
    let req = CreateAccountLink::new(&acct.account, CreateAccountLinkType::AccountOnboarding)
        .refresh_url(&state.cfg.stripe.onboard_refresh_url)
        .return_url(&state.cfg.stripe.onboard_return_url);
    // A fresh link each time (they expire), one per call even if retried.
    let key = format!("account_link:{creator}:{}", uuid::Uuid::new_v4().simple());
    let link = c
        .create_account_link(&req, &key)
        .await
        .map_err(stripe_failed)?;
    Ok(OnboardAnswer {
        account: acct.account,
        url: link.url,
        expires_at: link.expires_at,
        payouts_enabled: acct.payouts_enabled,
    })
}

/// A tip request.
#[derive(Debug, Clone)]
pub struct TipRequest {
    /// Cents.
    pub amount_cents: i64,
    /// Currency, lower case.
    pub currency: String,
    /// Message shown in the room.
    pub message: String,
    /// Client id (idempotency).
    pub id: String,
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
    if req.currency != cfg.currency {
        return Err(Error::bad_request(format!(
            "currency must be `{}`",
            cfg.currency
        )));
    }
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
        return Err(Error::forbidden("a creator cannot tip themself"));
    }
    let acct = state
        .ledger
        .payout_account(&rec.creator)
        .await?
        .filter(|a| a.payouts_enabled)
        .ok_or_else(|| {
            Error::bad_request("this creator cannot receive tips yet (payouts not enabled)")
        })?;
    // A user name holds no `:` (auth checks `valid_name`): one key per
    // (user, id).
    let tip_key = format!("{}:{}", who.user, req.id);
    let pi_req = CreatePaymentIntent::new(req.amount_cents, currency(&req.currency))
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
            message: req.message,
        })
        .await?;
    Ok(TipAnswer {
        id: req.id,
        payment_intent: pi.id.as_str().to_string(),
        client_secret: pi.client_secret.unwrap_or_default(),
        amount_cents: pi.amount,
        currency: pi.currency.to_string(),
        creator: rec.creator,
    })
}

/// `POST /v1/creators/me/cashouts`: diamonds → pending cash-out in the
/// ledger, then a Transfer (Idempotency-Key: the cash-out's current
/// attempt key, `transfer_group` its group); the outcome completes,
/// reverses or flags it. No answer from Stripe leaves it pending for
/// [`recover_cashouts`]. A replay of a pending cash-out drives it as
/// recovery does (a lookup at Stripe first once its attempt is old).
pub async fn cashout(
    state: &Payments<'_>,
    creator: &str,
    diamonds: i64,
    id: &str,
) -> Result<CashoutRecord> {
    let c = client(state)?;
    let cfg = &state.cfg.stripe;
    if !valid_client_id(id) {
        return Err(Error::bad_request("id must be 1..=64 characters"));
    }
    if diamonds < cfg.cashout_diamonds_min || diamonds > 1_000_000_000_000 {
        return Err(Error::bad_request(format!(
            "diamonds must be at least {}",
            cfg.cashout_diamonds_min
        )));
    }
    let cents = diamonds
        .checked_mul(cfg.cashout_cents_per_100_diamonds)
        .map(|c| c / 100)
        .ok_or_else(|| Error::bad_request("diamonds out of range"))?;
    if cents <= 0 {
        return Err(Error::bad_request("too few diamonds for one cent"));
    }
    let acct = state
        .ledger
        .payout_account(creator)
        .await?
        .filter(|a| a.payouts_enabled)
        .ok_or_else(|| Error::bad_request("payouts are not enabled: finish onboarding first"))?;
    let group = format!("giftstream-cashout-{}", uuid::Uuid::new_v4().simple());
    let rec = state
        .ledger
        .cashout_begin(&CashoutRecord {
            // A creator name holds no `:` (auth checks `valid_name`): one
            // id per (creator, client id). The ledger's operation keys are
            // typed ([`OpKey`]), never built from it by joining.
            cashout_id: format!("{creator}:{id}"),
            creator: creator.to_string(),
            diamonds,
            amount_cents: cents,
            status: "pending".into(),
            transfer: None,
            transfer_key: attempt_key(&group, 1),
            transfer_group: group,
            attempt: 1,
            ..Default::default()
        })
        .await?;
    if rec.status != "pending" {
        return Ok(rec);
    }
    match drive(state, c, rec, &acct.account).await? {
        Step::Ended(rec) | Step::Pending(rec, _) => Ok(rec),
    }
}

/// The Idempotency-Key of a cash-out's Transfer attempt `n`: its group
/// (random per cash-out) and the attempt number — never a client's text.
fn attempt_key(group: &str, n: i64) -> String {
    format!("{group}-{n}")
}

/// Where driving a pending cash-out got.
enum Step {
    /// Completed, reversed or flagged.
    Ended(CashoutRecord),
    /// Still pending: the outcome is unknown (why).
    Pending(CashoutRecord, String),
}

/// Whether Stripe's Transfer is the one this cash-out asked for.
fn transfer_matches(t: &Transfer, rec: &CashoutRecord, account: &str) -> bool {
    let dest = t.destination.as_ref().map(|d| d.id().as_str());
    t.amount == rec.amount_cents && dest == Some(account)
}

/// Advance a pending cash-out one step: when its current attempt was first
/// sent longer ago than `stripe.transfer_lookup_after_s` (Stripe may have
/// forgotten its Idempotency-Key), look its Transfer up at Stripe first —
/// found: complete (or flag, if it does not match); not found: record
/// attempt + 1 with a new key. Then send the Transfer of the current
/// attempt and record its outcome.
async fn drive(
    state: &Payments<'_>,
    c: &StripeClient,
    mut rec: CashoutRecord,
    account: &str,
) -> Result<Step> {
    let lookup_after_ms = (state.cfg.stripe.transfer_lookup_after_s as i64).saturating_mul(1000);
    let now = now_ms();
    if now - rec.attempt_ms >= lookup_after_ms {
        let found = match lookup_transfers(c, &rec, account).await {
            Ok(found) => found,
            Err(why) => return Ok(Step::Pending(rec, why)),
        };
        if let Some(t) = found.iter().find(|t| !transfer_matches(t, &rec, account)) {
            return end_cashout(state, &rec, flag(&rec, t, account)).await;
        }
        if let Some(t) = found.first() {
            if found.len() > 1 {
                tracing::error!(cashout = %rec.cashout_id, transfers = found.len(), "several Transfers for one cash-out at Stripe: completed with the first; settle the rest by hand");
            }
            tracing::info!(cashout = %rec.cashout_id, transfer = %t.id.as_str(), "pending cash-out's Transfer found at Stripe");
            let end = CashoutEnd::Completed {
                transfer: t.id.as_str().to_string(),
            };
            return end_cashout(state, &rec, end).await;
        }
        // Not made at Stripe: a new attempt under a new key (the old key may
        // be forgotten, and reusing it after that could pay twice).
        let group = if rec.transfer_group.is_empty() {
            // Started before migration 0006: no group of its own.
            format!("giftstream-cashout-{}", uuid::Uuid::new_v4().simple())
        } else {
            rec.transfer_group.clone()
        };
        let n = rec.attempt + 1;
        let key = attempt_key(&group, n);
        if !state
            .ledger
            .cashout_new_attempt(&rec.cashout_id, n, &key, now)
            .await?
        {
            // Another node moved it on meanwhile.
            let now_rec = reload(state, &rec.cashout_id).await?;
            return Ok(if now_rec.status == "pending" {
                Step::Pending(now_rec, "another pass is driving it".into())
            } else {
                Step::Ended(now_rec)
            });
        }
        tracing::warn!(cashout = %rec.cashout_id, attempt = n, "no Transfer at Stripe for a pending cash-out: sent again under a new key");
        rec = reload(state, &rec.cashout_id).await?;
    }
    let mut req = CreateTransfer::new(currency(&state.cfg.stripe.currency), account)
        .amount(rec.amount_cents)
        .metadata(metadata([("giftstream_cashout", rec.cashout_id.clone())]));
    if !rec.transfer_group.is_empty() {
        // Absent for a cash-out started before migration 0006, so that a
        // retry under its first key sends the same parameters.
        req = req.transfer_group(&rec.transfer_group);
    }
    let end = match c.create_transfer(&req, &rec.transfer_key).await {
        Ok(t) if transfer_matches(&t, &rec, account) => CashoutEnd::Completed {
            transfer: t.id.as_str().to_string(),
        },
        Ok(t) => flag(&rec, &t, account),
        Err(StripeError::Refused { message, kind, .. }) => {
            tracing::warn!(cashout = %rec.cashout_id, %kind, %message, "transfer refused; diamonds go back");
            CashoutEnd::Reversed
        }
        Err(StripeError::Unknown(why)) => {
            tracing::warn!(cashout = %rec.cashout_id, %why, "transfer outcome unknown; stays pending until recovery");
            return Ok(Step::Pending(rec, why));
        }
    };
    end_cashout(state, &rec, end).await
}

/// A Transfer that does not match its cash-out: logged, counted, and the
/// end that flags it.
fn flag(rec: &CashoutRecord, t: &Transfer, account: &str) -> CashoutEnd {
    metrics::counter!("giftstream_cashout_mismatch_total").increment(1);
    tracing::error!(
        cashout = %rec.cashout_id,
        transfer = %t.id.as_str(),
        amount = t.amount,
        expected_amount = rec.amount_cents,
        destination = ?t.destination.as_ref().map(|d| d.id().as_str().to_string()),
        expected_destination = account,
        "Transfer does not match its cash-out: flagged, diamonds returned; settle it at Stripe by hand"
    );
    CashoutEnd::Flagged {
        transfer: t.id.as_str().to_string(),
    }
}

/// Record `end` and answer the cash-out as recorded.
async fn end_cashout(state: &Payments<'_>, rec: &CashoutRecord, end: CashoutEnd) -> Result<Step> {
    state.ledger.cashout_end(&rec.cashout_id, &end).await?;
    let now_rec = reload(state, &rec.cashout_id).await?;
    Ok(if now_rec.status == "pending" {
        Step::Pending(now_rec, "not ended".into())
    } else {
        Step::Ended(now_rec)
    })
}

async fn reload(state: &Payments<'_>, cashout_id: &str) -> Result<CashoutRecord> {
    state
        .ledger
        .cashout(cashout_id)
        .await?
        .ok_or_else(|| Error::internal("cash-out vanished"))
}

/// Pages of a Transfer list read at most (100 Transfers each) when a
/// cash-out started before migration 0006 is looked up by destination.
const LOOKUP_PAGES_MAX: usize = 10;

/// The cash-out's Transfers at Stripe: by its `transfer_group`, or, for a
/// cash-out started before migration 0006 (none), the destination's
/// Transfers since shortly before its attempt whose metadata names it.
/// Err (why) when Stripe did not answer or the list was too long to read.
async fn lookup_transfers(
    c: &StripeClient,
    rec: &CashoutRecord,
    account: &str,
) -> std::result::Result<Vec<Transfer>, String> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..LOOKUP_PAGES_MAX {
        let mut req = ListTransfer::new().limit(100);
        if rec.transfer_group.is_empty() {
            req = req
                .destination(account)
                .created(stripe_types::RangeQueryTs::gte(rec.attempt_ms / 1000 - 600));
        } else {
            req = req.transfer_group(&rec.transfer_group);
        }
        if let Some(a) = &after {
            req = req.starting_after(a);
        }
        let page = c.list_transfers(&req).await.map_err(|e| e.to_string())?;
        after = page.data.last().map(|t| t.id.as_str().to_string());
        out.extend(page.data.into_iter().filter(|t| {
            t.metadata.get("giftstream_cashout") == Some(&rec.cashout_id)
                || (!rec.transfer_group.is_empty()
                    && t.transfer_group.as_deref() == Some(rec.transfer_group.as_str()))
        }));
        if !page.has_more || after.is_none() {
            return Ok(out);
        }
    }
    Err(format!(
        "more than {LOOKUP_PAGES_MAX} pages of Transfers to look through"
    ))
}

/// One pass over pending cash-outs (at most
/// `stripe.recover_cashouts_len_max`, those due first): each is driven on
/// its own ([`drive`]: the same Idempotency-Key, or a lookup at Stripe and
/// a new key once the attempt is old). One that fails (Stripe unanswered,
/// a ledger error) never stops the pass: it is logged, counted
/// (`giftstream_cashout_recovery_failures_total`) and left alone for
/// `stripe.cashout_retry_backoff_ms`, doubled per failure in a row up to
/// `stripe.cashout_retry_backoff_ms_max`; the gauge `giftstream_cashouts_stuck`
/// tells how many pending cash-outs failed their last pass. Answers how
/// many ended now.
pub async fn recover_cashouts(app: &(impl PaymentsApp + ?Sized)) -> Result<usize> {
    let state = &app.payments();
    let Ok(c) = client(state) else {
        return Ok(0);
    };
    let cfg = &state.cfg.stripe;
    let pending = state
        .ledger
        .cashouts_pending(cfg.recover_cashouts_len_max)
        .await?;
    let now = now_ms();
    let mut ended = 0;
    let mut stuck = 0usize;
    for rec in pending {
        if rec.next_try_ms > now {
            stuck += 1;
            continue;
        }
        let id = rec.cashout_id.clone();
        let failures = rec.failures;
        let why = match recover_one(state, c, rec).await {
            Ok(Step::Ended(after)) => {
                ended += 1;
                tracing::info!(cashout = %id, status = %after.status, "pending cash-out recovered");
                continue;
            }
            Ok(Step::Pending(_, why)) => why,
            Err(e) => e.to_string(),
        };
        let failures = failures + 1;
        let shift = (failures - 1).clamp(0, 30) as u32;
        let wait = cfg
            .cashout_retry_backoff_ms
            .saturating_mul(1u64 << shift)
            .min(cfg.cashout_retry_backoff_ms_max);
        metrics::counter!("giftstream_cashout_recovery_failures_total").increment(1);
        tracing::warn!(cashout = %id, failures, retry_in_ms = wait, error = %why, "pending cash-out stuck; recovery goes on with the others");
        stuck += 1;
        if let Err(e) = state
            .ledger
            .cashout_defer(&id, failures, now.saturating_add(wait as i64))
            .await
        {
            tracing::warn!(cashout = %id, error = %e, "cash-out backoff not recorded");
        }
    }
    metrics::gauge!("giftstream_cashouts_stuck").set(stuck as f64);
    Ok(ended)
}

/// Drive one pending cash-out (a creator without a payout account any more
/// gets the diamonds back).
async fn recover_one(state: &Payments<'_>, c: &StripeClient, rec: CashoutRecord) -> Result<Step> {
    let Some(acct) = state.ledger.payout_account(&rec.creator).await? else {
        return end_cashout(state, &rec, CashoutEnd::Reversed).await;
    };
    drive(state, c, rec, &acct.account).await
}
